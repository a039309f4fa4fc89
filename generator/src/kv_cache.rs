//! The KV cache, grown as positions are written up to the context window, and single-token
//! attention on it.
//!
//! Keys and values are kept in f16, as llama.cpp keeps them: the attention rounds them to f16
//! before they are stored (so that near-ties break as llama.cpp's do), so the half-width cache
//! loses nothing, and a token's attention reads half the bytes. They are widened to f32 a tile
//! at a time, in a buffer that stays in the first-level cache.

#[cfg(test)]
use candle_core::Tensor;
use half::f16;
use half::slice::HalfFloatSliceExt;

#[cfg(test)]
use crate::error::Result;
use crate::parallel::fill_chunks;
use crate::sgemm::{sgemm, View};

/// Positions a KV cache grows by, at least (it doubles beyond).
const GROW: usize = 256;

/// Keys and values of one layer, laid out `n_kv × cap × head_dim`, written in place.
pub(crate) struct KvCache {
    n_kv: usize,
    /// The most positions it may hold.
    n_ctx: usize,
    /// The positions each head has room for: grown as they are written, so that a question
    /// does not pay for the whole window (the 1.5B's 117 MB, zeroed at load, were a quarter
    /// of a second of a one-question run).
    cap: usize,
    head_dim: usize,
    keys: Vec<f16>,
    values: Vec<f16>,
}

