#!/usr/bin/env bash
# Builds the franz-go programs of compat/go (go.mod/go.sum pin franz-go) into
# compat/.cache/go-bin/. Idempotent: skipped when every binary is newer than go.mod,
# go.sum and every .go file. Called by compat/setup (and by the franz-go cases when the
# binary is missing or stale).
#
# Go: `go` on PATH, else /usr/local/go/bin/go, else a toolchain already unpacked in
# compat/.cache/go; on a machine with none (linux-amd64), the official Go toolchain
# module, pinned by its sha256, from the Go module proxy into compat/.cache/go.
# An older Go (1.21+) fetches the version go.mod asks for itself (GOTOOLCHAIN=auto).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
compat="$(dirname "$here")"
cache="$compat/.cache"
out="$cache/go-bin"
programs=(groupmember saslclient clientload consumebench wirebench)

say() { echo "compat/go/build.sh: $*" >&2; }

stale=""
for p in "${programs[@]}"; do
    bin="$out/$p"
    if [[ ! -x "$bin" ]] || [[ -n "$(find "$here" \( -name '*.go' -o -name go.mod -o -name go.sum \) -newer "$bin" -print -quit)" ]]; then
        stale=1
    fi
done
[[ -z "$stale" ]] && exit 0

# The toolchain fetched when no Go is installed: golang.org/toolchain is the module the
# go command itself downloads for GOTOOLCHAIN switches.
toolchain_version="go1.26.8"
toolchain_sha256_linux_amd64="30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7"

find_go() {
    if command -v go >/dev/null 2>&1; then command -v go
    elif [[ -x /usr/local/go/bin/go ]]; then echo /usr/local/go/bin/go
    elif [[ -x "$cache/go/bin/go" ]]; then echo "$cache/go/bin/go"
    else return 1
    fi
}

if ! go="$(find_go)"; then
    if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
        say "no Go found (PATH, /usr/local/go/bin): install Go 1.26 or later"
        exit 2
    fi
    say "no Go found: fetching the $toolchain_version toolchain from the Go module proxy"
    command -v unzip >/dev/null 2>&1 || { DEBIAN_FRONTEND=noninteractive apt-get install -y -q unzip; }
    name="v0.0.1-$toolchain_version.linux-amd64"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    curl -fsSL --retry 3 -o "$tmp/toolchain.zip" \
        "${GOPROXY_URL:-https://proxy.golang.org}/golang.org/toolchain/@v/$name.zip"
    echo "$toolchain_sha256_linux_amd64  $tmp/toolchain.zip" | sha256sum -c --quiet -
    unzip -q "$tmp/toolchain.zip" -d "$tmp/unpacked"
    rm -rf "$cache/go"
    mkdir -p "$cache"
    mv "$tmp/unpacked/golang.org/toolchain@$name" "$cache/go"
    chmod +x "$cache/go/bin/"* "$cache/go/pkg/tool/"*/*
    go="$cache/go/bin/go"
fi

say "building ${programs[*]} with $("$go" version)"
mkdir -p "$out"
cd "$here"
export GOFLAGS="${GOFLAGS:-} -mod=readonly"
"$go" mod download
for p in "${programs[@]}"; do
    "$go" build -trimpath -o "$out/$p.tmp" "./$p"
    mv "$out/$p.tmp" "$out/$p"
done
