//! Prompts times the 32-weight block types whose values are small unsigned integers (Q4_0,
//! Q4_1, Q5_0, Q5_1), as 8-bit integer products on strips.
//!
//! A block holds 32 weights `w = d · u − c · d` (Q4_0, Q5_0: `c` = 8 or 16) or `w = d · u + m`
//! (Q4_1, Q5_1), `u` a 4- or 5-bit value. Activations are the blocks of [`kernels::quantize_q8`]
//! (`x ≈ dₓ · q`, exactly llama.cpp's `Q8_0`/`Q8_1`), so one block's product is
//!
//! ```text
//! d · dₓ · (Σ u·q − c · Σ q)   +   m · sₓ        (sₓ = dₓ · Σ q, rounded to f16)
//! ```
//!
//! — the same integer sum, scaled the same way, as [`kernels::dot`] computes for one token.
//!
//! A [`Strip`] interleaves one block of [`STRIP`] output features so that each 64-byte row holds
//! four consecutive weights of every feature. On AVX-512 VNNI, four activations broadcast to
//! all lanes multiply one row in one `vpdpbusd` (16 features, four products each, summed into
//! 32 bits). On AVX2 they multiply it in one `vpmaddubsw` per 8 features (two 16-bit pair sums
//! per feature); the pair sums of as many rows as cannot overflow 16 bits are added before one
//! `vpmaddwd` widens them (4-bit values: all 8 rows of a block, 8 · 2 · 15 · 127 < 2¹⁵; 5-bit:
//! 4 rows). Strips are rebuilt
//! from the GGUF blocks a few dozen blocks at a time per panel of features and used for every
//! row of the prompt, so the weights are never dequantized to f32 — the f32 path this replaces
//! spent as much time writing and zeroing dequantized copies as multiplying.
//!
//! Q8_0's signed values are stored plus 128 (an offset `c` of 128, like Q5_0's 16). That fits
//! `vpdpbusd`'s unsigned operand but would saturate `vpmaddubsw`'s 16-bit pair sums, so on AVX2
//! Q8_0 prompts stay on the f32 path (in the models cairn ships, Q8_0 holds only the small value
//! projection and the output layer, which a prompt runs for its last token only).

use std::cell::RefCell;

use crate::kernels::{self, BlockType, Q8Block, BLOCK};

pub use crate::strip_product::STRIP;
/// From this many activation rows on, a product runs on strips (rebuilding a strip costs about
/// what multiplying it with a dozen rows does).
pub const MIN_ROWS: usize = 16;
/// Blocks rebuilt at a time per panel (2,048 weights: the 0.5B's 896-wide rows in one step).
const BLOCKS_PER_STEP: usize = 64;

/// Whether the model runs prompts on strips in this build: AVX2 and FMA (`vpmaddubsw`), or
/// AVX-512 VNNI (`vpdpbusd`, [`VNNI`]).
pub const FAST: bool = cfg!(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
));

/// Whether this build has the 512-bit kernel: one `vpdpbusd` multiplies four weights of all 16
/// features with four activations, 32-bit sums with no 16-bit stage, so Q8_0's full bytes fit
/// too.
pub const VNNI: bool = cfg!(all(
    target_arch = "x86_64",
    target_feature = "avx512f",
    target_feature = "avx512bw",
    target_feature = "avx512vnni"
));

/// One block of [`STRIP`] output features, interleaved four weights at a time.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub struct Strip {
    /// `values[k4][4 · f + j]`: feature `f`'s value at weight `4 · k4 + j`.
    values: [[u8; 64]; BLOCK / 4],
    /// Each feature's scale `d`.
    d: [f32; STRIP],
    /// Each feature's minimum `m` (zero for the types with an integer offset).
    m: [f32; STRIP],
}

impl Strip {
    /// All zero.
    pub const ZERO: Strip = Strip {
        values: [[0; 64]; BLOCK / 4],
        d: [0.0; STRIP],
        m: [0.0; STRIP],
    };
}

