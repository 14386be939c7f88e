#!/bin/sh
# test_llm_cli.sh — `tailor llm ...` end to end: stories260K's documented
# greedy story, every upstream tokenizer test pair through `llm tokenize`,
# info, chat, embed, and clear errors for bad files and arguments.
set -u
. "$(dirname "$0")/lib.sh" llm-fixtures

S="$DATA/tinyllamas-stories260K"
# llama2.c's 256 greedy steps from BOS: 256 new tokens, then a newline.
expect 0 "stories260K greedy" -- "$T" -q llm run -m "$S/stories260K.gguf" -p "" -n 256 --temp 0 -t 1
if cmp -s "$W/out" "$S/expected_greedy_t0_256steps.txt"; then ok; else
    bad "stories260K greedy output differs from expected_greedy_t0_256steps.txt"
    diff "$W/out" "$S/expected_greedy_t0_256steps.txt" | head -5 >&2
fi
expect 0 "run with a stop string" -- "$T" -q llm run -m "$S/stories260K.gguf" -p "Once upon a time" -n 64 --temp 0 --stop "Lily"
if [ "$(cat "$W/out")" = ", there was a little girl named " ]; then ok; else bad "stop string: got '$(cat "$W/out")'"; fi
expect 0 "seeded sampling is reproducible" -- "$T" -q llm run -m "$S/stories260K.gguf" -p "Once" -n 40 --seed 7
cp "$W/out" "$W/s1"
expect 0 "seeded sampling again" -- "$T" -q llm run -m "$S/stories260K.gguf" -p "Once" -n 40 --seed 7
if cmp -s "$W/out" "$W/s1"; then ok; else bad "same seed, different text"; fi
expect 0 "timings on stderr" -- "$T" llm run -m "$S/stories260K.gguf" -p "Once" -n 4 --temp 0
has "$W/err" "generated: 4 tokens" "run reports timings on stderr"

# A LoRA adapter changes the greedy text; at scale 0 it is the base model's;
# an adapter for another model is refused by name.
F="$DATA/llm-fixtures/models"
expect 0 "base greedy" -- "$T" -q llm run -m "$F/tiny-llama-spm-F32.gguf" -p "Once upon a time" -n 12 --temp 0
cp "$W/out" "$W/base"
expect 0 "lora greedy" -- "$T" -q llm run -m "$F/tiny-llama-spm-F32.gguf" --lora "$F/tiny-llama-spm-lora-r4-F32.gguf" -p "Once upon a time" -n 12 --temp 0
if cmp -s "$W/out" "$W/base"; then bad "the adapter changed nothing"; else ok; fi
expect 0 "lora at scale 0" -- "$T" -q llm run -m "$F/tiny-llama-spm-F32.gguf" --lora "$F/tiny-llama-spm-lora-r4-F32.gguf" --lora-scale 0 -p "Once upon a time" -n 12 --temp 0
if cmp -s "$W/out" "$W/base"; then ok; else bad "scale 0 is not the base model"; fi
expect 64 "lora for another model" -- "$T" -q llm run -m "$F/tiny-qwen2-bpe-F32.gguf" --lora "$F/tiny-llama-spm-lora-r4-F32.gguf" -p x
has "$W/err" "an adapter for 'llama'" "the mismatch is named"
expect 64 "lora-scale alone" -- "$T" -q llm run -m "$F/tiny-llama-spm-F32.gguf" --lora-scale 2 -p x

# Training from scratch: the loss falls, the file loads and generates, a run
# stopped and resumed from its checkpoint ends with the same bytes.
tail -n +2 "$DATA/ml-latest-small/movies.csv" | head -600 | cut -d, -f2- >"$W/titles.txt"
printf '{"arch":"llama","n_embd":32,"n_layer":2,"n_head":4,"n_head_kv":2,"n_ff":64}\n' >"$W/tiny.json"
TR="--config $W/tiny.json --data $W/titles.txt --steps 10 --eval-every 0 --ctx 32 --batch 4 -t 2"
mkdir -p "$W/ta" "$W/tb"
expect 0 "llm train" -- "$T" -q llm train $TR "$W/ta/m.gguf"
has "$W/out" "trained 10 steps" "train reports its steps"
awk '{ for (i = 1; i <= NF; i++) if ($i == "loss") { a = $(i + 1); b = $(i + 3) } }
     END { exit !(a + 0 > b + 0) }' "$W/out" && ok || bad "the training loss did not fall: $(cat "$W/out")"
