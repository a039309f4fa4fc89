//! Q4_K and Q6_K weights (the k-quants of the larger model) multiplied as 8-bit integers.
//!
//! A k-quant superblock holds 256 weights: small unsigned integers, an integer scale for every
//! 16 or 32 of them, and an f16 factor. Activations are quantized per 256 values exactly as
//! llama.cpp's `block_q8_K` (an f32 scale, values rounded to nearest-even, sums of every 16).
//! Every weight can then be written `w = d · s_g · u + o_g`, with `u` an unsigned byte, `s_g`
//! the integer scale of its group `g` and `o_g` the group's offset (Q4_K's minimum, or Q6_K's
//! `−32 · d · s_g`), and one superblock's product with activations `dₓ · q` is
//!
//! ```text
//! d · dₓ · Σ_g s_g · Σ_{i ∈ g} u_i · q_i   +   Σ_g o_g · (dₓ · Σ_{i ∈ g} q_i)
//! ```
//!
//! The first sum is exact integer arithmetic, the second a few f32 products per superblock.
//! Three kernels compute it on AVX-512 VNNI ([`FAST_512`]):
//!
//! - **Prompts** (16 rows or more) run on [`Strip`]s: 16 output features of a superblock
//!   interleaved so that one `vpdpbusd` multiplies four weights of each of the 16 features with
//!   four activations broadcast to all of them — 64 products in one instruction, the 16 lanes
//!   of its sum being the 16 features. The group sums are scaled in f32. Strips are rebuilt from
//!   the GGUF blocks a few superblocks at a time per panel of features, and each is used for
//!   every row of the prompt.
//! - **One token** reads each weight once, straight from the packed blocks ([`dot_row`]):
//!   nibbles split in registers, `vpmaddubsw` (unsigned weights × signed activations, pairs
//!   summed to 16 bits, at most 2 · 63 · 127) then `vpdpwssd` by the group scales, two
//!   rows a pass, sharing the activations' loads. Both ask for the weights 4 KiB ahead
//!   of where they read (`_mm_prefetch`): a token is a stream of memory, and on the Xeon the
//!   hardware prefetcher alone left the kernels at two thirds of what a plain loop reads.
//! - **A few rows** unpack each superblock ([`Unpacked`]) and use the same two instructions.
//!
//! On AVX2 without AVX-512 VNNI ([`FAST`]), one token reads the packed blocks the same way on
//! 256-bit vectors (`vpmaddubsw`, then `vpmaddwd` by the group scales), and prompts of any
//! length go through the unpacked tile, four activation rows per weight row.
//!
//! Elsewhere `model` keeps candle's kernels; this module's portable code ([`dot_packed`],
//! llama.cpp's arithmetic on the blocks, and [`dot_unpacked`], [`dot_strips`]) is the reference
//! the fast kernels are tested against.

use std::cell::RefCell;

use half::f16;

/// Weights per superblock.
pub const QK: usize = 256;
/// Groups of 16 per superblock.
const GROUPS: usize = QK / 16;
/// Superblocks unpacked at a time per panel row (bounds the panel to a few hundred KiB).
const SUPERBLOCKS_PER_STEP: usize = 8;
/// Activation rows per call of the unpacked kernel, with one weight row (measured against
/// 2 × 4, 2 × 6 and 1 × 10 tiles: 1 × 8 was as fast as any).
const TILE_ROWS: usize = 8;

/// Whether this build has the 512-bit kernels (AVX-512 BW and VNNI), prompts on strips.
pub const FAST_512: bool = cfg!(all(
    target_arch = "x86_64",
    target_feature = "avx512f",
    target_feature = "avx512bw",
    target_feature = "avx512vnni"
));

/// Whether this build has an integer kernel: the 512-bit ones, or the 256-bit ones of AVX2.
pub const FAST: bool = FAST_512
    || cfg!(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ));

/// `$fast`, a call into module `avx512`, where the build targets AVX-512 F, BW and VNNI, else
/// `$portable`: the dispatch of a kernel that has only those two forms.
macro_rules! avx512_or_portable {
    ($fast:expr, $portable:expr) => {{
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512vnni"
        ))]
        #[allow(unsafe_code)]
        // SAFETY: compiled only when the build targets AVX-512 F, BW and VNNI, so every CPU
        // this binary runs on has them.
        let done = unsafe { $fast };
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx512f",
            target_feature = "avx512bw",
            target_feature = "avx512vnni"
        )))]
        let done = $portable;
        done
    }};
}

/// The k-quant types handled here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KType {
    /// f16 factor and minimum factor, 8 × (6-bit scale, 6-bit minimum), 256 × 4 bits.
    Q4K,
    /// 256 × 6 bits (offset −32), 16 × signed 8-bit scale, f16 factor.
    Q6K,
}

impl KType {
    /// Bytes per superblock of 256 weights.
    #[must_use]
    pub fn block_bytes(self) -> usize {
        match self {
            KType::Q4K => 144,
            KType::Q6K => 210,
        }
    }
}

/// 256 activations quantized to 8 bits, as llama.cpp's `block_q8_K`.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub struct Q8KBlock {
    /// The values, `x ≈ d · q`.
    pub qs: [i8; QK],
    /// `d ·` the sum of each group of 16 values (for the offsets).
    pub sums: [f32; GROUPS],
    /// `d ·` the sum of each group of 32 values (Q4_K's groups).
    pub sums32: [f32; GROUPS / 2],
    /// The sum of each group of 16 values.
    pub bsums: [i16; GROUPS],
    /// The scale.
    pub d: f32,
}

/// Asserts that two quantized blocks hold the same bits in every field (tests); `what` names
/// the case.
#[cfg(test)]
pub(crate) fn assert_same_bits(a: &Q8KBlock, b: &Q8KBlock, what: &str) {
    assert_eq!(a.qs, b.qs, "values, {what}");
    assert_eq!(a.bsums, b.bsums, "group sums, {what}");
    assert_eq!(a.d.to_bits(), b.d.to_bits(), "scale, {what}");
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a.sums), bits(&b.sums), "scaled sums, {what}");
    assert_eq!(bits(&a.sums32), bits(&b.sums32), "sums of 32, {what}");
}

impl Q8KBlock {
    const ZERO: Q8KBlock = Q8KBlock {
        qs: [0; QK],
        sums: [0.0; GROUPS],
        sums32: [0.0; GROUPS / 2],
        bsums: [0; GROUPS],
        d: 0.0,
    };
}

/// Quantizes 256 activations as llama.cpp's `quantize_row_q8_K`: the value of largest
/// magnitude maps to −127, the others round to nearest-even.
///
/// # Panics
/// If `x` is not 256 values long.
pub fn quantize_block(x: &[f32], out: &mut Q8KBlock) {
    let x: &[f32; QK] = x.try_into().expect("a superblock is 256 values");
    avx512_or_portable!(
        avx512::quantize_block(x, out),
        quantize_block_portable(x, out)
    );
}

/// [`quantize_block`] in plain Rust: the reference for the SIMD version.
pub fn quantize_block_portable(x: &[f32; QK], out: &mut Q8KBlock) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    // The first value of that magnitude, with its sign, as llama.cpp's loop keeps it (exact
    // equality: `amax` is one of the values).
    #[allow(clippy::float_cmp)]
    let Some(&max) = x.iter().find(|v| v.abs() == amax).filter(|_| amax > 0.0) else {
        *out = Q8KBlock::ZERO;
        return;
    };
    let iscale = -127.0 / max;
    for (q, &v) in out.qs.iter_mut().zip(x) {
        *q = (iscale * v).round_ties_even().min(127.0) as i8;
    }
    out.d = 1.0 / iscale;
    for (s, group) in out.bsums.iter_mut().zip(out.qs.chunks_exact(16)) {
        *s = group.iter().map(|&q| i16::from(q)).sum();
    }
    finish_block(out);
}

/// A quantized block's sums scaled by `d` (its values, `d` and `bsums` set).
fn finish_block(out: &mut Q8KBlock) {
    for (f, &s) in out.sums.iter_mut().zip(&out.bsums) {
        *f = out.d * f32::from(s);
    }
    for (j, pair) in out.bsums.chunks_exact(2).enumerate() {
        out.sums32[j] = out.d * (i32::from(pair[0]) + i32::from(pair[1])) as f32;
    }
}

/// One superblock of weights as `w[i] = d · scales[i / 16] · values[i] + offsets[i / 16]`.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub struct Unpacked {
    /// The unsigned values (Q4_K: 0..16, Q6_K: 0..64).
    pub values: [u8; QK],
    /// The integer scale of each group of 16; lanes 16.. stay zero, so the block's scales are
    /// one 64-byte load.
    pub scales: [i16; 32],
    /// The offset of each group of 16.
    pub offsets: [f32; GROUPS],
    /// The superblock's factor.
    pub d: f32,
}

impl Unpacked {
    /// All zero.
    pub const ZERO: Unpacked = Unpacked {
        values: [0; QK],
        scales: [0; 32],
        offsets: [0.0; GROUPS],
        d: 0.0,
    };
}

pub use crate::strip_product::STRIP;
/// Activation rows per strip kernel call on AVX-512 and in portable builds.
const STRIP_ROWS: usize = 8;
/// From this many activation rows on, products run on strips (rebuilding a strip costs about
/// what multiplying it with a dozen rows does).
pub(crate) const STRIP_MIN_ROWS: usize = 16;

/// One superblock of [`STRIP`] output features, interleaved for `vpdpbusd`: each 64-byte row
/// of `values` holds four consecutive weights of every feature, so one instruction multiplies
/// them with four activations broadcast to all features, and the 16 lanes of its result are
/// the 16 features. The integer group sums are scaled in f32, group by group.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub struct Strip {
    /// `values[k4][4 · f + j]`: feature `f`'s value at weight `4 · k4 + j`.
    values: [[u8; 64]; QK / 4],
    /// `d · scale` of each feature in each group (Q4_K: 8 groups of 32, Q6_K: 16 of 16).
    scales: [[f32; STRIP]; GROUPS],
    /// Each feature's offset in each group.
    offsets: [[f32; STRIP]; GROUPS],
    /// The integer scale of each feature in each group, twice (lanes `2f`, `2f + 1`): the
    /// two 16-bit pair sums `vpmaddubsw` gives a feature are widened by `vpmaddwd` with them,
    /// so a superblock's groups add up in integers, as in llama.cpp, and are scaled once.
    iscales: [[i16; 2 * STRIP]; GROUPS],
    /// Each feature's superblock factor.
    d: [f32; STRIP],
}