/// Whether `ty` runs on strips in this build: the small unsigned values everywhere, Q8_0's
/// bytes (signed, stored plus 128) only on [`VNNI`], as `vpmaddubsw`'s 16-bit pair sums of
/// 255 · 127 would saturate.
#[must_use]
pub fn supported(ty: BlockType) -> bool {
    match ty {
        BlockType::Q4_0 | BlockType::Q4_1 | BlockType::Q5_0 | BlockType::Q5_1 => true,
        BlockType::Q8_0 => VNNI,
    }
}

/// Interleaves one block of up to [`STRIP`] features (`blocks[f]`, the block of feature `f`);
/// missing features are zero.
///
/// # Panics
/// If `ty` is not [`supported`], there are more than [`STRIP`] blocks, or one is not a whole
/// block.
pub fn build_strip(ty: BlockType, blocks: &[&[u8]], out: &mut Strip) {
    assert!(supported(ty), "{ty:?} has no strips");
    assert!(blocks.len() <= STRIP, "at most {STRIP} features per strip");
    for f in 0..STRIP {
        let (u, d, m) = match blocks.get(f) {
            Some(block) => {
                assert_eq!(block.len(), ty.block_bytes(), "a whole block");
                let (d, m, _) = kernels::block_params(ty, block);
                (kernels::unpack(ty, block), d, m.unwrap_or(0.0))
            }
            None => ([0; BLOCK], 0.0, 0.0),
        };
        for (k4, row) in out.values.iter_mut().enumerate() {
            row[4 * f..4 * f + 4].copy_from_slice(&u[4 * k4..4 * k4 + 4]);
        }
        out.d[f] = d;
        out.m[f] = m;
    }
}

/// The integer offset `c` of a type (8 for Q4_0, 16 for Q5_0, 128 for Q8_0, 0 with a minimum
/// instead).
fn offset(ty: BlockType) -> i32 {
    match ty {
        BlockType::Q4_0 => 8,
        BlockType::Q5_0 => 16,
        BlockType::Q8_0 => 128,
        BlockType::Q4_1 | BlockType::Q5_1 => 0,
    }
}

/// The portable product of one row of strips with one row of activations, `out[f] = Σ w[f] · x`:
/// the reference for the SIMD kernel.
#[must_use]
pub fn dot_strips(ty: BlockType, strips: &[Strip], x: &[Q8Block]) -> [f32; STRIP] {
    let c = offset(ty);
    let mut out = [0f32; STRIP];
    for (s, x) in strips.iter().zip(x) {
        for (f, o) in out.iter_mut().enumerate() {
            let mut isum = 0i32;
            for (k4, row) in s.values.iter().enumerate() {
                for j in 0..4 {
                    isum += i32::from(row[4 * f + j]) * i32::from(x.qs[4 * k4 + j]);
                }
            }
            *o += s.d[f] * x.d * (isum - c * x.sum) as f32;
            *o += s.m[f] * x.s;
        }
    }
    out
}