expect 0 "the trained model generates" -- "$T" -q llm run -m "$W/ta/m.gguf" -p "Toy" -n 4 --temp 0
expect 0 "train until step 4" -- "$T" -q llm train $TR --checkpoint "$W/c.ckpt" --until 4 "$W/tb/m.gguf"
expect 0 "train resumed" -- "$T" -q llm train $TR --checkpoint "$W/c.ckpt" --resume "$W/tb/m.gguf"
has "$W/out" "(resumed)" "the run says it resumed"
if cmp -s "$W/ta/m.gguf" "$W/tb/m.gguf"; then ok; else bad "a resumed run differs from an uninterrupted one"; fi
mkdir -p "$W/tc"
expect 0 "train with activation checkpointing" -- "$T" -q llm train $TR --activation-checkpointing "$W/tc/m.gguf"
if cmp -s "$W/ta/m.gguf" "$W/tc/m.gguf"; then ok; else bad "activation checkpointing changed the weights"; fi
expect 0 "llm train --bpe" -- "$T" -q llm train --config "$W/tiny.json" --data "$W/titles.txt" --bpe 400 --steps 4 --ctx 32 --batch 4 -t 2 "$W/bpe.gguf"
[ -f "$W/bpe.gguf.tokenizer.gguf" ] && ok || bad "the trained tokenizer is not kept"
expect 0 "the BPE model tokenizes" -- "$T" llm tokenize -m "$W/bpe.gguf" "Toy Story (1995)"
expect 64 "--bpe with --vocab" -- "$T" -q llm train $TR --bpe 400 --vocab "$W/bpe.gguf" "$W/x.gguf"
printf '{"n_embd":30,"n_layer":1,"n_head":4,"n_ff":8}\n' >"$W/bad.json"
expect 64 "a shape heads do not divide" -- "$T" -q llm train --config "$W/bad.json" --data "$W/titles.txt" "$W/x.gguf"
has "$W/err" "divisible" "the reason is given"
expect 64 "resume without a checkpoint" -- "$T" -q llm train $TR --resume "$W/x.gguf"

# Fine-tuning: a LoRA adapter on prompt/completion data lowers the loss and
# loads with --lora; chat data in a named format; --merge writes a model;
# a bad line is named by file:line.
awk -F, 'NR > 1 && NR <= 121 { t = $2; g = $NF; gsub(/"/, "", t); gsub(/[|]/, ", ", g);
     printf "{\"prompt\": \"Film: %s. Genres:\", \"completion\": \" %s\"}\n", t, g }' \
    "$DATA/ml-latest-small/movies.csv" >"$W/genres.jsonl"
BASE="$F/tiny-llama-spm-F32.gguf"
expect 0 "llm finetune (LoRA)" -- "$T" -q llm finetune -m "$BASE" --data "$W/genres.jsonl" -o "$W/ad.gguf" --epochs 2 --ctx 48 -t 2 --eval-every 2
has "$W/out" "a LoRA adapter" "finetune says what it wrote"
has "$W/out" "kept the weights of step" "validation picks the checkpoint"
awk '{ for (i = 1; i <= NF; i++) if ($i == "loss") { a = $(i + 1); b = $(i + 3) } }
     END { exit !(a + 0 > b + 0) }' "$W/out" && ok || bad "the fine-tuning loss did not fall: $(cat "$W/out")"
expect 64 "--eval-every without held-out examples" -- "$T" -q llm finetune -m "$BASE" --data "$W/genres.jsonl" -o "$W/x.gguf" --val 0 --eval-every 2
expect 0 "the adapter applies" -- "$T" -q llm run -m "$BASE" --lora "$W/ad.gguf" -p "Film: Heat (1995). Genres:" -n 4 --temp 0
QB="$F/tiny-llama-spm-Q4_K_M.gguf"
expect 0 "llm finetune on a Q4_K_M base (kept quantized)" -- "$T" -q llm finetune -m "$QB" --data "$W/genres.jsonl" -o "$W/adq.gguf" --epochs 2 --ctx 48 -t 2
awk '{ for (i = 1; i <= NF; i++) if ($i == "loss") { a = $(i + 1); b = $(i + 3) } }
     END { exit !(a + 0 > b + 0) }' "$W/out" && ok || bad "the loss on the quantized base did not fall: $(cat "$W/out")"
