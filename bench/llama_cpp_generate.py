#!/usr/bin/env python3
"""llama.cpp's side of `bench/generate.sh`: the same GGUF, chat prompt and thread count.

    python3 llama_cpp_generate.py MODEL.gguf PROMPT_FILE MAX_TOKENS THREADS

Renders the prompt with the model's own chat template, evaluates it in one batch, generates
MAX_TOKENS greedy tokens one at a time (past end-of-turn, as `cairn models run --ignore-eos`),
and prints wall-clock timings as one JSON object (llama_perf_context reads zero through these
bindings). The decode time includes the bindings' per-token logits copy and an argmax, a few
tens of microseconds per token.
"""
import json
import sys
import time

import llama_cpp
import numpy as np
from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter


def main():
    model, prompt_file, max_tokens, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    user = open(prompt_file, encoding="utf-8").read()
    llm = Llama(model_path=model, n_ctx=4096, n_threads=threads, n_threads_batch=threads, n_batch=2048,
                verbose=False)
    fmt = Jinja2ChatFormatter(template=llm.metadata["tokenizer.chat_template"], eos_token="", bos_token="")
    rendered = fmt(messages=[{"role": "user", "content": user}]).prompt
    ids = llm.tokenize(rendered.encode(), add_bos=False, special=True)
    llm.reset()
    start = time.perf_counter()
    llm.eval(ids)
    prefill = time.perf_counter() - start
    start = time.perf_counter()
    for generated in range(1, max_tokens + 1):
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        if generated == 1:
            first_token = prefill + time.perf_counter() - start
            start = time.perf_counter()
        if generated < max_tokens:
            llm.eval([tok])
    decode = time.perf_counter() - start
    print(json.dumps({
        "engine": f"llama.cpp (llama-cpp-python {llama_cpp.__version__})",
        "prompt_tokens": len(ids),
        "prefill_tok_s": len(ids) / prefill,
        "decode_tok_s": (max_tokens - 1) / decode,
        "time_to_first_token_s": first_token,
        "generated_tokens": max_tokens,
    }))


if __name__ == "__main__":
    main()
