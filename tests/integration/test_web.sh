#!/bin/sh
# test_web.sh — real clients against tailor serve: the page in Debian's
# Chromium (tests/web/page.test.mjs, playwright-core) and the official
# openai package against /v1 (tests/web/openai.test.mjs). The npm packages
# come from tests/web/package-lock.json (npm ci); screenshots go to
# $TAILOR_BUILD/web-shots.
set -u
. "$(dirname "$0")/lib.sh" ml-latest-small
for c in node npm chromium; do
    command -v $c >/dev/null || { echo "FATAL: $c is missing (scripts/install-deps.sh installs it)" >&2; exit 2; }
done
WEB="$TAILOR_SOURCE/tests/web"
if [ ! -d "$WEB/node_modules/playwright-core" ] || [ ! -d "$WEB/node_modules/openai" ] ||
    [ "$WEB/package-lock.json" -nt "$WEB/node_modules/.package-lock.json" ]; then
    (cd "$WEB" && npm ci --no-audit --no-fund >"$W/npm.log" 2>&1) || { echo "FATAL: npm ci failed" >&2; cat "$W/npm.log" >&2; exit 2; }
fi
DB="$W/ml.db"
"$T" -q --db "$DB" import movielens "$DATA/ml-latest-small" >/dev/null || { echo "FATAL: import" >&2; exit 1; }
for m in pop itemknn; do "$T" -q --db "$DB" train $m >/dev/null || { echo "FATAL: train" >&2; exit 1; }; done
"$T" -q --db "$DB" eval --models pop,itemknn --report "$DB.reports/ml-latest-small" >/dev/null || { echo "FATAL: eval" >&2; exit 1; }
KEY=$("$T" -q --db "$DB" keys create --role user --user 1 --rate 0)

serve_start page --threads 2
PAGE_URL=$URL PAGE_PID=$pid
serve_start llm --threads 2 -m "$DATA/tinyllamas-stories260K/stories260K.gguf" --chat-template chatml -c 1024
LLM_URL=$URL LLM_PID=$pid
SHOTS=${TAILOR_BUILD:-$W}/web-shots
mkdir -p "$SHOTS"
if TAILOR="$PAGE_URL" KEY="$KEY" SHOTS="$SHOTS" node "$WEB/page.test.mjs"; then ok; else bad "the page in Chromium"; fi
if TAILOR_LLM="$LLM_URL" KEY="$KEY" node "$WEB/openai.test.mjs"; then ok; else bad "the openai package against /v1"; fi
kill -TERM "$PAGE_PID" "$LLM_PID"
wait "$PAGE_PID" "$LLM_PID"
echo "screenshots: $SHOTS"
finish
