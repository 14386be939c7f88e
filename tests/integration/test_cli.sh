#!/bin/sh
# test_cli.sh — the tailor program end to end: help from the command table,
# exit codes (sysexits), --db before or after the command and TAILOR_DB,
# imports and their failures, stats, datasets.
set -u
. "$(dirname "$0")/lib.sh"

expect 0 "help" -- "$T" --help
has "$W/out" "import movielens DIR" "help lists commands"
has "$W/out" "datasets fetch NAME" "help lists commands"
expect 0 "command help" -- "$T" import events --help
has "$W/out" "--user COL" "command help lists options"
has "$W/out" "--db PATH" "command help lists global options"
expect 0 "help command" -- "$T" help datasets fetch
has "$W/out" "--from DIR" "help COMMAND"
expect 0 "group help" -- "$T" import --help
has "$W/out" "import sequences FILE" "group help"
expect 64 "no command" -- "$T"
expect 64 "unknown command" -- "$T" frobnicate
has "$W/err" "no command 'frobnicate'" "unknown command message"
expect 64 "unknown option" -- "$T" stats --bogus
has "$W/err" "unknown option '--bogus'" "unknown option message"
expect 64 "missing argument" -- "$T" import movielens
has "$W/err" "missing DIR" "missing argument message"
expect 64 "option without value" -- "$T" import events x.csv --user
has "$W/err" "needs a value" "option value message"
expect 0 "version" -- "$T" version
has "$W/out" "tailor 0.1.0" "version output"

# --db after the command, and before it.
expect 0 "import ml-100k" -- "$T" -q import movielens "$DATA/ml-100k" --db "$W/a.db"
has "$W/out" "943 users, 1682 items, 100000 events" "import summary"
expect 0 "stats --db before" -- "$T" --db "$W/a.db" stats
has "$W/out" "events     100000" "stats counts"
has "$W/out" "density    6.3047%" "stats density"
has "$W/out" "events per user:" "sequence-length distribution"
has "$W/out" "median 65" "median sequence length"
expect 0 "stats json" -- "$T" stats --db "$W/a.db" --json
has "$W/out" '"events":100000' "stats json"
has "$W/out" '"sequence_length":{"min":20' "stats json distribution"
expect 66 "stats without a database" -- "$T" --db "$W/none.db" stats
has "$W/err" "no database at $W/none.db" "stats names the missing database"
if [ -e "$W/none.db" ]; then bad "stats created a database"; else ok; fi
# TAILOR_DB.
expect 0 "TAILOR_DB" -- env TAILOR_DB="$W/a.db" "$T" stats
has "$W/out" "users      943" "TAILOR_DB used"

# Failures: data error (65), database unchanged, missing input (66).
printf 'user_id,item_id,timestamp\nu,i,1\nv,j,later\n' >"$W/bad.csv"
expect 65 "bad csv" -- "$T" --db "$W/a.db" import events "$W/bad.csv"
has "$W/err" "bad.csv:3: field 'timestamp': 'later' is not a time" "bad row named"
has "$W/err" "database unchanged" "failure says database unchanged"
expect 0 "stats after failure" -- "$T" --db "$W/a.db" stats --json
has "$W/out" '"events":100000' "nothing imported by the failed import"
expect 65 "duplicate import" -- "$T" -q --db "$W/a.db" import movielens "$DATA/ml-100k"
has "$W/err" "already exists (use --on-duplicate skip or replace)" "duplicate message"
expect 0 "duplicate skip" -- "$T" -q --db "$W/a.db" import movielens "$DATA/ml-100k" --on-duplicate skip
has "$W/out" "0 events" "skip adds nothing"
expect 64 "bad policy" -- "$T" --db "$W/a.db" import movielens "$DATA/ml-100k" --on-duplicate maybe
expect 66 "missing dir" -- "$T" --db "$W/a.db" import movielens "$W/nothing"
expect 65 "not movielens" -- "$T" --db "$W/a.db" import movielens "$W"
has "$W/err" "not a MovieLens directory" "layout message"

