//! The many-row product on strips, shared by the 32-weight block types
//! ([`crate::block_strips`]) and the k-quants ([`crate::kquants`]).
//!
//! A strip interleaves one block of [`STRIP`] output features for an integer kernel. A product
//! never holds the whole matrix as strips: each worker owns panels of whole strips (a few
//! dozen features) and rebuilds them a few thousand weights at a time from the GGUF blocks,
//! multiplying each step with every activation row before the next. What differs between the
//! formats — how a strip is built, how it meets a tile of rows, which order suits the cache —
//! is the [`Format`] trait; the walk is [`matmul`].

use std::cell::RefCell;
use std::thread::LocalKey;

use crate::parallel::ColumnBlock;

/// Output features per strip: one 512-bit vector of 32-bit sums.
pub const STRIP: usize = 16;
/// Activation rows per kernel call, at most.
pub(crate) const MAX_ROWS: usize = 12;

/// One weight format multiplied on strips.
pub(crate) trait Format: Copy + Sync {
    /// One block of [`STRIP`] features, interleaved for the kernel.
    type Strip: Copy + Send + 'static;
    /// One quantized block of activations, as the kernel takes them.
    type Act: Sync;
    /// A strip of zeros, to size each worker's scratch.
    const ZERO: Self::Strip;
    /// Weight blocks rebuilt at a time per panel.
    const STEP: usize;
    /// Activation rows per kernel call (at most [`MAX_ROWS`]).
    const ROWS: usize;
    /// Whether each strip meets every row before the next strip is read, instead of each tile
    /// of rows meeting every strip of the panel: measured per kernel (BENCHMARKS.md).
    const STRIPS_OUTER: bool;
    /// Each worker's strips, kept between calls.
    const SCRATCH: &'static LocalKey<RefCell<Vec<Self::Strip>>>;

    /// Bytes of one block of one feature's row.
    fn block_bytes(self) -> usize;
    /// Interleaves one block of up to [`STRIP`] features (`blocks[f]` for feature `f`; missing
    /// features are zero).
    fn build(self, blocks: &[&[u8]], out: &mut Self::Strip);
    /// `out[r] = Σ strips · x[r]` for every row of `x` (at most [`Format::ROWS`], each the
    /// same number of blocks as `strips`).
    fn tile(self, strips: &[Self::Strip], x: &[&[Self::Act]], out: &mut [[f32; STRIP]]);
}

/// `out = x · Wᵀ` for the quantized activations `acts` (rows of `per_row` blocks) and the
/// weights `W` of `n_out` rows of `per_row` blocks of `ty`, on strips, on `threads` workers.
///
/// # Panics
/// If the slices do not have the sizes the dimensions imply.
pub(crate) fn matmul<F: Format>(
    ty: F,
    weights: &[u8],
    n_out: usize,
    per_row: usize,
    acts: &[F::Act],
    out: &mut [f32],
    threads: usize,
) {
    let Some(walk) = Walk::new(ty, weights, n_out, per_row, acts, out.len(), threads) else {
        return;
    };
    crate::parallel::fill_column_blocks(out, n_out, walk.panel_width(), |_, b| walk.panel(b));
}

/// [`matmul`] into a new vector of `rows × n_out` values, never zeroed: each worker's first
/// step writes every element of its panels (the vector was zeroed on the calling thread
/// alone, 4% of a question's prompt pass while the other core waited: BENCHMARKS.md).
///
/// # Panics
/// As [`matmul`].
pub(crate) fn matmul_new<F: Format>(
    ty: F,
    weights: &[u8],
    n_out: usize,
    per_row: usize,
    acts: &[F::Act],
    threads: usize,
) -> Vec<f32> {
    let len = acts.len() / per_row.max(1) * n_out;
    let mut out = Vec::with_capacity(len);
    if let Some(walk) = Walk::new(ty, weights, n_out, per_row, acts, len, threads) {
        let width = walk.panel_width();
        crate::parallel::fill_fresh_column_blocks(
            &mut out.spare_capacity_mut()[..len],
            n_out,
            width,
            |_, b| walk.panel(b),
        );
        // SAFETY: the blocks cover every column of the `len / n_out` rows, and `Walk::panel`
        // writes every element of its block before it returns (it declares them written
        // after its first step, which puts every row tile of every strip).
        #[allow(unsafe_code)]
        unsafe {
            out.set_len(len);
        }
    }
    out
}

