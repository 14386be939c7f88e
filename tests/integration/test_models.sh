#!/bin/sh
# test_models.sh — what a new user meets: events before the catalogue,
# model files beside the database, models as things to list and manage,
# explanations a model can give, search, popularity fallbacks, parameter
# choice (--auto), clear errors and quiet output.
set -u
. "$(dirname "$0")/lib.sh" ml-100k

# Events first, catalogue later: the items an event log created get their
# titles ("database disk image is malformed" before schema 3).
printf 'user_id,item_id\nu1,i1\nu1,i2\nu2,i1\n' >"$W/ev.csv"
expect 0 "events first" -- "$T" -q --db "$W/r.db" import events "$W/ev.csv"
has "$W/out" "no time column: events keep the file's order, with times 1..3" "generated times said"
printf 'item_id,title,color\ni1,Blue Shirt,blue\ni2,Red Hat,red\n' >"$W/it.csv"
expect 0 "catalogue later" -- "$T" -q --db "$W/r.db" import items "$W/it.csv" --on-duplicate replace
has "$W/out" "2 duplicates replaced" "titles given to event-made items"
expect 0 "search finds them" -- "$T" --db "$W/r.db" search shirt
has "$W/out" "Blue Shirt" "search by title"
expect 0 "search json" -- "$T" --db "$W/r.db" search red hat --json
has "$W/out" '"items":[{"rank":1,"item":"i2","title":"Red Hat"' "search json"
expect 0 "search filter" -- "$T" --db "$W/r.db" search shirt hat --filter color=red
if grep -q "Blue Shirt" "$W/out"; then bad "search filter let a blue item through"; else ok; fi
expect 64 "search unknown attribute" -- "$T" --db "$W/r.db" search shirt --filter colour=red
has "$W/err" "no item has an attribute 'colour' (attributes: color)" "unknown attribute listed"
# ...and the catalogue first, events later: the same items are used.
expect 0 "catalogue first" -- "$T" -q --db "$W/r2.db" import items "$W/it.csv"
expect 0 "events later" -- "$T" -q --db "$W/r2.db" import events "$W/ev.csv"
has "$W/out" "2 users, 0 items, 3 events" "events reuse catalogue items"

# Model files live beside the database: train in one folder, serve from
# another, move the folder.
mkdir "$W/w"
expect 0 "import in a folder" -- sh -c "cd '$W/w' && '$T' -q --db ml.db import movielens '$DATA/ml-100k'"
expect 0 "train there" -- sh -c "cd '$W/w' && '$T' -q --db ml.db train pop"
expect 0 "serve from elsewhere" -- sh -c "cd / && '$T' --db '$W/w/ml.db' recommend --user 1 -k 3"
mv "$W/w" "$W/moved"
M="$W/moved/ml.db"
expect 0 "serve after moving the folder" -- "$T" --db "$M" recommend --user 1 -k 3 --explain
has "$W/out" "popular: " "pop explains by popularity"

# similar with pop only: a reason, not a crash; with another model, it is used.
expect 78 "similar with pop only" -- "$T" --db "$M" similar --item 1
has "$W/err" "ranks every item by how many users had it" "similar says why pop cannot"
expect 0 "train itemknn" -- "$T" -q --db "$M" train itemknn -p k=10 --name knn10 --no-activate
has "$W/out" "active model stays 'pop'" "--no-activate keeps the active model"
expect 0 "similar falls back" -- "$T" --db "$M" similar --item 1 -k 3
has "$W/err" "using 'knn10'" "similar names the model it used"
has "$W/out" "by knn10 (itemknn)" "similar header names the model"