impl KvCache {
    pub(crate) fn new(n_kv: usize, n_ctx: usize, head_dim: usize) -> Self {
        Self {
            n_kv,
            n_ctx,
            cap: 0,
            head_dim,
            keys: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Makes room for positions `0..end` (at most the window), keeping what is stored.
    fn reserve(&mut self, end: usize) {
        if end <= self.cap {
            return;
        }
        let cap = end
            .max(2 * self.cap)
            .next_multiple_of(GROW)
            .min(self.n_ctx.max(end));
        let hd = self.head_dim;
        for data in [&mut self.keys, &mut self.values] {
            let mut grown = vec![f16::ZERO; self.n_kv * cap * hd];
            for h in 0..self.n_kv {
                grown[h * cap * hd..(h * cap + self.cap) * hd]
                    .copy_from_slice(&data[h * self.cap * hd..(h + 1) * self.cap * hd]);
            }
            *data = grown;
        }
        self.cap = cap;
    }

    /// Stores `k` and `v`, each (`n_kv`, seq, `head_dim`), at positions `pos..pos + seq`.
    #[cfg(test)]
    pub(crate) fn write(&mut self, k: &Tensor, v: &Tensor, pos: usize) -> Result<()> {
        let seq = k.dim(1)?;
        let hd = self.head_dim;
        self.reserve(pos + seq);
        for (src, dst) in [(k, &mut self.keys), (v, &mut self.values)] {
            let data = src.flatten_all()?.to_vec1::<f32>()?;
            for h in 0..self.n_kv {
                let from = &data[h * seq * hd..(h + 1) * seq * hd];
                let at = (h * self.cap + pos) * hd;
                dst[at..at + seq * hd].convert_from_f32_slice(from);
            }
        }
        Ok(())
    }

    /// Stores `seq` rows of keys and values at positions `pos..pos + seq`, rounded to f16; each
    /// row holds every KV head's `head_dim` values in turn (the K and V projections' layout).
    pub(crate) fn store(&mut self, keys: &[f32], values: &[f32], seq: usize, pos: usize) {
        let hd = self.head_dim;
        self.reserve(pos + seq);
        for (src, dst) in [(keys, &mut self.keys), (values, &mut self.values)] {
            for (t, row) in src.chunks_exact(self.n_kv * hd).enumerate() {
                for (h, head) in row.chunks_exact(hd).enumerate() {
                    let at = (h * self.cap + pos + t) * hd;
                    dst[at..at + hd].convert_from_f32_slice(head);
                }
            }
        }
    }

    #[cfg(test)]
    fn gather(&self, data: &[f16], total: usize) -> Result<Tensor> {
        let mut out = Vec::with_capacity(self.n_kv * total * self.head_dim);
        self.widen(data, total, &mut out);
        Ok(Tensor::from_vec(
            out,
            (self.n_kv, total, self.head_dim),
            &candle_core::Device::Cpu,
        )?)
    }

    /// Appends positions `0..total` of every KV head of `data`, in f32, to `out`.
    #[cfg(test)]
    fn widen(&self, data: &[f16], total: usize, out: &mut Vec<f32>) {
        self.widen_range(data, 0..total, out);
    }

    /// Appends `positions` of every KV head of `data`, in f32, to `out`.
    fn widen_range(&self, data: &[f16], positions: std::ops::Range<usize>, out: &mut Vec<f32>) {
        let hd = self.head_dim;
        for h in 0..self.n_kv {
            let at = (h * self.cap + positions.start) * hd;
            let from = out.len();
            out.resize(from + positions.len() * hd, 0.0);
            data[at..at + positions.len() * hd].convert_to_f32_slice(&mut out[from..]);
        }
    }

    /// Keys of positions `0..total` as (`n_kv`, total, `head_dim`).
    #[cfg(test)]
    pub(crate) fn keys(&self, total: usize) -> Result<Tensor> {
        self.gather(&self.keys, total)
    }

    /// Values of positions `0..total` as (`n_kv`, total, `head_dim`).
    #[cfg(test)]
    pub(crate) fn values(&self, total: usize) -> Result<Tensor> {
        self.gather(&self.values, total)
    }

    /// Keys then values of `positions`, appended to `out` (for saving a prefix, or a part of
    /// one that follows another).
    pub(crate) fn export(&self, positions: std::ops::Range<usize>, out: &mut Vec<f32>) {
        for data in [&self.keys, &self.values] {
            self.widen_range(data, positions.clone(), out);
        }
    }

    /// Floats [`export`](Self::export) writes for `positions` positions.
    pub(crate) fn exported_len(&self, positions: usize) -> usize {
        2 * self.n_kv * positions * self.head_dim
    }

    /// Restores what [`export`](Self::export) wrote for `positions`; `data` must be
    /// `exported_len(positions.len())` long. What the cache holds before them is kept.
    pub(crate) fn import(&mut self, positions: std::ops::Range<usize>, data: &[f32]) {
        let hd = self.head_dim;
        let n = positions.len();
        let per = self.n_kv * n * hd;
        self.reserve(positions.end);
        for (src, dst) in [
            (&data[..per], &mut self.keys),
            (&data[per..], &mut self.values),
        ] {
            for h in 0..self.n_kv {
                let at = (h * self.cap + positions.start) * hd;
                dst[at..at + n * hd].convert_from_f32_slice(&src[h * n * hd..(h + 1) * n * hd]);
            }
        }
    }

    /// Attention of one query position over positions `0..total`.
    ///
    /// `q` holds `n_head` heads of `head_dim`, already scaled; query head `h` reads KV head
    /// `h / (n_head / n_kv)`. Returns `n_head × head_dim` outputs. KV heads run in parallel on
    /// candle's worker pool; the query heads that share one walk its keys and values together,
    /// a tile at a time, so each tile is read from memory once and reused from L1.
    pub(crate) fn attend_one(&self, q: &[f32], n_head: usize, total: usize) -> Vec<f32> {
        let hd = self.head_dim;
        let n_rep = n_head / self.n_kv;
        let mut out = vec![0f32; n_head * hd];
        // Each KV head's chunk of the output is its query heads' accumulators, written in place.
        fill_chunks(&mut out, n_rep * hd, |kv, acc| {
            let mut scores = vec![0f32; n_rep * total];
            let base = kv * self.cap * hd;
            let keys = &self.keys[base..base + total * hd];
            let values = &self.values[base..base + total * hd];
            let queries = &q[kv * n_rep * hd..(kv + 1) * n_rep * hd];
            let mut wide = vec![0f32; TILE * hd];
            for (tile, key_tile) in keys.chunks(TILE * hd).enumerate() {
                let at = tile * TILE;
                let n = key_tile.len() / hd;
                key_tile.convert_to_f32_slice(&mut wide[..key_tile.len()]);
                let key_tile = &wide[..key_tile.len()];
                for (r, qh) in queries.chunks_exact(hd).enumerate() {
                    let row = &mut scores[r * total + at..r * total + at + n];
                    scores_into(qh, key_tile, hd, row);
                }
            }
            for row in scores.chunks_exact_mut(total) {
                softmax_in_place(row);
            }
            for (tile, value_tile) in values.chunks(TILE * hd).enumerate() {
                let at = tile * TILE;
                value_tile.convert_to_f32_slice(&mut wide[..value_tile.len()]);
                let value_tile = &wide[..value_tile.len()];
                for (r, acc_r) in acc.chunks_exact_mut(hd).enumerate() {
                    let probs = &scores[r * total + at..];
                    match hd {
                        64 => accumulate::<64>(probs, value_tile, acc_r),
                        128 => accumulate::<128>(probs, value_tile, acc_r),
                        _ => {
                            for (p, value) in probs.iter().zip(value_tile.chunks_exact(hd)) {
                                for (a, v) in acc_r.iter_mut().zip(value) {
                                    *a += p * v;
                                }
                            }
                        }
                    }
                }
            }
        });
        out
    }
}

/// Query positions per task of a prompt's attention: with the query heads that share a KV
/// head, 16 positions make a product of about a hundred rows.
const ROW_BLOCK: usize = 16;

/// Keys per product of attention weights and values: no more than gemm sums in one block (it
/// splits only sums longer than 512), so a block's sum is one sequence of multiply-adds however
/// many query rows or keys surround it.
const KEY_BLOCK: usize = 512;

impl KvCache {
    /// Attention of the `seq` query positions just written at `pos..pos + seq`.
    ///
    /// `q` holds `n_head` heads of `seq` rows of `head_dim` (already scaled); query head `h`
    /// reads KV head `h / (n_head / n_kv)`, and row `i` sees positions `0..=pos + i`. With
    /// `branch = Some((fork, b))` the last `b` rows are a branch from position `fork`: branch row
    /// `j` sees positions `0..fork` and the branch's own rows `0..=j`. Returns the outputs as
    /// (`seq`, `n_head × head_dim`), the layout of the output projection's input.
    ///
    /// Tasks of [`ROW_BLOCK`] positions run on candle's worker pool, each with all KV heads;
    /// within a task, a KV head's query rows (every position and every head that shares it) are
    /// one score product, one softmax per row and one product with the values, on buffers the
    /// worker keeps. A row's numbers depend on its own query and the keys it sees, never on the
    /// rows around it, so a prompt cut into passes gets the same bits.
    pub(crate) fn attend_rows(
        &self,
        q: &[f32],
        n_head: usize,
        seq: usize,
        pos: usize,
        branch: Option<(usize, usize)>,
    ) -> Vec<f32> {
        let hd = self.head_dim;
        let width = n_head * hd;
        let b = branch.map_or(0, |(_, b)| b);
        let a = seq - b;
        let mut out = vec![0f32; seq * width];
        let (main, branch_out) = out.split_at_mut(a * width);
        let rows = Rows { q, n_head, seq, hd };
        if a > 0 {
            let seen = Seen::widened(self, &[(0, pos + a)]);
            fill_chunks(main, ROW_BLOCK * width, |task, chunk| {
                let first = task * ROW_BLOCK;
                rows.attend(&seen, first, pos + first + 1, chunk);
            });
        }
        if let Some((fork, _)) = branch.filter(|&(_, b)| b > 0) {
            let seen = Seen::widened(self, &[(0, fork), (pos + a, pos + seq)]);
            fill_chunks(branch_out, ROW_BLOCK * width, |task, chunk| {
                let first = task * ROW_BLOCK;
                rows.attend(&seen, a + first, fork + first + 1, chunk);
            });
        }
        out
    }
}

/// The keys and values a group of query rows may see, widened to f32: per KV head, the
/// concatenation of some ranges of cached positions, `len` positions in all. Values are
/// position by position (`len × head_dim`); keys are transposed a tile at a time (the
/// positions padded with zeros to `stride`, whole tiles of [`KEY_TILE`]; a tile is
/// `head_dim × KEY_TILE`, feature by feature), so that a tile of scores is a sum of products of
/// whole vectors read in order.
struct Seen {
    keys_t: Vec<f32>,
    values: Vec<f32>,
    len: usize,
}

impl Seen {
    fn widened(cache: &KvCache, ranges: &[(usize, usize)]) -> Self {
        let hd = cache.head_dim;
        let len: usize = ranges.iter().map(|(from, to)| to - from).sum();
        let stride = len.next_multiple_of(KEY_TILE);
        let mut values = vec![0f32; cache.n_kv * len * hd];
        let mut keys_t = vec![0f32; cache.n_kv * hd * stride];
        let mut wide = vec![0f32; hd];
        for h in 0..cache.n_kv {
            let mut t = 0;
            for &(from, to) in ranges {
                let at = (h * cache.cap + from) * hd..(h * cache.cap + to) * hd;
                let dst = (h * len + t) * hd;
                cache.values[at.clone()].convert_to_f32_slice(&mut values[dst..dst + at.len()]);
                for (i, key) in cache.keys[at].chunks_exact(hd).enumerate() {
                    key.convert_to_f32_slice(&mut wide);
                    let (tile, lane) = ((t + i) / KEY_TILE, (t + i) % KEY_TILE);
                    let base = h * hd * stride + tile * hd * KEY_TILE + lane;
                    for (d, k) in wide.iter().enumerate() {
                        keys_t[base + d * KEY_TILE] = *k;
                    }
                }
                t += to - from;
            }
        }
        Seen {
            keys_t,
            values,
            len,
        }
    }

    /// Positions per KV head in `keys_t`: `len` padded to whole tiles.
    fn stride(&self) -> usize {
        self.len.next_multiple_of(KEY_TILE)
    }
}

/// The query rows of a prompt's attention: `n_head` heads of `seq` rows of `hd`.
struct Rows<'a> {
    q: &'a [f32],
    n_head: usize,
    seq: usize,
    hd: usize,
}

thread_local! {
    /// Each worker's query block, scores and outputs, kept between tasks.
    static SCRATCH: std::cell::RefCell<[Vec<f32>; 3]> =
        const { std::cell::RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

impl Rows<'_> {
    /// Attends rows `first..` (as many as `out` holds, `n_head × hd` each), of which the first
    /// sees `visible` of `seen`'s positions and each next one a position more.
    fn attend(&self, seen: &Seen, first: usize, visible: usize, out: &mut [f32]) {
        let hd = self.hd;
        let width = self.n_head * hd;
        let positions = out.len() / width;
        let n_kv = seen.values.len() / (seen.len * hd).max(1);
        let n_rep = self.n_head / n_kv;
        // Row i of a KV head's product is position i / n_rep, query head i % n_rep of the group;
        // the rows are padded to whole tiles with zero queries, whose scores go unread.
        let rows = positions * n_rep;
        let padded = rows.next_multiple_of(ROW_TILE);
        let span = visible + positions - 1;
        let stride = span.next_multiple_of(KEY_TILE);
        let mut q_t = vec![[0f32; ROW_TILE]; hd];
        SCRATCH.with(|scratch| {
            let [qs, scores, outs] = &mut *scratch.borrow_mut();
            qs.resize(padded * hd, 0.0);
            qs[rows * hd..].fill(0.0);
            outs.resize(rows * hd, 0.0);
            scores.resize(padded * stride, 0.0);
            for kv in 0..n_kv {
                for (i, row) in qs[..rows * hd].chunks_exact_mut(hd).enumerate() {
                    let head = kv * n_rep + i % n_rep;
                    let at = (head * self.seq + first + i / n_rep) * hd;
                    row.copy_from_slice(&self.q[at..at + hd]);
                }
                let keys_t = &seen.keys_t[kv * hd * seen.stride()..(kv + 1) * hd * seen.stride()];
                let values = &seen.values[kv * seen.len * hd..(kv + 1) * seen.len * hd];
                for (r, tile_q) in qs.chunks_exact(ROW_TILE * hd).enumerate() {
                    for (d, qd) in q_t.iter_mut().enumerate() {
                        for (i, q) in qd.iter_mut().enumerate() {
                            *q = tile_q[i * hd + d];
                        }
                    }
                    for (tile, keys) in keys_t.chunks_exact(hd * KEY_TILE).enumerate() {
                        let t = tile * KEY_TILE;
                        if t >= stride {
                            break;
                        }
                        let tile = score_tile(&q_t, keys);
                        for (i, row) in tile.iter().enumerate() {
                            let at = (r * ROW_TILE + i) * stride + t;
                            scores[at..at + KEY_TILE].copy_from_slice(row);
                        }
                    }
                }
                for (i, row) in scores[..rows * stride].chunks_exact_mut(stride).enumerate() {
                    let (seen_row, hidden) = row.split_at_mut(visible + i / n_rep);
                    softmax_in_place(seen_row);
                    hidden.fill(0.0);
                }
                for from in (0..span).step_by(KEY_BLOCK) {
                    let keys = KEY_BLOCK.min(span - from);
                    sgemm(
                        View::rows(&scores[from..], rows, keys, stride),
                        View::rows(&values[from * hd..], keys, hd, hd),
                        outs,
                        hd,
                        from > 0,
                        1,
                    );
                }
                for (i, row) in outs.chunks_exact(hd).enumerate() {
                    let at = (i / n_rep) * width + (kv * n_rep + i % n_rep) * hd;
                    out[at..at + hd].copy_from_slice(row);
                }
            }
        });
    }
}

/// Query rows per tile of scores.
const ROW_TILE: usize = 6;

/// Keys per tile of scores. With [`ROW_TILE`] rows: 24 accumulators of 8 lanes where AVX-512
/// gives 32 vector registers (LLVM keeps to 256-bit vectors on most Intel CPUs), 12 where AVX2
/// gives 16.
const KEY_TILE: usize = if cfg!(target_feature = "avx512f") {
    32
} else {
    16
};

/// The scores of [`ROW_TILE`] queries against a tile of [`KEY_TILE`] keys, transposed (`keys`
/// holds feature 0 of every key, then feature 1…). The queries come transposed too: `q_t[d]`
/// holds feature `d` of each.
///
/// Each score is one chain of multiply-adds over the features in order, whatever tile it falls
/// in: the same query and key give the same bits in every pass. On AVX-512 the tile is twelve
/// 512-bit accumulators ([`avx512::score_tile`], the same chains): LLVM vectorizes the portable
/// loop to 256 bits on most Intel CPUs, which halves what their two 512-bit FMA units do.
fn score_tile(q_t: &[[f32; ROW_TILE]], keys: &[f32]) -> [[f32; KEY_TILE]; ROW_TILE] {
    #[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
    {
        #[allow(unsafe_code)]
        // SAFETY: compiled only when the build targets AVX-512 F, so every CPU this binary runs
        // on has it.
        unsafe {
            avx512::score_tile(q_t, keys)
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "avx512f")))]
    score_tile_portable(q_t, keys)
}

