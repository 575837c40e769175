#!/usr/bin/env bash
# Copy Apache Kafka's jars (and all their runtime dependencies) from Maven Central
# into compat/.cache/kafka-jars/. Idempotent: does nothing when the jars of the current
# pom.xml are there; fetches again when pom.xml has changed since the last fetch.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$here/pom.xml"
dest="${KAFKA_JARS_DIR:-$here/../.cache/kafka-jars}"
# Written only after a complete copy, and holding the hash of the pom it was made from,
# so that an interrupted fetch, or an edited pom, is fetched again.
marker="$dest/.complete"
want="$(sha256sum "$pom" | cut -d' ' -f1)"

if [[ -f "$marker" && "$(cat "$marker")" == "$want" ]]; then
    exit 0
fi

command -v mvn >/dev/null || { echo "fetch-jars.sh: mvn not found (apt-get install -y maven)" >&2; exit 1; }

# Into a fresh folder beside the old one, which it then replaces: jars that an older
# pom pulled in must not stay on the classpath.
parent="$(dirname "$dest")"
mkdir -p "$parent"
fresh="$(mktemp -d "$parent/.kafka-jars.XXXXXX")"
trap 'rm -rf "$fresh"' EXIT
mvn -q -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
    -DincludeScope=runtime \
    -DoutputDirectory="$fresh"

ls "$fresh"/kafka_2.13-*.jar "$fresh"/kafka-tools-*.jar >/dev/null
echo "$want" > "$fresh/.complete"
rm -rf "$dest"
mv "$fresh" "$dest"
trap - EXIT
echo "fetch-jars.sh: Kafka jars in $dest"
