#!/usr/bin/env python3
"""Reference for cairn's embedder: all-MiniLM-L6-v2 fp32 on ONNX Runtime, same weights, same run.

No fp32 ONNX of this model is published on PyPI (only an int8 one), and exporting one needs
PyTorch, so this script writes the BERT encoder as an ONNX graph itself from the pinned
`model.safetensors` (standard ops; ONNX Runtime fuses them into its attention/GELU/LayerNorm
kernels) and runs it the way fastembed would: batches of BATCH texts padded to their longest,
attention mask, mean pooling, L2 norm.

Usage: python bench/embed_reference.py MODEL_DIR SENTENCES.txt [OUT.npy]
Env:   THREADS (default 2), BATCH (default 32), SORTED=1 to batch by length.
Needs: pip install onnx onnxruntime numpy tokenizers safetensors
"""
import json, os, sys, time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file
from tokenizers import Tokenizer


def build_graph(model_dir):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    w = load_file(os.path.join(model_dir, "model.safetensors"))
    H, NH, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    HD, eps = H // NH, cfg["layer_norm_eps"]
    inits, nodes = [], []

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(op, ins, out, **kw):
        nodes.append(helper.make_node(op, ins, [out], **kw))
        return out

    def linear(x, prefix, out):
        wt = const(prefix + ".wT", w[prefix + ".weight"].T.copy())
        b = const(prefix + ".b", w[prefix + ".bias"])
        return node("Add", [node("MatMul", [x, wt], out + "_mm"), b], out)

    def layernorm(x, prefix, out):
        g = const(prefix + ".g", w[prefix + ".weight"])
        b = const(prefix + ".b", w[prefix + ".bias"])
        return node("LayerNormalization", [x, g, b], out, axis=-1, epsilon=eps)

    ids, mask = "input_ids", "attention_mask"
    word = const("word", w["embeddings.word_embeddings.weight"])
    pos = const("pos", w["embeddings.position_embeddings.weight"])
    typ0 = const("typ0", w["embeddings.token_type_embeddings.weight"][0])
    seq = node("Gather", [node("Shape", [ids], "ids_shape"), const("one", np.array(1, np.int64))], "seq_len")
    positions = node("Range", [const("zero", np.array(0, np.int64)), seq, const("step", np.array(1, np.int64))], "positions")
    x = node("Add", [node("Gather", [word, ids], "we"), node("Gather", [pos, positions], "pe")], "wpe")
    x = node("Add", [x, typ0], "emb")
    x = layernorm(x, "embeddings.LayerNorm", "x0")
    maskf = node("Cast", [mask], "maskf", to=TensorProto.FLOAT)
    # (1 - mask) * -1e4, shaped [B, 1, 1, S]
    ext = node("Mul", [node("Sub", [const("onef", np.array(1.0, np.float32)), maskf], "inv"), const("neg", np.array(-10000.0, np.float32))], "ext")
    ext = node("Unsqueeze", [ext, const("ax12", np.array([1, 2], np.int64))], "ext4")
    shape_heads = const("shape_heads", np.array([0, 0, NH, HD], np.int64))
    shape_back = const("shape_back", np.array([0, 0, H], np.int64))
    scale = const("scale", np.array(1.0 / np.sqrt(HD), np.float32))
    for i in range(L):
        p = f"encoder.layer.{i}"
        def heads(t, name, perm):
            return node("Transpose", [node("Reshape", [t, shape_heads], name + "_r")], name, perm=perm)
        q = heads(linear(x, f"{p}.attention.self.query", f"q{i}"), f"qh{i}", [0, 2, 1, 3])
        k = heads(linear(x, f"{p}.attention.self.key", f"k{i}"), f"kh{i}", [0, 2, 3, 1])
        v = heads(linear(x, f"{p}.attention.self.value", f"v{i}"), f"vh{i}", [0, 2, 1, 3])
        s = node("Add", [node("Mul", [node("MatMul", [q, k], f"s{i}"), scale], f"ss{i}"), ext], f"sm{i}")
        prob = node("Softmax", [s], f"p{i}", axis=-1)
        ctx = node("Transpose", [node("MatMul", [prob, v], f"c{i}")], f"ct{i}", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, shape_back], f"cr{i}")
        a = linear(ctx, f"{p}.attention.output.dense", f"ao{i}")
        x = layernorm(node("Add", [a, x], f"res1_{i}"), f"{p}.attention.output.LayerNorm", f"x1_{i}")
        u = linear(x, f"{p}.intermediate.dense", f"u{i}")
        # exact GELU: 0.5 x (1 + erf(x / sqrt 2))
        g = node("Erf", [node("Div", [u, const(f"sqrt2_{i}", np.array(np.sqrt(2.0), np.float32))], f"ud{i}")], f"erf{i}")
        g = node("Mul", [node("Mul", [u, node("Add", [g, const(f"one_{i}", np.array(1.0, np.float32))], f"g1{i}")], f"g2{i}"), const(f"half_{i}", np.array(0.5, np.float32))], f"gelu{i}")
        d = linear(g, f"{p}.output.dense", f"d{i}")
        x = layernorm(node("Add", [d, x], f"res2_{i}"), f"{p}.output.LayerNorm", f"x2_{i}")
    node("Identity", [x], "last_hidden_state")
    graph = helper.make_graph(
        nodes, "minilm",
        [helper.make_tensor_value_info(ids, TensorProto.INT64, ["B", "S"]),
         helper.make_tensor_value_info(mask, TensorProto.INT64, ["B", "S"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["B", "S", H])],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def main():
    model_dir, sentences = sys.argv[1], sys.argv[2]
    out = sys.argv[3] if len(sys.argv) > 3 else None
    threads = int(os.environ.get("THREADS", "2"))
    batch = int(os.environ.get("BATCH", "32"))
    model = build_graph(model_dir)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.enable_truncation(256)
    tok.no_padding()
    lines = [l.rstrip("\n") for l in open(sentences, encoding="utf-8")]
    order = list(range(len(lines)))
    if os.environ.get("SORTED") == "1":
        order.sort(key=lambda i: len(tok.encode(lines[i]).ids))
    vecs = [None] * len(lines)
    padded = real = 0
    t0 = time.perf_counter()
    for b in range(0, len(order), batch):
        idx = order[b:b + batch]
        encs = tok.encode_batch([lines[i] for i in idx])
        n = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), n), np.int64)
        mask = np.zeros((len(encs), n), np.int64)
        for r, e in enumerate(encs):
            ids[r, :len(e.ids)] = e.ids
            mask[r, :len(e.ids)] = 1
            real += len(e.ids)
        padded += ids.size
        h = sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (h * m).sum(1) / m.sum(1)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
        for r, i in enumerate(idx):
            vecs[i] = pooled[r]
    secs = time.perf_counter() - t0
    print(json.dumps({"engine": f"onnxruntime {ort.__version__} (fp32 graph from the safetensors)",
                      "texts": len(lines), "seconds": secs, "texts_per_s": len(lines) / secs,
                      "threads": threads, "batch": batch, "sorted": os.environ.get("SORTED") == "1",
                      "padding_overhead": padded / real}))
    if out:
        np.save(out, np.stack(vecs))


if __name__ == "__main__":
    main()
