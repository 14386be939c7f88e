#!/bin/sh
# test_api_docs.sh — every curl example of docs/api.md, run against real
# servers: `tailor serve` over ml-latest-small (the rules backend) and one
# with stories260K behind /v1. Each must answer 2xx with a JSON (or event
# stream) body. Also: keys create/list/revoke, SIGTERM ends the server.
set -u
. "$(dirname "$0")/lib.sh" ml-latest-small
command -v curl >/dev/null || { echo "FATAL: curl is missing (scripts/install-deps.sh installs it)" >&2; exit 2; }

DB="$W/ml.db"
"$T" -q --db "$DB" import movielens "$DATA/ml-latest-small" >/dev/null || { echo "FATAL: import" >&2; exit 1; }
"$T" -q --db "$DB" train pop >/dev/null && "$T" -q --db "$DB" train itemknn >/dev/null || { echo "FATAL: train" >&2; exit 1; }
"$T" -q --db "$DB" eval --models pop --report "$DB.reports/ml-latest-small" >/dev/null || { echo "FATAL: eval" >&2; exit 1; }
ADMIN=$("$T" -q --db "$DB" keys create --role admin --name docs)
KEY=$("$T" -q --db "$DB" keys create --role user --user 1 --rate 0)
OLD=$("$T" -q --db "$DB" keys create --role user --user 2 --name old)
expect 0 "keys list" -- "$T" --db "$DB" keys list
has "$W/out" "in force" "keys listed"
if grep -q -- "${KEY#tlr_}" "$W/out"; then bad "keys list shows a whole key"; else ok; fi
expect 0 "revoke by name" -- "$T" --db "$DB" keys revoke old
expect 65 "revoke twice" -- "$T" --db "$DB" keys revoke old
has "$W/err" "revoked already" "revoked twice"
expect 64 "user key without user" -- "$T" --db "$DB" keys create --role user

serve_start rules --threads 2
TAILOR=$URL RULES_PID=$pid
serve_start llm --threads 2 -m "$DATA/tinyllamas-stories260K/stories260K.gguf" --chat-template chatml -c 1024
TAILOR_LLM=$URL LLM_PID=$pid
export TAILOR TAILOR_LLM ADMIN KEY

code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $OLD" "$TAILOR/api/users/2")
[ "$code" = 401 ] && ok || bad "a revoked key got $code"

n=0
sed -n '/^```sh$/,/^```$/p' "$TAILOR_SOURCE/docs/api.md" | grep '^curl ' >"$W/examples"
while IFS= read -r line; do
    n=$((n + 1))
    code=$(eval "$line -o '$W/body' -w '%{http_code}'")
    case "$code" in
        2??) ok ;;
        *) bad "docs/api.md example $n answered $code: $line"; head -c 400 "$W/body" >&2; echo >&2 ;;
    esac
    # JSON, events, metrics, a report (markdown), the page (HTML, script).
    case "$(head -c 9 "$W/body")" in
        '{'* | '['* | 'event:'* | 'data: '* | '# HELP'* | '# Evaluat'* | '<!doctype'* | '// app.js'*) ok ;;
        *) bad "example $n: not what a route answers: $(head -c 80 "$W/body")" ;;
    esac
done <"$W/examples"
[ "$n" -ge 25 ] && ok || bad "only $n curl examples found in docs/api.md"

# SIGTERM: the servers finish and exit 0.
kill -TERM "$RULES_PID" "$LLM_PID"
wait "$RULES_PID"; rc1=$?
wait "$LLM_PID"; rc2=$?
[ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ] && ok || bad "servers exited $rc1 and $rc2 on SIGTERM"
has "$W/rules.err" "finishing requests in flight" "SIGTERM said"
echo "$n examples of docs/api.md run"
finish
