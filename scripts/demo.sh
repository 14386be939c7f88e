#!/bin/sh
# The main job: import MovieLens into demo.db, print its statistics, train
# a recommender, and hold a short conversation with the agent (rules
# backend: no language model needed). Data comes from $TAILOR_DATA if set (a MovieLens folder, or a
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
echo "== tailor train itemknn"
rm -rf "$DB.models"
"$T" -q --db "$DB" train itemknn
echo
echo "== a conversation (tailor ask; each line continues the same session)"
session=""
for q in "three comedies from the 90s" "why" "no horror" "something like Toy Story" "more"; do
    echo "> $q"
    if [ -z "$session" ]; then
        # The first turn starts a session; its id comes on stderr.
        "$T" --db "$DB" ask --user 1 "$q" 2>"$DB.err"
        session=$(sed -n 's/^(session \([0-9]*\))$/\1/p' "$DB.err")
    else
        "$T" -q --db "$DB" ask --user 1 --session "$session" "$q"
    fi
    echo
done
rm -f "$DB.err"
