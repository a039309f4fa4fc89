#!/usr/bin/env python3
"""Where `cairn search` ranks the passage that says what a term is, when the question names the
work to look in (eval/definitions, asked "In the Rust Book, what is a closure?" and "What is a
closure according to the Reference?" for the places each source holds).

usage: python3 bench/named_sources.py CAIRN KB [--split NAME] [--k 10]

KB must hold the Rust Book and the Reference as two sources (`cairn add
../shared/eval/markdown/rust-book/src ../shared/eval/markdown/rust-reference/src`). A question
is made for each source that holds one of its gold places, and only that source's places
answer it. Prints MRR@k and recall@1/3/8 over them.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from passage_rank import rank  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FORMS = (
    ("rust-book/", lambda q: "In the Rust Book, " + q[0].lower() + q[1:]),
    ("rust-reference/", lambda q: q.rstrip("?") + " according to the Reference?"),
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cairn")
    ap.add_argument("kb")
    ap.add_argument("--split")
    ap.add_argument("--k", type=int, default=10)
    a = ap.parse_args()
    ranks = []
    for line in open(ROOT / "eval/definitions/questions.jsonl"):
        q = json.loads(line)
        if a.split and q["split"] != a.split:
            continue
        for prefix, form in FORMS:
            gold = [g for g in q["gold"] if g["doc"].startswith(prefix)]
            if gold:
                named = {"question": form(q["question"]), "gold": gold}
                r = rank(a.cairn, a.kb, named, a.k, "hybrid")
                ranks.append(r)
                print(f'{r} {named["question"]}')
    n = len(ranks)
    at = lambda m: sum(1 for r in ranks if r and r <= m) / n
    mrr = sum(1 / r for r in ranks if r) / n
    print(f"{n} questions: MRR@{a.k} {mrr:.3f}  R@1 {at(1):.2f}  R@3 {at(3):.2f}  R@8 {at(8):.2f}")


if __name__ == "__main__":
    main()
