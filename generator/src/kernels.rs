//! Quantized matrix × vector products for the block types candle has no SIMD kernel for.
//!
//! Decoding one token reads every weight once, so its speed is memory bandwidth: the weights
//! must stay in their compact GGUF blocks (5.5 bits for Q5_0, not 8.5 for a Q8_0 re-encoding),
//! and the arithmetic must keep up with the memory. The activations are quantized to 8 bits in
//! blocks of 32 exactly as llama.cpp's `Q8_0`/`Q8_1` (scale rounded to f16, values rounded to
//! nearest-even), so each block's integer dot product is exactly llama.cpp's.
//!
//! Each weight block type has a portable scalar dot product, the reference, and an AVX2 one used
//! when the build targets AVX2 (`.cargo/config.toml` builds for the host CPU); tests check that
//! the two agree.

use half::f16;

/// Elements per block in every type handled here.
pub const BLOCK: usize = 32;

/// Weight block types with a kernel here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockType {
    /// f16 scale, 32 × 4-bit values, offset −8.
    Q4_0,
    /// f16 scale and minimum, 32 × 4-bit values.
    Q4_1,
    /// f16 scale, 32 × 5-bit values, offset −16.
    Q5_0,
    /// f16 scale and minimum, 32 × 5-bit values.
    Q5_1,
    /// f16 scale, 32 × signed 8-bit values. Handled here only where the VNNI kernel exists
    /// ([`FAST_Q8_0`]); candle's kernel is as fast elsewhere.
    Q8_0,
}

/// Whether this build has a Q8_0 kernel faster than candle's (AVX-512 VNNI).
pub const FAST_Q8_0: bool = cfg!(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "avx512vnni",
    target_feature = "avx512vl",
    target_feature = "avx512bw"
));

impl BlockType {
    /// Bytes per block of 32 weights.
    #[must_use]
    pub fn block_bytes(self) -> usize {
        match self {
            BlockType::Q4_0 => 18,
            BlockType::Q4_1 => 20,
            BlockType::Q5_0 => 22,
            BlockType::Q5_1 => 24,
            BlockType::Q8_0 => 34,
        }
    }
}

/// 32 activations quantized to 8 bits.
#[derive(Debug, Clone, Copy)]
pub struct Q8Block {
    /// The values, `x ≈ d · q`.
    pub qs: [i8; BLOCK],
    /// The scale, rounded to f16 as llama.cpp stores it.
    pub d: f32,
    /// `d · Σq`, rounded to f16 (llama.cpp's `Q8_1` sum term, used by types with a minimum).
    pub s: f32,
    /// `Σq`.
    pub sum: i32,
}

fn f16_round(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

fn read_f16(bytes: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

/// Quantizes `x` (a multiple of 32 long) into `out`.
pub fn quantize_q8(x: &[f32], out: &mut Vec<Q8Block>) {
    out.clear();
    out.extend(x.chunks_exact(BLOCK).map(quantize_block));
}

/// Quantizes `x` into `out`, one block per 32 values.
///
/// # Panics
/// If `x` is not `32 · out.len()` long.
pub(crate) fn quantize_q8_into(x: &[f32], out: &mut [Q8Block]) {
    assert_eq!(x.len(), out.len() * BLOCK, "one block per 32 values");
    for (o, chunk) in out.iter_mut().zip(x.chunks_exact(BLOCK)) {
        *o = quantize_block(chunk);
    }
}

fn quantize_block(chunk: &[f32]) -> Q8Block {
    let amax = chunk.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    // 1/d, not 127/amax: the two differ in the last bit, which moves values that sit on a
    // rounding boundary; llama.cpp's tokens agree with ours only with this form.
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let mut qs = [0i8; BLOCK];
    let mut sum = 0i32;
    for (q, v) in qs.iter_mut().zip(chunk) {
        *q = (v * id).round_ties_even() as i8;
        sum += i32::from(*q);
    }
    Q8Block {
        qs,
        d: f16_round(d),
        s: f16_round(d * sum as f32),
        sum,
    }
}

/// Dot product of one row of weight blocks with quantized activations.
#[must_use]
pub fn dot(ty: BlockType, row: &[u8], y: &[Q8Block]) -> f32 {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    #[allow(unsafe_code)]
    // SAFETY: this branch is compiled only when the build itself targets AVX2 and FMA, so every
    // CPU this binary runs on has them; calling a `#[target_feature]` function is then sound.
    unsafe {
        #[cfg(all(
            target_feature = "avx512vnni",
            target_feature = "avx512vl",
            target_feature = "avx512bw"
        ))]
        if let Some(v) = vnni::dot(ty, row, y) {
            return v;
        }
        avx2::dot(ty, row, y)
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )))]
    {
        dot_scalar(ty, row, y)
    }
}