/// `out[r] = Σ strips · x[r]` for every row of `x` (each the same number of blocks as
/// `strips`).
fn strip_tile(ty: BlockType, strips: &[Strip], x: &[&[Q8Block]], out: &mut [[f32; STRIP]]) {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni"
    ))]
    for (i, x) in x.chunks(avx512::ROWS).enumerate() {
        let out = &mut out[i * avx512::ROWS..];
        let c = offset(ty);
        let min = matches!(ty, BlockType::Q4_1 | BlockType::Q5_1);
        macro_rules! call {
            ($rows:literal) => {{
                #[allow(unsafe_code)]
                // SAFETY: this branch is compiled only when the build targets AVX-512 F, BW
                // and VNNI, so every CPU this binary runs on has them.
                unsafe {
                    if min {
                        avx512::strip_tile::<$rows, true>(strips, x, c, out)
                    } else {
                        avx512::strip_tile::<$rows, false>(strips, x, c, out)
                    }
                }
            }};
        }
        match x.len() {
            1 => call!(1),
            2 => call!(2),
            3 => call!(3),
            4 => call!(4),
            5 => call!(5),
            6 => call!(6),
            7 => call!(7),
            8 => call!(8),
            9 => call!(9),
            10 => call!(10),
            11 => call!(11),
            12 => call!(12),
            n => unreachable!("{n} rows in a strip tile"),
        }
    }
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        not(all(
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512vnni"
        ))
    ))]
    for (i, x) in x.chunks(avx2::ROWS).enumerate() {
        let out = &mut out[i * avx2::ROWS..];
        let c = offset(ty);
        macro_rules! call {
            ($rows:literal) => {{
                #[allow(unsafe_code)]
                // SAFETY: this branch is compiled only when the build targets AVX2 and FMA, so
                // every CPU this binary runs on has them.
                unsafe {
                    match ty {
                        BlockType::Q4_0 => avx2::strip_tile::<$rows, 8, false>(strips, x, c, out),
                        BlockType::Q4_1 => avx2::strip_tile::<$rows, 8, true>(strips, x, c, out),
                        BlockType::Q5_0 => avx2::strip_tile::<$rows, 4, false>(strips, x, c, out),
                        BlockType::Q5_1 => avx2::strip_tile::<$rows, 4, true>(strips, x, c, out),
                        BlockType::Q8_0 => unreachable!("Q8_0 has no AVX2 strips"),
                    }
                }
            }};
        }
        match x.len() {
            1 => call!(1),
            2 => call!(2),
            3 => call!(3),
            n => unreachable!("{n} rows in a strip tile"),
        }
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )))]
    for (o, x) in out.iter_mut().zip(x) {
        *o = dot_strips(ty, strips, x);
    }
}

thread_local! {
    /// Each worker's strips, kept between calls.
    static STRIPS: RefCell<Vec<Strip>> = const { RefCell::new(Vec::new()) };
}

/// The 32-weight block types on strips ([`crate::strip_product`]): 64 blocks (2,048 weights:
/// the 0.5B's 896-wide rows in one step) rebuilt at a time, tiles of 12 rows, each tile of rows
/// meeting every strip of the panel.
impl crate::strip_product::Format for BlockType {
    type Strip = Strip;
    type Act = Q8Block;
    const ZERO: Strip = Strip::ZERO;
    const STEP: usize = BLOCKS_PER_STEP;
    const ROWS: usize = 12;
    const STRIPS_OUTER: bool = false;
    const SCRATCH: &'static std::thread::LocalKey<RefCell<Vec<Strip>>> = &STRIPS;

    fn block_bytes(self) -> usize {
        BlockType::block_bytes(self)
    }

    fn build(self, blocks: &[&[u8]], out: &mut Strip) {
        build_strip(self, blocks, out);
    }

    fn tile(self, strips: &[Strip], x: &[&[Q8Block]], out: &mut [[f32; STRIP]]) {
        strip_tile(self, strips, x, out);
    }
}

/// `out = x · Wᵀ` for `x` of `rows × k` and `W` of `n_out × k` in blocks of `ty`, on
/// strips (the walk of `strip_product`, shared with the k-quants).
///
/// # Panics
///
/// If `ty` is not [`supported`], `k` is not a multiple of 32, or the slices do not have the
/// sizes the dimensions imply.
pub fn matmul(ty: BlockType, weights: &[u8], n_out: usize, k: usize, x: &[f32], out: &mut [f32]) {
    let acts = quantize_activations(ty, k, x);
    let threads = candle_core::utils::get_num_threads().max(1);
    crate::strip_product::matmul(ty, weights, n_out, k / BLOCK, &acts, out, threads);
}

/// [`matmul`] into a new vector of `rows × n_out` values, written without being zeroed first.
///
/// # Panics
///
/// As [`matmul`].
#[must_use]
pub fn matmul_vec(ty: BlockType, weights: &[u8], n_out: usize, k: usize, x: &[f32]) -> Vec<f32> {
    let acts = quantize_activations(ty, k, x);
    let threads = candle_core::utils::get_num_threads().max(1);
    crate::strip_product::matmul_new(ty, weights, n_out, k / BLOCK, &acts, threads)
}