/// [`score_tile`] in plain Rust: the reference for the AVX-512 kernel, and the kernel elsewhere.
#[cfg_attr(
    all(target_arch = "x86_64", target_feature = "avx512f", not(test)),
    allow(dead_code)
)]
fn score_tile_portable(q_t: &[[f32; ROW_TILE]], keys: &[f32]) -> [[f32; KEY_TILE]; ROW_TILE] {
    let mut acc = [[0f32; KEY_TILE]; ROW_TILE];
    for (qd, keys) in q_t.iter().zip(keys.chunks_exact(KEY_TILE)) {
        let keys: &[f32; KEY_TILE] = keys.try_into().expect("a feature of a tile of keys");
        for (acc_r, q) in acc.iter_mut().zip(qd) {
            for (a, k) in acc_r.iter_mut().zip(keys) {
                *a = mul_add(*q, *k, *a);
            }
        }
    }
    acc
}

#[cfg(all(target_arch = "x86_64", target_feature = "avx512f"))]
mod avx512 {
    //! Scores on 512-bit vectors. Loads go through `bytemuck::cast` from fixed-size arrays,
    //! so no pointer is dereferenced.
    use std::arch::x86_64::{__m512, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_setzero_ps};

    use super::{KEY_TILE, ROW_TILE};

