# lib.sh — what the tailor program's shell tests share: the program, the
# shared datasets (a test fails loudly without them), a scratch folder, and
# pass/fail counting. Sourced with the dataset folder the test needs:
#   . "$(dirname "$0")/lib.sh" llm-fixtures
T=${TAILOR_BIN:?TAILOR_BIN not set}
DATA=${TAILOR_TEST_DATA:-}
if [ -z "$DATA" ] || [ ! -d "$DATA/${1:-.}" ]; then
    echo "FATAL: the shared datasets folder is missing (TAILOR_TEST_DATA=$DATA); tests need ../shared/data" >&2
    exit 2
fi
W=$(mktemp -d "${TMPDIR:-/tmp}/tailor-test-XXXXXX")
trap 'rm -rf "$W"' EXIT
pass=0 fail=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
# expect CODE DESCRIPTION -- command...: runs it (stdout to $W/out, stderr
# to $W/err), checks the exit code.
expect() {
    want=$1 what=$2; shift 3
    "$@" >"$W/out" 2>"$W/err"; got=$?
    if [ "$got" -eq "$want" ]; then ok; else bad "$what: exit $got, expected $want"; cat "$W/err" >&2; fi
}
has() { # has FILE TEXT DESCRIPTION
    if grep -qF -- "$2" "$1"; then ok; else bad "$3: '$2' not in $1"; sed 's/^/  | /' "$1" >&2; fi
}
# serve_start NAME ARGS...: `tailor --db $DB serve --port 0 ARGS` in the
# background; its address in $URL, its pid in $pid, output in $W/NAME.*.
serve_start() {
    name=$1; shift
    "$T" --db "$DB" serve --port 0 "$@" >"$W/$name.out" 2>"$W/$name.err" &
    pid=$!
    URL=""
    for _ in $(seq 100); do
        URL=$(sed -n 's|.*listening on \(http://[0-9.:]*\)/.*|\1|p' "$W/$name.out")
        [ -n "$URL" ] && break
        sleep 0.1
    done
    [ -n "$URL" ] || { echo "FATAL: $name did not start" >&2; cat "$W/$name.err" >&2; exit 1; }
}
# The summary line and the exit status; the last line of every test.
finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
