#!/bin/sh
# Makes a small language model that drives the agent (issue 14, part 3):
# conversations generated from ml-latest-small's catalogue (tailor
# experiment agent-data), a byte-level BPE tokenizer with ChatML's markers
# and a base model trained from scratch on them, then every weight
# fine-tuned on the conversations (loss on the tool calls and answers);
# last, the tool-call accuracy on the held-out phrasings against the rules
# backend. The model is written, not committed (a few MB):
#
#   scripts/agent-model.sh [TAILOR] [OUT_DIR]      (default build/release/tailor, build/agent-model)
#   tailor --db OUT_DIR/ml.db chat --model OUT_DIR/agent.gguf
#   make demo MODEL=OUT_DIR/agent.gguf
#
# Sizes (environment): EXAMPLES (4000), BASE_STEPS (300), EPOCHS (3), LR (2e-3).
set -eu
T=${1:-build/release/tailor}
OUT=${2:-build/agent-model}
here=$(cd "$(dirname "$0")/.." && pwd)
DATA=${TAILOR_DATA:-$here/../shared/data}
EXAMPLES=${EXAMPLES:-4000}
BASE_STEPS=${BASE_STEPS:-300}
EPOCHS=${EPOCHS:-3}
LR=${LR:-2e-3}
[ -d "$DATA/ml-latest-small" ] || { echo "agent-model: $DATA/ml-latest-small not found (set TAILOR_DATA)" >&2; exit 1; }
mkdir -p "$OUT"
DB="$OUT/ml.db"
if [ ! -f "$DB" ]; then
    echo "== the catalogue and a recommender"
    "$T" -q --db "$DB" import movielens "$DATA/ml-latest-small"
    "$T" -q --db "$DB" train als
fi
echo "== conversations from the catalogue"
"$T" --db "$DB" experiment agent-data --examples "$EXAMPLES" --export "$OUT/data"
echo "== a tokenizer and a base model, from scratch"
# Width 128, 4 layers: 1.1M parameters with a 2,000-token vocabulary. The
# agent describes its tools to it in one line each (--tool-prompt brief).
printf '{"arch": "llama", "n_embd": 128, "n_layer": 4, "n_head": 4, "n_ff": 384}\n' >"$OUT/shape.json"
"$T" llm train --config "$OUT/shape.json" --data "$OUT/data/train.jsonl" --bpe 2000 --chat-template chatml \
    --tool-prompt brief --steps "$BASE_STEPS" --ctx 256 --batch 16 --lr 3e-3 "$OUT/base.gguf"
echo "== fine-tuned on the conversations (every weight)"
"$T" llm finetune -m "$OUT/base.gguf" --data "$OUT/data/train.jsonl" --full --ctx 2048 --batch 4 \
    --epochs "$EPOCHS" --lr "$LR" -o "$OUT/agent.gguf"
echo "== tool calls on phrasings it never saw, and on the agent's test suite: the rules backend, then the model"
SUITE="$here/tests/agent-suite.jsonl"
"$T" --db "$DB" experiment tool-calls --data "$OUT/data/heldout.jsonl" --json "$OUT/rules.json"
"$T" --db "$DB" experiment tool-calls --data "$OUT/data/heldout.jsonl" --model "$OUT/agent.gguf" --temp 0 \
    --json "$OUT/model.json"
"$T" --db "$DB" experiment tool-calls --data "$SUITE" --json "$OUT/rules-suite.json"
"$T" --db "$DB" experiment tool-calls --data "$SUITE" --model "$OUT/agent.gguf" --temp 0 --json "$OUT/model-suite.json"
