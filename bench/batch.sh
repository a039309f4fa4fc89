#!/usr/bin/env bash
# Issue #5: questions per second of one `cairn ask --batch` against the same questions asked by
# separate `cairn ask --json` runs, on a knowledge base of the XQuAD-en paragraphs.
#
#   N=100 bash bench/batch.sh [path/to/xquad.en.dev.json]
#
# Prints both wall times, the rates, the saving, and whether the two gave the same answers.
set -euo pipefail
cd "$(dirname "$0")/.."
squad=${1:-../shared/eval/xquad-dev/xquad.en.dev.json}
n=${N:-100}
cairn=${CAIRN:-target/debug/cairn}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$squad" "$work" "$n" <<'PY'
import json, os, sys
squad, work, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = json.load(open(squad))["data"]
qs = []
for ai, a in enumerate(data):
    d = os.path.join(work, "xquad", f"{ai:03}")
    os.makedirs(d, exist_ok=True)
    for pi, p in enumerate(a["paragraphs"]):
        with open(os.path.join(d, f"p{pi:03}.md"), "w") as f:
            f.write(f"# {a['title'].replace('_', ' ')}\n\n{p['context']}\n")
        qs += [q for q in p["qas"]]
step = len(qs) / n
with open(os.path.join(work, "questions.jsonl"), "w") as f:
    for i in range(n):
        q = qs[int(i * step)]
        f.write(json.dumps({"id": q["id"], "question": q["question"]}) + "\n")
PY
export CAIRN_KB="$work/kb"
"$cairn" add "$work/xquad" -q > /dev/null
# One untimed question first, so the fixed prompt's cache exists for both runs.
"$cairn" ask "warm-up" --json > /dev/null || true

start=$(date +%s.%N)
"$cairn" ask --batch "$work/questions.jsonl" > "$work/batch.jsonl" || true
batch=$(echo "$(date +%s.%N) - $start" | bc)

start=$(date +%s.%N)
while IFS= read -r line; do
  q=$(printf '%s' "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["question"])')
  "$cairn" ask "$q" --json >> "$work/separate.jsonl" || true
done < "$work/questions.jsonl"
separate=$(echo "$(date +%s.%N) - $start" | bc)

python3 - "$work" "$n" "$batch" "$separate" <<'PY'
import json, sys
work, n, batch, separate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
b = [json.loads(l) for l in open(f"{work}/batch.jsonl")]
s = [json.loads(l) for l in open(f"{work}/separate.jsonl")]
same = sum(x.get("answer") == y.get("answer") for x, y in zip(b, s))
print(f"questions: {n}")
print(f"batch:    {batch:8.1f} s  {n / batch:.3f} questions/s")
print(f"separate: {separate:8.1f} s  {n / separate:.3f} questions/s")
print(f"saving:   {separate - batch:8.1f} s  ({100 * (1 - batch / separate):.1f}%), batch {separate / batch:.2f}x faster")
print(f"same answers: {same}/{len(b)}")
PY