/// The activations of a product, after the checks [`matmul`] promises.
fn quantize_activations(ty: BlockType, k: usize, x: &[f32]) -> Vec<Q8Block> {
    assert!(supported(ty), "{ty:?} has no strips");
    assert_eq!(k % BLOCK, 0, "row length {k} is not a multiple of {BLOCK}");
    let rows = x.len() / k;
    assert_eq!(x.len(), rows * k, "activation size");
    quantize_rows(x, k)
}

/// Quantizes every row of `x` (rows of `k`) on the worker pool, row after row in one vector.
fn quantize_rows(x: &[f32], k: usize) -> Vec<Q8Block> {
    let per_row = k / BLOCK;
    let zero = Q8Block {
        qs: [0; BLOCK],
        d: 0.0,
        s: 0.0,
        sum: 0,
    };
    let mut out = vec![zero; x.len() / k * per_row];
    let rows_per_task = 16;
    crate::parallel::fill_chunks(&mut out, rows_per_task * per_row, |task, blocks| {
        let first = task * rows_per_task * k;
        kernels::quantize_q8_into(&x[first..first + blocks.len() * BLOCK], blocks);
    });
    out
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx512f",
    target_feature = "avx512bw",
    target_feature = "avx512vnni"
))]
mod avx512 {
    //! The strip kernel on 512-bit vectors: a 64-byte strip row is one vector of 16 features ×
    //! 4 weights, multiplied by four activations broadcast to every lane in one `vpdpbusd`.
    use std::arch::x86_64::{
        __m512, __m512i, _mm512_cvtepi32_ps, _mm512_dpbusd_epi32, _mm512_fmadd_ps,
        _mm512_set1_epi32, _mm512_set1_ps, _mm512_setzero_ps, _mm512_setzero_si512,
    };

    use super::{Strip, STRIP};
    use crate::kernels::Q8Block;

    /// Activation rows per call: each loaded strip row serves this many rows, whose integer
    /// and float sums (two vectors a row, 24 of the 32 registers) stay in registers (measured
    /// on the Xeon against 6 and 8 rows, the 0.5B's gate/up at 256 rows: 12 was as fast or a
    /// little faster, 4.0–4.3 ms against 4.2–4.5).
    pub(super) const ROWS: usize = 12;

    /// `out[r] = Σ strips · x[r]` for `RN` ≤ [`ROWS`] rows; `c` is the type's integer offset,
    /// `MIN` whether it has a minimum instead.
    #[allow(clippy::needless_range_loop)] // indices over several arrays at once
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) fn strip_tile<const RN: usize, const MIN: bool>(
        strips: &[Strip],
        x: &[&[Q8Block]],
        c: i32,
        out: &mut [[f32; STRIP]],
    ) {
        let mut facc = [_mm512_setzero_ps(); RN];
        for (b, s) in strips.iter().enumerate() {
            let mut xs: [&Q8Block; RN] = [&x[0][b]; RN];
            for r in 1..RN {
                xs[r] = &x[r][b];
            }
            let mut q4: [&[i32; 8]; RN] = [bytemuck::cast_ref(&xs[0].qs); RN];
            for r in 1..RN {
                q4[r] = bytemuck::cast_ref(&xs[r].qs);
            }
            let mut acc = [_mm512_setzero_si512(); RN];
            for k4 in 0..8 {
                let w: __m512i = bytemuck::cast(s.values[k4]);
                for r in 0..RN {
                    acc[r] = _mm512_dpbusd_epi32(acc[r], w, _mm512_set1_epi32(q4[r][k4]));
                }
            }
            // `d · (dₓ · Σu·q − c · dₓ · Σq) + m · sₓ`, two or three FMAs per 16 features.
            let d: __m512 = bytemuck::cast(s.d);
            let m: __m512 = bytemuck::cast(s.m);
            for r in 0..RN {
                let dx = _mm512_set1_ps(xs[r].d);
                let offset = _mm512_set1_ps(-(c * xs[r].sum) as f32 * xs[r].d);
                let v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r]), dx, offset);
                facc[r] = _mm512_fmadd_ps(d, v, facc[r]);
                if MIN {
                    facc[r] = _mm512_fmadd_ps(m, _mm512_set1_ps(xs[r].s), facc[r]);
                }
            }
        }
        for r in 0..RN {
            out[r] = bytemuck::cast(facc[r]);
        }
    }
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    not(all(
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni"
    ))
))]
mod avx2 {
    //! The strip kernel on 256-bit vectors: each 64-byte strip row is two vectors of 8
    //! features × 4 weights.
    use std::arch::x86_64::{
        __m256, __m256i, _mm256_add_epi16, _mm256_add_epi32, _mm256_cvtepi32_ps, _mm256_fmadd_ps,
        _mm256_madd_epi16, _mm256_maddubs_epi16, _mm256_set1_epi16, _mm256_set1_epi32,
        _mm256_set1_ps, _mm256_setzero_ps, _mm256_setzero_si256,
    };