expect 0 "its adapter applies to the quantized base" -- "$T" -q llm run -m "$QB" --lora "$W/adq.gguf" -p "Film: Heat (1995). Genres:" -n 4 --temp 0
printf '{"messages": [{"role": "user", "content": "Heat"}, {"role": "assistant", "content": "Action, Crime"}]}\n%.0s' 1 2 3 4 >"$W/chat.jsonl"
expect 0 "finetune on chat data, merged" -- "$T" -q llm finetune -m "$BASE" --data "$W/chat.jsonl" --chat-template chatml --merge -o "$W/merged.gguf" --steps 2 -t 2
has "$W/out" "merged" "the merged model is written"
expect 0 "the merged model runs" -- "$T" -q llm run -m "$W/merged.gguf" -p "Heat" -n 2 --temp 0
printf '{"prompt": "a", "completion": " b"}\n{"prompt": 3}\n' >"$W/badft.jsonl"
expect 65 "a bad example" -- "$T" -q llm finetune -m "$BASE" --data "$W/badft.jsonl" -o "$W/x.gguf"
has "$W/err" "badft.jsonl:2" "the line is named"
expect 64 "--full with LoRA options" -- "$T" -q llm finetune -m "$BASE" --data "$W/genres.jsonl" -o "$W/x.gguf" --full --lora-rank 4

# The language model as a re-ranker: examples for fine-tuning, then the
# retriever's top 20 re-ranked by a model's letter logits on 20 users.
expect 0 "ml-100k for the ranker" -- "$T" -q --db "$W/rk.db" import movielens "$DATA/ml-100k"
expect 0 "llm-ranker --export" -- "$T" --db "$W/rk.db" experiment llm-ranker --retriever itemknn --export "$W/rk.jsonl"
has "$W/out" "training examples" "export says what it wrote"
[ "$(wc -l <"$W/rk.jsonl")" -gt 50 ] && grep -q '"completion":" [A-T]"' "$W/rk.jsonl" && ok || bad "no fine-tuning examples"
expect 0 "llm-ranker" -- "$T" --db "$W/rk.db" experiment llm-ranker --retriever itemknn -m "$BASE" --users 20 -t 2 --json "$W/rk.json"
has "$W/out" "language model re-ranking its top 20" "the re-ranked row"
has "$W/rk.json" '"reranked_metrics":{"hr@10":' "json figures"
expect 0 "icl-shots" -- "$T" --db "$W/rk.db" experiment icl-shots --retriever itemknn -m "$BASE" --users 5 -t 2 --json "$W/icl.json"
has "$W/out" "top 20, 5 shots" "the 5-shot row"
has "$W/icl.json" '"runs":[{"experiment":"llm-ranker","shots":0' "icl json"
# The same ranking through a server: tailor's own /v1/completions with
# logprobs serving the model; every letter listed, the figures equal the
# local run's within the float noise of another batch split (the cached
# prefix), and the rows are there.
DB="$W/rk.db"
KEY=$("$T" -q --db "$DB" keys create --role admin --name ranker)
serve_start rksrv -m "$BASE" --chat-template chatml
expect 0 "icl-shots through a server's logprobs" -- env TAILOR_LLM_API_KEY="$KEY" "$T" --db "$W/rk.db" experiment icl-shots \
    --retriever itemknn --llm-url "$URL/v1" --top-logprobs 1000 --users 5 -t 2 --json "$W/icl-url.json"
has "$W/out" "top 20, 5 shots" "the 5-shot row, remote"
has "$W/icl-url.json" '"runs":[{"experiment":"llm-ranker","shots":0' "icl json, remote"
grep -o '"retriever_metrics":{[^}]*}' "$W/icl.json" >"$W/rm-local"
grep -o '"retriever_metrics":{[^}]*}' "$W/icl-url.json" >"$W/rm-url"
cmp -s "$W/rm-local" "$W/rm-url" && ok || bad "the same users and retriever, remote and local"
expect 64 "llm-generative refuses a server" -- "$T" --db "$W/rk.db" experiment llm-generative --llm-url "$URL/v1"
kill "$pid"
wait "$pid" 2>/dev/null
expect 0 "llm-generative" -- "$T" --db "$W/rk.db" experiment llm-generative --retriever itemknn -m "$BASE" --users 3 -t 2 --json "$W/gen.json"
has "$W/out" "language model generating titles" "the generative row"
# Every generated item is a catalogue item (the trie), and some were made.
awk -F'"items_generated":' '{ split($2, a, ","); split($0, b, "\"in_catalogue\":"); split(b[2], c, ",");
     exit !(a[1] + 0 > 0 && a[1] == c[1]) }' "$W/gen.json" && ok || bad "generated items outside the catalogue: $(cat "$W/gen.json")"
