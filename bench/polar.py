#!/usr/bin/env python3
"""Yes-or-no answers scored against `eval/polar`.

    cairn --kb KB ask --batch IN.jsonl > OUT.jsonl
    python3 bench/polar.py eval/polar/questions.jsonl OUT.jsonl

IN.jsonl holds `{"id", "question"}` of every line of the question file (`--input` prints it).
For each split it counts the answerable questions whose answer begins with the right reply
("Yes: " or "No: ", as the answer's `verdict.reply` says), the wrong reply, the quote alone (no
reply) and withheld answers, and how many unanswerable questions were withheld; with the
time to first token.
"""
import json
import statistics
import sys


def main():
    if sys.argv[1:2] == ["--input"]:
        for line in open(sys.argv[2]):
            q = json.loads(line)
            print(json.dumps({"id": q["id"], "question": q["question"]}))
        return
    gold = {}
    for line in open(sys.argv[1]):
        q = json.loads(line)
        gold[q["id"]] = q
    answers = [json.loads(line) for line in open(sys.argv[2])]
    print("| split | answerable | right reply | wrong reply | quote alone | withheld "
          "| unanswerable withheld | first token p50 |")
    print("|---|---|---|---|---|---|---|---|")
    for split in ["calibration", "check"]:
        n = dict(answerable=0, right=0, wrong=0, alone=0, withheld=0, unanswerable=0, held=0)
        ttft = []
        for a in answers:
            q = gold[a["id"]]
            if q["split"] != split:
                continue
            ttft.append(a["timings"]["ttft_ms"] / 1000)
            if q["verdict"] is None:
                n["unanswerable"] += 1
                n["held"] += bool(a["abstained"])
                continue
            n["answerable"] += 1
            reply = (a.get("verdict") or {}).get("reply")
            if a["abstained"]:
                n["withheld"] += 1
            elif reply is None:
                n["alone"] += 1
            elif reply == q["verdict"]:
                n["right"] += 1
            else:
                n["wrong"] += 1
        print(f"| {split} | {n['answerable']} | {n['right']} | {n['wrong']} | {n['alone']} "
              f"| {n['withheld']} | {n['held']} / {n['unanswerable']} "
              f"| {statistics.median(ttft):.2f} s |")


if __name__ == "__main__":
    main()
