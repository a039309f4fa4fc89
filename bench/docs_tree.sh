#!/usr/bin/env bash
# The documentation question set (eval/docs-qa) asked of the whole Markdown tree, as a user who
# points cairn at a folder would index it: every page (the printed edition of the Rust Book,
# the tldr pages and the pages the set leaves out included), so every question is answerable.
# Asks all 158 questions twice, with near-duplicate passages folded (the default) and with
# `--keep-duplicates`, and scores each half of the set with both.
#
#   KB=/tmp/kbmd bash bench/docs_tree.sh [path/to/markdown]
#
# Building the knowledge base takes about 15 minutes on 2 cores; a KB given that exists is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-../shared/eval/markdown}
cairn=${CAIRN:-target/debug/cairn}
kb=${KB:-$(mktemp -d)/kb}
out=${OUT:-$(mktemp -d)}
export CAIRN_KB="$kb"
[ -e "$kb/meta.redb" ] || "$cairn" add "$root" -q
python3 - > "$out/questions.jsonl" <<'PY'
import json
for line in open("eval/docs-qa/questions.jsonl"):
    q = json.loads(line)
    print(json.dumps({"id": q["id"], "question": q["question"]}))
PY
# The self-check scores every answer and withholds none, so that its default margin can be
# applied to the dump afterwards (MARGIN, 1.2 for the 1.5B) and the answer it would withhold seen.
"$cairn" ask --batch "$out/questions.jsonl" --self-check -1000 > "$out/fold.jsonl" || true
"$cairn" ask --batch "$out/questions.jsonl" --self-check -1000 --keep-duplicates > "$out/keep.jsonl" || true
python3 bench/docs_tree.py "$out/fold.jsonl" "$out/keep.jsonl" "${MARGIN:-1.2}"
echo "answers in $out"
