#!/bin/sh
# test_install.sh — `cmake --install` lays out bin/, lib/, include/ and a
# pkg-config file; a program built against them with pkg-config (static and
# shared) runs and imports ml-100k.
set -eu
BUILD=${TAILOR_BUILD:?}
SRC=${TAILOR_SOURCE:?}
DATA=${TAILOR_TEST_DATA:-}
[ -d "$DATA/ml-100k" ] || { echo "FATAL: shared data missing (TAILOR_TEST_DATA=$DATA)" >&2; exit 2; }
W=$(mktemp -d "${TMPDIR:-/tmp}/tailor-install-XXXXXX")
trap 'rm -rf "$W"' EXIT
pass=0 fail=0
check() { if eval "$1"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1" >&2; fi; }

cmake --install "$BUILD" --prefix "$W/prefix" >/dev/null
libdir=$(ls -d "$W/prefix"/lib* | head -n 1)
check '[ -x "$W/prefix/bin/tailor" ]'
check '[ -f "$W/prefix/include/tailor.h" ]'
check '[ -f "$libdir/libtailor.a" ]'
check 'ls "$libdir"/libtailor.so* >/dev/null 2>&1'
check '[ -f "$libdir/pkgconfig/tailor.pc" ]'
export PKG_CONFIG_PATH="$libdir/pkgconfig"
check '[ "$(pkg-config --modversion tailor)" = "0.1.0" ]'
# The test build is sanitized: the example needs the same runtime flags.
# Static libtailor over the shared system libraries it needs.
cc $SAN_FLAGS "$SRC/examples/embed.c" $(pkg-config --cflags tailor) "$libdir/libtailor.a" \
    $(pkg-config --libs sqlite3 libpq libcjson libcurl libzip libcrypto openblas libpcre2-8) -lunistring -lpthread -lm \
    -o "$W/embed_static" 2>"$W/cc.err" || cat "$W/cc.err" >&2
check '[ -x "$W/embed_static" ]'
check '"$W/embed_static" "$W/s.db" "$DATA/ml-100k" | grep -q "943 users, 1682 items, 100000 events"'
cc $SAN_FLAGS "$SRC/examples/embed.c" $(pkg-config --cflags --libs tailor) -Wl,-rpath,"$libdir" -o "$W/embed_shared" 2>"$W/cc2.err" || cat "$W/cc2.err" >&2
check '[ -x "$W/embed_shared" ]'
check '"$W/embed_shared" "$W/d.db" "$DATA/ml-100k" | grep -q "943 users, 1682 items, 100000 events"'
check '"$W/prefix/bin/tailor" version | grep -q "tailor 0.1.0"'
# The public LLM API: greedy generation with the real stories260K model.
cc $SAN_FLAGS "$SRC/examples/generate.c" $(pkg-config --cflags --libs tailor) -Wl,-rpath,"$libdir" -o "$W/generate" 2>"$W/cc3.err" || cat "$W/cc3.err" >&2
check '[ -x "$W/generate" ]'
check '"$W/generate" "$DATA/tinyllamas-stories260K/stories260K.gguf" "Once upon a time" 12 | grep -q "^, there was a little girl named Lily"'
# The public agent API: a conversation over an imported store (rules backend).
"$W/embed_shared" "$W/agent.db" "$DATA/ml-100k" >/dev/null
"$W/prefix/bin/tailor" -q --db "$W/agent.db" train pop >/dev/null
cc $SAN_FLAGS "$SRC/examples/agent.c" $(pkg-config --cflags --libs tailor) -Wl,-rpath,"$libdir" -o "$W/agent" 2>"$W/cc4.err" || cat "$W/cc4.err" >&2
check '[ -x "$W/agent" ]'
check '"$W/agent" "$W/agent.db" "two comedies from the 90s" "more" >"$W/agent.out" && grep -q "\"items\":\[{\"id\":" "$W/agent.out" && grep -q "^session 1" "$W/agent.out"'
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
