#!/bin/sh
# Writes the C source that compiles the dashboard (web/) into traind: one byte array per
# file (NUL-terminated, the NUL not counted) and the table td_web_assets of
# src/http/static.h, each file under its base name with a tag of its bytes (the ETag) and
# its content type (by the extension; none known: text/plain, as for the LICENSE).
# od, not xxd, as for docs/openapi.json. Usage: scripts/embed_web.sh OUT.c FILE...
set -eu
out=$1
shift
dups=$(for f in "$@"; do basename "$f"; done | sort | uniq -d)
if [ -n "$dups" ]; then
    echo "embed_web: two files named $dups (assets are served by base name)" >&2
    exit 1
fi
{
    echo '/* generated from web/ by scripts/embed_web.sh (make); do not edit */'
    echo '#include "http/static.h"'
    i=0
    for f in "$@"; do
        echo "static const unsigned char a$i[] = {"
        od -An -v -tx1 "$f" | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'
        echo '0x00};'
        i=$((i + 1))
    done
    echo 'const td_web_asset td_web_assets[] = {'
    i=0
    for f in "$@"; do
        tag=$(sha256sum "$f" | cut -c1-16) name=$(basename "$f")
        case $name in
        *.html) type='text/html; charset=utf-8' ;;
        *.js) type='text/javascript; charset=utf-8' ;;
        *.css) type='text/css; charset=utf-8' ;;
        *.svg) type='image/svg+xml' ;;
        *.png) type='image/png' ;;
        *) type='text/plain; charset=utf-8' ;;
        esac
        echo "    {\"$name\", a$i, sizeof a$i - 1, \"$tag\", \"$type\"},"
        i=$((i + 1))
    done
    echo '};'
    echo 'const size_t td_web_nassets = sizeof td_web_assets / sizeof td_web_assets[0];'
} >"$out.tmp"
mv "$out.tmp" "$out"