/// Dot products of one row of weight blocks with four rows of activations at once: each
/// weight block is unpacked once and used four times (prompts of a few tokens).
#[must_use]
pub fn dot4(ty: BlockType, row: &[u8], ys: [&[Q8Block]; 4]) -> [f32; 4] {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    #[allow(unsafe_code)]
    // SAFETY: as in `dot`: compiled only when the build targets AVX2 and FMA.
    unsafe {
        avx2::dot4(ty, row, ys)
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )))]
    {
        ys.map(|y| dot_scalar(ty, row, y))
    }
}

/// The 32 unsigned weight values of one block (nibble, plus the fifth bit for Q5 types; for
/// Q8_0 the signed value plus 128, which [`block_params`] takes off again as the offset).
pub(crate) fn unpack(ty: BlockType, block: &[u8]) -> [u8; BLOCK] {
    if ty == BlockType::Q8_0 {
        let mut x = [0u8; BLOCK];
        for (v, b) in x.iter_mut().zip(&block[2..2 + BLOCK]) {
            *v = b ^ 0x80;
        }
        return x;
    }
    let (qs_at, qh) = match ty {
        BlockType::Q8_0 => unreachable!("handled above"),
        BlockType::Q4_0 => (2, None),
        BlockType::Q4_1 => (4, None),
        BlockType::Q5_0 => (
            6,
            Some(u32::from_le_bytes([block[2], block[3], block[4], block[5]])),
        ),
        BlockType::Q5_1 => (
            8,
            Some(u32::from_le_bytes([block[4], block[5], block[6], block[7]])),
        ),
    };
    let mut x = [0u8; BLOCK];
    for j in 0..16 {
        let b = block[qs_at + j];
        x[j] = b & 0x0F;
        x[j + 16] = b >> 4;
        if let Some(qh) = qh {
            x[j] |= (((qh >> j) & 1) << 4) as u8;
            x[j + 16] |= (((qh >> (j + 16)) & 1) << 4) as u8;
        }
    }
    x
}

/// Scale, minimum (for Q4_1/Q5_1) and offset (for Q4_0/Q5_0) of a block.
pub(crate) fn block_params(ty: BlockType, block: &[u8]) -> (f32, Option<f32>, i32) {
    match ty {
        BlockType::Q4_0 => (read_f16(block, 0), None, 8),
        BlockType::Q5_0 => (read_f16(block, 0), None, 16),
        BlockType::Q8_0 => (read_f16(block, 0), None, 128),
        BlockType::Q4_1 | BlockType::Q5_1 => (read_f16(block, 0), Some(read_f16(block, 2)), 0),
    }
}

/// The portable reference.
#[must_use]
pub fn dot_scalar(ty: BlockType, row: &[u8], y: &[Q8Block]) -> f32 {
    let bb = ty.block_bytes();
    let mut acc = 0f32;
    for (block, yb) in row.chunks_exact(bb).zip(y) {
        let x = unpack(ty, block);
        let (d, m, offset) = block_params(ty, block);
        let sumi: i32 = x
            .iter()
            .zip(&yb.qs)
            .map(|(&a, &b)| i32::from(a) * i32::from(b))
            .sum::<i32>()
            - offset * yb.sum;
        acc += d * yb.d * sumi as f32;
        if let Some(m) = m {
            acc += m * yb.s;
        }
    }
    acc
}

/// How far ahead of where it reads a one-token kernel asks for the weights (`cargo run -p
/// cairn-generator --example kquant_matvec` on the Xeon, 2 threads: 1 KiB gave 23 GB/s on
/// Q4_K, 2 KiB 27, 4 and 8 KiB 28–30; without it, 16–18).
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
const PREFETCH_AHEAD: usize = 4096;