# Learned semantic IDs: one per item, all distinct; the training
# sequences written in them; the generator decodes IDs under their trie.
expect 0 "semantic-ids, unbalanced" -- "$T" --db "$W/rk.db" experiment semantic-ids --export "$W/sid" --levels 2 --codebook 16 --unbalanced
has "$W/out" "semantic IDs of 1682 items" "semantic-ids says what it learned"
grep -o "[0-9]* distinct" "$W/out" >"$W/plain-prefixes"
[ "$(wc -l <"$W/sid/codes.tsv")" -eq 1682 ] && [ -z "$(cut -f2 "$W/sid/codes.tsv" | sort | uniq -d)" ] && ok ||
    bad "not one distinct ID per item"
grep -q "^A user's recent items, oldest first: a[a-z] b[a-z]" "$W/sid/train.txt" && ok || bad "no sequences in IDs"
expect 0 "llm-generative --ids" -- "$T" --db "$W/rk.db" experiment llm-generative --retriever itemknn -m "$BASE" \
    --ids "$W/sid/codes.tsv" --users 3 -t 2 --json "$W/gensid.json"
has "$W/out" "language model generating semantic IDs" "the semantic-ID row"
awk -F'"items_generated":' '{ split($2, a, ","); split($0, b, "\"in_catalogue\":"); split(b[2], c, ",");
     exit !(a[1] + 0 > 0 && a[1] == c[1]) }' "$W/gensid.json" && ok || bad "IDs outside the catalogue: $(cat "$W/gensid.json")"
# Balanced codebooks: no level-1 code on more than ceil(1682 / 16) = 106
# items, and more distinct prefixes than plain k-means finds.
expect 0 "semantic-ids (balanced)" -- "$T" --db "$W/rk.db" experiment semantic-ids --export "$W/sidb" --levels 2 --codebook 16
has "$W/out" "residual balanced k-means" "balanced says so"
[ "$(cut -f2 "$W/sidb/codes.tsv" | cut -d' ' -f1 | sort | uniq -c | sort -n | tail -n 1 | awk '{print $1}')" -le 106 ] && ok ||
    bad "a level-1 code holds more than its share"
[ "$(grep -o "[0-9]* distinct" "$W/out" | cut -d' ' -f1)" -gt "$(cut -d' ' -f1 "$W/plain-prefixes")" ] && ok ||
    bad "balanced codes collide as much as plain ones: $(cat "$W/out")"
# The titles' training text for a generator's base.
expect 0 "llm-generative --export" -- "$T" --db "$W/rk.db" experiment llm-generative --export "$W/gen.txt"
has "$W/out" "1682 titles, then the training part's sequences" "the export says what it wrote"
[ "$(head -n 1 "$W/gen.txt")" = "Toy Story (1995)" ] && grep -q "^A user's recent items, oldest first: .*(19[0-9][0-9]);" "$W/gen.txt" &&
    ok || bad "no titles and sequences in the generator's text"
head -n 5 "$W/sid/codes.tsv" | cut -f1 >"$W/bad-ids.tsv"
expect 65 "an ID file without IDs" -- "$T" --db "$W/rk.db" experiment llm-generative -m "$BASE" --ids "$W/bad-ids.tsv"
has "$W/err" "bad-ids.tsv:1" "the line is named"
expect 64 "--ids is the generator's" -- "$T" --db "$W/rk.db" experiment llm-ranker -m "$BASE" --ids "$W/sid/codes.tsv"
expect 0 "llm-vs-traditional" -- "$T" -q --db "$W/rk.db" experiment llm-vs-traditional --models pop,itemknn -m "$BASE" \
    --retriever itemknn --users 5 -t 2 --report "$W/vs" --json "$W/vs.json"
