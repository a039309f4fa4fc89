#!/usr/bin/env python3
"""Issue #12: the terminal app's speed, against `cairn ask` on the same question.

    python3 bench/tui.py [--runs 5] [--model default] [--question "..."]

For each run, alternating the two, on a knowledge base of the bundled Cargo Book:
  * the app in tmux (120x36), with CAIRN_TUI_TRACE: time from launch to the first frame, time
    from Enter to the first answer token on screen, and every frame's draw time while tokens
    stream;
  * `cairn ask --json`: its time to first token (from the question, as the app's is).
Prints medians (and the frame time's p50/p99 over all runs). Needs tmux.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAIRN = os.environ.get("CAIRN", os.path.join(ROOT, "target/debug/cairn"))


def tmux(sock, *args, capture=False):
    r = subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True)
    return r.stdout if capture else None


def wait(sock, pred, secs):
    end = time.time() + secs
    while time.time() < end:
        s = tmux(sock, "capture-pane", "-p", "-t", "t", capture=True)
        if s and pred(s):
            return s
        time.sleep(0.05)
    raise SystemExit("timed out; screen:\n" + (s or ""))


def tui_run(kb, model, question, work, i):
    sock = f"cairn-bench-{os.getpid()}-{i}"
    trace = os.path.join(work, f"trace{i}")
    cmd = f"CAIRN_TUI_TRACE={trace} XDG_DATA_HOME={work}/data '{CAIRN}' --kb '{kb}' tui --model {model}; sleep 30"
    tmux(sock, "-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", "120", "-y", "36", "sh", "-c", cmd)
    try:
        wait(sock, lambda s: " docs · " in s and f"│ {model} │" in s, 120)
        tmux(sock, "send-keys", "-t", "t", "-l", question)
        tmux(sock, "send-keys", "-t", "t", "Enter")
        # Watch the trace file, not the screen, while the model works: a capture-pane every few
        # milliseconds would take CPU from it (the machine has two cores).
        end = time.time() + 120
        while "first_token_on_screen_ms" not in open(trace).read() and time.time() < end:
            time.sleep(0.2)
        time.sleep(3)
        wait(sock, lambda s: f"{model} · first token" in s, 120)
        tmux(sock, "send-keys", "-t", "t", "C-c")
        time.sleep(0.1)
        tmux(sock, "send-keys", "-t", "t", "C-c")
        time.sleep(0.3)
    finally:
        tmux(sock, "kill-server")
    first_frame = first_token = None
    frames = []
    for line in open(trace):
        k, v = line.split()
        if k == "first_frame_ms":
            first_frame = float(v)
        elif k == "first_token_on_screen_ms":
            first_token = float(v)
        elif k == "frame_us":
            frames.append(int(v) / 1000)
        elif k.startswith("engine_"):
            print(f"  app {k} {float(v):.0f}", file=sys.stderr)
    return first_frame, first_token, frames


def cli_run(kb, model, question):
    out = subprocess.run(
        [CAIRN, "--kb", kb, "ask", question, "--model", model, "--json"], capture_output=True, text=True
    )
    t = json.loads(out.stdout)["timings"]
    print(f"  cli retrieve_ms {t['retrieve_ms']:.0f} prefill_ms {t['prefill_ms']:.0f}", file=sys.stderr)
    return t["ttft_ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", default="default")
    ap.add_argument("--question", default="Where does cargo build --release put the resulting binary?")
    # Frame times need a long stream: the tiny model quotes a whole passage for this one.
    ap.add_argument("--frames-model", default="tiny")
    ap.add_argument("--frames-question", default="How do I get debug info in a release build?")
    a = ap.parse_args()
    work = tempfile.mkdtemp()
    kb = os.path.join(work, "kb")
    subprocess.run([CAIRN, "--kb", kb, "add", os.path.join(ROOT, "corpora/cargo-book"), "-q"], check=True,
                   stdout=subprocess.DEVNULL)
    # Warm-up: the prompt cache and the page cache, for both.
    cli_run(kb, a.model, a.question)
    ff, tt, cli, frames = [], [], [], []
    for i in range(a.runs):
        f, t, fr = tui_run(kb, a.model, a.question, work, i)
        c = cli_run(kb, a.model, a.question)
        ff.append(f)
        tt.append(t)
        cli.append(c)
        frames += fr
        print(f"run {i + 1}: first frame {f:.1f} ms · app first token {t:.0f} ms · cli first token {c:.0f} ms"
              f" · {len(fr)} frames while streaming", file=sys.stderr)
    long_frames = []
    for i in range(a.runs):
        _, _, fr = tui_run(kb, a.frames_model, a.frames_question, work, 100 + i)
        long_frames += fr
    frames += long_frames
    frames.sort()
    p = lambda q: frames[min(len(frames) - 1, int(q * len(frames)))]
    mt, mc = statistics.median(tt), statistics.median(cli)
    print(f"model {a.model}, {a.runs} runs each, alternating")
    print(f"launch to first frame:        median {statistics.median(ff):7.1f} ms (max {max(ff):.1f})")
    print(f"Enter to first token, app:    median {mt:7.0f} ms")
    print(f"question to first token, cli: median {mc:7.0f} ms")
    print(f"app / cli:                    {mt / mc:.3f}")
    print(f"frame time while streaming:   p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, max {frames[-1]:.2f} ms"
          f" ({len(frames)} frames; {len(long_frames)} of them from {a.frames_model} quoting a long passage)")


if __name__ == "__main__":
    main()