# Sequences and generic imports.
expect 0 "sequences" -- "$T" -q --db "$W/b.db" import sequences "$DATA/s3rec-seqrec/LastFM.txt" --attributes "$DATA/s3rec-seqrec/LastFM_item2attributes.json"
has "$W/out" "1090 users, 3646 items, 52551 events" "LastFM counts"
printf '{"id":"x","title":"X","color":"red"}\n' >"$W/items.jsonl"
expect 0 "items jsonl" -- "$T" -q --db "$W/b.db" import items "$W/items.jsonl"
has "$W/out" "1 items" "items imported"

# Datasets: list, fetch --from a local folder into a private cache.
expect 0 "datasets list" -- env XDG_CACHE_HOME="$W/cache" "$T" datasets list
has "$W/out" "ml-latest-small" "datasets list"
has "$W/out" "$W/cache/tailor" "cache location"
expect 0 "fetch --from" -- env XDG_CACHE_HOME="$W/cache" "$T" datasets fetch ml-latest-small --from "$DATA"
has "$W/out" "$W/cache/tailor/ml-latest-small" "fetch prints the folder"
expect 0 "datasets list cached" -- env XDG_CACHE_HOME="$W/cache" "$T" datasets list
if grep -q "^ml-latest-small  *yes" "$W/out"; then ok; else bad "ml-latest-small not shown as cached"; fi
expect 64 "unknown dataset" -- "$T" datasets fetch ml-5b
expect 69 "offline fetch" -- env XDG_CACHE_HOME="$W/cache" "$T" datasets fetch ml-1m --url http://127.0.0.1:1
has "$W/err" "--from DIR" "offline message suggests --from"

