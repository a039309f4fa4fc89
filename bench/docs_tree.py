"""Scores `cairn ask --batch` answers to eval/docs-qa against its gold answers, per half.

    python3 bench/docs_tree.py A.jsonl B.jsonl [MARGIN]

Every question counts as answerable (the whole tree holds every page). An answer is withheld
when cairn abstained or its self-check margin is under MARGIN. F1 and "contains" are SQuAD's
(lowercase, ASCII punctuation and articles dropped), withheld answers scoring 0, as in
`cairn eval qa`; a citation is right when a cited source's excerpts contain a gold answer.
"""

import json
import statistics
import string
import sys
from collections import Counter


def norm(s):
    s = "".join(" " if c in string.punctuation else c for c in s.lower())
    return " ".join(w for w in s.split() if w not in ("a", "an", "the"))


def f1(pred, gold):
    p, g = norm(pred).split(), norm(gold).split()
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def withheld(r, margin):
    return r["abstained"] or (r.get("self_check") is not None and r["self_check"] < margin)


def score(rows, margin):
    n = len(rows)
    f, contains, out, cited_ok, cited_n, tokens = 0.0, 0, 0, 0, 0, []
    for q, r in rows:
        tokens.append(r["timings"]["prompt_tokens"])
        if withheld(r, margin):
            out += 1
            continue
        f += max(f1(r["answer"], g) for g in q["answers"])
        contains += any(norm(g) in norm(r["answer"]) for g in q["answers"])
        cited = {c["source"] for s in r["sentences"] for c in s["citations"]}
        if cited:
            cited_n += 1
            texts = [
                norm(" ".join(e["text"] for e in s["excerpts"]))
                for s in r["sources"]
                if s["number"] in cited
            ]
            cited_ok += any(norm(g) in t for t in texts for g in q["answers"])
    return (
        f"n={n}  F1 {100 * f / n:.1f}  contains {100 * contains / n:.1f}  "
        f"withheld {100 * out / n:.1f}% ({out})  citations {cited_ok}/{cited_n}  "
        f"prompt p50 {statistics.median(tokens):.0f} tokens"
    )


def main():
    a_path, b_path = sys.argv[1], sys.argv[2]
    margin = float(sys.argv[3]) if len(sys.argv) > 3 else 1.2
    questions = {}
    for line in open("eval/docs-qa/questions.jsonl"):
        q = json.loads(line)
        questions[q["id"]] = q
    runs = {}
    for path in (a_path, b_path):
        runs[path] = {r["id"]: r for r in map(json.loads, open(path)) if "id" in r}
    for split in ("calibration", "check"):
        for path, answers in runs.items():
            rows = [(questions[i], r) for i, r in answers.items() if questions[i]["split"] == split]
            print(f"{split:11s} {path}: {score(rows, margin)}")
    a, b = runs[a_path], runs[b_path]
    changed = [i for i in a if i in b and a[i]["answer"] != b[i]["answer"]]
    print(f"answers that differ: {len(changed)} of {len(a)}")


if __name__ == "__main__":
    main()
