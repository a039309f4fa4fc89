#!/usr/bin/env python3
"""How much of a list the answer to a question asking for several things gives.

usage: python3 bench/list_answers.py KB CAIRN [CAIRN...] [--questions FILE] [--split NAME]

Each binary answers every question of eval/lists/questions.jsonl (or FILE) with
`cairn --kb KB ask --json`, one binary after the other per question (so a noisy minute falls
on both). An item is given when its phrase is in the answer (whitespace, case and Markdown's
`_`, `*`, backticks and brackets aside). Prints, per binary: questions answered (not withheld),
the mean share of each question's items given (withheld counts 0), the share of questions
given every item, and the answers' median length in words; then each question's items given
under every binary.
"""
import argparse
import json
import re
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def norm(s):
    s = re.sub(r"[_*`\[\]]", "", s.replace("\u2019", "'"))
    return re.sub(r"\s+", " ", s).strip().lower()


def ask(cairn, kb, question):
    out = subprocess.run(
        [cairn, "--kb", kb, "ask", question, "--json"], capture_output=True, text=True
    ).stdout
    v = json.loads(out)
    return ("" if v.get("abstained") else v.get("answer") or ""), v


def main():
    p = argparse.ArgumentParser()
    p.add_argument("kb")
    p.add_argument("cairn", nargs="+")
    p.add_argument("--questions", default=str(ROOT / "eval/lists/questions.jsonl"))
    p.add_argument("--split")
    a = p.parse_args()
    qs = [json.loads(l) for l in open(a.questions)]
    if a.split:
        qs = [q for q in qs if q["split"] == a.split]
    rows = []
    for q in qs:
        row = []
        for c in a.cairn:
            answer, _ = ask(c, a.kb, q["question"])
            given = sum(norm(i) in norm(answer) for i in q["items"])
            row.append((answer, given))
        rows.append(row)
    print("| binary | answered | items given (mean share) | every item | median words |")
    print("|---|---|---|---|---|")
    for k, c in enumerate(a.cairn):
        answered = sum(1 for r in rows if r[k][0])
        share = statistics.mean(r[k][1] / len(q["items"]) for r, q in zip(rows, qs))
        every = sum(1 for r, q in zip(rows, qs) if r[k][1] == len(q["items"]))
        words = statistics.median(len(r[k][0].split()) for r in rows)
        print(f"| {c} | {answered}/{len(qs)} | {share:.2f} | {every}/{len(qs)} | {words} |")
    print()
    for r, q in zip(rows, qs):
        given = " ".join(f"{g}/{len(q['items'])}" for _, g in r)
        print(f"{q['id']} {given}  {q['question']}")


if __name__ == "__main__":
    main()
