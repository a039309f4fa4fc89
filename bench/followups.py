#!/usr/bin/env python3
"""Where `cairn search` ranks the passage that answers a question asked after another
(eval/followups): the question as typed, as `--after` writes it out, and as a reader means it.

usage: python3 bench/followups.py CAIRN KB [--k 10] [--split NAME] [--questions FILE] [--ask]

Prints, per form, MRR@k and recall@1/3/8, how many questions `--after` wrote out as the set's
`meant` (exactly) and left alone when `meant` is the question itself, and each question's ranks.
With --ask, each question is also asked (`cairn ask --json`, the default model) as typed and
with `--after`, and the script counts the answers given and those citing the gold page.
The knowledge base must hold the pages the questions cite (eval/followups/README.md).
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from passage_rank import answers, same_doc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def search(cairn, kb, k, query, after=None):
    cmd = [cairn, "--kb", kb, "search", "--json", "-k", str(k), query]
    if after:
        cmd += ["--after", after]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    taken = None
    for line in out.stderr.splitlines():
        if line.startswith("taken as: "):
            taken = line[len("taken as: "):]
    return json.loads(out.stdout)["hits"], taken


def first(q, hits):
    for i, h in enumerate(hits, 1):
        if answers(q, h):
            return i
    return None


def ask(cairn, kb, q, after=None):
    """(answered, cites the gold page, answer) of `cairn ask --json`."""
    cmd = [cairn, "--kb", kb, "ask", "--json", q["question"]]
    if after:
        cmd += ["--after", after]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode not in (0, 3):  # 3: not found, withheld
        sys.exit(out.stderr)
    a = json.loads(out.stdout)
    if a["abstained"]:
        return False, False, None
    docs = {s["number"]: s["doc"] for s in a["sources"]}
    cited = [docs.get(c["source"]) for s in a["sentences"] for c in s["citations"]]
    gold = any(same_doc(g["doc"], d) for g in q["gold"] for d in cited if d)
    return True, gold, a["answer"]


def summary(ranks, k):
    n = len(ranks)
    mrr = sum(1 / r for r in ranks if r) / n
    at = lambda m: sum(1 for r in ranks if r and r <= m) / n
    return f"MRR@{k} {mrr:.3f}  R@1 {at(1):.2f}  R@3 {at(3):.2f}  R@8 {at(8):.2f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cairn")
    ap.add_argument("kb")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--split")
    ap.add_argument("--questions", default=str(ROOT / "eval/followups/questions.jsonl"))
    ap.add_argument("--ask", action="store_true")
    a = ap.parse_args()
    qs = [json.loads(l) for l in open(a.questions) if l.strip()]
    if a.split:
        qs = [q for q in qs if q["split"] == a.split]
    forms = {"as typed": [], "--after": [], "meant": []}
    exact = leans = alone = left = 0
    asked = {"as typed": [0, 0], "--after": [0, 0]}
    for q in qs:
        typed, _ = search(a.cairn, a.kb, a.k, q["question"])
        after, taken = search(a.cairn, a.kb, a.k, q["question"], q["earlier"])
        meant, _ = search(a.cairn, a.kb, a.k, q["meant"])
        r = [first(q, typed), first(q, after), first(q, meant)]
        for f, x in zip(forms, r):
            forms[f].append(x)
        if q["meant"] == q["question"]:
            alone += 1
            left += taken is None
        else:
            leans += 1
            exact += taken == q["meant"]
        print(f'{q["id"]} {r} {q["question"]!r} -> {taken!r}')
        if a.ask and q["meant"] != q["question"]:
            for f, after in (("as typed", None), ("--after", q["earlier"])):
                answered, gold, text = ask(a.cairn, a.kb, q, after)
                asked[f][0] += answered
                asked[f][1] += gold
                print(f"    {f}: {text!r}" + (" (cites the gold page)" if gold else ""))
    print(f"{len(qs)} questions" + (f" ({a.split})" if a.split else ""))
    for f, ranks in forms.items():
        print(f"  {f:9} {summary(ranks, a.k)}")
    print(f"  written out as meant: {exact} of {leans}; left as typed: {left} of {alone}")
    if a.ask:
        for f, (answered, gold) in asked.items():
            print(f"  asked {f:9} answered {answered} of {leans}, citing the gold page {gold}")


if __name__ == "__main__":
    main()