/// Asks for the cache line [`PREFETCH_AHEAD`] `+ offset` bytes past `p` ([`prefetch_at`]).
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
#[target_feature(enable = "sse")]
#[inline]
pub(crate) fn prefetch_ahead(p: *const u8, offset: usize) {
    prefetch_at(p, PREFETCH_AHEAD + offset);
}

/// Asks for the cache line `offset` bytes past `p`, which may lie past the weights: a prefetch
/// reads nothing and never faults.
/// Called from the kernels' `#[target_feature]` functions, which all include SSE (built where
/// those kernels are: AVX2 and up).
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
#[target_feature(enable = "sse")]
#[inline]
pub(crate) fn prefetch_at(p: *const u8, offset: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(offset).cast());
}

/// Output features handed to a worker at a time.
const FEATURES_PER_TASK: usize = 32;

/// `out = x · Wᵀ` for `x` of `rows × k` and `W` of `n_out × k` in blocks of `ty`.
///
/// Runs on candle's worker pool, so it never competes with candle's own kernels for cores.
///
/// # Panics
///
/// If `k` is not a multiple of 32 or the slices do not have the sizes the dimensions imply.
pub fn matmul(ty: BlockType, weights: &[u8], n_out: usize, k: usize, x: &[f32], out: &mut [f32]) {
    assert_eq!(k % BLOCK, 0, "row length {k} is not a multiple of {BLOCK}");
    let row_bytes = k / BLOCK * ty.block_bytes();
    assert_eq!(weights.len(), n_out * row_bytes, "weight size");
    let rows = x.len() / k;
    assert_eq!(out.len(), rows * n_out, "output size");
    let activations: Vec<Vec<Q8Block>> = x
        .chunks_exact(k)
        .map(|row| {
            let mut q = Vec::with_capacity(k / BLOCK);
            quantize_q8(row, &mut q);
            q
        })
        .collect();
    // Feature-major scratch, so each task owns one contiguous slice.
    let mut by_feature = vec![0f32; n_out * rows];
    crate::parallel::fill_chunks(&mut by_feature, FEATURES_PER_TASK * rows, |task, chunk| {
        for (f, outs) in chunk.chunks_mut(rows).enumerate() {
            let feature = task * FEATURES_PER_TASK + f;
            let w = &weights[feature * row_bytes..(feature + 1) * row_bytes];
            let mut outs4 = outs.chunks_exact_mut(4);
            let mut acts4 = activations.chunks_exact(4);
            for (o, a) in (&mut outs4).zip(&mut acts4) {
                o.copy_from_slice(&dot4(ty, w, [&a[0], &a[1], &a[2], &a[3]]));
            }
            for (o, act) in outs4.into_remainder().iter_mut().zip(acts4.remainder()) {
                *o = dot(ty, w, act);
            }
        }
    });
    for (feature, outs) in by_feature.chunks_exact(rows).enumerate() {
        for (r, v) in outs.iter().enumerate() {
            out[r * n_out + feature] = *v;
        }
    }
}

/// Dequantizes one row of blocks (for tests and embedding lookups).
#[must_use]
pub fn dequantize_row(ty: BlockType, row: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(row.len() / ty.block_bytes() * BLOCK);
    for block in row.chunks_exact(ty.block_bytes()) {
        let x = unpack(ty, block);
        let (d, m, offset) = block_params(ty, block);
        out.extend(
            x.iter()
                .map(|&q| d * (i32::from(q) - offset) as f32 + m.unwrap_or(0.0)),
        );
    }
    out
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma"
))]
pub(crate) mod avx2 {
    //! AVX2 versions, `#[target_feature]` functions in which the intrinsics are safe to call;
    //! loads go through `bytemuck::cast` from fixed-size arrays, so no pointer is dereferenced.
    use std::arch::x86_64::{
        __m128i, __m256, __m256i, _mm256_add_ps, _mm256_and_si256, _mm256_castps256_ps128,
        _mm256_cmpeq_epi8, _mm256_cvtepi32_ps, _mm256_extractf128_ps, _mm256_fmadd_ps,
        _mm256_madd_epi16, _mm256_maddubs_epi16, _mm256_or_si256, _mm256_set1_epi16,
        _mm256_set1_epi32, _mm256_set1_epi64x, _mm256_set1_epi8, _mm256_set1_ps, _mm256_set_m128i,
        _mm256_setr_epi8, _mm256_setzero_ps, _mm256_shuffle_epi8, _mm_add_ps, _mm_add_ss,
        _mm_cvtss_f32, _mm_movehdup_ps, _mm_movehl_ps, _mm_srli_epi16,
    };

