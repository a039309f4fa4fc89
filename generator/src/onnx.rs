//! The BERT encoder written as an ONNX graph, for ONNX Runtime.
//!
//! No fp32 ONNX file of all-MiniLM-L6-v2 is published in a package (only an int8 one, whose
//! vectors differ), so the graph is written here from the same verified safetensors weights the
//! built-in encoder uses: the two produce the same vectors to float rounding, and a knowledge
//! base's embedding fingerprint (the weights' SHA-256) holds for both. The graph is built in
//! memory at load time; nothing is written to disk.
//!
//! Only standard operators (opset 17) are used; ONNX Runtime's graph optimizer fuses them into
//! its attention, GELU and layer-norm kernels. The protobuf encoding is written by hand: the
//! handful of message types needed here do not justify a code generator.

/// Protobuf wire types.
const VARINT: u32 = 0;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

/// ONNX `TensorProto.DataType` values.
const FLOAT: i64 = 1;
const INT64: i64 = 7;

/// A protobuf message being written.
#[derive(Default)]
struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u32) {
        self.varint(u64::from(field << 3 | wire));
    }

    fn int(&mut self, field: u32, v: i64) -> &mut Self {
        self.key(field, VARINT);
        // Negative int64 values take ten bytes in two's complement, as protobuf specifies.
        self.varint(v as u64);
        self
    }

    fn float(&mut self, field: u32, v: f32) -> &mut Self {
        self.key(field, FIXED32);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.key(field, LEN);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    fn string(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }

    fn message(&mut self, field: u32, m: &Message) -> &mut Self {
        self.bytes(field, &m.0)
    }
}

/// An attribute value of a node.
enum Attr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
}

/// What [`bert_graph`] needs of the encoder: weights of linear layers stored `[in, out]`
/// row-major (as `x · W` reads them).
pub(crate) struct BertWeights<'a> {
    pub hidden: usize,
    pub heads: usize,
    pub eps: f32,
    pub word: &'a [f32],
    pub position: &'a [f32],
    pub token_type0: &'a [f32],
    pub ln: (&'a [f32], &'a [f32]),
    pub layers: Vec<LayerWeights<'a>>,
}

/// One encoder layer; `qkv` is `[hidden, 3·hidden]` (query, key and value side by side).
pub(crate) struct LayerWeights<'a> {
    pub qkv: &'a [f32],
    pub qkv_b: &'a [f32],
    pub attn_out: &'a [f32],
    pub attn_out_b: &'a [f32],
    pub ln1: (&'a [f32], &'a [f32]),
    pub up: &'a [f32],
    pub up_b: &'a [f32],
    pub down: &'a [f32],
    pub down_b: &'a [f32],
    pub ln2: (&'a [f32], &'a [f32]),
}

/// Builds the graph's nodes and initializers.
#[derive(Default)]
struct Graph {
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    names: usize,
}

impl Graph {
    fn fresh(&mut self, stem: &str) -> String {
        self.names += 1;
        format!("{stem}_{}", self.names)
    }

    fn tensor(&mut self, stem: &str, dims: &[usize], data_type: i64, raw: &[u8]) -> String {
        let name = self.fresh(stem);
        let mut t = Message::default();
        for &d in dims {
            t.int(1, d as i64);
        }
        t.int(2, data_type).string(8, &name).bytes(9, raw);
        self.initializers.push(t);
        name
    }

