#!/usr/bin/env python3
"""Where `cairn search` ranks the passage that answers each question of a question set.

usage: python3 bench/passage_rank.py CAIRN KB [KB...] [--k 10] [--mode hybrid]
                                     [--questions FILE] [--split NAME] [--known-items PDF...]

A hit answers when it is from the question's document (and page, for a PDF) and holds its
phrase (whitespace, case and Markdown's `_`, `*`, backticks and brackets aside). A question
either has one `doc`, `page` and `phrase`, or a list `gold` of `doc`/`phrase` places, any of
which answers. Prints recall@1/3/8 and MRR@k per knowledge base, and each question's rank in
every one of them.

The questions are eval/pdf-qa/questions.jsonl by default (eval/definitions/questions.jsonl is
the other set), or, with
--known-items, made on the fly from the PDFs as `cairn extract` reads them: each numbered
section heading in the body (not the contents' dotted lines) searched for as it is, and each
"Term (ABBR):" definition asked as "What is term?", the answer being the page that holds it.
Nothing of the PDFs is stored.
"""
import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def norm(s):
    s = re.sub(r"[_*`\[\]]", "", s.replace("\u2019", "'"))
    return re.sub(r"\s+", " ", s).strip().lower()


def same_doc(gold, doc):
    """A PDF's name within the hit's key, or a Markdown page by its path (`rust-book/src/x.md`
    is the key `src/x.md`, or `src-2/x.md` when two folders named src were added)."""
    return gold in doc or gold.endswith("/" + doc.split("/", 1)[-1])


def answers(q, h):
    golds = q.get("gold") or [{"doc": q["doc"], "page": q.get("page"), "phrase": q["phrase"]}]
    return any(
        same_doc(g["doc"], h["doc"]) and h.get("page") == g.get("page") and norm(g["phrase"]) in norm(h["text"])
        for g in golds
    )


def rank(cairn, kb, q, k, mode):
    out = subprocess.run(
        [cairn, "--kb", kb, "search", "--json", "-k", str(k), "--mode", mode, q["question"]],
        capture_output=True, text=True, check=True,
    ).stdout
    d = json.loads(out)
    hits = d["hits"] if isinstance(d, dict) else d
    for i, h in enumerate(hits, 1):
        if answers(q, h):
            return i
    return None


def known_items(cairn, pdfs):
    out = []
    for pdf in pdfs:
        text = subprocess.run(
            [cairn, "extract", "--sections", pdf], capture_output=True, text=True, check=True
        ).stdout
        doc, page = Path(pdf).stem, None
        for line in text.split("\n"):
            m = re.match(r"--- section p\.(\d+)", line)
            if m:
                page = int(m.group(1))
                continue
            m = re.match(r"^\s*\d+(\.\d+)*\s{2,}([A-Z].{6,80})$", line)
            if m and "...." not in line:
                title = m.group(2).strip()
                out.append({"id": f"k{len(out)}", "question": title, "doc": doc, "page": page, "phrase": title})
            m = re.match(r"^\s*(?:•\s+)?([A-Z][A-Za-z/ -]{3,60}) \(([A-Z]{2,6})\):", line)
            if m:
                out.append({"id": f"k{len(out)}", "question": f"What is {m.group(1).strip().lower()}?",
                            "doc": doc, "page": page, "phrase": m.group(0).strip()[:40]})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cairn")
    ap.add_argument("kbs", nargs="+")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--mode", default="hybrid")
    ap.add_argument("--questions", default=str(ROOT / "eval/pdf-qa/questions.jsonl"))
    ap.add_argument("--split", help="only the questions of this split")
    ap.add_argument("--known-items", nargs="+", metavar="PDF")
    a = ap.parse_args()
    if a.known_items:
        qs = known_items(a.cairn, a.known_items)
    else:
        qs = [json.loads(l) for l in open(a.questions) if l.strip()]
        qs = [q for q in qs if not a.split or q.get("split") == a.split]
    ranks = {kb: [rank(a.cairn, kb, q, a.k, a.mode) for q in qs] for kb in a.kbs}
    for q, i in zip(qs, range(len(qs))):
        cells = " ".join(f"{str(ranks[kb][i] or '-'):>3}" for kb in a.kbs)
        print(f"{q['id']} {cells}  {q['question']}")
    print(f"| knowledge base | recall@1 | recall@3 | recall@8 | MRR@{a.k} |")
    print("|---|---|---|---|---|")
    for kb in a.kbs:
        r = ranks[kb]
        at = lambda n: sum(1 for x in r if x and x <= n) / len(r)
        mrr = sum(1 / x for x in r if x) / len(r)
        print(f"| {kb} ({a.mode}) | {at(1):.2f} | {at(3):.2f} | {at(8):.2f} | {mrr:.3f} |")


if __name__ == "__main__":
    sys.exit(main())