    use super::{read_f16, BlockType, Q8Block};

    #[target_feature(enable = "avx2,fma")]
    fn load16(bytes: &[u8]) -> __m128i {
        let a: [u8; 16] = bytes[..16].try_into().expect("16 bytes");
        bytemuck::cast(a)
    }

    #[target_feature(enable = "avx2,fma")]
    fn load32(qs: &[i8; 32]) -> __m256i {
        bytemuck::cast(*qs)
    }

    /// Low nibbles of 16 bytes in lanes 0..16, high nibbles in lanes 16..32.
    #[target_feature(enable = "avx2,fma")]
    fn nibbles(qs: &[u8]) -> __m256i {
        let lo = load16(qs);
        let both = _mm256_set_m128i(_mm_srli_epi16(lo, 4), lo);
        _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
    }

    /// 0x10 in lane `i` where bit `i` of `qh` is set, else 0.
    #[target_feature(enable = "avx2,fma")]
    fn fifth_bits(qh: u32) -> __m256i {
        // Lane i takes byte i / 8 of qh, then keeps bit i % 8 of it.
        let spread = _mm256_shuffle_epi8(
            _mm256_set1_epi32(qh as i32),
            _mm256_setr_epi8(
                0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3,
                3, 3, 3, 3,
            ),
        );
        let bit = _mm256_set1_epi64x(0x8040_2010_0804_0201_u64 as i64);
        let set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
        _mm256_and_si256(set, _mm256_set1_epi8(0x10))
    }