has "$W/out" "llm-generative" "every method has a row"
[ -f "$W/vs/report.md" ] && [ -f "$W/vs/ndcg.svg" ] && ok || bad "no report"
has "$W/vs.json" '"paired":[{"a":"itemknn","b":"pop"' "paired tests against the first model"
expect 64 "llm-ranker without a model" -- "$T" --db "$W/rk.db" experiment llm-ranker
expect 64 "27 candidates" -- "$T" --db "$W/rk.db" experiment llm-ranker -m "$BASE" --candidates 27

# Every .inp/.out pair of the upstream tokenizer tests (no BOS, no special parsing).
for g in "$DATA"/tokenizer-refs-llamacpp/ggml-vocab-*.gguf; do
    name=$(basename "$g" .gguf)
    awk -v dir="$W" 'BEGIN { n = 0; f = sprintf("%s/case-%03d", dir, n); printf "" > f }
        $0 == "__ggml_vocab_test__" { close(f); n++; f = sprintf("%s/case-%03d", dir, n); printf "" > f; next }
        { if (started[n]++) printf "\n" >> f; printf "%s", $0 >> f }' "$g.inp"
    i=0 bad_cases=0 cases=0
    while IFS= read -r want; do
        f=$(printf "%s/case-%03d" "$W" "$i")
        got=$("$T" llm tokenize -m "$g" --no-bos -f "$f" 2>&1)
        if [ " $got" != "$want" ] && [ "$got" != "$want" ]; then
            bad_cases=$((bad_cases + 1))
            [ $bad_cases -le 2 ] && echo "  $name case $i: want '$want' got '$got'" >&2
        fi
        i=$((i + 1)) cases=$((cases + 1))
    done <"$g.out"
    rm -f "$W"/case-*
    if [ $bad_cases -eq 0 ] && [ $cases -eq 46 ]; then ok; else bad "$name: $bad_cases of $cases cases differ"; fi
done

expect 0 "tokenize with BOS" -- "$T" llm tokenize -m "$S/stories260K.gguf" "Once upon a time"
if [ "$(cat "$W/out")" = "1 403 407 261 378" ]; then ok; else bad "tokenize ids: $(cat "$W/out")"; fi
expect 0 "tokenize pieces" -- "$T" llm tokenize -m "$S/stories260K.gguf" --pieces "Once"
has "$W/out" "' Once'" "pieces shown"
expect 0 "info" -- "$T" llm info "$S/stories260K.gguf"
has "$W/out" "general.architecture" "info metadata"
has "$W/out" "blk.4.ffn_down.weight" "info tensor table"
expect 0 "info -m" -- "$T" llm info -m "$S/stories260K.gguf"
has "$W/out" "general.architecture" "info takes -m like every llm command"
expect 64 "info with two files" -- "$T" llm info -m "$S/stories260K.gguf" "$S/stories260K.gguf"
expect 0 "embed" -- "$T" llm embed -m "$S/stories260K.gguf" "one" "two words"
if [ "$(wc -l <"$W/out")" -eq 2 ] && awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i * $i; if (NF != 64 || s < 0.999 || s > 1.001) exit 1 }' "$W/out"; then ok; else bad "embed: two unit vectors of 64"; fi
expect 0 "chat with a named template" -- "$T" -q llm chat -m "$S/stories260K.gguf" --chat-template zephyr -p "hi" -n 5 --temp 0
[ -s "$W/out" ] && ok || bad "chat printed an answer"
printf 'hi\n/exit\nnot read\n' >"$W/turns"
expect 0 "chat leaves at /exit" -- sh -c "\"$T\" llm chat -m \"$S/stories260K.gguf\" --chat-template zephyr -n 3 --temp 0 <\"$W/turns\""
has "$W/err" "/exit or Ctrl-D leaves" "chat banner says how to leave"
if [ "$(grep -c 'new prompt tokens' "$W/err")" -eq 1 ]; then ok; else bad "chat answered after /exit"; fi
expect 78 "chat without a template" -- "$T" llm chat -m "$S/stories260K.gguf" -p "hi"
has "$W/err" "--chat-template" "chat suggests --chat-template"

