#!/usr/bin/env python3
"""The answer gates, replayed on `cairn eval qa --dump` files made with every gate open.

    python3 bench/gates.py DOCS_CAL XQUAD_CAL [DOCS_CHECK XQUAD_CHECK]

Each file comes from a run with the retrieval gates off and the self-check scored but not
applied (BENCHMARKS.md, session 21):

    --min-relevance 0 --min-coverage 0 --min-named-coverage 0 --min-rare-coverage 0 --self-check -1000

It prints the defaults' figures on every file, searches a grid of gate settings on the two
calibration files, says how many meet the issue's targets (at most 5% of answerable questions
withheld, at least 90% of unanswerable ones) on both, and shows the five closest with their
figures on the check files. The replay follows `engine::Gates::may_ask` and the self-check as
`cairn ask` applies them: the relevance floor first, then the model's own refusal, then the
margin (raised to the overruling bar where the word-coverage gates failed).
"""
import itertools
import json
import math
import sys

DEFAULTS = dict(rel=0.30, cov=0.25, named=0.4, rare=0.5, margin=1.15, overrule=1.7)
COMMON_RANK = 1000.0  # engine::answer::COMMON_RANK


def load(path):
    rows = []
    with open(path) as f:
        for line in f:
            rows.append(json.loads(line))
    return rows


def rare_in_english(row):
    """RareWords::in_english from the dump's (word, vocabulary id, held) triples."""
    held = total = 0.0
    for _, vocab_id, is_held in row["words"]:
        rank = vocab_id - 1995 if vocab_id is not None and vocab_id >= 1996 else 30000.0
        weight = max(0.0, math.log(rank / COMMON_RANK))
        total += weight
        if is_held:
            held += weight
    return held / total if total > 0 else 1.0


def withheld(row, g):
    """Why `row`'s answer is withheld under gates `g`, or None.

    The word-coverage gates (coverage, named coverage, rare words), failing, raise the
    self-check's bar to `overrule` (`engine::calibrated_overrule`; None: they withhold outright).
    The engine does so only for questions asking for a fact, not why/how or yes/no, which the
    dump does not tell apart: here it applies to all.
    """
    relevance = row["best_dense"]
    if relevance is not None and relevance < g["rel"]:
        return "retrieval"
    words_short = (
        row["coverage"] < g["cov"]
        or (row["missing_names"] and row["coverage"] < g["named"])
        or (row["term_coverage"] < g["rare"] and rare_in_english(row) < g["rare"])
    )
    overrule = g.get("overrule")
    if words_short and overrule is None:
        return "retrieval"
    if row["abstained"]:
        return "retrieval" if words_short else row["abstained"]
    bar = max(g["margin"], overrule) if words_short else g["margin"]
    if row["self_check"] is not None and row["self_check"] < bar:
        return "retrieval" if words_short else "self_check"
    return None


def figures(rows, g):
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    wa = sum(1 for r in answerable if withheld(r, g))
    wu = sum(1 for r in unanswerable if withheld(r, g))
    kept = [r for r in answerable if not withheld(r, g)]
    cited = [r["citation_ok"] for r in kept if r["citation_ok"] is not None]
    return {
        "answerable": (wa, len(answerable)),
        "unanswerable": (wu, len(unanswerable)),
        "em": sum(r["em"] for r in kept) / max(1, len(answerable)),
        "f1": sum(r["f1"] for r in kept) / max(1, len(answerable)),
        "citations": sum(cited) / max(1, len(cited)),
    }


def share(pair):
    return pair[0] / max(1, pair[1])


def meets(f):
    return share(f["answerable"]) <= 0.05 and share(f["unanswerable"]) >= 0.9


def show(name, f):
    wa, na = f["answerable"]
    wu, nu = f["unanswerable"]
    print(
        f"  {name:24} EM {100 * f['em']:5.1f}  F1 {100 * f['f1']:5.1f}  citations "
        f"{100 * f['citations']:5.1f}%  withheld: answerable {wa}/{na}, unanswerable {wu}/{nu}"
    )


def main():
    if len(sys.argv) not in (3, 5):
        sys.exit(__doc__)
    files = sys.argv[1:]
    data = {path: load(path) for path in files}
    calibration = files[:2]
    print("defaults", DEFAULTS)
    for path in files:
        show(path, figures(data[path], DEFAULTS))
    grid = itertools.product(
        [0.2, 0.25, 0.3],
        [0, 0.1, 0.2, 0.25],
        [0, 0.3, 0.4, 0.5],
        [0, 0.4, 0.45, 0.5, 0.55, 0.6],
        [-1000, 1.0, 1.1, 1.15, 1.2, 1.25, 1.3, 1.4],
        [None, 1.6, 1.7, 1.8, 2.0],
    )
    tried = []
    for rel, cov, named, rare, margin, overrule in grid:
        g = dict(rel=rel, cov=cov, named=named, rare=rare, margin=margin, overrule=overrule)
        fs = [figures(data[p], g) for p in calibration]
        # How far the worse calibration half is from withholding every unanswerable question
        # and no answerable one.
        closeness = min(share(f["unanswerable"]) - share(f["answerable"]) for f in fs)
        tried.append((all(meets(f) for f in fs), closeness, g))
    met = sum(1 for t in tried if t[0])
    print(f"{met} of {len(tried)} settings meet both targets on both calibration halves")
    tried.sort(key=lambda t: -t[1])
    for _, _, g in tried[:5]:
        print(g)
        for path in files:
            show(path, figures(data[path], g))


if __name__ == "__main__":
    main()