    /// Σ x·y over 32 lanes as eight i32 sums, x unsigned (≤ 31) and y signed.
    #[target_feature(enable = "avx2,fma")]
    fn dot_u8_i8(x: __m256i, y: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1))
    }

    #[target_feature(enable = "avx2,fma")]
    pub(crate) fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn dot(ty: BlockType, row: &[u8], y: &[Q8Block]) -> f32 {
        match ty {
            BlockType::Q4_0 => dot_blocks::<18, 2, 0, false>(row, y, 8.0),
            BlockType::Q4_1 => dot_blocks::<20, 4, 0, true>(row, y, 0.0),
            BlockType::Q5_0 => dot_blocks::<22, 6, 2, false>(row, y, 16.0),
            BlockType::Q5_1 => dot_blocks::<24, 8, 4, true>(row, y, 0.0),
            // Reached only without VNNI, where `model` leaves Q8_0 to candle; kept exact.
            BlockType::Q8_0 => super::dot_scalar(ty, row, y),
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn dot4(ty: BlockType, row: &[u8], ys: [&[Q8Block]; 4]) -> [f32; 4] {
        match ty {
            BlockType::Q4_0 => dot_blocks4::<18, 2, 0, false>(row, ys, 8.0),
            BlockType::Q4_1 => dot_blocks4::<20, 4, 0, true>(row, ys, 0.0),
            BlockType::Q5_0 => dot_blocks4::<22, 6, 2, false>(row, ys, 16.0),
            BlockType::Q5_1 => dot_blocks4::<24, 8, 4, true>(row, ys, 0.0),
            // No four-row Q8_0 kernel: one row at a time, on VNNI where the build has it.
            BlockType::Q8_0 => ys.map(|y| super::dot(ty, row, y)),
        }
    }

    /// The 32 unsigned values of a block (`QS`: where its nibbles start; `QH`: where its
    /// fifth bits are, 0 for none).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn unpack<const BB: usize, const QS: usize, const QH: usize>(block: &[u8; BB]) -> __m256i {
        let x = nibbles(&block[QS..QS + 16]);
        if QH > 0 {
            let qh = u32::from_le_bytes([block[QH], block[QH + 1], block[QH + 2], block[QH + 3]]);
            _mm256_or_si256(x, fifth_bits(qh))
        } else {
            x
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot_blocks4<const BB: usize, const QS: usize, const QH: usize, const MIN: bool>(
        row: &[u8],
        ys: [&[Q8Block]; 4],
        offset: f32,
    ) -> [f32; 4] {
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut scalar = [0f32; 4];
        for (b, block) in row.chunks_exact(BB).enumerate() {
            let block: &[u8; BB] = block.try_into().expect("chunks_exact gives BB bytes");
            let d = read_f16(block, 0);
            let min = if MIN { read_f16(block, 2) } else { 0.0 };
            let x = unpack::<BB, QS, QH>(block);
            for r in 0..4 {
                let yb = &ys[r][b];
                let sums = _mm256_cvtepi32_ps(dot_u8_i8(x, load32(&yb.qs)));
                let dd = d * yb.d;
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dd), sums, acc[r]);
                scalar[r] += if MIN {
                    min * yb.s
                } else {
                    -dd * offset * yb.sum as f32
                };
            }
        }
        [
            hsum(acc[0]) + scalar[0],
            hsum(acc[1]) + scalar[1],
            hsum(acc[2]) + scalar[2],
            hsum(acc[3]) + scalar[3],
        ]
    }

    /// One block: returns (d · d_y · Σx·y as eight partial sums, the block's scalar term).
    ///
    /// `QS` is where the nibbles start, `QH` where the fifth bits are (0: none), `MIN` whether
    /// the block has a minimum at byte 2; `offset` is subtracted from every weight value.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn block_dot<const BB: usize, const QS: usize, const QH: usize, const MIN: bool>(
        block: &[u8; BB],
        yb: &Q8Block,
        offset: f32,
    ) -> (__m256, __m256, f32) {
        let d = read_f16(block, 0);
        let x = unpack::<BB, QS, QH>(block);
        let sums = _mm256_cvtepi32_ps(dot_u8_i8(x, load32(&yb.qs)));
        let dd = d * yb.d;
        // The offset of Q4_0/Q5_0 comes out of the integer sum: Σ(x−o)·y = Σx·y − o·Σy.
        let extra = if MIN {
            read_f16(block, 2) * yb.s
        } else {
            -dd * offset * yb.sum as f32
        };
        (_mm256_set1_ps(dd), sums, extra)
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot_blocks<const BB: usize, const QS: usize, const QH: usize, const MIN: bool>(
        row: &[u8],
        y: &[Q8Block],
        offset: f32,
    ) -> f32 {
        // Two chains of accumulators, so consecutive blocks do not wait on each other.
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (mut scalar0, mut scalar1) = (0f32, 0f32);
        let mut blocks = row.chunks_exact(BB).zip(y);
        while let Some((b0, y0)) = blocks.next() {
            let b0: &[u8; BB] = b0.try_into().expect("chunks_exact gives BB bytes");
            // Two blocks (36 to 48 bytes) a step: one line asked for each step.
            super::prefetch_ahead(b0.as_ptr(), 0);
            let (dd, sums, extra) = block_dot::<BB, QS, QH, MIN>(b0, y0, offset);
            acc0 = _mm256_fmadd_ps(dd, sums, acc0);
            scalar0 += extra;
            if let Some((b1, y1)) = blocks.next() {
                let b1: &[u8; BB] = b1.try_into().expect("chunks_exact gives BB bytes");
                let (dd, sums, extra) = block_dot::<BB, QS, QH, MIN>(b1, y1, offset);
                acc1 = _mm256_fmadd_ps(dd, sums, acc1);
                scalar1 += extra;
            }
        }
        let (acc, scalar) = (_mm256_add_ps(acc0, acc1), scalar0 + scalar1);
        hsum(acc) + scalar
    }
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "avx512vnni",
    target_feature = "avx512vl",
    target_feature = "avx512bw"
))]
mod vnni {
    //! AVX-512 VNNI versions (on 256-bit vectors) for the types without a block minimum, and
    //! Q8_0.
    //!
    //! `vpdpbusd` multiplies unsigned by signed bytes and adds groups of four into i32 lanes in
    //! one instruction, without the 16-bit saturation of `maddubs`; a mask register sets the
    //! fifth bits in one masked add. The block offset comes out of the integer sums too
    //! (Σ(x−o)·y = Σx·y − Σo·y, both exact), so a block costs no scalar work but its scale.
    use std::arch::x86_64::{
        __m256, __m256i, _mm256_add_ps, _mm256_and_si256, _mm256_cvtepi32_ps, _mm256_dpbusd_epi32,
        _mm256_fmadd_ps, _mm256_mask_add_epi8, _mm256_set1_epi8, _mm256_set1_ps, _mm256_set_m128i,
        _mm256_setzero_ps, _mm256_setzero_si256, _mm256_sub_epi32, _mm256_xor_si256,
        _mm_srli_epi16,
    };