impl Strip {
    /// All zero.
    pub const ZERO: Strip = Strip {
        values: [[0; 64]; QK / 4],
        scales: [[0.0; STRIP]; GROUPS],
        offsets: [[0.0; STRIP]; GROUPS],
        iscales: [[0; 2 * STRIP]; GROUPS],
        d: [0.0; STRIP],
    };
}

/// Groups with their own scale per superblock.
fn groups(ty: KType) -> usize {
    match ty {
        KType::Q4K => 8,
        KType::Q6K => 16,
    }
}

/// Interleaves one superblock of up to [`STRIP`] features (`blocks[f]`, the superblock of
/// feature `f`); missing features are zero.
///
/// # Panics
/// If there are more than [`STRIP`] blocks, or one is not a whole superblock.
pub fn build_strip(ty: KType, blocks: &[&[u8]], out: &mut Strip) {
    assert!(blocks.len() <= STRIP, "at most {STRIP} features per strip");
    let ng = groups(ty);
    let per_group = GROUPS / ng;
    UNPACKED.with_borrow_mut(|unpacked| {
        // Each block is unpacked whole over what the last strip left; features past the
        // blocks are zero.
        for (block, u) in blocks.iter().zip(unpacked.iter_mut()) {
            unpack(ty, block, u);
        }
        unpacked[blocks.len()..].fill(Unpacked::ZERO);
        fill_strip(ng, per_group, unpacked, out);
    });
}

thread_local! {
    /// Each worker's unpacked superblocks of one strip, kept between strips (clearing 7 KiB
    /// for every strip cost a tenth of building it).
    static UNPACKED: RefCell<[Unpacked; STRIP]> = const { RefCell::new([Unpacked::ZERO; STRIP]) };
}

/// A strip from its features' unpacked superblocks.
fn fill_strip(ng: usize, per_group: usize, unpacked: &[Unpacked; STRIP], out: &mut Strip) {
    interleave(unpacked, &mut out.values);
    for g in 0..ng {
        for (f, u) in unpacked.iter().enumerate() {
            let scale = u.scales[g * per_group];
            out.scales[g][f] = u.d * f32::from(scale);
            out.offsets[g][f] = u.offsets[g * per_group];
            // Only the AVX2 kernel widens by the integer scales.
            if !FAST_512 {
                out.iscales[g][2 * f..2 * f + 2].fill(scale);
            }
        }
    }
    for (d, u) in out.d.iter_mut().zip(unpacked) {
        *d = u.d;
    }
}

/// A strip's values from its features' unpacked superblocks: row `k4` holds weights
/// `4·k4..4·k4 + 4` of every feature in turn (a 16 × 64 transpose of 4-byte words).
fn interleave(unpacked: &[Unpacked; STRIP], values: &mut [[u8; 64]; QK / 4]) {
    avx512_or_portable!(
        avx512::interleave(unpacked, values),
        interleave_portable(unpacked, values)
    );
}

/// A strip's values interleaved (what `build_strip` does with them) in plain Rust: the
/// reference for the SIMD version.
pub fn interleave_portable(unpacked: &[Unpacked; STRIP], values: &mut [[u8; 64]; QK / 4]) {
    for (f, u) in unpacked.iter().enumerate() {
        for (k4, row) in values.iter_mut().enumerate() {
            row[4 * f..4 * f + 4].copy_from_slice(&u.values[4 * k4..4 * k4 + 4]);
        }
    }
}

/// The portable product of one strip row with quantized activations: the reference for the
/// strip kernel, `out[f] = Σ w[f] · x`.
#[must_use]
pub fn dot_strips(ty: KType, strips: &[Strip], x: &[Q8KBlock]) -> [f32; STRIP] {
    let ng = groups(ty);
    let per_group = QK / 4 / ng;
    let mut out = [0f32; STRIP];
    for (s, x) in strips.iter().zip(x) {
        for (f, o) in out.iter_mut().enumerate() {
            let mut block = 0f32;
            for g in 0..ng {
                let mut isum = 0i32;
                for k4 in g * per_group..(g + 1) * per_group {
                    for j in 0..4 {
                        isum += i32::from(s.values[k4][4 * f + j]) * i32::from(x.qs[4 * k4 + j]);
                    }
                }
                block += isum as f32 * s.scales[g][f];
            }
            *o += block * x.d;
            for g in 0..ng {
                let sum = if ng == 8 { x.sums32[g] } else { x.sums[g] };
                *o += s.offsets[g][f] * sum;
            }
        }
    }
    out
}

/// Calls `$kernel!(R)` with `R` the literal 1..=8 that equals `$rows`: kernels are specialized
/// by their number of activation rows, so that their accumulators stay in registers.
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx512f",
    target_feature = "avx512bw",
    target_feature = "avx512vnni"
))]
macro_rules! by_rows {
    ($rows:expr, $kernel:ident) => {
        match $rows {
            1 => $kernel!(1),
            2 => $kernel!(2),
            3 => $kernel!(3),
            4 => $kernel!(4),
            5 => $kernel!(5),
            6 => $kernel!(6),
            7 => $kernel!(7),
            8 => $kernel!(8),
            n => unreachable!("{n} rows in a tile"),
        }
    };
}