# Constrained decoding: a model that knows nothing writes what the grammar
# allows, at temperature 1.
cat >"$W/tool.json" <<'SCHEMA'
{"type": "object", "properties": {"query": {"type": "string", "minLength": 1, "maxLength": 12},
 "k": {"type": "integer", "minimum": 1, "maximum": 20}}, "required": ["query", "k"]}
SCHEMA
for seed in 1 2 3; do
    expect 0 "json-schema run (seed $seed)" -- "$T" -q llm run -m "$S/stories260K.gguf" -p "Once" -n 100 --temp 1 --seed $seed --json-schema "$W/tool.json"
    if grep -Eq '^\{ ?"query" ?: ?"[^"]{1,12}" ?, ?"k" ?: ?([1-9]|1[0-9]|20) ?\}$' "$W/out"; then ok; else bad "schema output: $(cat "$W/out")"; fi
done
printf 'root ::= num (" " op " " num){1,3}\nop ::= [-+*/]\nnum ::= [1-9] [0-9]{0,2}\n' >"$W/arith.gbnf"
expect 0 "gbnf run" -- "$T" -q llm run -m "$S/stories260K.gguf" -p "Once" -n 60 --temp 1 --seed 4 --grammar "$W/arith.gbnf"
if grep -Eq '^[1-9][0-9]{0,2}( [-+*/] [1-9][0-9]{0,2}){1,3}$' "$W/out"; then ok; else bad "grammar output: $(cat "$W/out")"; fi
expect 65 "output cut short" -- "$T" -q llm run -m "$S/stories260K.gguf" -p "Once" -n 2 --temp 1 --seed 1 --json-schema "$W/tool.json"
has "$W/err" "before the grammar's text was complete" "incomplete output is an error"
printf 'root ::= "a" |\n  ( "b"\n' >"$W/bad.gbnf"
expect 65 "bad grammar" -- "$T" llm run -m "$S/stories260K.gguf" -p "x" --grammar "$W/bad.gbnf"
has "$W/err" "bad.gbnf: grammar line 2, column 3: expected ')' to close this group" "grammar error names file, line and column"
printf '{"type": "object", "patternProperties": {}}' >"$W/bad.json"
expect 78 "unsupported schema" -- "$T" llm run -m "$S/stories260K.gguf" -p "x" --json-schema "$W/bad.json"
has "$W/err" "keyword 'patternProperties' is not supported" "unsupported keyword named"

# A model for the agent (scripts/agent-model.sh, in small): conversations
# made from the catalogue, a tokenizer with ChatML's markers and a base
# trained on them, every weight fine-tuned on the tool calls; the rules
# backend and the model measured on the held-out phrasings (an untrained
# model's calls are still well-formed: the grammar holds them).
expect 0 "ml-latest-small for the agent" -- "$T" -q --db "$W/ag.db" import movielens "$DATA/ml-latest-small"
expect 0 "a recommender for the agent" -- "$T" -q --db "$W/ag.db" train als --param iterations=2
expect 0 "agent-data" -- "$T" --db "$W/ag.db" experiment agent-data --examples 40 --export "$W/ad"
has "$W/out" "wrote 40 training conversations" "agent-data writes what it was asked"
grep -q '"tool_calls":\[{"id":"call_1","type":"function","function":{"name":' "$W/ad/train.jsonl" && grep -q '"role":"tool"' "$W/ad/train.jsonl" &&
    grep -q '"tools":\[{"type":"function"' "$W/ad/train.jsonl" && ok || bad "agent-data lines are not OpenAI-format tool conversations"
grep -o '"role":"user","content":"[^"]*"' "$W/ad/train.jsonl" | sort -u >"$W/ad.train.req"
grep -o '"role":"user","content":"[^"]*"' "$W/ad/heldout.jsonl" | sort -u >"$W/ad.held.req"
[ -s "$W/ad.held.req" ] && [ -z "$(comm -12 "$W/ad.train.req" "$W/ad.held.req")" ] && ok ||
    bad "a held-out request is also in the training file: $(comm -12 "$W/ad.train.req" "$W/ad.held.req" | head -3)"
expect 0 "tool-calls, rules" -- "$T" --db "$W/ag.db" experiment tool-calls --data "$W/ad/heldout.jsonl"
awk '/right tool/ { for (i = 1; i <= NF; i++) if ($i == "tool" && $(i - 1) == "right" && v == "") v = $(i + 1) + 0 } END { exit !(v >= 70) }' \
    "$W/out" && ok || bad "the rules backend got under 70% of the held-out tools right: $(cat "$W/out")"