    use super::avx2::hsum;
    use super::{read_f16, BlockType, Q8Block};

    /// `None` for the types this module has no kernel for.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) fn dot(ty: BlockType, row: &[u8], y: &[Q8Block]) -> Option<f32> {
        match ty {
            BlockType::Q4_0 => Some(dot_blocks::<18, 2, 0>(row, y, 8)),
            BlockType::Q5_0 => Some(dot_blocks::<22, 6, 2>(row, y, 16)),
            // Signed values flipped to unsigned (q + 128, an xor), with 128 as the offset.
            BlockType::Q8_0 => Some(dot_blocks::<34, 2, 0>(row, y, -128)),
            BlockType::Q4_1 | BlockType::Q5_1 => None,
        }
    }

    /// Eight partial sums of `Σ (x − offset)·y` over one block, as floats scaled by `d·d_y`.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    #[inline]
    fn block<const BB: usize, const QS: usize, const QH: usize>(
        block: &[u8; BB],
        yb: &Q8Block,
        offset: __m256i,
    ) -> (__m256, __m256) {
        let mut x = if BB == 34 {
            // Q8_0: 32 signed bytes, made unsigned.
            let q: [u8; 32] = block[QS..QS + 32].try_into().expect("32 bytes");
            _mm256_xor_si256(bytemuck::cast(q), _mm256_set1_epi8(-128))
        } else {
            let lo: [u8; 16] = block[QS..QS + 16].try_into().expect("16 bytes");
            let lo = bytemuck::cast(lo);
            _mm256_and_si256(
                _mm256_set_m128i(_mm_srli_epi16(lo, 4), lo),
                _mm256_set1_epi8(0x0F),
            )
        };
        if QH > 0 {
            let qh = u32::from_le_bytes([block[QH], block[QH + 1], block[QH + 2], block[QH + 3]]);
            x = _mm256_mask_add_epi8(x, qh, x, _mm256_set1_epi8(0x10));
        }
        let y: __m256i = bytemuck::cast(yb.qs);
        let zero = _mm256_setzero_si256();
        let sums = _mm256_sub_epi32(
            _mm256_dpbusd_epi32(zero, x, y),
            _mm256_dpbusd_epi32(zero, offset, y),
        );
        (
            _mm256_set1_ps(read_f16(block, 0) * yb.d),
            _mm256_cvtepi32_ps(sums),
        )
    }

    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
    fn dot_blocks<const BB: usize, const QS: usize, const QH: usize>(
        row: &[u8],
        y: &[Q8Block],
        offset: i8,
    ) -> f32 {
        let offset = _mm256_set1_epi8(offset);
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut blocks = row.chunks_exact(BB).zip(y);
        while let Some((b0, y0)) = blocks.next() {
            let b0: &[u8; BB] = b0.try_into().expect("chunks_exact gives BB bytes");
            // Two blocks (44 or 68 bytes) a step: one line asked for each step, at least one
            // for every line of the weights.
            super::prefetch_ahead(b0.as_ptr(), 0);
            if BB > 32 {
                super::prefetch_ahead(b0.as_ptr(), 64);
            }
            let (d, s) = block::<BB, QS, QH>(b0, y0, offset);
            acc0 = _mm256_fmadd_ps(d, s, acc0);
            if let Some((b1, y1)) = blocks.next() {
                let b1: &[u8; BB] = b1.try_into().expect("chunks_exact gives BB bytes");
                let (d, s) = block::<BB, QS, QH>(b1, y1, offset);
                acc1 = _mm256_fmadd_ps(d, s, acc1);
            }
        }
        hsum(_mm256_add_ps(acc0, acc1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random_row(ty: BlockType, blocks: usize, rng: &mut rand::rngs::StdRng) -> Vec<u8> {
        let mut row = Vec::new();
        for _ in 0..blocks {
            let mut b = vec![0u8; ty.block_bytes()];
            rng.fill(&mut b[..]);
            // Sane f16 scale and minimum (random bits could be NaN or huge).
            let d = f16::from_f32(rng.gen_range(0.001..0.05))
                .to_bits()
                .to_le_bytes();
            b[..2].copy_from_slice(&d);
            if matches!(ty, BlockType::Q4_1 | BlockType::Q5_1) {
                let m = f16::from_f32(rng.gen_range(-0.5..0.5))
                    .to_bits()
                    .to_le_bytes();
                b[2..4].copy_from_slice(&m);
            }
            row.extend(b);
        }
        row
    }

    #[test]
    fn simd_and_scalar_dots_agree_and_match_dequantized_math() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for ty in [
            BlockType::Q4_0,
            BlockType::Q4_1,
            BlockType::Q5_0,
            BlockType::Q5_1,
            BlockType::Q8_0,
        ] {
            let blocks = 28;
            let row = random_row(ty, blocks, &mut rng);
            let x: Vec<f32> = (0..blocks * BLOCK)
                .map(|_| rng.gen_range(-3.0..3.0))
                .collect();
            let mut y = Vec::new();
            quantize_q8(&x, &mut y);
            let fast = dot(ty, &row, &y);
            let reference = dot_scalar(ty, &row, &y);
            assert!(
                (fast - reference).abs() <= 1e-4 * reference.abs().max(1.0),
                "{ty:?}: {fast} vs {reference}"
            );
            // Against plain f32 math on dequantized weights and activations.
            let w = dequantize_row(ty, &row);
            let yq: Vec<f32> = y
                .iter()
                .flat_map(|b| b.qs.iter().map(move |&q| f32::from(q) * b.d))
                .collect();
            let plain: f32 = w.iter().zip(&yq).map(|(a, b)| a * b).sum();
            // The minimum term uses the f16-rounded block sum, as llama.cpp does.
            assert!(
                (plain - reference).abs() <= 2e-2 * plain.abs().max(1.0),
                "{ty:?}: {plain} vs {reference}"
            );
        }
    }

    #[test]
    fn matmul_matches_row_by_row_dots() {
        // 3 rows: the one-row kernel only; 6: one group of four, then two single rows.
        for rows in [3, 6] {
            check_matmul(rows);
        }
    }

    fn check_matmul(rows: usize) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let (n_out, k) = (77, 64);
        let ty = BlockType::Q5_0;
        let w: Vec<u8> = (0..n_out)
            .flat_map(|_| random_row(ty, k / BLOCK, &mut rng))
            .collect();
        let x: Vec<f32> = (0..rows * k).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mut out = vec![0f32; rows * n_out];
        matmul(ty, &w, n_out, k, &x, &mut out);
        let row_bytes = k / BLOCK * ty.block_bytes();
        for r in 0..rows {
            let mut y = Vec::new();
            quantize_q8(&x[r * k..(r + 1) * k], &mut y);
            for f in 0..n_out {
                let expect = dot_scalar(ty, &w[f * row_bytes..(f + 1) * row_bytes], &y);
                let got = out[r * n_out + f];
                assert!(
                    (got - expect).abs() < 1e-4,
                    "row {r} feature {f}: {got} vs {expect}"
                );
            }
        }
    }

    #[test]
    fn q8_quantization_rounds_like_llama_cpp() {
        let mut x = vec![0f32; 32];
        x[0] = 127.0;
        x[1] = 0.5; // ties go to even: 0
        x[2] = 1.5; // 2
        x[3] = -2.5; // -2
        let mut y = Vec::new();
        quantize_q8(&x, &mut y);
        assert_eq!(&y[0].qs[..4], &[127, 0, 2, -2]);
        assert!((y[0].d - 1.0).abs() < f32::EPSILON);
        assert_eq!(y[0].sum, 127);
        let mut zeros = Vec::new();
        quantize_q8(&[0.0; 32], &mut zeros);
        assert!(zeros[0].qs.iter().all(|&q| q == 0));
    }
}