    /// Vectors of 16 keys per tile.
    const VECTORS: usize = KEY_TILE / 16;

    /// [`super::score_tile`]: per feature, the tile's keys in two vectors and each query's
    /// value broadcast, one fused multiply-add per score as in the portable loop.
    #[target_feature(enable = "avx512f")]
    pub(super) fn score_tile(q_t: &[[f32; ROW_TILE]], keys: &[f32]) -> [[f32; KEY_TILE]; ROW_TILE] {
        let mut acc = [[_mm512_setzero_ps(); VECTORS]; ROW_TILE];
        for (qd, keys) in q_t.iter().zip(keys.chunks_exact(KEY_TILE)) {
            let keys: &[f32; KEY_TILE] = keys.try_into().expect("a feature of a tile of keys");
            let k: [__m512; VECTORS] = bytemuck::cast(*keys);
            for (acc_r, &q) in acc.iter_mut().zip(qd) {
                let q = _mm512_set1_ps(q);
                for (a, k) in acc_r.iter_mut().zip(&k) {
                    *a = _mm512_fmadd_ps(q, *k, *a);
                }
            }
        }
        acc.map(bytemuck::cast)
    }
}

/// `a · b + c`, fused where the build targets FMA (one rounding, one instruction) and in two
/// steps where it does not (`f32::mul_add` would be a library call there). Either way every
/// caller in one build rounds alike.
#[cfg_attr(
    all(target_arch = "x86_64", target_feature = "avx512f", not(test)),
    allow(dead_code)
)]
#[inline]
fn mul_add(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(target_feature = "fma")]
    {
        a.mul_add(b, c)
    }
    #[cfg(not(target_feature = "fma"))]
    {
        a * b + c
    }
}