/// `out[r] = Σ strips · x[r]` for up to [`STRIP_ROWS`] activation rows.
fn strip_tile(ty: KType, strips: &[Strip], x: &[&[Q8KBlock]], out: &mut [[f32; STRIP]]) {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni"
    ))]
    {
        fn by_rows<const NG: usize>(strips: &[Strip], x: &[&[Q8KBlock]], out: &mut [[f32; STRIP]]) {
            macro_rules! call {
                ($r:literal) => {{
                    #[allow(unsafe_code)]
                    // SAFETY: this branch is compiled only when the build targets AVX-512 F,
                    // BW and VNNI, so every CPU this binary runs on has them.
                    unsafe {
                        avx512::strip_tile::<$r, NG>(strips, x, out)
                    }
                }};
            }
            by_rows!(x.len(), call);
        }
        match ty {
            KType::Q4K => by_rows::<8>(strips, x, out),
            KType::Q6K => by_rows::<16>(strips, x, out),
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
    for (i, x) in x.chunks(avx2::STRIP_ROWS).enumerate() {
        let out = &mut out[i * avx2::STRIP_ROWS..];
        #[allow(unsafe_code)]
        // SAFETY: this branch is compiled only when the build targets AVX2 and FMA, so every
        // CPU this binary runs on has them.
        unsafe {
            match (ty, x.len()) {
                (KType::Q4K, 1) => avx2::strip_tile::<1, 8>(strips, x, out),
                (KType::Q4K, 2) => avx2::strip_tile::<2, 8>(strips, x, out),
                (KType::Q4K, 3) => avx2::strip_tile::<3, 8>(strips, x, out),
                (KType::Q6K, 1) => avx2::strip_tile::<1, 16>(strips, x, out),
                (KType::Q6K, 2) => avx2::strip_tile::<2, 16>(strips, x, out),
                (KType::Q6K, 3) => avx2::strip_tile::<3, 16>(strips, x, out),
                (_, n) => unreachable!("{n} rows in a strip tile"),
            }
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

fn read_f16(bytes: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

/// Scale and minimum of sub-block `j` (of 32 weights) of a Q4_K block, from its 12 packed
/// bytes: 6 bits each, the high bits of sub-blocks 4..8 stored in the top bits of 0..8.
fn q4k_scale_min(j: usize, packed: &[u8]) -> (u8, u8) {
    if j < 4 {
        (packed[j] & 63, packed[j + 4] & 63)
    } else {
        (
            (packed[j + 4] & 0x0F) | ((packed[j - 4] >> 6) << 4),
            (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4),
        )
    }
}

/// All 8 scales and minima of a Q4_K block at once (as [`q4k_scale_min`], four bytes at a
/// time): the low 6 bits of bytes 0..4 and 4..8 are the first four of each; the last four are
/// the nibbles of bytes 8..12 under the top two bits of bytes 0..4 and 4..8.
fn q4k_scales_mins(packed: &[u8]) -> ([u8; 8], [u8; 8]) {
    let word =
        |i: usize| u32::from_le_bytes(packed[4 * i..4 * i + 4].try_into().expect("12 bytes"));
    let (w0, w1, w2) = (word(0), word(1), word(2));
    let (six, four, two) = (0x3F3F_3F3F, 0x0F0F_0F0F, 0x0303_0303);
    let scales_hi = (w2 & four) | (((w0 >> 6) & two) << 4);
    let mins_hi = ((w2 >> 4) & four) | (((w1 >> 6) & two) << 4);
    let join = |lo: u32, hi: u32| (u64::from(lo) | (u64::from(hi) << 32)).to_le_bytes();
    (join(w0 & six, scales_hi), join(w1 & six, mins_hi))
}

/// Unpacks one superblock of `ty`.
///
/// # Panics
/// If `block` is not `ty.block_bytes()` long.
pub fn unpack(ty: KType, block: &[u8], out: &mut Unpacked) {
    assert_eq!(block.len(), ty.block_bytes(), "superblock size");
    match ty {
        KType::Q4K => {
            let d = read_f16(block, 0);
            let dmin = read_f16(block, 2);
            let (scales, mins) = q4k_scales_mins(&block[4..16]);
            for (j, (&s, &m)) in scales.iter().zip(&mins).enumerate() {
                let offset = -dmin * f32::from(m);
                out.scales[2 * j] = i16::from(s);
                out.scales[2 * j + 1] = i16::from(s);
                out.offsets[2 * j] = offset;
                out.offsets[2 * j + 1] = offset;
            }
            // 64 weights per 32 bytes: low nibbles first, then high nibbles.
            for (qs, values) in block[16..144]
                .chunks_exact(32)
                .zip(out.values.chunks_exact_mut(64))
            {
                let (lo, hi) = values.split_at_mut(32);
                for ((l, h), &q) in lo.iter_mut().zip(hi).zip(qs) {
                    *l = q & 0x0F;
                    *h = q >> 4;
                }
            }
            out.d = d;
        }
        KType::Q6K => {
            let d = read_f16(block, 208);
            // Two halves of 128: 64 bytes of low nibbles, 32 bytes of high bit pairs each.
            for half in 0..2 {
                let ql = &block[half * 64..half * 64 + 64];
                let qh = &block[128 + half * 32..128 + half * 32 + 32];
                let v = &mut out.values[half * 128..half * 128 + 128];
                for l in 0..32 {
                    v[l] = (ql[l] & 0x0F) | ((qh[l] & 3) << 4);
                    v[l + 32] = (ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4);
                    v[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                    v[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
                }
            }
            for g in 0..GROUPS {
                let s = block[192 + g] as i8;
                out.scales[g] = i16::from(s);
                out.offsets[g] = -32.0 * d * f32::from(s);
            }
            out.d = d;
        }
    }
    out.scales[GROUPS..].fill(0);
}

/// Dequantizes one row of superblocks (tests, and the dense fallback).
#[must_use]
pub fn dequantize_row(ty: KType, row: &[u8]) -> Vec<f32> {
    let mut u = Unpacked::ZERO;
    let mut out = Vec::with_capacity(row.len() / ty.block_bytes() * QK);
    for block in row.chunks_exact(ty.block_bytes()) {
        unpack(ty, block, &mut u);
        out.extend(
            u.values.iter().enumerate().map(|(i, &v)| {
                u.d * f32::from(u.scales[i / 16]) * f32::from(v) + u.offsets[i / 16]
            }),
        );
    }
    out
}

/// The portable product of unpacked weights with quantized activations, the reference for
/// the SIMD kernel.
#[must_use]
pub fn dot_unpacked(w: &[Unpacked], x: &[Q8KBlock]) -> f32 {
    let mut acc = 0f32;
    for (w, x) in w.iter().zip(x) {
        let mut isum = 0i32;
        for g in 0..GROUPS {
            let s: i32 = w.values[g * 16..g * 16 + 16]
                .iter()
                .zip(&x.qs[g * 16..g * 16 + 16])
                .map(|(&u, &q)| i32::from(u) * i32::from(q))
                .sum();
            isum += i32::from(w.scales[g]) * s;
        }
        acc += w.d * x.d * isum as f32;
        for g in 0..GROUPS {
            acc += w.offsets[g] * x.sums[g];
        }
    }
    acc
}

/// llama.cpp's arithmetic on the packed blocks (`ggml_vec_dot_q4_K_q8_K` and
/// `ggml_vec_dot_q6_K_q8_K`, reference versions): a second, independent reference.
#[must_use]
pub fn dot_packed(ty: KType, row: &[u8], x: &[Q8KBlock]) -> f32 {
    let mut acc = 0f32;
    let mut u = Unpacked::ZERO;
    for (block, x) in row.chunks_exact(ty.block_bytes()).zip(x) {
        unpack(ty, block, &mut u);
        match ty {
            KType::Q4K => {
                let (d, dmin) = (read_f16(block, 0), read_f16(block, 2));
                let (mut main, mut mins) = (0i32, 0i32);
                for j in 0..8 {
                    let (s, m) = q4k_scale_min(j, &block[4..16]);
                    let dot: i32 = (j * 32..j * 32 + 32)
                        .map(|i| i32::from(u.values[i]) * i32::from(x.qs[i]))
                        .sum();
                    main += i32::from(s) * dot;
                    mins +=
                        i32::from(m) * (i32::from(x.bsums[2 * j]) + i32::from(x.bsums[2 * j + 1]));
                }
                acc += d * x.d * main as f32 - dmin * x.d * mins as f32;
            }
            KType::Q6K => {
                let d = read_f16(block, 208);
                let mut sum = 0i32;
                for g in 0..GROUPS {
                    let dot: i32 = (g * 16..g * 16 + 16)
                        .map(|i| (i32::from(u.values[i]) - 32) * i32::from(x.qs[i]))
                        .sum();
                    sum += i32::from(block[192 + g] as i8) * dot;
                }
                acc += d * x.d * sum as f32;
            }
        }
    }
    acc
}

/// Products of one row of unpacked weights with up to [`TILE_ROWS`] activation rows over the
/// same superblocks: `out[r] = Σ w · x[r]`.
fn tile(w: &[Unpacked], x: &[&[Q8KBlock]], out: &mut [f32; TILE_ROWS]) {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni"
    ))]
    {
        macro_rules! call {
            ($r:literal) => {{
                #[allow(unsafe_code)]
                // SAFETY: this branch is compiled only when the build targets AVX-512 F, BW
                // and VNNI, so every CPU this binary runs on has them.
                unsafe {
                    avx512::tile::<$r>(w, x, out)
                }
            }};
        }
        by_rows!(x.len(), call);
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
        #[allow(unsafe_code)]
        // SAFETY: this branch is compiled only when the build targets AVX2 and FMA, so every
        // CPU this binary runs on has them.
        unsafe {
            match x.len() {
                1 => avx2::tile::<1>(w, x, out),
                2 => avx2::tile::<2>(w, x, out),
                3 => avx2::tile::<3>(w, x, out),
                4 => avx2::tile::<4>(w, x, out),
                5 => avx2::tile::<5>(w, x, out),
                6 => avx2::tile::<6>(w, x, out),
                7 => avx2::tile::<7>(w, x, out),
                8 => avx2::tile::<8>(w, x, out),
                n => unreachable!("{n} rows in a tile"),
            }
        }
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )))]
    for (v, x) in out.iter_mut().zip(x) {
        *v = dot_unpacked(w, x);
    }
}

thread_local! {
    /// Each worker's unpacked panel, kept between calls.
    static PANEL: RefCell<Vec<Unpacked>> = const { RefCell::new(Vec::new()) };
}

/// Quantizes every row of `x` (rows of `k`) on the worker pool.
///
/// # Panics
/// If `k` is not a multiple of 256 or `x` not whole rows.
#[must_use]
pub fn quantize_rows(x: &[f32], k: usize) -> Vec<Q8KBlock> {
    quantize_rows_with(x.len(), k, |at, block| {
        quantize_block(&x[at..at + QK], block);
    })
}

/// Quantized rows (of `k`) of `n` values, each block of 256 made by `quantize(at, block)`
/// (`at`: the index of the block's first value) on the worker pool: [`quantize_rows`], or
/// values quantized as they are computed, never all held at once.
///
/// # Panics
/// If `k` is not a multiple of 256 or `n` of `k`.
#[must_use]
pub fn quantize_rows_with(
    n: usize,
    k: usize,
    quantize: impl Fn(usize, &mut Q8KBlock) + Sync,
) -> Vec<Q8KBlock> {
    assert!(
        k.is_multiple_of(QK) && n.is_multiple_of(k),
        "{n} values in rows of {k}: not whole superblocks"
    );
    let per_row = k / QK;
    let len = n / QK;
    let mut out = Vec::with_capacity(len);
    if len == 0 {
        return out;
    }
    // A few rows per task: quantizing is cheap next to handing out a task. Each block is
    // cleared by the task that quantizes it, in parallel and just before (the calling thread
    // alone cleared the whole vector before: 1% of a question's prompt pass).
    let rows_per_task = 16;
    let slots = &mut out.spare_capacity_mut()[..len];
    crate::parallel::fill_chunks(slots, rows_per_task * per_row, |task, blocks| {
        let first = task * rows_per_task * k;
        for (b, slot) in blocks.iter_mut().enumerate() {
            quantize(first + b * QK, slot.write(Q8KBlock::ZERO));
        }
    });
    // SAFETY: `fill_chunks` hands every chunk of the `len` slots to one task, which writes
    // each of its slots (`slot.write`).
    #[allow(unsafe_code)]
    unsafe {
        out.set_len(len);
    }
    out
}

/// `out = x · Wᵀ` for `x` of `rows × k` and `W` of `n_out × k` superblocks of `ty`.
///
/// Runs on candle's worker pool, in panels of output features: each panel is unpacked a few
/// superblocks at a time and multiplied with every row of `x`.
///
/// # Panics
///
/// If `k` is not a multiple of 256 or the slices do not have the sizes the dimensions imply.
pub fn matmul(ty: KType, weights: &[u8], n_out: usize, k: usize, x: &[f32], out: &mut [f32]) {
    assert_eq!(k % QK, 0, "row length {k} is not a multiple of {QK}");
    let rows = x.len() / k;
    assert_eq!(x.len(), rows * k, "activation size");
    let acts = quantize_rows(x, k);
    matmul_quantized(ty, weights, n_out, k, &acts, out);
}

/// [`matmul_quantized`] into a new vector of `rows × n_out` values. A prompt's product (on
/// strips) writes it without zeroing it first.
///
/// # Panics
///
/// As [`matmul`].
#[must_use]
pub fn matmul_quantized_vec(
    ty: KType,
    weights: &[u8],
    n_out: usize,
    k: usize,
    acts: &[Q8KBlock],
) -> Vec<f32> {
    assert_eq!(k % QK, 0, "row length {k} is not a multiple of {QK}");
    let per_row = k / QK;
    if acts.len() / per_row >= STRIP_MIN_ROWS {
        let threads = candle_core::utils::get_num_threads().max(1);
        return crate::strip_product::matmul_new(ty, weights, n_out, per_row, acts, threads);
    }
    let mut out = vec![0f32; acts.len() / per_row * n_out];
    matmul_quantized(ty, weights, n_out, k, acts, &mut out);
    out
}

/// [`matmul`] with activations already quantized by [`quantize_rows`] (several products of
/// the same input quantize it once).
///
/// # Panics
///
/// As [`matmul`].
pub fn matmul_quantized(
    ty: KType,
    weights: &[u8],
    n_out: usize,
    k: usize,
    acts: &[Q8KBlock],
    out: &mut [f32],
) {
    assert_eq!(k % QK, 0, "row length {k} is not a multiple of {QK}");
    let per_row = k / QK;
    let bb = ty.block_bytes();
    let row_bytes = per_row * bb;
    assert_eq!(weights.len(), n_out * row_bytes, "weight size");
    let rows = acts.len() / per_row;
    assert_eq!(out.len(), rows * n_out, "output size");
    if rows == 0 || n_out == 0 {
        return;
    }
    let threads = candle_core::utils::get_num_threads().max(1);
    if rows >= STRIP_MIN_ROWS {
        return crate::strip_product::matmul(ty, weights, n_out, per_row, acts, out, threads);
    }
    if rows == 1 && FAST {
        return matvec(ty, weights, n_out, acts, out, threads);
    }
    // Enough panels for every worker to take several (at most 128 features: 128 rows of 8
    // unpacked superblocks are 384 KiB, which stays in L2).
    let width = n_out.div_ceil(threads * 4).clamp(1, 128);
    crate::parallel::fill_column_blocks(out, n_out, width, |_, block| {
        PANEL.with(|panel| {
            let mut panel = panel.borrow_mut();
            let step = SUPERBLOCKS_PER_STEP.min(per_row);
            if panel.len() < block.width * step {
                panel.resize(block.width * step, Unpacked::ZERO);
            }
            let mut sums = [0f32; TILE_ROWS];
            for first in (0..per_row).step_by(step) {
                let kc = step.min(per_row - first);
                for f in 0..block.width {
                    let at = (block.start + f) * row_bytes + first * bb;
                    for (j, u) in panel[f * kc..(f + 1) * kc].iter_mut().enumerate() {
                        unpack(ty, &weights[at + j * bb..at + (j + 1) * bb], u);
                    }
                }
                for r0 in (0..rows).step_by(TILE_ROWS) {
                    let rn = TILE_ROWS.min(rows - r0);
                    let mut xs: [&[Q8KBlock]; TILE_ROWS] = [&[]; TILE_ROWS];
                    for (i, r) in (r0..r0 + rn).enumerate() {
                        xs[i] = &acts[r * per_row + first..r * per_row + first + kc];
                    }
                    for f in 0..block.width {
                        tile(&panel[f * kc..(f + 1) * kc], &xs[..rn], &mut sums);
                        for (r, row) in (r0..r0 + rn).enumerate() {
                            let out = &mut block.row_mut(row)[f];
                            if first == 0 {
                                *out = sums[r];
                            } else {
                                *out += sums[r];
                            }
                        }
                    }
                }
            }
        });
    });
}

/// The order [`dot_row`] wants Q4_K's activations in: within each 128, values 0..32, 64..96,
/// 32..64, 96..128, matching the low and high nibbles of 64 packed bytes.
#[must_use]
pub fn q4k_order(x: &Q8KBlock) -> [i8; QK] {
    let mut out = [0i8; QK];
    for half in 0..2 {
        let (src, dst) = (&x.qs[half * 128..], &mut out[half * 128..]);
        dst[..32].copy_from_slice(&src[..32]);
        dst[32..64].copy_from_slice(&src[64..96]);
        dst[64..96].copy_from_slice(&src[32..64]);
        dst[96..128].copy_from_slice(&src[96..128]);
    }
    out
}

/// One row of packed superblocks times one row of activations, straight from the GGUF blocks
/// (one token: every weight is read once, so nothing is unpacked into memory). `ordered` holds
/// [`q4k_order`] of each activation block for Q4_K (ignored for Q6_K).
///
/// # Panics
/// If the slices disagree in length.
#[must_use]
pub fn dot_row(ty: KType, row: &[u8], x: &[Q8KBlock], ordered: &[[i8; QK]]) -> f32 {
    assert_eq!(row.len(), x.len() * ty.block_bytes(), "row and activations");
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni"
    ))]
    #[allow(unsafe_code)]
    // SAFETY: compiled only when the build targets AVX-512 F, BW and VNNI.
    unsafe {
        match ty {
            KType::Q4K => avx512::dot_rows_q4k::<1>([row], x, ordered)[0],
            KType::Q6K => avx512::dot_rows_q6k::<1>([row], x)[0],
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
    #[allow(unsafe_code)]
    // SAFETY: compiled only when the build targets AVX2 and FMA.
    unsafe {
        let _ = ordered;
        match ty {
            KType::Q4K => avx2::dot_row_q4k(row, x),
            KType::Q6K => avx2::dot_row_q6k(row, x),
        }
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )))]
    {
        let _ = ordered;
        dot_packed(ty, row, x)
    }
}

