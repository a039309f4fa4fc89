#!/usr/bin/env python3
"""Reference for cairn's embedder: sentence-transformers on PyTorch (CPU), the same pinned
all-MiniLM-L6-v2 files, the same sentences, batch and threads.

The pinned folder holds the BERT weights, config and tokenizer but not sentence-transformers'
module list, so the pipeline is spelled out: Transformer (max 256 tokens, the model's limit) →
mean pooling → L2 normalisation — all-MiniLM-L6-v2's published pipeline. `encode` sorts the
sentences by length before batching, as sentence-transformers always does.

Usage: python bench/embed_st.py MODEL_DIR SENTENCES.txt [OUT.npy]
Env:   THREADS (default 2), BATCH (default 32).
Needs: pip install sentence-transformers (PyTorch from PyPI)
"""
import json, os, sys, time

threads = int(os.environ.get("THREADS", "2"))
os.environ.setdefault("OMP_NUM_THREADS", str(threads))

import numpy as np
import torch
from sentence_transformers import SentenceTransformer, models

torch.set_num_threads(threads)
model_dir, path = sys.argv[1], sys.argv[2]
batch = int(os.environ.get("BATCH", "32"))
sentences = [l.rstrip("\n") for l in open(path, encoding="utf-8") if l.strip()]

start = time.perf_counter()
encoder = models.Transformer(model_dir, max_seq_length=256)
dimension = getattr(encoder, "get_embedding_dimension", None) or encoder.get_word_embedding_dimension
pooling = models.Pooling(dimension(), pooling_mode="mean")
model = SentenceTransformer(modules=[encoder, pooling, models.Normalize()], device="cpu")
load = time.perf_counter() - start

model.encode(sentences[:batch], batch_size=batch)  # warm-up, as the other engines get
start = time.perf_counter()
vectors = model.encode(sentences, batch_size=batch, convert_to_numpy=True)
elapsed = time.perf_counter() - start
print(json.dumps({"engine": f"sentence-transformers (torch {torch.__version__})",
                  "texts": len(sentences), "seconds": elapsed,
                  "texts_per_s": len(sentences) / elapsed, "threads": threads, "batch": batch,
                  "load_seconds": load}))
if len(sys.argv) > 3:
    np.save(sys.argv[3], vectors.astype(np.float32))
