#!/usr/bin/env bash
# Copy Apache Kafka's jars (and all their runtime dependencies) from Maven Central
# into compat/.cache/kafka-jars/. Idempotent: does nothing when the jars are there.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="${KAFKA_JARS_DIR:-$here/../.cache/kafka-jars}"
# A marker written only after a complete copy, so an interrupted fetch is redone.
marker="$dest/.complete"

if [[ -f "$marker" ]]; then
    exit 0
fi

command -v mvn >/dev/null || { echo "fetch-jars.sh: mvn not found (apt-get install -y maven)" >&2; exit 1; }

mkdir -p "$dest"
mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime \
    -DoutputDirectory="$dest"

ls "$dest"/kafka_2.13-*.jar >/dev/null
touch "$marker"
echo "fetch-jars.sh: Kafka jars in $dest"