/// Keys (or values) per tile of single-token attention: 64 × 64 f32 = 16 KiB, within L1.
const TILE: usize = 64;

/// `scores[t] = q · keys[t]`, four keys at a time so the multiply-adds form independent chains.
fn scores_into(q: &[f32], keys: &[f32], hd: usize, scores: &mut [f32]) {
    let mut rows = keys.chunks_exact(4 * hd);
    let mut out = scores.chunks_exact_mut(4);
    for (four, s) in (&mut rows).zip(&mut out) {
        let mut lanes = [[0f32; 8]; 4];
        for (j, lane) in lanes.iter_mut().enumerate() {
            let key = &four[j * hd..(j + 1) * hd];
            for (x, y) in q.chunks_exact(8).zip(key.chunks_exact(8)) {
                for i in 0..8 {
                    lane[i] += x[i] * y[i];
                }
            }
        }
        for (o, lane) in s.iter_mut().zip(&lanes) {
            *o = lane.iter().sum();
        }
    }
    let done = scores.len() - scores.len() % 4;
    for (o, key) in scores[done..]
        .iter_mut()
        .zip(rows.remainder().chunks_exact(hd))
    {
        *o = dot(q, key);
    }
}

/// `acc += Σ p[t] · values[t]`, with the accumulator in registers for the usual head widths.
fn accumulate<const HD: usize>(probs: &[f32], values: &[f32], acc: &mut [f32]) {
    let mut a = [0f32; HD];
    a.copy_from_slice(acc);
    for (p, v) in probs.iter().zip(values.chunks_exact(HD)) {
        let v: &[f32; HD] = v.try_into().expect("chunks_exact gives HD values");
        for i in 0..HD {
            a[i] += p * v[i];
        }
    }
    acc.copy_from_slice(&a);
}

