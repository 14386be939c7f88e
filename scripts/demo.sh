#!/bin/sh
# The main job: import MovieLens into demo.db, print its statistics, train
# the recommenders that suit it and evaluate them, hold a short
# conversation with the agent (the rules backend: no language model needed;
# MODEL=FILE.gguf: that model calls the tools, e.g. scripts/agent-model.sh's),
# then serve it all over HTTP with a demo key (the page, the API, /v1 with
# MODEL=FILE.gguf) until Ctrl-C. DEMO_SERVE=0 stops before serving;
# DEMO_PORT picks the port (default 8080). Data comes from $TAILOR_DATA if set (a MovieLens folder, or a
# folder holding ml-latest-small/, ml-100k/ ...; ../shared/data when it sits
# beside the checkout), else the dataset cache, else a download of
# ml-latest-small.
set -eu
T=${1:-build/release/tailor}
DB=${DEMO_DB:-demo.db}
here=$(cd "$(dirname "$0")/.." && pwd)

if [ -z "${TAILOR_DATA:-}" ] && [ -d "$here/../shared/data" ]; then
    TAILOR_DATA="$here/../shared/data"
fi

is_ml() { [ -f "$1/u.data" ] || [ -f "$1/ratings.dat" ] || [ -f "$1/ratings.csv" ]; }

src=""
if [ -n "${TAILOR_DATA:-}" ]; then
    if is_ml "$TAILOR_DATA"; then
        src=$TAILOR_DATA
    else
        for n in ml-latest-small ml-100k ml-1m ml-20m; do
            if is_ml "$TAILOR_DATA/$n"; then src=$TAILOR_DATA/$n; break; fi
        done
    fi
    [ -n "$src" ] || { echo "demo: no MovieLens folder in TAILOR_DATA=$TAILOR_DATA" >&2; exit 66; }
else
    for n in ml-latest-small ml-100k ml-1m ml-20m; do
        if "$T" datasets list | grep -q "^$n  *yes"; then
            src=$("$T" datasets fetch "$n"); break
        fi
    done
    if [ -z "$src" ]; then
        src=$("$T" datasets fetch ml-latest-small) || {
            echo "demo: could not download ml-latest-small; set TAILOR_DATA to a MovieLens folder" >&2
            exit 69
        }
    fi
fi

echo "== tailor demo: importing $src into $DB"
rm -f "$DB" "$DB-wal" "$DB-shm"
"$T" --db "$DB" import movielens "$src"
echo
echo "== tailor stats"
"$T" --db "$DB" stats
echo
echo "== tailor train pop, als, itemknn (item-kNN stays active: it explains by the films you had)"
rm -rf "$DB.models"
"$T" -q --db "$DB" train pop
"$T" -q --db "$DB" train als -p factors=64
"$T" -q --db "$DB" train itemknn
"$T" -q --db "$DB" models activate itemknn >/dev/null
echo
echo "== tailor eval (leave-one-out, full ranking; the page shows the report)"
rm -rf "$DB.reports"
"$T" -q --db "$DB" eval --models pop,als,itemknn --report "$DB.reports/ml-latest-small"
echo
echo "== a conversation (tailor ask; each line continues the same session)"
session=""
for q in "three comedies from the 90s" "why" "no horror" "something like Toy Story" "more"; do
    echo "> $q"
    if [ -z "$session" ]; then
        # The first turn starts a session; its id comes on stderr.
        "$T" --db "$DB" ask ${MODEL:+--model "$MODEL"} --user 1 "$q" 2>"$DB.err"
        session=$(sed -n 's/^(session \([0-9]*\))$/\1/p' "$DB.err")
    else
        "$T" -q --db "$DB" ask ${MODEL:+--model "$MODEL"} --user 1 --session "$session" "$q"
    fi
    echo
done
rm -f "$DB.err"

[ "${DEMO_SERVE:-1}" = 0 ] && exit 0
KEY=$("$T" -q --db "$DB" keys create --role user --user 1 --name demo-user)
ADMIN=$("$T" -q --db "$DB" keys create --role admin --name demo-admin)
PORT=${DEMO_PORT:-8080}
echo "== tailor serve"
echo "   the page:  http://127.0.0.1:$PORT/   (log in with user 1's key: $KEY)"
echo "   admin key: $ADMIN"
echo "   try:       curl -H 'Authorization: Bearer $KEY' 'http://127.0.0.1:$PORT/api/users/1/recommendations?k=5&explain=true'"
echo "   Ctrl-C stops the server."
if [ -n "${MODEL:-}" ]; then
    exec "$T" --db "$DB" serve --port "$PORT" --model "$MODEL"
fi
exec "$T" --db "$DB" serve --port "$PORT"
