#!/bin/sh
# Installs the Debian packages traind builds against, when pkg-config cannot find them.
# As root it runs apt-get; otherwise it prints the exact command to run and fails.
# Usage: scripts/deps.sh [--test] [extra-package ...]   (extra packages: e.g. for benches)
#   --test  also what `make test` needs beyond the build: Debian's chromium (the dashboard
#           suite drives it), and node and npm when there are none (puppeteer-core comes
#           from npm: see the Makefile's tests/browser rule).
set -eu
if [ "${1:-}" = --test ]; then
    shift
    set -- chromium postgresql "$@"
    command -v node >/dev/null 2>&1 || set -- nodejs "$@"
    command -v npm >/dev/null 2>&1 || set -- npm "$@"
fi
PKGS="libmicrohttpd-dev libcjson-dev libopenblas-dev check libsqlite3-dev libgnutls28-dev openssl zlib1g-dev libprotobuf-c-dev protobuf-c-compiler pkg-config libpq-dev"
MODULES="libmicrohttpd libcjson openblas check sqlite3 gnutls zlib libprotobuf-c libpq"
missing=""
if command -v pkg-config >/dev/null 2>&1; then
    for m in $MODULES; do
        pkg-config --exists "$m" 2>/dev/null || missing="$missing $m"
    done
    command -v protoc-c >/dev/null 2>&1 || missing="$missing protoc-c"
else
    missing="pkg-config"
fi
# The tests make a self-signed certificate with the openssl command.
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
extra=""
for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || extra="$extra $p"
done
[ -z "$missing" ] && [ -z "$extra" ] && exit 0
want="$PKGS$extra"
[ -z "$missing" ] && want="$extra"
if [ "$(id -u)" = 0 ]; then
    echo "deps: installing$want" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq $want >&2
else
    echo "deps: missing$missing$extra; run as root:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y$want" >&2
    exit 1
fi