/// One product's walk over its panels.
struct Walk<'a, F: Format> {
    ty: F,
    weights: &'a [u8],
    per_row: usize,
    acts: &'a [F::Act],
    rows: usize,
    row_bytes: usize,
    strips_per_panel: usize,
}

impl<'a, F: Format> Walk<'a, F> {
    /// The walk, or `None` when the product is empty.
    ///
    /// # Panics
    /// If the slices do not have the sizes the dimensions imply (`len` is the output's).
    fn new(
        ty: F,
        weights: &'a [u8],
        n_out: usize,
        per_row: usize,
        acts: &'a [F::Act],
        len: usize,
        threads: usize,
    ) -> Option<Self> {
        let row_bytes = per_row * ty.block_bytes();
        assert_eq!(weights.len(), n_out * row_bytes, "weight size");
        let rows = acts.len() / per_row.max(1);
        assert_eq!(len, rows * n_out, "output size");
        if rows == 0 || n_out == 0 {
            return None;
        }
        Some(Walk {
            ty,
            weights,
            per_row,
            acts,
            rows,
            row_bytes,
            // Several panels per worker, each a whole number of strips, at most 8 (128
            // features of 2,048 weights each step: a few hundred KiB of strips, in L2).
            strips_per_panel: n_out.div_ceil(STRIP).div_ceil(threads * 4).clamp(1, 8),
        })
    }

    /// Output features per panel.
    fn panel_width(&self) -> usize {
        self.strips_per_panel * STRIP
    }

    /// Every element of one panel, in steps of [`Format::STEP`] blocks; the first step writes
    /// every element, later ones add to them.
    fn panel(&self, block: &mut ColumnBlock<'_>) {
        let (ty, per_row, rows) = (self.ty, self.per_row, self.rows);
        let bb = ty.block_bytes();
        F::SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let step = F::STEP.min(per_row);
            let n_strips = block.width.div_ceil(STRIP);
            if scratch.len() < n_strips * step {
                scratch.resize(n_strips * step, F::ZERO);
            }
            let mut sums = [[0f32; STRIP]; MAX_ROWS];
            for first in (0..per_row).step_by(step) {
                let kc = step.min(per_row - first);
                for s in 0..n_strips {
                    let features = (block.start + s * STRIP)
                        ..(block.start + block.width).min(block.start + (s + 1) * STRIP);
                    for j in 0..kc {
                        let mut blocks: [&[u8]; STRIP] = [&[]; STRIP];
                        for (b, f) in features.clone().enumerate() {
                            let at = f * self.row_bytes + (first + j) * bb;
                            blocks[b] = &self.weights[at..at + bb];
                        }
                        ty.build(&blocks[..features.len()], &mut scratch[s * kc + j]);
                    }
                }
                let mut one = |s: usize, r0: usize| {
                    let rn = F::ROWS.min(rows - r0);
                    let mut xs: [&[F::Act]; MAX_ROWS] = [&[]; MAX_ROWS];
                    for (i, r) in (r0..r0 + rn).enumerate() {
                        xs[i] = &self.acts[r * per_row + first..r * per_row + first + kc];
                    }
                    ty.tile(&scratch[s * kc..(s + 1) * kc], &xs[..rn], &mut sums[..rn]);
                    let cols = s * STRIP..block.width.min((s + 1) * STRIP);
                    block.put_tile(r0, cols, &sums[..rn], first > 0);
                };
                if F::STRIPS_OUTER {
                    for s in 0..n_strips {
                        for r0 in (0..rows).step_by(F::ROWS) {
                            one(s, r0);
                        }
                    }
                } else {
                    for r0 in (0..rows).step_by(F::ROWS) {
                        for s in 0..n_strips {
                            one(s, r0);
                        }
                    }
                }
                if first == 0 {
                    // SAFETY: this first step put a tile at every row tile (`0..rows` in
                    // steps of `ROWS`) of every strip (`0..n_strips`, which cover the block's
                    // columns), without `add`.
                    #[allow(unsafe_code)]
                    unsafe {
                        block.assume_written();
                    }
                }
            }
        });
    }
}