    fn floats(&mut self, stem: &str, dims: &[usize], values: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), values.len());
        self.tensor(stem, dims, FLOAT, bytemuck::cast_slice(values))
    }

    fn scalar(&mut self, stem: &str, v: f32) -> String {
        self.floats(stem, &[], &[v])
    }

    fn ints(&mut self, stem: &str, dims: &[usize], values: &[i64]) -> String {
        self.tensor(stem, dims, INT64, bytemuck::cast_slice(values))
    }

    fn node(&mut self, op: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        let out = self.fresh(op);
        let mut n = Message::default();
        for i in inputs {
            n.string(1, i);
        }
        n.string(2, &out).string(3, &out).string(4, op);
        for (name, value) in attrs {
            let mut a = Message::default();
            a.string(1, name);
            match value {
                Attr::Int(v) => a.int(3, *v).int(20, 2),
                Attr::Float(v) => a.float(2, *v).int(20, 1),
                Attr::Ints(vs) => {
                    for v in vs {
                        a.int(8, *v);
                    }
                    a.int(20, 7)
                }
            };
            n.message(5, &a);
        }
        self.nodes.push(n);
        out
    }

    /// `x · W + b` with `W` given `[rows, cols]` as `[in, out]`.
    fn linear(&mut self, x: &str, w: &[f32], b: &[f32], rows: usize, cols: usize) -> String {
        let w = self.floats("w", &[rows, cols], w);
        let b = self.floats("b", &[cols], b);
        let mm = self.node("MatMul", &[x, &w], &[]);
        self.node("Add", &[&mm, &b], &[])
    }

    fn layer_norm(&mut self, x: &str, (g, b): (&[f32], &[f32]), eps: f32) -> String {
        let n = g.len();
        let g = self.floats("ln_g", &[n], g);
        let b = self.floats("ln_b", &[n], b);
        self.node(
            "LayerNormalization",
            &[x, &g, &b],
            &[("axis", Attr::Int(-1)), ("epsilon", Attr::Float(eps))],
        )
    }
}

fn value_info(name: &str, elem_type: i64, dims: &[Result<usize, &str>]) -> Message {
    let mut shape = Message::default();
    for d in dims {
        let mut dim = Message::default();
        match d {
            Ok(v) => dim.int(1, *v as i64),
            Err(param) => dim.string(2, param),
        };
        shape.message(1, &dim);
    }
    let mut tensor = Message::default();
    tensor.int(1, elem_type).message(2, &shape);
    let mut ty = Message::default();
    ty.message(1, &tensor);
    let mut info = Message::default();
    info.string(1, name).message(2, &ty);
    info
}