/// One row of activations: every output feature is one [`dot_row`], in blocks per worker.
fn matvec(
    ty: KType,
    weights: &[u8],
    n_out: usize,
    acts: &[Q8KBlock],
    out: &mut [f32],
    threads: usize,
) {
    let row_bytes = acts.len() * ty.block_bytes();
    let ordered: Vec<[i8; QK]> = if ty == KType::Q4K && FAST_512 {
        acts.iter().map(q4k_order).collect()
    } else {
        Vec::new()
    };
    let per_task = n_out.div_ceil(threads * 8).max(16);
    crate::parallel::fill_chunks(out, per_task, |task, chunk| {
        let row = |i: usize| {
            let f = task * per_task + i;
            &weights[f * row_bytes..(f + 1) * row_bytes]
        };
        let n = chunk.len();
        let mut pairs = chunk.chunks_exact_mut(2);
        for (p, o) in (&mut pairs).enumerate() {
            o.copy_from_slice(&dot_rows2(ty, [row(2 * p), row(2 * p + 1)], acts, &ordered));
        }
        if let [o] = pairs.into_remainder() {
            *o = dot_row(ty, row(n - 1), acts, &ordered);
        }
    });
}

/// Two rows' [`dot_row`]s, in one pass over the activations where a kernel takes two.
fn dot_rows2(ty: KType, rows: [&[u8]; 2], x: &[Q8KBlock], ordered: &[[i8; QK]]) -> [f32; 2] {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni"
    ))]
    {
        for r in rows {
            assert_eq!(r.len(), x.len() * ty.block_bytes(), "row and activations");
        }
        #[allow(unsafe_code)]
        // SAFETY: compiled only when the build targets AVX-512 F, BW and VNNI.
        unsafe {
            match ty {
                KType::Q4K => avx512::dot_rows_q4k::<2>(rows, x, ordered),
                KType::Q6K => avx512::dot_rows_q6k::<2>(rows, x),
            }
        }
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni"
    )))]
    [
        dot_row(ty, rows[0], x, ordered),
        dot_row(ty, rows[1], x, ordered),
    ]
}

/// Activation rows per [`strip_tile`] call: on AVX2 two of its tiles of three (eight would end
/// in a tile of two, which multiplies fewer rows per weight read), elsewhere [`STRIP_ROWS`].
const ROW_STEP: usize = if FAST && !FAST_512 { 6 } else { STRIP_ROWS };

/// Whether each strip meets every row before the next strip is read (on AVX2, where reading
/// the strips again for every few rows measured 20–30% slower: BENCHMARKS.md), or each few
/// rows meet every strip (AVX-512, as measured there).
const STRIPS_OUTER: bool = !FAST_512;

/// The k-quants on strips ([`crate::strip_product`]).
impl crate::strip_product::Format for KType {
    type Strip = Strip;
    type Act = Q8KBlock;
    const ZERO: Strip = Strip::ZERO;
    const STEP: usize = SUPERBLOCKS_PER_STEP;
    const ROWS: usize = ROW_STEP;
    const STRIPS_OUTER: bool = STRIPS_OUTER;
    const SCRATCH: &'static std::thread::LocalKey<RefCell<Vec<Strip>>> = &STRIPS;

    fn block_bytes(self) -> usize {
        KType::block_bytes(self)
    }

    fn build(self, blocks: &[&[u8]], out: &mut Strip) {
        build_strip(self, blocks, out);
    }

    fn tile(self, strips: &[Strip], x: &[&[Q8KBlock]], out: &mut [[f32; STRIP]]) {
        strip_tile(self, strips, x, out);
    }
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx512f",
    target_feature = "avx512bw",
    target_feature = "avx512vnni"
))]
mod avx512 {
    //! The integer kernel on 512-bit vectors. Loads go through `bytemuck::cast` from
    //! fixed-size arrays, so no pointer is dereferenced.
    use std::arch::x86_64::{
        __m256, __m256i, __m512, __m512i, _mm256_cvtepi32_ps, _mm256_cvtepi8_epi16,
        _mm256_cvtepu8_epi32, _mm256_fmadd_ps, _mm256_madd_epi16, _mm256_mul_ps, _mm256_set1_ps,
        _mm256_setzero_ps, _mm256_slli_epi32, _mm512_abs_ps, _mm512_and_si512,
        _mm512_broadcast_i64x4, _mm512_castsi128_si512, _mm512_castsi256_si512,
        _mm512_cmpeq_ps_mask, _mm512_cvtepi32_epi8, _mm512_cvtepi32_ps, _mm512_cvtps_epi32,
        _mm512_dpbusd_epi32, _mm512_dpwssd_epi32, _mm512_fmadd_ps, _mm512_maddubs_epi16,
        _mm512_max_ps, _mm512_min_ps, _mm512_mul_ps, _mm512_or_si512, _mm512_permutexvar_epi16,
        _mm512_reduce_add_epi32, _mm512_reduce_add_ps, _mm512_reduce_max_ps, _mm512_roundscale_ps,
        _mm512_set1_epi32, _mm512_set1_epi8, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_setzero_si512, _mm512_shuffle_i32x4, _mm512_sllv_epi16, _mm512_srli_epi16,
        _mm512_srlv_epi16, _mm512_sub_epi32, _mm512_unpackhi_epi32, _mm512_unpackhi_epi64,
        _mm512_unpacklo_epi32, _mm512_unpacklo_epi64, _mm512_zextps256_ps512,
        _mm512_zextsi256_si512, _mm_cvtepu8_epi16, _mm_set_epi64x, _MM_FROUND_NO_EXC,
        _MM_FROUND_TO_NEAREST_INT,
    };

    use super::{Q8KBlock, Strip, Unpacked, QK};