# Models: list, show, activate, remove.
expect 0 "models list" -- "$T" --db "$M" models list
if grep -q '^\* pop ' "$W/out" && grep -q '^  knn10 ' "$W/out"; then ok; else bad "list marks the active model"; cat "$W/out" >&2; fi
expect 0 "activate" -- "$T" --db "$M" models activate knn10
expect 0 "recommend uses the active model" -- "$T" --db "$M" recommend --user 1 -k 3 --explain
has "$W/out" "knn10 (itemknn) for user 1" "header names the active model"
has "$W/out" "because of" "itemknn explains by history items"
expect 66 "activate unknown" -- "$T" --db "$M" models activate nosuch
has "$W/err" "no model named 'nosuch'" "unknown model message"
has "$W/err" "(models: knn10, pop)" "unknown model lists the models"
expect 0 "eval a saved model" -- "$T" -q --db "$M" eval --models pop,knn10
expect 0 "models show" -- "$T" --db "$M" models show knn10
has "$W/out" "model      knn10 (active)" "show names and marks"
has "$W/out" "interactions           100000" "show the training data"
has "$W/out" "last evaluation: loo split, full ranking" "show the last evaluation"
has "$W/out" "ndcg@10                0.03" "show the evaluation's figures"
expect 0 "models list json" -- "$T" --db "$M" models list --json
has "$W/out" '"name":"knn10","kind":"itemknn","active":true' "list json"
expect 0 "remove the active model" -- "$T" --db "$M" models remove knn10
has "$W/out" "active model is now pop" "removal hands the role on"
[ -e "$W/moved/ml.db.models/knn10.tmod" ] && bad "model file left after remove" || ok

# SASRec names the items it attends to; it never prints a popularity count.
expect 0 "train sasrec" -- "$T" -q --db "$M" train sasrec -p epochs=1 -p hidden=16 -p blocks=1 -p patience=0
expect 0 "sasrec explains" -- "$T" --db "$M" recommend --user 1 -k 2 --explain
has "$W/out" "reads your taste from" "attention explanation"
if grep -q "popular:" "$W/out"; then bad "sasrec explained by popularity"; else ok; fi

# Users the model knows nothing about get what is popular, said so.
printf 'user_id,item_id\nnewcomer,1\n' >"$W/new.csv"
expect 0 "a newcomer" -- "$T" -q --db "$M" import events "$W/new.csv"
expect 0 "newcomer's recommendations" -- "$T" --db "$M" recommend --user newcomer -k 3 -m pop
has "$W/out" "for user newcomer (1 items in history" "newcomer header"
printf 'item_id,title\nbrand-new,Brand New\n' >"$W/bn.csv"
expect 0 "an item newer than the model" -- "$T" -q --db "$M" import items "$W/bn.csv"
expect 0 "fallback to popularity" -- "$T" --db "$M" recommend --history brand-new -k 2 -m sasrec --explain
has "$W/out" "1 not known to the model" "unknown items counted"
has "$W/out" "the most popular items instead" "fallback said"
has "$W/out" "popular: " "fallback explained"
expect 66 "unknown user" -- "$T" --db "$M" recommend --user nosuch
expect 66 "unknown item" -- "$T" --db "$M" recommend --history nosuch
expect 66 "unknown item for similar" -- "$T" --db "$M" similar --item nosuch -m sasrec
expect 64 "unknown filter attribute" -- "$T" --db "$M" recommend --user 1 --filter genre=Comedy
has "$W/err" "(attributes: genres, imdb_url, release_date, year)" "recommend lists the attributes"

# eval: every parameter checked before any work; a table within 100 columns.
expect 64 "bad parameter of a later model" -- "$T" --db "$M" eval --models pop,als -p als.factors=x
has "$W/err" "parameter factors=x is not a number" "parameter named"
if grep -q "evaluating" "$W/err"; then bad "eval started before checking every model"; else ok; fi
expect 0 "eval table" -- "$T" -q --db "$M" eval --models pop,itemknn -k 5,10,20
if awk 'length > 100 { exit 1 }' "$W/out"; then ok; else bad "eval table wider than 100 columns"; fi
expect 0 "eval wide" -- "$T" -q --db "$M" eval --models pop -k 5,10 --wide
has "$W/out" "precision@5" "--wide shows every metric"

