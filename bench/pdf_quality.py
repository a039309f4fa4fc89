#!/usr/bin/env python3
"""PDF text extraction: cairn's reader against pdftotext (poppler), same files, same run.

Usage: python3 bench/pdf_quality.py CAIRN_BINARY PDF... (runs each extractor RUNS times, default 3)

Word precision/recall: multiset overlap of lowercase alphanumeric words against pdftotext's.
Order: longest common subsequence of the two word sequences over the shorter one (difflib).
Pages/s: pages / median wall time of one whole-file extraction (process start included for both).
"""
import collections, difflib, os, re, statistics, subprocess, sys, time

RUNS = int(os.environ.get("RUNS", "3"))
WORD = re.compile(r"[0-9a-z]+")

def words(text):
    return WORD.findall(text.lower())

def timed(cmd):
    times = []
    out = b""
    for _ in range(RUNS):
        t = time.perf_counter()
        out = subprocess.run(cmd, check=True, capture_output=True).stdout
        times.append(time.perf_counter() - t)
    return out.decode("utf-8", "replace"), statistics.median(times)

def pages(pdf):
    info = subprocess.run(["pdfinfo", pdf], check=True, capture_output=True, text=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))

def lcs_ratio(a, b):
    m = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return sum(blk.size for blk in m.get_matching_blocks()) / max(1, min(len(a), len(b)))

def main():
    cairn, pdfs = sys.argv[1], sys.argv[2:]
    print(f"| file | pages | word precision | word recall | order | cairn pages/s | pdftotext pages/s | ratio |")
    print(f"|---|---|---|---|---|---|---|---|")
    for pdf in pdfs:
        n = pages(pdf)
        ref, t_ref = timed(["pdftotext", "-enc", "UTF-8", pdf, "-"])
        ours, t_ours = timed([cairn, "extract", pdf])
        a, b = words(ours), words(ref)
        ca, cb = collections.Counter(a), collections.Counter(b)
        common = sum((ca & cb).values())
        precision = common / max(1, len(a))
        recall = common / max(1, len(b))
        order = lcs_ratio(a, b)
        print(f"| {os.path.basename(pdf)} | {n} | {precision:.3f} | {recall:.3f} | {order:.3f} | "
              f"{n / t_ours:.1f} | {n / t_ref:.1f} | {t_ref / t_ours:.2f}× |")

if __name__ == "__main__":
    main()