# Recommenders: train, recommend (with explanations, filters, a cold
# history), similar, eval with JSON and report, tune on validation.
expect 0 "train itemknn" -- "$T" -q --db "$W/a.db" train itemknn --param k=20 --name knn20
has "$W/out" "trained itemknn as 'knn20' on 943 users, 1682 items, 100000 interactions" "train summary"
[ -f "$W/a.db.models/knn20.tmod" ] && ok || bad "model file written"
expect 0 "train als" -- "$T" -q --db "$W/a.db" train als -p factors=16 -p iterations=3 -t 2
expect 0 "train sasrec" -- "$T" -q --db "$W/a.db" train sasrec -p epochs=1 -p hidden=16 -p blocks=1 -p patience=0 --name sas
expect 0 "recommend sasrec" -- "$T" --db "$W/a.db" recommend --user 1 -k 3 -m sas
has "$W/out" "sas (sasrec) for user 1" "sasrec serves, named"
expect 0 "recommend" -- "$T" --db "$W/a.db" recommend --user 1 -k 5 --model knn20 --explain
has "$W/out" "knn20 (itemknn) for user 1 (272 items in history)" "recommend header"
has "$W/out" "because of" "explanations"
if grep -q "Toy Story (1995)" "$W/out"; then bad "recommended an item the user has"; else ok; fi
expect 0 "recommend json latest" -- "$T" --db "$W/a.db" recommend -u 1 -k 3 --json
has "$W/out" '"model":"sas","kind":"sasrec","items":[{"rank":1' "active (last trained) model used, JSON"
expect 0 "recommend filter" -- "$T" --db "$W/a.db" recommend -u 1 -k 5 -m knn20 --filter genres=Horror --json
if grep -q '"rank":1' "$W/out"; then ok; else bad "filtered recommendations"; fi
expect 0 "recommend cold history" -- "$T" --db "$W/a.db" recommend --history 1,2,3 -k 3 -m knn20
expect 66 "unknown history item" -- "$T" --db "$W/a.db" recommend --history nosuch -m knn20
expect 64 "user and history" -- "$T" --db "$W/a.db" recommend
expect 66 "unknown user" -- "$T" --db "$W/a.db" recommend --user 99999 -m knn20
expect 0 "similar" -- "$T" --db "$W/a.db" similar --item 1 -k 3 -m knn20
has "$W/out" "items like Toy Story (1995), by knn20 (itemknn):" "similar header"
expect 66 "no such model" -- "$T" --db "$W/a.db" recommend -u 1 -m nosuch
expect 64 "unknown model kind" -- "$T" --db "$W/a.db" train nosuch
has "$W/err" "models: pop, itemknn, als, bpr, ease, sasrec" "train lists models"
expect 64 "unknown param" -- "$T" --db "$W/a.db" train als -p nosuch=1
expect 0 "eval" -- "$T" -q --db "$W/a.db" eval --models pop,itemknn --param itemknn.k=10 --param itemknn.shrink=0 -k 10,20 --json "$W/e.json" --report "$W/rep" --name ml-100k
has "$W/out" "protocol: full ranking" "eval labels protocol"
has "$W/out" "paired comparison with pop" "eval paired comparison"
has "$W/e.json" '"dataset":"ml-100k"' "eval json"
has "$W/e.json" '"ndcg@10":{"mean":0.034' "eval json itemknn k=10 figure"
[ -f "$W/rep/report.md" ] && [ -f "$W/rep/ndcg.svg" ] && ok || bad "report written"
expect 0 "eval sampled" -- "$T" -q --db "$W/a.db" eval --models pop --protocol sampled --negatives 50
has "$W/out" "sampled ranking (target + 50 uniform negatives, seed 42)" "sampled label"
expect 64 "negatives without sampled" -- "$T" --db "$W/a.db" eval --negatives 50
expect 0 "eval both protocols" -- "$T" -q --db "$W/a.db" eval --models pop --protocol full,sampled --json "$W/b.json" --report "$W/both"
has "$W/out" "protocol: full ranking" "both: full table"
has "$W/out" "protocol: sampled ranking" "both: sampled table"
[ -f "$W/b.full.json" ] && [ -f "$W/b.sampled.json" ] && [ -f "$W/both/sampled/report.md" ] && ok || bad "both protocols written"
has "$W/b.sampled.json" '"protocol":"sampled"' "sampled json labelled"
expect 0 "tune" -- "$T" -q --db "$W/a.db" tune itemknn --grid k=5,20 --save knn-best
has "$W/out" "best on validation" "tune result"
has "$W/out" "trained itemknn as 'knn-best'" "tune saves"

# Knowledge graphs: import with an entity map, refuse a bad row naming it,
# the catalogue's own triples, neighbours and paths.
printf 'user_id,item_id,value\nu1,a1,10\nu1,a2,20\nu2,a3,5\n' >"$W/kev.csv"
printf 'e1\torigin\tUK\ne2\torigin\tUK\ne3\tgenre\trock\n' >"$W/kg.tsv"
printf 'a1\te1\na2\te2\na3\te3\n' >"$W/map.tsv"
expect 0 "events for the graph" -- "$T" -q --db "$W/k.db" import events "$W/kev.csv"
expect 0 "import kg" -- "$T" --db "$W/k.db" import kg "$W/kg.tsv" --entity-map "$W/map.tsv"
has "$W/out" "3 triples, 3 entities linked to items" "kg counts"
printf 'x\torigin\tUK\nbroken line\n' >"$W/bad.tsv"
expect 65 "import kg bad row" -- "$T" --db "$W/k.db" import kg "$W/bad.tsv"
has "$W/err" "bad.tsv:2" "kg error names the line"
expect 0 "kg stats" -- "$T" --db "$W/k.db" kg stats --json
has "$W/out" '"triples":3,"entities":5,"relations":2,"items":3' "kg stats json"
expect 0 "kg paths" -- "$T" --db "$W/k.db" kg paths --item a3 --to a1 --hops 2
has "$W/out" "no path" "no path between unconnected items"
expect 0 "kg paths to a user" -- "$T" --db "$W/k.db" kg paths --item a1 --user u1
has "$W/out" "a1 -origin-> UK <-origin- a2  [value 20]" "the path and the user's value"
expect 0 "kg neighbours" -- "$T" --db "$W/k.db" kg neighbours UK
has "$W/out" "<- origin" "incoming links"
expect 66 "kg unknown entity" -- "$T" --db "$W/k.db" kg neighbours nowhere
expect 0 "kg derive" -- "$T" --db "$W/a.db" kg derive
has "$W/out" "triples" "derive counts"