    use super::{Strip, STRIP};
    use crate::kernels::Q8Block;

    /// Activation rows per call: each loaded strip row serves this many rows (measured on
    /// the AVX2 EPYC against 2 and 4, Q5_0 at the 0.5B's shapes: 3 was fastest, though its six
    /// vectors of sums per row spill a few to the stack).
    pub(super) const ROWS: usize = 3;

    /// `out[r] = Σ strips · x[r]` for `RN` ≤ [`ROWS`] rows; `RUN` strip rows' pair sums are
    /// added in 16 bits before widening (8 for 4-bit values, 4 for 5-bit), `c` is the type's
    /// integer offset.
    #[allow(clippy::needless_range_loop)] // indices over several arrays at once
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn strip_tile<const RN: usize, const RUN: usize, const MIN: bool>(
        strips: &[Strip],
        x: &[&[Q8Block]],
        c: i32,
        out: &mut [[f32; STRIP]],
    ) {
        let ones = _mm256_set1_epi16(1);
        let mut facc = [[_mm256_setzero_ps(); 2]; RN];
        for (b, s) in strips.iter().enumerate() {
            let mut xs: [&Q8Block; RN] = [&x[0][b]; RN];
            for r in 1..RN {
                xs[r] = &x[r][b];
            }
            let mut q4: [&[i32; 8]; RN] = [bytemuck::cast_ref(&xs[0].qs); RN];
            for r in 1..RN {
                q4[r] = bytemuck::cast_ref(&xs[r].qs);
            }
            let mut acc = [[_mm256_setzero_si256(); 2]; RN];
            for k0 in (0..8).step_by(RUN) {
                let mut pairs = [[_mm256_setzero_si256(); 2]; RN];
                for k4 in k0..k0 + RUN {
                    let w: [__m256i; 2] = bytemuck::cast(s.values[k4]);
                    for r in 0..RN {
                        let xb = _mm256_set1_epi32(q4[r][k4]);
                        for h in 0..2 {
                            let p = _mm256_maddubs_epi16(w[h], xb);
                            pairs[r][h] = _mm256_add_epi16(pairs[r][h], p);
                        }
                    }
                }
                for r in 0..RN {
                    for h in 0..2 {
                        let wide = _mm256_madd_epi16(pairs[r][h], ones);
                        acc[r][h] = _mm256_add_epi32(acc[r][h], wide);
                    }
                }
            }
            // `d · (dₓ · Σu·q − c · dₓ · Σq) + m · sₓ`, two or three FMAs per 8 features.
            let d: [__m256; 2] = bytemuck::cast(s.d);
            let m: [__m256; 2] = bytemuck::cast(s.m);
            for r in 0..RN {
                let dx = _mm256_set1_ps(xs[r].d);
                let offset = _mm256_set1_ps(-(c * xs[r].sum) as f32 * xs[r].d);
                for h in 0..2 {
                    let v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r][h]), dx, offset);
                    facc[r][h] = _mm256_fmadd_ps(d[h], v, facc[r][h]);
                    if MIN {
                        facc[r][h] = _mm256_fmadd_ps(m[h], _mm256_set1_ps(xs[r].s), facc[r][h]);
                    }
                }
            }
        }
        for r in 0..RN {
            out[r] = bytemuck::cast(facc[r]);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Random blocks of `ty`: random values, scales and minima of a model's magnitudes.
    fn random_weights(
        ty: BlockType,
        n_out: usize,
        k: usize,
        rng: &mut rand::rngs::StdRng,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(n_out * k / BLOCK * ty.block_bytes());
        for _ in 0..n_out * k / BLOCK {
            let mut block = vec![0u8; ty.block_bytes()];
            rng.fill(&mut block[..]);
            let d = half::f16::from_f32(rng.gen_range(0.001..0.05));
            block[..2].copy_from_slice(&d.to_le_bytes());
            if matches!(ty, BlockType::Q4_1 | BlockType::Q5_1) {
                let m = half::f16::from_f32(rng.gen_range(-0.3..0.0));
                block[2..4].copy_from_slice(&m.to_le_bytes());
            }
            out.extend_from_slice(&block);
        }
        out
    }

    /// Every type with strips in this build.
    fn types() -> Vec<BlockType> {
        [
            BlockType::Q4_0,
            BlockType::Q4_1,
            BlockType::Q5_0,
            BlockType::Q5_1,
            BlockType::Q8_0,
        ]
        .into_iter()
        .filter(|&ty| supported(ty))
        .collect()
    }

    #[test]
    fn strips_hold_the_same_products_as_the_blocks() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for ty in types() {
            let (n_out, k) = (11, 96);
            let weights = random_weights(ty, n_out, k, &mut rng);
            let x: Vec<f32> = (0..k).map(|_| rng.gen_range(-2.0..2.0)).collect();
            let mut acts = Vec::new();
            kernels::quantize_q8(&x, &mut acts);
            let row_bytes = k / BLOCK * ty.block_bytes();
            let mut strips = vec![Strip::ZERO; k / BLOCK];
            for (j, strip) in strips.iter_mut().enumerate() {
                let blocks: Vec<&[u8]> = (0..n_out)
                    .map(|f| {
                        let at = f * row_bytes + j * ty.block_bytes();
                        &weights[at..at + ty.block_bytes()]
                    })
                    .collect();
                build_strip(ty, &blocks, strip);
            }
            let got = dot_strips(ty, &strips, &acts);
            for f in 0..STRIP {
                let want = if f < n_out {
                    kernels::dot_scalar(ty, &weights[f * row_bytes..(f + 1) * row_bytes], &acts)
                } else {
                    0.0
                };
                assert!(
                    (got[f] - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "{ty:?} feature {f}: strips {} blocks {want}",
                    got[f]
                );
            }
        }
    }

    /// Every path of [`matmul`] (the SIMD kernel where built, with 1–3 rows per call and
    /// several steps of blocks) against the scalar dot product of each row and feature.
    #[test]
    fn matmul_matches_the_scalar_dot_products() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for ty in types() {
            // 37 features: two whole strips and a partial one; 160 blocks: three steps, the
            // last partial; 29 rows: tiles of 12 and a remainder of 5 (calls of 3 + 2 rows on AVX2, 6 + 6 and 5 on AVX-512).
            let (n_out, k, rows) = (37, 160 * BLOCK, 29);
            let weights = random_weights(ty, n_out, k, &mut rng);
            let x: Vec<f32> = (0..rows * k).map(|_| rng.gen_range(-3.0..3.0)).collect();
            let mut out = vec![f32::NAN; rows * n_out];
            matmul(ty, &weights, n_out, k, &x, &mut out);
            // Into a new vector, never zeroed: the same bits.
            let fresh = matmul_vec(ty, &weights, n_out, k, &x);
            assert_eq!(fresh.len(), out.len());
            for (i, (a, b)) in fresh.iter().zip(&out).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "{ty:?}: element {i} of a new vector"
                );
            }
            let row_bytes = k / BLOCK * ty.block_bytes();
            let mut acts = Vec::new();
            for r in 0..rows {
                kernels::quantize_q8(&x[r * k..(r + 1) * k], &mut acts);
                for f in 0..n_out {
                    let want = kernels::dot_scalar(
                        ty,
                        &weights[f * row_bytes..(f + 1) * row_bytes],
                        &acts,
                    );
                    let got = out[r * n_out + f];
                    assert!(
                        (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "{ty:?} row {r} feature {f}: strips {got} scalar {want}"
                    );
                }
            }
        }
    }
}