# --auto: parameters chosen on validation within the budget, recorded.
expect 0 "train --auto" -- "$T" -q --db "$M" train itemknn --auto --budget 20 --name knn-auto -p shrink=0
has "$W/out" "choosing itemknn's parameters" "auto announces the grid"
has "$W/out" "chosen: " "auto reports its choice"
if grep -q "shrink=10" "$W/out"; then bad "--param shrink=0 was tuned anyway"; else ok; fi
expect 0 "auto recorded" -- "$T" --db "$M" models show knn-auto --json
has "$W/out" '"auto":{"metric":"ndcg@10"' "auto grid stored with the model"

# Quiet when asked: TAILOR_LOG=off prints errors only.
expect 0 "quiet training" -- env TAILOR_LOG=off "$T" --db "$M" train ease -p lambda=100
if [ -s "$W/err" ]; then bad "TAILOR_LOG=off still wrote to stderr"; cat "$W/err" >&2; else ok; fi
expect 66 "errors still shown" -- env TAILOR_LOG=off "$T" --db "$M" recommend --user nosuch
has "$W/err" "user 'nosuch' not found" "errors shown with TAILOR_LOG=off"

# The agent from the command line (rules backend, no language model).
expect 0 "ask" -- "$T" --db "$M" ask --user 1 --json "two comedies from the 90s"
has "$W/out" '"tool_calls":[{"name":"recommend","arguments":{"k":2,"year_min":1990,"year_max":1999,"genres":["Comedy"]}' "ask reads the request"
has "$W/out" '"items":[{"id":"' "ask shows items"
session=$(sed -n 's/.*"session":"\([0-9]*\)".*/\1/p' "$W/out")
[ -n "$session" ] && ok || bad "ask --json names its session"
expect 0 "ask continues the session" -- "$T" --db "$M" ask --user 1 --session "$session" --json "more"
has "$W/out" '"exclude":[' "more excludes what was shown"
expect 0 "ask why" -- "$T" -q --db "$M" ask --user 1 --session "$session" "why"
has "$W/out" "Here is why:" "why answers from the last results"
expect 66 "ask with an unknown user" -- "$T" --db "$M" ask --user nosuch "hi"
expect 66 "ask with an unknown session" -- "$T" --db "$M" ask --session 9999 "hi"
printf 'no horror\nscary movies please\n/exit\nnot read\n' >"$W/chat.in"
expect 0 "chat" -- sh -c "'$T' --db '$M' chat --user 2 --verbose <'$W/chat.in'"
has "$W/out" "From now on: genres!=Horror." "chat records a standing constraint"
has "$W/err" "[tool recommend" "chat --verbose shows tool calls"
has "$W/err" "/exit or Ctrl-D leaves" "chat banner"
if grep -q "not read" "$W/out"; then bad "chat read past /exit"; else ok; fi
expect 0 "chat with a memory policy" -- sh -c "printf 'dramas\\n' | '$T' -q --db '$M' chat --memory retrieve"
expect 64 "bad memory policy" -- "$T" --db "$M" ask --memory forever "hi"

# Measurements of the agent; their sessions are removed afterwards.
expect 0 "tool latency" -- "$T" --db "$M" experiment tool-latency --rounds 1 --json "$W/lat.json"
has "$W/out" "tool latency, rules backend: 30 turns" "tool-latency table"
has "$W/lat.json" '"steps":{"context":{"mean":' "tool-latency json"
expect 0 "context stress" -- "$T" --db "$M" experiment context-stress --turns 20 --budget 1000 --report "$W/cs"
has "$W/out" "retrieve" "context-stress table"
[ -s "$W/cs/context-stress.svg" ] && ok || bad "context-stress chart written"
expect 64 "unknown experiment" -- "$T" --db "$M" experiment nosuch

finish