# Search by meaning: an index of item vectors; the item whose text is the
# query comes first (its vector is the query's).
printf 'item_id,title,text\nv1,Blue Shirt,a soft cotton shirt\nv2,Red Hat,a hat for rain\nv3,Green Boots,boots for mud\n' >"$W/vi.csv"
expect 0 "items for the index" -- "$T" -q --db "$W/v.db" import items "$W/vi.csv"
STORIES="$DATA/tinyllamas-stories260K/stories260K.gguf"
expect 0 "index build" -- "$T" -q --db "$W/v.db" index build -m "$STORIES"
has "$W/out" "indexed 3 items" "index build counts"
expect 0 "search by vectors" -- "$T" --db "$W/v.db" search Red Hat. a hat for rain --mode vectors -k 1 --json
has "$W/out" '"item":"v2"' "the identical text is nearest"
expect 0 "hybrid search" -- "$T" --db "$W/v.db" search boots --mode hybrid -k 3
has "$W/out" "Green Boots" "hybrid keeps the word match"
# The agent's search tool fuses words and meaning when the index is there
# (and searches words alone when told not to use it).
expect 0 "ask with the index" -- "$T" --db "$W/v.db" ask --json find boots
has "$W/out" 'matches the words or the meaning of' "the search tool uses the vectors"
has "$W/out" '"id":"v3","title":"Green Boots"' "the word match first"
expect 0 "ask without the index" -- "$T" --db "$W/v.db" ask --json --index none find boots
has "$W/out" 'matches \"boots\"' "words only"
expect 66 "ask with a missing index" -- "$T" --db "$W/v.db" ask --index "$W/nothing.tvec" find boots
# An approximate index (Faiss) beside the vectors, with its recall measured.
expect 0 "index build hnsw" -- "$T" --db "$W/v.db" index build -m "$STORIES" --approximate hnsw
has "$W/out" "recall@10 1.000" "three items: the graph finds them all"
[ -f "$W/v.db.index/items.tvec.ann" ] && ok || bad "no approximate index file"
expect 0 "search through hnsw" -- "$T" --db "$W/v.db" search Red Hat. a hat for rain --mode vectors -k 1 --json
has "$W/out" '"item":"v2"' "the approximate index finds the identical text"
expect 0 "index build, none" -- "$T" -q --db "$W/v.db" index build -m "$STORIES" --approximate none
[ ! -f "$W/v.db.index/items.tvec.ann" ] && ok || bad "a stale approximate index stayed"
expect 64 "bad --approximate" -- "$T" --db "$W/v.db" index build -m "$STORIES" --approximate kd-tree
has "$W/err" "hnsw, ivf, none or auto" "the kinds are listed"
expect 64 "cold items without events" -- "$T" --db "$W/v.db" experiment cold-items
has "$W/err" "too few items" "cold-items says why"
expect 66 "vectors without an index" -- "$T" --db "$W/k.db" search rock --mode vectors
has "$W/err" "tailor index build" "missing index says how"

# The command reference in docs/ is generated from this table: it must match.
if [ -n "${TAILOR_SOURCE:-}" ]; then
    sh "$TAILOR_SOURCE/scripts/gen-cli-doc.sh" "$T" >"$W/cli.md"
    if cmp -s "$W/cli.md" "$TAILOR_SOURCE/docs/cli.md"; then ok; else
        bad "docs/cli.md is stale: run scripts/gen-cli-doc.sh build/release/tailor > docs/cli.md"
        diff "$TAILOR_SOURCE/docs/cli.md" "$W/cli.md" | head -20 >&2
    fi
else
    bad "TAILOR_SOURCE not set"
fi

finish