/// The serialized ONNX model: inputs `input_ids` and `attention_mask` (int64, batch × length),
/// output `last_hidden_state` (f32, batch × length × hidden).
pub(crate) fn bert_graph(w: &BertWeights<'_>) -> Vec<u8> {
    let (h, heads) = (w.hidden, w.heads);
    let head_dim = h / heads;
    let mut g = Graph::default();

    // Embeddings: word + position + token type 0, then layer norm.
    let word = g.floats("word", &[w.word.len() / h, h], w.word);
    let position = g.floats("position", &[w.position.len() / h, h], w.position);
    let token_type = g.floats("token_type0", &[h], w.token_type0);
    let one_i = g.ints("one", &[], &[1]);
    let zero_i = g.ints("zero", &[], &[0]);
    let shape = g.node("Shape", &["input_ids"], &[]);
    let length = g.node("Gather", &[&shape, &one_i], &[]);
    let positions = g.node("Range", &[&zero_i, &length, &one_i], &[]);
    let we = g.node("Gather", &[&word, "input_ids"], &[]);
    let pe = g.node("Gather", &[&position, &positions], &[]);
    let x = g.node("Add", &[&we, &pe], &[]);
    let x = g.node("Add", &[&x, &token_type], &[]);
    let mut x = g.layer_norm(&x, w.ln, w.eps);

    // Padding positions get -10000 before the softmax: exp underflows to exactly zero there.
    let maskf = g.node("Cast", &["attention_mask"], &[("to", Attr::Int(FLOAT))]);
    let one_f = g.scalar("onef", 1.0);
    let inverse = g.node("Sub", &[&one_f, &maskf], &[]);
    let big = g.scalar("neg", -10_000.0);
    let bias = g.node("Mul", &[&inverse, &big], &[]);
    let axes = g.ints("axes", &[2], &[1, 2]);
    let bias = g.node("Unsqueeze", &[&bias, &axes], &[]);
    let split_heads = g.ints("heads", &[4], &[0, 0, heads as i64, head_dim as i64]);
    let join_heads = g.ints("joined", &[3], &[0, 0, h as i64]);
    let scale = g.scalar("scale", 1.0 / (head_dim as f32).sqrt());
    let sqrt2 = g.scalar("sqrt2", std::f32::consts::SQRT_2);
    let half = g.scalar("half", 0.5);

    for layer in &w.layers {
        let inter = layer.up_b.len();
        // Query, key and value: column blocks of the fused [h, 3h] matrix.
        let part = |i: usize| -> (Vec<f32>, &[f32]) {
            let m: Vec<f32> = layer
                .qkv
                .chunks_exact(3 * h)
                .flat_map(|row| &row[i * h..(i + 1) * h])
                .copied()
                .collect();
            (m, &layer.qkv_b[i * h..(i + 1) * h])
        };
        let mut project = |i: usize, perm: [i64; 4]| {
            let (m, b) = part(i);
            let y = g.linear(&x, &m, b, h, h);
            let y = g.node("Reshape", &[&y, &split_heads], &[]);
            g.node("Transpose", &[&y], &[("perm", Attr::Ints(perm.to_vec()))])
        };
        let q = project(0, [0, 2, 1, 3]);
        let k = project(1, [0, 2, 3, 1]);
        let v = project(2, [0, 2, 1, 3]);
        let s = g.node("MatMul", &[&q, &k], &[]);
        let s = g.node("Mul", &[&s, &scale], &[]);
        let s = g.node("Add", &[&s, &bias], &[]);
        let p = g.node("Softmax", &[&s], &[("axis", Attr::Int(-1))]);
        let c = g.node("MatMul", &[&p, &v], &[]);
        let c = g.node(
            "Transpose",
            &[&c],
            &[("perm", Attr::Ints(vec![0, 2, 1, 3]))],
        );
        let c = g.node("Reshape", &[&c, &join_heads], &[]);
        let a = g.linear(&c, layer.attn_out, layer.attn_out_b, h, h);
        let r = g.node("Add", &[&a, &x], &[]);
        let x1 = g.layer_norm(&r, layer.ln1, w.eps);
        // Exact GELU: x/2 · (1 + erf(x/√2)).
        let u = g.linear(&x1, layer.up, layer.up_b, h, inter);
        let e = g.node("Div", &[&u, &sqrt2], &[]);
        let e = g.node("Erf", &[&e], &[]);
        let e = g.node("Add", &[&e, &one_f], &[]);
        let e = g.node("Mul", &[&u, &e], &[]);
        let gelu = g.node("Mul", &[&e, &half], &[]);
        let d = g.linear(&gelu, layer.down, layer.down_b, inter, h);
        let r = g.node("Add", &[&d, &x1], &[]);
        x = g.layer_norm(&r, layer.ln2, w.eps);
    }
    let mut out = Message::default();
    out.string(1, &x)
        .string(2, "last_hidden_state")
        .string(3, "output")
        .string(4, "Identity");
    g.nodes.push(out);

    let mut graph = Message::default();
    for n in &g.nodes {
        graph.message(1, n);
    }
    graph.string(2, "bert");
    for t in &g.initializers {
        graph.message(5, t);
    }
    let batch_by_length = [Err("batch"), Err("length")];
    graph.message(11, &value_info("input_ids", INT64, &batch_by_length));
    graph.message(11, &value_info("attention_mask", INT64, &batch_by_length));
    graph.message(
        12,
        &value_info(
            "last_hidden_state",
            FLOAT,
            &[Err("batch"), Err("length"), Ok(h)],
        ),
    );

    let mut opset = Message::default();
    opset.string(1, "").int(2, 17);
    let mut model = Message::default();
    model
        .int(1, 8)
        .string(2, "cairn")
        .message(8, &opset)
        .message(7, &graph);
    model.0
}

#[cfg(test)]
mod tests {
    use super::Message;

    #[test]
    fn varints_and_keys_follow_the_protobuf_encoding() {
        let mut m = Message::default();
        m.int(1, 150);
        assert_eq!(m.0, [0x08, 0x96, 0x01]);
        let mut m = Message::default();
        m.string(2, "ab");
        assert_eq!(m.0, [0x12, 2, b'a', b'b']);
        let mut m = Message::default();
        m.int(20, -1);
        // Field 20, varint: key 160 = 0xa0 0x01; -1 as ten bytes of two's complement.
        assert_eq!(
            m.0,
            [0xa0, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        let mut m = Message::default();
        m.float(2, 1.0);
        assert_eq!(m.0, [0x15, 0, 0, 0x80, 0x3f]);
    }
}