/// Softmax of `row` in place, in passes that each vectorize (a running float sum would not).
pub(crate) fn softmax_in_place(row: &mut [f32]) {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for i in 0..8 {
            lanes[i] = lanes[i].max(c[i]);
        }
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for v in row.iter_mut() {
        *v = exp(*v - max);
    }
    let inv = 1.0 / sum(row);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// Sum with eight independent lanes.
fn sum(x: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for i in 0..8 {
            lanes[i] += c[i];
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// `e^x` to within a few ulp, branch-free so that loops over it vectorize.
///
/// `x = n·ln2 + r` with `|r| ≤ ln2/2`; `e^r` by its Taylor polynomial to degree 7; `2^n` by
/// building the float's exponent. Inputs below −87 give 0 (softmax scores are ≤ 0 here).
pub(crate) fn exp(x: f32) -> f32 {
    // Round to the nearest integer by adding 1.5·2²³, whose ulp is 1: the integer is then in
    // the low mantissa bits. Unlike `round` (a libm call) and `as i32` (a saturating
    // conversion with NaN checks), this is plain float and integer arithmetic that vectorizes.
    const SHIFTER: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + SHIFTER;
    let n = t - SHIFTER;
    let n_int = t.to_bits().wrapping_sub(SHIFTER.to_bits()) as i32;
    // ln 2 in two parts (Cody–Waite), so that n·ln2 is subtracted without losing bits.
    let r = (x - n * 0.693_359_4) - n * -2.121_944_4e-4;
    let mut p = 1.0 / 5040.0;
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = p * r + c;
    }
    // Wrapping: an overflow check (debug builds) would stop the loop from vectorizing; the
    // clamp above keeps n_int in −126..=127.
    let scale = f32::from_bits((n_int.wrapping_add(127) as u32) << 23);
    p * scale
}

/// Dot product with eight independent lanes, which the compiler turns into SIMD.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use candle_core::Device;

    use super::*;

    /// The build's kernel (AVX-512 where built) against the portable loop, to the bit, on
    /// values of every magnitude and sign.
    #[test]
    fn score_tiles_match_the_portable_loop() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for hd in [64, 128] {
            let q_t: Vec<[f32; ROW_TILE]> = (0..hd)
                .map(|_| std::array::from_fn(|_| rng.gen_range(-4.0f32..4.0).powi(3)))
                .collect();
            let keys: Vec<f32> = (0..hd * KEY_TILE)
                .map(|_| rng.gen_range(-2.0f32..2.0).powi(5))
                .collect();
            let got = score_tile(&q_t, &keys);
            let want = score_tile_portable(&q_t, &keys);
            for (r, (g, w)) in got.iter().zip(&want).enumerate() {
                for (t, (g, w)) in g.iter().zip(w).enumerate() {
                    assert_eq!(g.to_bits(), w.to_bits(), "head dim {hd}, row {r}, key {t}");
                }
            }
        }
    }

    #[test]
    fn exp_is_accurate_over_the_softmax_range() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x <= 10.0 {
            let rel = (exp(x) - x.exp()).abs() / x.exp();
            worst = worst.max(rel);
            x += 0.0137;
        }
        assert!(worst < 2e-6, "worst relative error {worst}");
        // Clamped: far below the range gives e^-87, not a denormal or garbage.
        assert!((exp(-1000.0) - (-87f32).exp()).abs() <= f32::EPSILON * (-87f32).exp());
    }

    /// A cache of `total` positions of made-up keys and values, the queries of `n_head` heads for
    /// `seq` rows, and the stored (f16-rounded) keys and values read back as f32.
    fn prompt(
        n_kv: usize,
        n_head: usize,
        hd: usize,
        total: usize,
        seq: usize,
    ) -> (KvCache, Vec<f32>, Vec<f32>, Vec<f32>) {
        let made_up = |seed: f32, n: usize| -> Vec<f32> {
            (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect()
        };
        let mut cache = KvCache::new(n_kv, total, hd);
        let tensor = |x: Vec<f32>| Tensor::from_vec(x, (n_kv, total, hd), &Device::Cpu).unwrap();
        let (k, v) = (
            tensor(made_up(0.1, n_kv * total * hd)),
            tensor(made_up(0.7, n_kv * total * hd)),
        );
        cache.write(&k, &v, 0).unwrap();
        let stored = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let keys = stored(cache.keys(total).unwrap());
        let values = stored(cache.values(total).unwrap());
        // Scaled queries: scores of a few units, so the softmax is neither flat nor one-hot.
        let q = made_up(1.3, n_head * seq * hd)
            .iter()
            .map(|x| x * 0.4)
            .collect();
        (cache, q, keys, values)
    }

    /// Row `row` of head `h`'s attention over the cached `positions`, in f64.
    #[allow(clippy::too_many_arguments)]
    fn reference_row(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        (n_kv, n_head, hd, total, seq): (usize, usize, usize, usize, usize),
        h: usize,
        row: usize,
        positions: &[usize],
    ) -> Vec<f64> {
        let kv = h / (n_head / n_kv);
        let qr = &q[(h * seq + row) * hd..(h * seq + row + 1) * hd];
        let at = |t: usize| (kv * total + t) * hd;
        let scores: Vec<f64> = positions
            .iter()
            .map(|&t| {
                (0..hd)
                    .map(|d| f64::from(qr[d]) * f64::from(keys[at(t) + d]))
                    .sum()
            })
            .collect();
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let sum: f64 = weights.iter().sum();
        (0..hd)
            .map(|d| {
                positions
                    .iter()
                    .zip(&weights)
                    .map(|(&t, w)| w / sum * f64::from(values[at(t) + d]))
                    .sum()
            })
            .collect()
    }

    #[test]
    fn prompt_attention_matches_a_row_by_row_reference() {
        // (hd, positions cached before, rows, branch): several row blocks; a branch from a
        // fork; more than one key block of values (600 positions).
        for (hd, pos, seq, branch) in [
            (64, 20, 25, Some((12, 7))),
            (128, 0, 37, None),
            (8, 560, 40, Some((300, 19))),
        ] {
            let (n_kv, n_head) = (2, 6);
            let total = pos + seq;
            let (cache, q, keys, values) = prompt(n_kv, n_head, hd, total, seq);
            let fast = cache.attend_rows(&q, n_head, seq, pos, branch);
            let b = branch.map_or(0, |(_, b)| b);
            let a = seq - b;
            for row in 0..seq {
                let positions: Vec<usize> = match branch {
                    Some((fork, _)) if row >= a => (0..fork).chain(pos + a..=pos + row).collect(),
                    _ => (0..=pos + row).collect(),
                };
                for h in 0..n_head {
                    let want = reference_row(
                        &q,
                        &keys,
                        &values,
                        (n_kv, n_head, hd, total, seq),
                        h,
                        row,
                        &positions,
                    );
                    let got = &fast[(row * n_head + h) * hd..(row * n_head + h + 1) * hd];
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (f64::from(*g) - w).abs() < 1e-5,
                            "hd {hd}, row {row}, head {h}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_prompt_cut_into_passes_attends_to_the_same_bits() {
        let (n_kv, n_head, hd, total) = (2, 6, 64, 45);
        let (cache, q, _, _) = prompt(n_kv, n_head, hd, total, total);
        let whole = cache.attend_rows(&q, n_head, total, 0, None);
        // The same rows in two passes, 17 then 28: each pass's queries on their own.
        let part = |from: usize, to: usize| -> Vec<f32> {
            (0..n_head)
                .flat_map(|h| q[(h * total + from) * hd..(h * total + to) * hd].to_vec())
                .collect()
        };
        let mut passes = cache.attend_rows(&part(0, 17), n_head, 17, 0, None);
        passes.extend(cache.attend_rows(&part(17, total), n_head, total - 17, 17, None));
        assert!(
            whole
                .iter()
                .zip(&passes)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "a row's attention depends on the rows beside it"
        );
    }

    #[test]
    fn single_token_attention_matches_the_tensor_path() {
        // 8: the generic loop; 64 and 128: the register-resident accumulators. 150 positions
        // span several tiles.
        for (hd, total) in [(8, 11), (64, 150), (128, 70)] {
            check_attention(hd, total);
        }
    }

    #[test]
    fn the_half_width_cache_keeps_what_attention_stores() {
        // Attention rounds keys and values to f16 before storing them: those come back exactly,
        // through the tensors and through export and import (the prompt cache on disk).
        let (n_kv, n_ctx, hd, total) = (2, 40, 8, 30);
        let rounded = |seed: f32| -> Vec<f32> {
            (0..n_kv * total * hd)
                .map(|i| f16::from_f32((i as f32 * 0.61 + seed).sin() * 9.0).to_f32())
                .collect()
        };
        let (k, v) = (rounded(0.2), rounded(0.9));
        let tensor = |x: &[f32]| Tensor::from_vec(x.to_vec(), (n_kv, total, hd), &Device::Cpu);
        let mut cache = KvCache::new(n_kv, n_ctx, hd);
        cache
            .write(&tensor(&k).unwrap(), &tensor(&v).unwrap(), 0)
            .unwrap();
        let flat = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(flat(cache.keys(total).unwrap()), k);
        assert_eq!(flat(cache.values(total).unwrap()), v);
        let mut saved = Vec::new();
        cache.export(0..total, &mut saved);
        assert_eq!(saved.len(), cache.exported_len(total));
        assert_eq!(saved, [k.clone(), v.clone()].concat());
        let mut other = KvCache::new(n_kv, n_ctx, hd);
        other.import(0..total, &saved);
        assert_eq!(flat(other.keys(total).unwrap()), k);
        assert_eq!(flat(other.values(total).unwrap()), v);
        // A part after the first positions: saved alone, put back after another cache's own
        // first positions, which stay as they were.
        let mut tail = Vec::new();
        cache.export(10..total, &mut tail);
        assert_eq!(tail.len(), cache.exported_len(total - 10));
        let mut third = KvCache::new(n_kv, n_ctx, hd);
        let zeros = vec![0f32; n_kv * total * hd];
        third
            .write(&tensor(&zeros).unwrap(), &tensor(&zeros).unwrap(), 0)
            .unwrap();
        third.import(10..total, &tail);
        let heads = |x: &[f32], keep_from: usize| -> Vec<f32> {
            x.chunks(total * hd)
                .flat_map(|h| {
                    h.iter()
                        .enumerate()
                        .map(move |(i, &x)| if i / hd < keep_from { 0.0 } else { x })
                })
                .collect()
        };
        assert_eq!(flat(third.keys(total).unwrap()), heads(&k, 10));
        assert_eq!(flat(third.values(total).unwrap()), heads(&v, 10));
    }

    #[test]
    fn a_cache_that_grows_keeps_what_it_held() {
        // Written in three pieces, the second and third past the room it had: each head's
        // positions come back in order, the window is never exceeded, and rewriting earlier
        // positions (a new question after a shared prefix) needs no room.
        let (n_kv, n_ctx, hd) = (2, 1000, 8);
        let piece = |pos: usize, seq: usize| -> Vec<f32> {
            (0..n_kv * seq * hd)
                .map(|i| {
                    let (h, rest) = (i / (seq * hd), i % (seq * hd));
                    f16::from_f32((h * 10_000 + pos * hd + rest) as f32 * 0.25).to_f32()
                })
                .collect()
        };
        let tensor = |x: Vec<f32>, seq| Tensor::from_vec(x, (n_kv, seq, hd), &Device::Cpu);
        let mut cache = KvCache::new(n_kv, n_ctx, hd);
        for (pos, seq) in [(0, 10), (10, 300), (310, 690)] {
            let t = tensor(piece(pos, seq), seq).unwrap();
            cache.write(&t, &t, pos).unwrap();
        }
        assert_eq!(cache.cap, n_ctx);
        let keys = cache.keys(1000).unwrap();
        assert_eq!(
            keys.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            piece(0, 1000)
        );
        let t = tensor(piece(0, 5), 5).unwrap();
        cache.write(&t, &t, 0).unwrap();
        assert_eq!(cache.cap, n_ctx);
    }

    fn check_attention(hd: usize, total: usize) {
        let (n_kv, n_ctx, n_head) = (2, 160, 6);
        let mut cache = KvCache::new(n_kv, n_ctx, hd);
        let values = |seed: f32, n: usize| -> Vec<f32> {
            (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect()
        };
        let k = Tensor::from_vec(
            values(0.1, n_kv * total * hd),
            (n_kv, total, hd),
            &Device::Cpu,
        )
        .unwrap();
        let v = Tensor::from_vec(
            values(0.7, n_kv * total * hd),
            (n_kv, total, hd),
            &Device::Cpu,
        )
        .unwrap();
        cache.write(&k, &v, 0).unwrap();
        let q = values(1.3, n_head * hd);
        let fast = cache.attend_one(&q, n_head, total);

        // Reference: softmax(q·Kᵀ)·V per head with candle.
        let keys = cache.keys(total).unwrap();
        let vals = cache.values(total).unwrap();
        for h in 0..n_head {
            let kv = h / (n_head / n_kv);
            let qh =
                Tensor::from_vec(q[h * hd..(h + 1) * hd].to_vec(), (1, hd), &Device::Cpu).unwrap();
            let scores = qh.matmul(&keys.get(kv).unwrap().t().unwrap()).unwrap();
            let probs = candle_nn::ops::softmax_last_dim(&scores).unwrap();
            let out = probs
                .matmul(&vals.get(kv).unwrap())
                .unwrap()
                .flatten_all()
                .unwrap();
            for (a, b) in out
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .zip(&fast[h * hd..(h + 1) * hd])
            {
                assert!((a - b).abs() < 1e-5, "head {h}: {a} vs {b}");
            }
        }
    }
}