printf '{"arch": "llama", "n_embd": 32, "n_layer": 1, "n_head": 2, "n_ff": 64}\n' >"$W/ag.json"
expect 0 "a ChatML tokenizer and base" -- "$T" -q llm train --config "$W/ag.json" --data "$W/ad/train.jsonl" --bpe 400 --chat-template chatml --tool-prompt brief --steps 2 --ctx 64 --batch 4 -t 2 "$W/agbase.gguf"
expect 0 "fine-tuned on tool conversations" -- "$T" -q llm finetune -m "$W/agbase.gguf" --data "$W/ad/train.jsonl" --full --steps 2 --batch 2 --ctx 1024 -t 2 -o "$W/agent.gguf"
expect 0 "tool-calls, the model" -- "$T" --db "$W/ag.db" experiment tool-calls --data "$W/ad/heldout.jsonl" --model "$W/agent.gguf" --users 3 --temp 0
has "$W/out" "local backend, 3 requests" "the model's calls are measured"
printf '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "search", "arguments": "{not json"}}]}]}\n' >"$W/badtool.jsonl"
expect 65 "a tool call whose arguments are not JSON" -- "$T" -q llm finetune -m "$W/agbase.gguf" --data "$W/badtool.jsonl" -o "$W/x.gguf" --full
has "$W/err" "badtool.jsonl:1: messages[1].tool_calls[0]" "the call is named"
expect 64 "--tool-prompt takes brief" -- "$T" -q llm train --config "$W/ag.json" --data "$W/ad/train.jsonl" --tool-prompt long --steps 1 "$W/x.gguf"

# Bad input: clear errors naming the file, sysexits codes.
printf 'GGUF\003\000\000\000' >"$W/trunc.gguf"
expect 65 "truncated GGUF" -- "$T" llm info "$W/trunc.gguf"
has "$W/err" "trunc.gguf" "error names the file"
has "$W/err" "truncated" "error says truncated"
head -c 600000 "$S/stories260K.gguf" >"$W/half.gguf"
expect 65 "half a model" -- "$T" llm run -m "$W/half.gguf" -p "x" -n 1
has "$W/err" "beyond the end of the file" "half a model: data out of range"
expect 66 "missing model" -- "$T" llm run -m "$W/nope.gguf" -p "x"
expect 0 "a Q4_K_M model runs" -- "$T" -q llm run -m "$DATA/llm-fixtures/models/tiny-qwen2-bpe-Q4_K_M.gguf" -p "x" -n 4 --temp 0
expect 0 "F16 KV cache" -- "$T" -q llm run -m "$S/stories260K.gguf" -p "Once upon a time" -n 8 --temp 0 --kv-type f16
has "$W/out" "there was a little girl" "F16 KV cache greedy text"
expect 64 "Q8_0 KV cache needs 32-wide heads" -- "$T" llm run -m "$S/stories260K.gguf" -p "x" -n 1 --kv-type q8_0
expect 64 "run needs a prompt" -- "$T" llm run -m "$S/stories260K.gguf"
expect 64 "bad temperature" -- "$T" llm run -m "$S/stories260K.gguf" -p x --temp abc
expect 64 "unknown synth shape" -- "$T" llm synth --shape nope "$W/x.gguf"
has "$W/err" "smollm2-135m" "synth lists shapes"
expect 0 "bench" -- "$T" llm bench -m "$S/stories260K.gguf" -p 16 -n 8 -r 1 -t 1 --json --no-bandwidth
has "$W/out" '"tg": {"tokens": 8' "bench json"
has "$W/out" '"percent_of_bound": ' "bench json bound"
expect 0 "bench ttft" -- "$T" llm bench -m "$S/stories260K.gguf" -p 0 -n 0 -r 1 -t 1 --no-bandwidth --ttft 200,150
has "$W/out" "200-token prompt" "ttft from nothing"
has "$W/out" "with the first 150 cached" "ttft with the prefix cached"
expect 64 "bench ttft cached >= prompt" -- "$T" llm bench -m "$S/stories260K.gguf" --ttft 100,100

finish