    /// For chunk `c` (weights 64c..64c+64), 16-bit lane `l` of `vpmaddubsw`'s output covers
    /// weights 64c + 2l and 64c + 2l + 1, in group 4c + l/8: the index that spreads the 16
    /// group scales over those lanes.
    const fn scale_index(c: usize) -> [i16; 32] {
        let mut idx = [0i16; 32];
        let mut l = 0;
        while l < 32 {
            idx[l] = (4 * c + l / 8) as i16;
            l += 1;
        }
        idx
    }
    const SCALE_INDEX: [[i16; 32]; 4] = [
        scale_index(0),
        scale_index(1),
        scale_index(2),
        scale_index(3),
    ];

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    fn load_u8(bytes: &[u8]) -> __m512i {
        let a: [u8; 64] = bytes[..64].try_into().expect("64 bytes");
        bytemuck::cast(a)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    fn load_i8(bytes: &[i8]) -> __m512i {
        let a: [i8; 64] = bytes[..64].try_into().expect("64 bytes");
        bytemuck::cast(a)
    }

    /// `out[r] = Σ_superblocks w · x[r]`, every slice the same number of superblocks.
    ///
    /// Plain loops over fixed-size arrays rather than `array::map`: closures are not inlined
    /// into a `#[target_feature]` function, and the accumulators must stay in registers.
    #[allow(clippy::needless_range_loop)] // indices over several arrays at once
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) fn tile<const RN: usize>(
        w: &[Unpacked],
        x: &[&[Q8KBlock]],
        out: &mut [f32; super::TILE_ROWS],
    ) {
        let mut index = [_mm512_setzero_si512(); 4];
        for (i, idx) in SCALE_INDEX.iter().enumerate() {
            index[i] = bytemuck::cast(*idx);
        }
        let zero = _mm512_setzero_ps();
        let mut facc = [zero; RN];
        for (sb, w) in w.iter().enumerate() {
            let mut xs: [&Q8KBlock; RN] = [&x[0][sb]; RN];
            for r in 1..RN {
                xs[r] = &x[r][sb];
            }
            let scales: __m512i = bytemuck::cast(w.scales);
            let mut acc = [_mm512_setzero_si512(); RN];
            for (c, idx) in index.iter().enumerate() {
                let values = load_u8(&w.values[c * 64..]);
                let spread = _mm512_permutexvar_epi16(*idx, scales);
                for r in 0..RN {
                    let pairs = _mm512_maddubs_epi16(values, load_i8(&xs[r].qs[c * 64..]));
                    acc[r] = _mm512_dpwssd_epi32(acc[r], pairs, spread);
                }
            }
            let offsets: __m512 = bytemuck::cast(w.offsets);
            let dw = _mm512_set1_ps(w.d);
            for r in 0..RN {
                let scale = _mm512_mul_ps(dw, _mm512_set1_ps(xs[r].d));
                let f = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r]), scale, facc[r]);
                let sums: __m512 = bytemuck::cast(xs[r].sums);
                facc[r] = _mm512_fmadd_ps(offsets, sums, f);
            }
        }
        for r in 0..RN {
            out[r] = _mm512_reduce_add_ps(facc[r]);
        }
    }

    /// [`super::interleave_portable`]: each 16 words of the 16 features' values a 16 × 16
    /// transpose (two rounds of unpacks within 128-bit lanes, two of lane shuffles).
    #[allow(clippy::needless_range_loop)] // indices over several arrays at once
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) fn interleave(unpacked: &[Unpacked; super::STRIP], values: &mut [[u8; 64]; QK / 4]) {
        for quarter in 0..4 {
            let mut r = [_mm512_setzero_si512(); 16];
            for f in 0..16 {
                r[f] = load_u8(&unpacked[f].values[64 * quarter..]);
            }
            // Rows 2i and 2i + 1 interleaved by words, then rows 4i..4i + 4 by pairs of
            // words: each 128-bit lane of u[4i + j] holds word 4·lane + j of rows 4i..4i + 4.
            let mut t = [_mm512_setzero_si512(); 16];
            for i in 0..8 {
                t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
            }
            let mut u = [_mm512_setzero_si512(); 16];
            for i in 0..4 {
                u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
                u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
                u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
                u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
            }
            // Word 4·lane + j of all 16 rows: lane `lane` of u[j], u[4 + j], u[8 + j], u[12 + j].
            for j in 0..4 {
                let a_even = _mm512_shuffle_i32x4::<0x88>(u[j], u[4 + j]);
                let a_odd = _mm512_shuffle_i32x4::<0xdd>(u[j], u[4 + j]);
                let b_even = _mm512_shuffle_i32x4::<0x88>(u[8 + j], u[12 + j]);
                let b_odd = _mm512_shuffle_i32x4::<0xdd>(u[8 + j], u[12 + j]);
                let rows = [
                    _mm512_shuffle_i32x4::<0x88>(a_even, b_even),
                    _mm512_shuffle_i32x4::<0x88>(a_odd, b_odd),
                    _mm512_shuffle_i32x4::<0xdd>(a_even, b_even),
                    _mm512_shuffle_i32x4::<0xdd>(a_odd, b_odd),
                ];
                for (lane, row) in rows.into_iter().enumerate() {
                    values[16 * quarter + 4 * lane + j] = bytemuck::cast(row);
                }
            }
        }
    }

    /// [`super::quantize_block_portable`], sixteen values per vector (one group of 16 each).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) fn quantize_block(x: &[f32; QK], out: &mut Q8KBlock) {
        let mut v = [_mm512_setzero_ps(); QK / 16];
        for (i, c) in v.iter_mut().enumerate() {
            let a: [f32; 16] = x[16 * i..16 * i + 16].try_into().expect("16 values");
            *c = bytemuck::cast(a);
        }
        let mut m = _mm512_setzero_ps();
        for c in &v {
            m = _mm512_max_ps(m, _mm512_abs_ps(*c));
        }
        let amax = _mm512_reduce_max_ps(m);
        if amax.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            *out = Q8KBlock::ZERO;
            return;
        }
        // The first value of that magnitude, with its sign, as the portable loop finds it.
        let target = _mm512_set1_ps(amax);
        let mut max = amax;
        for (i, c) in v.iter().enumerate() {
            let hits = _mm512_cmpeq_ps_mask(_mm512_abs_ps(*c), target);
            if hits != 0 {
                max = x[16 * i + hits.trailing_zeros() as usize];
                break;
            }
        }
        let iscale = -127.0 / max;
        let scale = _mm512_set1_ps(iscale);
        let cap = _mm512_set1_ps(127.0);
        for (i, c) in v.iter().enumerate() {
            let r = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm512_mul_ps(scale, *c),
            );
            let q = _mm512_cvtps_epi32(_mm512_min_ps(r, cap));
            #[allow(clippy::cast_possible_truncation)] // 16 values of at most 127 in magnitude
            {
                out.bsums[i] = _mm512_reduce_add_epi32(q) as i16;
            }
            let bytes: [i8; 16] = bytemuck::cast(_mm512_cvtepi32_epi8(q));
            out.qs[16 * i..16 * i + 16].copy_from_slice(&bytes);
        }
        out.d = 1.0 / iscale;
        super::finish_block(out);
    }

    /// `out[r] = Σ strips · x[r]`: 16 features of every strip at once, `NG` scale groups per
    /// superblock.
    #[allow(clippy::needless_range_loop)] // indices over several arrays at once
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) fn strip_tile<const RN: usize, const NG: usize>(
        strips: &[Strip],
        x: &[&[Q8KBlock]],
        out: &mut [[f32; super::STRIP]],
    ) {
        let per_group = 64 / NG;
        let zero = _mm512_setzero_ps();
        let mut facc = [zero; RN];
        for (sb, s) in strips.iter().enumerate() {
            let mut xs: [&Q8KBlock; RN] = [&x[0][sb]; RN];
            for r in 1..RN {
                xs[r] = &x[r][sb];
            }
            let mut q4: [&[i32; 64]; RN] = [bytemuck::cast_ref(&xs[0].qs); RN];
            for r in 1..RN {
                q4[r] = bytemuck::cast_ref(&xs[r].qs);
            }
            let mut block = [zero; RN];
            for g in 0..NG {
                let mut acc = [_mm512_setzero_si512(); RN];
                for k4 in g * per_group..(g + 1) * per_group {
                    let w: __m512i = bytemuck::cast(s.values[k4]);
                    for r in 0..RN {
                        acc[r] = _mm512_dpbusd_epi32(acc[r], w, _mm512_set1_epi32(q4[r][k4]));
                    }
                }
                let scale: __m512 = bytemuck::cast(s.scales[g]);
                for r in 0..RN {
                    block[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r]), scale, block[r]);
                }
            }
            for r in 0..RN {
                facc[r] = _mm512_fmadd_ps(block[r], _mm512_set1_ps(xs[r].d), facc[r]);
            }
            for g in 0..NG {
                let offset: __m512 = bytemuck::cast(s.offsets[g]);
                for r in 0..RN {
                    let sum = if NG == 8 {
                        xs[r].sums32[g]
                    } else {
                        xs[r].sums[g]
                    };
                    facc[r] = _mm512_fmadd_ps(offset, _mm512_set1_ps(sum), facc[r]);
                }
            }
        }
        for r in 0..RN {
            out[r] = bytemuck::cast(facc[r]);
        }
    }

    /// How far past a superblock a one-token kernel reading `r` rows of `row_bytes` at once asks
    /// for the weights: the same superblock in rows read later, at least
    /// [`KQUANT_AHEAD`] on. Rows are read `r` at a time from one contiguous run, so `r` streams
    /// advance side by side: asking for what lies a fixed distance past each stream would ask for
    /// the next stream's lines (already read) and leave the first lines of the next `r` rows to the
    /// hardware prefetcher, which does not cross a page.
    fn prefetch_distance(r: usize, row_bytes: usize) -> usize {
        let group = r * row_bytes;
        group * KQUANT_AHEAD.div_ceil(group.max(1))
    }

    /// The least distance of [`prefetch_distance`] (`cargo run -p cairn-generator --example
    /// kquant_matvec` on the AMD Zen 5, one thread: Q4_K's 864-byte rows read at 25 GB/s with 4 KiB,
    /// 31 with 8 KiB, 34 with 16 KiB; Q6_K's 7,350-byte rows, two rows on, at 28–31 GB/s with
    /// any of them: BENCHMARKS.md).
    const KQUANT_AHEAD: usize = 8192;

    /// For Q4_K: 16-bit lanes 0..16 take scale `a`, lanes 16..32 scale `b`.
    const fn pair_index(a: i16, b: i16) -> [i16; 32] {
        let mut idx = [0i16; 32];
        let mut l = 0;
        while l < 32 {
            idx[l] = if l < 16 { a } else { b };
            l += 1;
        }
        idx
    }
    const Q4K_INDEX: [[i16; 32]; 4] = [
        pair_index(0, 2),
        pair_index(1, 3),
        pair_index(4, 6),
        pair_index(5, 7),
    ];

    /// [`super::dot_row`] for Q4_K, `R` rows at once (sharing the activations' loads, with
    /// independent sums). Each 64 packed bytes hold four sub-blocks: low nibbles are
    /// sub-blocks 0 and 2 (of the 128 values they cover), high nibbles 1 and 3, which is the
    /// order of `ordered`.
    #[allow(clippy::needless_range_loop)] // indices over several arrays at once
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) fn dot_rows_q4k<const R: usize>(
        rows: [&[u8]; R],
        x: &[Q8KBlock],
        ordered: &[[i8; QK]],
    ) -> [f32; R] {
        let mut index = [_mm512_setzero_si512(); 4];
        for (i, idx) in Q4K_INDEX.iter().enumerate() {
            index[i] = bytemuck::cast(*idx);
        }
        let nibble = _mm512_set1_epi8(0x0F);
        let mut facc = [_mm512_setzero_ps(); R];
        // The minima's part, `dmin · Σ_j m_j · dₓ · Σ_{i ∈ j} q_i`: eight lanes, one per
        // sub-block, subtracted at the end.
        let mut macc = [_mm256_setzero_ps(); R];
        let ahead = prefetch_distance(R, rows[0].len());
        for (sb, (x, xo)) in x.iter().zip(ordered).enumerate() {
            let sums: __m256 = bytemuck::cast(x.sums32);
            let mut xlo = [_mm512_setzero_si512(); 2];
            let mut xhi = [_mm512_setzero_si512(); 2];
            for half in 0..2 {
                xlo[half] = load_i8(&xo[128 * half..]);
                xhi[half] = load_i8(&xo[128 * half + 64..]);
            }
            for r in 0..R {
                let block = &rows[r][144 * sb..144 * (sb + 1)];
                for line in 0..3 {
                    crate::kernels::prefetch_at(block.as_ptr(), ahead + 64 * line);
                }
                let d = super::read_f16(block, 0) * x.d;
                let dmin = super::read_f16(block, 2);
                let (sc, mins) = super::q4k_scales_mins(&block[4..16]);
                let mins = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_set_epi64x(
                    0,
                    i64::from_le_bytes(mins),
                )));
                macc[r] = _mm256_fmadd_ps(_mm256_mul_ps(mins, sums), _mm256_set1_ps(dmin), macc[r]);
                let scales = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_set_epi64x(
                    0,
                    i64::from_le_bytes(sc),
                )));
                let mut acc = _mm512_setzero_si512();
                for half in 0..2 {
                    let packed = load_u8(&block[16 + 64 * half..]);
                    let lo = _mm512_and_si512(packed, nibble);
                    let hi = _mm512_and_si512(_mm512_srli_epi16(packed, 4), nibble);
                    let slo = _mm512_permutexvar_epi16(index[2 * half], scales);
                    let shi = _mm512_permutexvar_epi16(index[2 * half + 1], scales);
                    acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(lo, xlo[half]), slo);
                    acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(hi, xhi[half]), shi);
                }
                facc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(d), facc[r]);
            }
        }
        let mut out = [0f32; R];
        for r in 0..R {
            out[r] = _mm512_reduce_add_ps(facc[r])
                - _mm512_reduce_add_ps(_mm512_zextps256_ps512(macc[r]));
        }
        out
    }

    /// [`super::dot_row`] for Q6_K, `R` rows at once (sharing the activations' loads, with
    /// independent sums): each half of 128 values is 64 bytes of low nibbles (values 0..64
    /// low, 64..128 high) and 32 bytes of high bit pairs, one pair per value in each of the
    /// four 32-value quarters; the −32 offset comes out of the integer sum through the
    /// activations' group sums.
    #[allow(clippy::needless_range_loop)] // indices over several arrays at once
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) fn dot_rows_q6k<const R: usize>(rows: [&[u8]; R], x: &[Q8KBlock]) -> [f32; R] {
        let mut index = [_mm512_setzero_si512(); 4];
        for (i, idx) in SCALE_INDEX.iter().enumerate() {
            index[i] = bytemuck::cast(*idx);
        }
        let nibble = _mm512_set1_epi8(0x0F);
        let top = _mm512_set1_epi8(0x30);
        // Lanes 0..16 (bytes of the first quarter) and 16..32 (second): how far each quarter's
        // bit pair moves to reach bits 4 and 5.
        let left_lo: __m512i = bytemuck::cast(pair_index(4, 2));
        let right_hi: __m512i = bytemuck::cast(pair_index(0, 2));
        let mut facc = [_mm512_setzero_ps(); R];
        let ahead = prefetch_distance(R, rows[0].len());
        for (sb, x) in x.iter().enumerate() {
            let bsums: __m256i = bytemuck::cast(x.bsums);
            let mut xlo = [_mm512_setzero_si512(); 2];
            let mut xhi = [_mm512_setzero_si512(); 2];
            for half in 0..2 {
                xlo[half] = load_i8(&x.qs[128 * half..]);
                xhi[half] = load_i8(&x.qs[128 * half + 64..]);
            }
            for r in 0..R {
                let block = &rows[r][210 * sb..210 * (sb + 1)];
                for line in 0..4 {
                    crate::kernels::prefetch_at(block.as_ptr(), ahead + 64 * line);
                }
                let d = super::read_f16(block, 208) * x.d;
                let sc: [u8; 16] = block[192..208].try_into().expect("16 scales");
                let sc16 = _mm256_cvtepi8_epi16(bytemuck::cast(sc));
                let scales = _mm512_castsi256_si512(sc16);
                // 32 · Σ_g scale_g · bsum_g, as eight partial sums.
                let offset = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bsums), 5);
                let mut acc = _mm512_setzero_si512();
                for half in 0..2 {
                    let ql = load_u8(&block[64 * half..]);
                    let qh: [u8; 32] = block[128 + 32 * half..160 + 32 * half]
                        .try_into()
                        .expect("32 bytes");
                    let qh = _mm512_broadcast_i64x4(bytemuck::cast(qh));
                    let lo = _mm512_or_si512(
                        _mm512_and_si512(ql, nibble),
                        _mm512_and_si512(_mm512_sllv_epi16(qh, left_lo), top),
                    );
                    let hi = _mm512_or_si512(
                        _mm512_and_si512(_mm512_srli_epi16(ql, 4), nibble),
                        _mm512_and_si512(_mm512_srlv_epi16(qh, right_hi), top),
                    );
                    let slo = _mm512_permutexvar_epi16(index[2 * half], scales);
                    let shi = _mm512_permutexvar_epi16(index[2 * half + 1], scales);
                    acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(lo, xlo[half]), slo);
                    acc = _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(hi, xhi[half]), shi);
                }
                let acc = _mm512_sub_epi32(acc, _mm512_zextsi256_si512(offset));
                facc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(d), facc[r]);
            }
        }
        let mut out = [0f32; R];
        for r in 0..R {
            out[r] = _mm512_reduce_add_ps(facc[r]);
        }
        out
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
    //! The integer kernel on 256-bit vectors, for CPUs without AVX-512 VNNI: `vpmaddubsw`
    //! (unsigned weights × signed activations, pairs summed to 16 bits, at most 2 · 63 · 127)
    //! then `vpmaddwd` by the group scales. Loads go through `bytemuck::cast` from fixed-size
    //! arrays, so no pointer is dereferenced.
    use std::arch::x86_64::{
        __m128i, __m256, __m256i, _mm256_add_epi16, _mm256_add_epi32, _mm256_and_si256,
        _mm256_broadcastsi128_si256, _mm256_cvtepi32_ps, _mm256_cvtepi8_epi16,
        _mm256_cvtepu8_epi32, _mm256_fmadd_ps, _mm256_fnmadd_ps, _mm256_madd_epi16,
        _mm256_maddubs_epi16, _mm256_mul_ps, _mm256_or_si256, _mm256_set1_epi32, _mm256_set1_epi8,
        _mm256_set1_ps, _mm256_setzero_ps, _mm256_setzero_si256, _mm256_shuffle_epi8,
        _mm256_slli_epi16, _mm256_slli_epi32, _mm256_srli_epi16, _mm256_sub_epi32,
        _mm_cvtepu8_epi16, _mm_set_epi64x,
    };

    use super::{Q8KBlock, Strip, Unpacked};
    use crate::kernels::avx2::hsum;

    /// Activation rows per call: two accumulators per row and the operands fit the 16
    /// vector registers.
    pub(super) const ROWS: usize = 8;

    /// For 32 values `32c..32c + 32`, lanes 0..8 of `vpmaddubsw`'s 16-bit output are in group
    /// `2c` and lanes 8..16 in group `2c + 1`. With the 8 scales of groups `8⌊c/4⌋..` in both
    /// 128-bit halves of a vector, the `vpshufb` that spreads those two scales over the lanes.
    const fn spread_mask(c: usize) -> [u8; 32] {
        let mut m = [0u8; 32];
        let mut b = 0;
        while b < 32 {
            let scale = 2 * (c % 4) + b / 16;
            m[b] = (2 * scale + b % 2) as u8;
            b += 1;
        }
        m
    }
    const SPREAD: [[u8; 32]; 4] = [
        spread_mask(0),
        spread_mask(1),
        spread_mask(2),
        spread_mask(3),
    ];

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn load_u8(bytes: &[u8]) -> __m256i {
        let a: [u8; 32] = bytes[..32].try_into().expect("32 bytes");
        bytemuck::cast(a)
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn load_i8(bytes: &[i8]) -> __m256i {
        let a: [i8; 32] = bytes[..32].try_into().expect("32 bytes");
        bytemuck::cast(a)
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn masks() -> [__m256i; 4] {
        let mut out = [_mm256_setzero_si256(); 4];
        for (m, s) in out.iter_mut().zip(&SPREAD) {
            *m = bytemuck::cast(*s);
        }
        out
    }

    /// 16 scales as two vectors: scales 0..8 in both halves of the first, 8..16 of the second.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn scale_halves(scales: [i16; 16]) -> [__m256i; 2] {
        let halves: [__m128i; 2] = bytemuck::cast(scales);
        [
            _mm256_broadcastsi128_si256(halves[0]),
            _mm256_broadcastsi128_si256(halves[1]),
        ]
    }

    /// `out[r] = Σ_superblocks w · x[r]` for `RN` ≤ [`ROWS`] rows, every slice the same
    /// number of superblocks.
    #[allow(clippy::needless_range_loop)] // indices over several arrays at once
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn tile<const RN: usize>(w: &[Unpacked], x: &[&[Q8KBlock]], out: &mut [f32]) {
        let masks = masks();
        let zero = _mm256_setzero_ps();
        let mut facc = [zero; RN];
        for (sb, w) in w.iter().enumerate() {
            let mut xs: [&Q8KBlock; RN] = [&x[0][sb]; RN];
            for r in 1..RN {
                xs[r] = &x[r][sb];
            }
            let scales: [i16; 16] = w.scales[..16].try_into().expect("16 scales");
            let halves = scale_halves(scales);
            let mut acc = [_mm256_setzero_si256(); RN];
            for c in 0..8 {
                let values = load_u8(&w.values[32 * c..]);
                let spread = _mm256_shuffle_epi8(halves[c / 4], masks[c % 4]);
                for r in 0..RN {
                    let pairs = _mm256_maddubs_epi16(values, load_i8(&xs[r].qs[32 * c..]));
                    acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(pairs, spread));
                }
            }
            let offsets: [__m256; 2] = bytemuck::cast(w.offsets);
            for r in 0..RN {
                let scale = _mm256_set1_ps(w.d * xs[r].d);
                let f = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r]), scale, facc[r]);
                let sums: [__m256; 2] = bytemuck::cast(xs[r].sums);
                let f = _mm256_fmadd_ps(offsets[0], sums[0], f);
                facc[r] = _mm256_fmadd_ps(offsets[1], sums[1], f);
            }
        }
        for r in 0..RN {
            out[r] = hsum(facc[r]);
        }
    }

    /// Activation rows per strip kernel call: with two 8-feature halves per strip, their
    /// 16-bit and 32-bit sums fill the 16 vector registers.
    pub(super) const STRIP_ROWS: usize = 3;

    /// `out[r] = Σ strips · x[r]` for `RN` ≤ [`STRIP_ROWS`] rows, `NG` scale groups per
    /// superblock. Each 64-byte strip row is two vectors of 8 features × 4 weights; without
    /// `vpdpbusd`, `vpmaddubsw` with four broadcast activations gives each feature two 16-bit
    /// pair sums, which are added in 16 bits for as many rows as cannot overflow (4-bit
    /// weights: 8 rows, 8 · 2 · 15 · 128 < 2¹⁵; 6-bit: 2) before one `vpmaddwd` widens them,
    /// multiplying by the group's integer scale. A superblock's groups add up in 32 bits (Q6_K,
    /// the larger: under 2²⁴ per group, 16 groups) and are scaled to f32 once. That is about
    /// half the multiplier work of the unpacked tile per product.
    #[allow(clippy::needless_range_loop)] // indices over several arrays at once
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn strip_tile<const RN: usize, const NG: usize>(
        strips: &[Strip],
        x: &[&[Q8KBlock]],
        out: &mut [[f32; super::STRIP]],
    ) {
        let run = if NG == 8 { 8 } else { 2 };
        let per_group = 64 / NG;
        let zero = _mm256_setzero_ps();
        let mut facc = [[zero; 2]; RN];
        for (sb, s) in strips.iter().enumerate() {
            let mut xs: [&Q8KBlock; RN] = [&x[0][sb]; RN];
            for r in 1..RN {
                xs[r] = &x[r][sb];
            }
            let mut q4: [&[i32; 64]; RN] = [bytemuck::cast_ref(&xs[0].qs); RN];
            for r in 1..RN {
                q4[r] = bytemuck::cast_ref(&xs[r].qs);
            }
            let mut acc = [[_mm256_setzero_si256(); 2]; RN];
            for g in 0..NG {
                let iscale: [__m256i; 2] = bytemuck::cast(s.iscales[g]);
                for k0 in (g * per_group..(g + 1) * per_group).step_by(run) {
                    let mut pairs = [[_mm256_setzero_si256(); 2]; RN];
                    for k4 in k0..k0 + run {
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
                            let scaled = _mm256_madd_epi16(pairs[r][h], iscale[h]);
                            acc[r][h] = _mm256_add_epi32(acc[r][h], scaled);
                        }
                    }
                }
            }
            let d: [__m256; 2] = bytemuck::cast(s.d);
            for r in 0..RN {
                let xd = _mm256_set1_ps(xs[r].d);
                for h in 0..2 {
                    let sum = _mm256_cvtepi32_ps(acc[r][h]);
                    facc[r][h] = _mm256_fmadd_ps(sum, _mm256_mul_ps(d[h], xd), facc[r][h]);
                }
            }
            for g in 0..NG {
                let offset: [__m256; 2] = bytemuck::cast(s.offsets[g]);
                for r in 0..RN {
                    let sum = _mm256_set1_ps(if NG == 8 {
                        xs[r].sums32[g]
                    } else {
                        xs[r].sums[g]
                    });
                    for h in 0..2 {
                        facc[r][h] = _mm256_fmadd_ps(offset[h], sum, facc[r][h]);
                    }
                }
            }
        }
        for r in 0..RN {
            out[r] = bytemuck::cast(facc[r]);
        }
    }

    /// For Q4_K's 8 scales as 16-bit values in both 128-bit halves: the `vpshufb` that
    /// broadcasts scale `i` to every lane.
    const fn broadcast_mask(i: usize) -> [u8; 32] {
        let mut m = [0u8; 32];
        let mut b = 0;
        while b < 32 {
            m[b] = (2 * i + b % 2) as u8;
            b += 1;
        }
        m
    }
    const BROADCAST: [[u8; 32]; 8] = [
        broadcast_mask(0),
        broadcast_mask(1),
        broadcast_mask(2),
        broadcast_mask(3),
        broadcast_mask(4),
        broadcast_mask(5),
        broadcast_mask(6),
        broadcast_mask(7),
    ];

    /// [`super::dot_row`] for Q4_K: each 32 packed bytes hold two sub-blocks of 32 values,
    /// the low nibbles the first, the high nibbles the second, so the activations are read in
    /// their own order. The minima's part, `dmin · Σ_j m_j · dₓ · Σ_{i ∈ j} q_i`, is one
    /// vector product with the activations' sums of 32.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn dot_row_q4k(row: &[u8], x: &[Q8KBlock]) -> f32 {
        let mut broadcast = [_mm256_setzero_si256(); 8];
        for (b, m) in broadcast.iter_mut().zip(&BROADCAST) {
            *b = bytemuck::cast(*m);
        }
        let nibble = _mm256_set1_epi8(0x0F);
        let mut facc = _mm256_setzero_ps();
        for (block, x) in row.chunks_exact(144).zip(x) {
            for line in 0..3 {
                crate::kernels::prefetch_ahead(block.as_ptr(), 64 * line);
            }
            let d = super::read_f16(block, 0) * x.d;
            let dmin = super::read_f16(block, 2);
            let (scales, mins) = super::q4k_scales_mins(&block[4..16]);
            let mins = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_set_epi64x(
                0,
                i64::from_le_bytes(mins),
            )));
            let sums: __m256 = bytemuck::cast(x.sums32);
            facc = _mm256_fnmadd_ps(_mm256_mul_ps(mins, sums), _mm256_set1_ps(dmin), facc);
            let scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_set_epi64x(
                0,
                i64::from_le_bytes(scales),
            )));
            let mut acc = _mm256_setzero_si256();
            for j in 0..4 {
                let packed = load_u8(&block[16 + 32 * j..]);
                let lo = _mm256_and_si256(packed, nibble);
                let hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), nibble);
                let plo = _mm256_maddubs_epi16(lo, load_i8(&x.qs[64 * j..]));
                let phi = _mm256_maddubs_epi16(hi, load_i8(&x.qs[64 * j + 32..]));
                let slo = _mm256_shuffle_epi8(scales, broadcast[2 * j]);
                let shi = _mm256_shuffle_epi8(scales, broadcast[2 * j + 1]);
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(plo, slo));
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(phi, shi));
            }
            facc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(d), facc);
        }
        hsum(facc)
    }

    /// [`super::dot_row`] for Q6_K: each half of 128 values is 64 bytes of low nibbles
    /// (values 0..64 low, 64..128 high) and 32 bytes of high bit pairs, one pair per value in
    /// each of the four 32-value quarters; the −32 offset comes out of the integer sum through
    /// the activations' group sums.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn dot_row_q6k(row: &[u8], x: &[Q8KBlock]) -> f32 {
        let masks = masks();
        let nibble = _mm256_set1_epi8(0x0F);
        let top = _mm256_set1_epi8(0x30);
        let mut facc = _mm256_setzero_ps();
        for (block, x) in row.chunks_exact(210).zip(x) {
            for line in 0..4 {
                crate::kernels::prefetch_ahead(block.as_ptr(), 64 * line);
            }
            let d = super::read_f16(block, 208) * x.d;
            let sc: [u8; 16] = block[192..208].try_into().expect("16 scales");
            let sc16 = _mm256_cvtepi8_epi16(bytemuck::cast(sc));
            let halves = scale_halves(bytemuck::cast(sc16));
            let bsums: __m256i = bytemuck::cast(x.bsums);
            // 32 · Σ_g scale_g · bsum_g, as eight partial sums.
            let offset = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bsums), 5);
            let mut acc = _mm256_setzero_si256();
            for half in 0..2 {
                let ql0 = load_u8(&block[64 * half..]);
                let ql1 = load_u8(&block[64 * half + 32..]);
                let qh = load_u8(&block[128 + 32 * half..]);
                let quarters = [
                    _mm256_or_si256(
                        _mm256_and_si256(ql0, nibble),
                        _mm256_and_si256(_mm256_slli_epi16(qh, 4), top),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(ql1, nibble),
                        _mm256_and_si256(_mm256_slli_epi16(qh, 2), top),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(ql0, 4), nibble),
                        _mm256_and_si256(qh, top),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(ql1, 4), nibble),
                        _mm256_and_si256(_mm256_srli_epi16(qh, 2), top),
                    ),
                ];
                for (q, values) in quarters.iter().enumerate() {
                    let spread = _mm256_shuffle_epi8(halves[half], masks[q]);
                    let xq = load_i8(&x.qs[128 * half + 32 * q..]);
                    let pairs = _mm256_maddubs_epi16(*values, xq);
                    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, spread));
                }
            }
            let acc = _mm256_sub_epi32(acc, offset);
            facc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(d), facc);
        }
        hsum(facc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};
    use rand::{Rng, SeedableRng};

    /// Random weights quantized by candle, so the blocks are well-formed.
    fn weights(ty: KType, n_out: usize, k: usize, rng: &mut rand::rngs::StdRng) -> QTensor {
        let w: Vec<f32> = (0..n_out * k)
            .map(|_| rng.gen_range(-1.0f32..1.0).powi(3) * 0.2)
            .collect();
        let t = Tensor::from_vec(w, (n_out, k), &Device::Cpu).unwrap();
        let dtype = match ty {
            KType::Q4K => GgmlDType::Q4K,
            KType::Q6K => GgmlDType::Q6K,
        };
        QTensor::quantize(&t, dtype).unwrap()
    }

    fn activations(rows: usize, k: usize, rng: &mut rand::rngs::StdRng) -> Vec<f32> {
        (0..rows * k)
            .map(|i| {
                // A few outliers, as real activations have.
                let v = rng.gen_range(-1.0f32..1.0);
                if i % 97 == 0 {
                    v * 20.0
                } else {
                    v
                }
            })
            .collect()
    }

    #[test]
    fn unpacking_matches_candles_dequantization() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for ty in [KType::Q4K, KType::Q6K] {
            let q = weights(ty, 3, 512, &mut rng);
            let expect = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap();
            let expect = expect.to_vec1::<f32>().unwrap();
            let got = dequantize_row(ty, &q.data().unwrap());
            assert_eq!(got.len(), expect.len());
            for (i, (a, b)) in got.iter().zip(&expect).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-6 * b.abs().max(1e-3),
                    "{ty:?} {i}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn q4k_scales_unpack_four_bytes_at_a_time_as_one_by_one() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for _ in 0..200 {
            let packed: [u8; 12] = rng.gen();
            let (scales, mins) = q4k_scales_mins(&packed);
            for j in 0..8 {
                assert_eq!(
                    (scales[j], mins[j]),
                    q4k_scale_min(j, &packed),
                    "{packed:?} {j}"
                );
            }
        }
    }

    #[test]
    fn strips_interleave_as_the_portable_reference_does() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        let mut unpacked = [Unpacked::ZERO; STRIP];
        for u in &mut unpacked {
            u.values.iter_mut().for_each(|v| *v = rng.gen());
        }
        let (mut fast, mut portable) = ([[0u8; 64]; QK / 4], [[1u8; 64]; QK / 4]);
        interleave(&unpacked, &mut fast);
        interleave_portable(&unpacked, &mut portable);
        assert_eq!(fast, portable);
        // And the layout itself: row k4 holds weights 4·k4.. of feature after feature.
        assert_eq!(fast[5][4 * 3..4 * 3 + 4], unpacked[3].values[20..24]);
    }

    #[test]
    fn quantization_matches_the_portable_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        for case in 0..400 {
            let mut x: Vec<f32> = (0..QK).map(|_| rng.gen_range(-3.0f32..3.0)).collect();
            match case % 4 {
                // The largest magnitude twice, with both signs: the first one sets the sign.
                1 => {
                    let at = rng.gen_range(0..QK / 2);
                    x[at] = -4.0;
                    x[at + rng.gen_range(1..QK / 2)] = 4.0;
                }
                // Values on rounding boundaries: halves of the scale 1 (the largest is -127).
                2 => {
                    for v in &mut x {
                        *v = f32::from(rng.gen_range(-254i16..=254)) / 2.0;
                    }
                    x[rng.gen_range(0..QK)] = -127.0;
                }
                // Mostly zeros, and one block all zero.
                3 if case == 3 => x.fill(0.0),
                3 => x.iter_mut().step_by(3).for_each(|v| *v = 0.0),
                _ => {}
            }
            let (mut fast, mut portable) = (Q8KBlock::ZERO, Q8KBlock::ZERO);
            fast.d = 9.0; // every field is written, none left from before
            quantize_block(&x, &mut fast);
            quantize_block_portable(x.as_slice().try_into().unwrap(), &mut portable);
            assert_same_bits(&fast, &portable, &format!("case {case}"));
        }
    }

    #[test]
    fn quantization_rounds_like_llama_cpp() {
        let mut x = vec![0f32; QK];
        x[0] = -127.0; // the largest magnitude maps to -127: a scale of exactly 1
        x[1] = 0.5; // ties go to even: 0
        x[2] = 1.5; // 2
        x[3] = -2.5; // -2
        let mut b = Q8KBlock::ZERO;
        quantize_block(&x, &mut b);
        assert_eq!(&b.qs[..4], &[-127, 0, 2, -2]);
        assert!((b.d - 1.0).abs() < f32::EPSILON);
        assert_eq!(b.bsums[0], -127);
        assert!((b.sums[0] + 127.0).abs() < 1e-6);
        quantize_block(&[0.0; QK], &mut b);
        assert!(b.qs.iter().all(|&q| q == 0) && b.d == 0.0);
    }

    #[test]
    fn kernels_agree_with_both_references_and_with_f32_math() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        for ty in [KType::Q4K, KType::Q6K] {
            // 1 row: straight from the packed blocks; 7 rows: the unpacked path; 19 and 20:
            // strips, in tiles that end with one row and with two (AVX2: 3 + 3 + … + 1 or 2;
            // AVX-512: 8 + 8 + 3 or 4). 37 output features: two whole strips and a partial
            // one. 10 superblocks: a step of 8 and one of 2.
            for rows in [1, 7, 19, 20] {
                check_matmul(ty, 37, 10 * QK, rows, &mut rng);
            }
        }
    }

    /// A new vector, never zeroed, holds the bits a written buffer gets, on every path.
    #[test]
    fn a_product_into_a_new_vector_writes_every_element() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for ty in [KType::Q4K, KType::Q6K] {
            let (n_out, k) = (37, 10 * QK);
            let q = weights(ty, n_out, k, &mut rng);
            let data = q.data().unwrap();
            for rows in [1, 7, 19, 40] {
                let acts = quantize_rows(&activations(rows, k, &mut rng), k);
                let mut want = vec![f32::NAN; rows * n_out];
                matmul_quantized(ty, &data, n_out, k, &acts, &mut want);
                let got = matmul_quantized_vec(ty, &data, n_out, k, &acts);
                assert_eq!(got.len(), want.len());
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        !w.is_nan(),
                        "{ty:?}, {rows} rows: element {i} never written"
                    );
                    assert_eq!(g.to_bits(), w.to_bits(), "{ty:?}, {rows} rows: element {i}");
                }
            }
        }
    }

    fn check_matmul(ty: KType, n_out: usize, k: usize, rows: usize, rng: &mut rand::rngs::StdRng) {
        {
            let q = weights(ty, n_out, k, rng);
            let data = q.data().unwrap();
            let x = activations(rows, k, rng);
            let mut out = vec![0f32; rows * n_out];
            matmul(ty, &data, n_out, k, &x, &mut out);
            let dense = q
                .dequantize(&Device::Cpu)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            let row_bytes = k / QK * ty.block_bytes();
            for r in 0..rows {
                let acts = quantize_rows(&x[r * k..(r + 1) * k], k);
                let xq: Vec<f32> = acts
                    .iter()
                    .flat_map(|b| b.qs.iter().map(move |&v| f32::from(v) * b.d))
                    .collect();
                for f in 0..n_out {
                    let row = &data[f * row_bytes..(f + 1) * row_bytes];
                    let packed = dot_packed(ty, row, &acts);
                    let mut u = vec![Unpacked::ZERO; k / QK];
                    for (b, u) in row.chunks_exact(ty.block_bytes()).zip(&mut u) {
                        unpack(ty, b, u);
                    }
                    let unpacked = dot_unpacked(&u, &acts);
                    let plain: f32 = dense[f].iter().zip(&xq).map(|(a, b)| a * b).sum();
                    let got = out[r * n_out + f];
                    let tol = 1e-4 * plain.abs().max(1.0);
                    assert!(
                        (unpacked - packed).abs() <= tol,
                        "{ty:?}: {unpacked} vs {packed}"
                    );
                    assert!(
                        (got - packed).abs() <= tol,
                        "{ty:?} r{r} f{f}: {got} vs {packed}"
                    );
                    assert!((plain - packed).abs() <= tol, "{ty:?}: {plain} vs {packed}");
                }
            }
        }
    }

    #[test]
    fn the_largest_weights_scales_and_activations_do_not_overflow_the_integer_sums() {
        // Every weight, scale and minimum at its largest (Q4_K: nibbles 15, 6-bit scales 63;
        // Q6_K: values 63, scales −128, the largest magnitude), against activations that
        // quantize to 127 and to −127: the 16-bit pair sums and the integer-scaled group sums are at
        // their bounds, on every path (1 row, the unpacked tile, strips).
        let (n_out, k) = (17, 2 * QK);
        for ty in [KType::Q4K, KType::Q6K] {
            let mut block = vec![0xFFu8; ty.block_bytes()];
            let one = half::f16::from_f32(1.0).to_le_bytes();
            match ty {
                KType::Q4K => {
                    block[..2].copy_from_slice(&one);
                    block[2..4].copy_from_slice(&one);
                }
                KType::Q6K => {
                    block[192..208].fill(0x80);
                    block[208..210].copy_from_slice(&one);
                }
            }
            let data = block.repeat(n_out * k / QK);
            let row_bytes = k / QK * ty.block_bytes();
            for (rows, sign) in [(1, 1.0), (7, -1.0), (19, 1.0), (19, -1.0)] {
                let x = vec![sign; rows * k];
                let mut out = vec![0f32; rows * n_out];
                matmul(ty, &data, n_out, k, &x, &mut out);
                let acts = quantize_rows(&x[..k], k);
                assert_eq!(acts[0].qs[0].unsigned_abs(), 127);
                let expect = dot_packed(ty, &data[..row_bytes], &acts);
                for (i, got) in out.iter().enumerate() {
                    let tol = 1e-4 * expect.abs();
                    assert!(
                        (got - expect).abs() <= tol,
                        "{ty:?}, {rows} rows, output {i}: {got} vs {expect}"
                    );
                }
            }
        }
    }

    #[test]
    fn strips_hold_the_same_products_as_the_packed_blocks() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for ty in [KType::Q4K, KType::Q6K] {
            // 13 features: the last 3 lanes of the strip are padding.
            let (n_out, k) = (13, 3 * QK);
            let q = weights(ty, n_out, k, &mut rng);
            let data = q.data().unwrap();
            let row_bytes = k / QK * ty.block_bytes();
            let bb = ty.block_bytes();
            let strips: Vec<Strip> = (0..k / QK)
                .map(|sb| {
                    let blocks: Vec<&[u8]> = (0..n_out)
                        .map(|f| &data[f * row_bytes + sb * bb..f * row_bytes + (sb + 1) * bb])
                        .collect();
                    let mut s = Strip::ZERO;
                    build_strip(ty, &blocks, &mut s);
                    s
                })
                .collect();
            let acts = quantize_rows(&activations(1, k, &mut rng), k);
            let got = dot_strips(ty, &strips, &acts);
            for f in 0..STRIP {
                let expect = if f < n_out {
                    dot_packed(ty, &data[f * row_bytes..(f + 1) * row_bytes], &acts)
                } else {
                    0.0
                };
                let tol = 1e-4 * expect.abs().max(1.0);
                assert!(
                    (got[f] - expect).abs() <= tol,
                    "{ty:?} feature {f}: {} vs {expect}",
                    got[f]
                );
            }
        }
    }
}
