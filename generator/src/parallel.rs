//! Filling an output buffer in parallel on candle's worker pool.
//!
//! Our kernels run on the same pool as candle's, so the two never compete for the cores.

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::Mutex;

/// Splits `out` into chunks of `chunk_len` values and calls `fill(index, chunk)` for each, on
/// candle's worker pool. Each chunk is handed out once, behind an uncontended lock, which is
/// how disjoint mutable slices cross into the pool's `Fn + Sync` closure without `unsafe`.
pub(crate) fn fill_chunks<T, F>(out: &mut [T], chunk_len: usize, fill: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    let tasks: Vec<Mutex<&mut [T]>> = out.chunks_mut(chunk_len).map(Mutex::new).collect();
    candle_core::utils::barrier_pool().execute_chunked(tasks.len(), |range| {
        for i in range {
            let mut chunk = tasks[i].lock().expect("no task panics holding its chunk");
            fill(i, &mut chunk);
        }
    });
}

/// A block of whole columns of a row-major matrix, writable one row at a time. The matrix may
/// be fresh memory that holds no values yet ([`fill_fresh_column_blocks`]): then tiles are
/// only written ([`ColumnBlock::put_tile`] without `add`) until the block's owner declares every
/// element written ([`ColumnBlock::assume_written`]), and only then read.
pub(crate) struct ColumnBlock<'a> {
    base: *mut f32,
    rows: usize,
    stride: usize,
    /// First column of the block.
    pub start: usize,
    /// Columns in the block.
    pub width: usize,
    /// Whether every element of the block holds a value.
    written: bool,
    _borrow: PhantomData<&'a mut [f32]>,
}

impl ColumnBlock<'_> {
    /// The block's part of row `r`.
    ///
    /// # Panics
    /// If `r` is not a row of the matrix, or the block is not written yet.
    pub fn row_mut(&mut self, r: usize) -> &mut [f32] {
        assert!(r < self.rows, "row {r} of {}", self.rows);
        assert!(self.written, "a row of a block read before it was written");
        // SAFETY: `fill_column_blocks` checked that the matrix (`rows × stride`, with
        // `start + width ≤ stride`) lies inside the slice it borrows mutably for `'a`, and
        // hands out each block exactly once, so no other `ColumnBlock` covers these columns;
        // every element of them holds a value (`written`); the returned slice borrows `self`
        // mutably, so this block lends one row at a time.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts_mut(self.base.add(r * self.stride + self.start), self.width)
        }
    }

    /// Declares every element of the block written, so that it may be read.
    ///
    /// # Safety
    /// Every element of the block's rows and columns must have been written by
    /// [`ColumnBlock::put_tile`].
    #[allow(unsafe_code)]
    pub unsafe fn assume_written(&mut self) {
        self.written = true;
    }

    /// Writes `sums[i]` to row `first_row + i`, columns `cols` of the block (a tile of a
    /// product), or adds it to what is there when `add` (a later step along the shared
    /// dimension, once the block is written).
    ///
    /// # Panics
    /// If the tile does not lie inside the block, or `add` before the block is written.
    pub fn put_tile(
        &mut self,
        first_row: usize,
        cols: std::ops::Range<usize>,
        sums: &[[f32; 16]],
        add: bool,
    ) {
        assert!(
            cols.start <= cols.end && cols.end <= self.width && cols.len() <= 16,
            "columns {cols:?} of a tile in a block of {}",
            self.width
        );
        assert!(first_row + sums.len() <= self.rows, "rows of a tile");
        for (i, sum) in sums.iter().enumerate() {
            let src = &sum[..cols.len()];
            if add {
                let dst = &mut self.row_mut(first_row + i)[cols.clone()];
                for (d, v) in dst.iter_mut().zip(src) {
                    *d += v;
                }
            } else {
                // SAFETY: the tile lies inside the block (asserted above), whose columns no
                // other `ColumnBlock` covers (`row_mut`); the copy only writes those elements,
                // so it neither reads nor makes a reference to one that holds no value yet.
                #[allow(unsafe_code)]
                unsafe {
                    let dst = self
                        .base
                        .add((first_row + i) * self.stride + self.start + cols.start);
                    std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len());
                }
            }
        }
    }
}

/// The matrix's address, shared with the pool's threads; only [`ColumnBlock`] writes through it.
struct Base(*mut f32);
// SAFETY: the pointer is only turned into slices (`ColumnBlock::row_mut`) or written through
// (`ColumnBlock::put_tile`) over columns that belong to one block, which one task owns.
#[allow(unsafe_code)]
unsafe impl Sync for Base {}

/// Splits the columns of the row-major matrix `out` (`cols` wide) into blocks of `block`
/// columns (the last one may be narrower) and calls `fill(index, block)` for each, on candle's
/// worker pool: tasks that each own some output features, over every row.
///
/// # Panics
/// If `out` is not a whole number of rows.
pub(crate) fn fill_column_blocks<F>(out: &mut [f32], cols: usize, block: usize, fill: F)
where
    F: Fn(usize, &mut ColumnBlock<'_>) + Sync,
{
    fill_blocks(&Base(out.as_mut_ptr()), out.len(), true, cols, block, fill);
}

/// [`fill_column_blocks`] on fresh memory (a vector's spare capacity): each block starts
/// unwritten, and its task writes every element before reading any.
///
/// # Panics
/// If `out` is not a whole number of rows.
pub(crate) fn fill_fresh_column_blocks<F>(
    out: &mut [MaybeUninit<f32>],
    cols: usize,
    block: usize,
    fill: F,
) where
    F: Fn(usize, &mut ColumnBlock<'_>) + Sync,
{
    fill_blocks(
        &Base(out.as_mut_ptr().cast()),
        out.len(),
        false,
        cols,
        block,
        fill,
    );
}

/// The column blocks of the `len` elements at `base` (borrowed mutably by the caller).
fn fill_blocks<F>(base: &Base, len: usize, written: bool, cols: usize, block: usize, fill: F)
where
    F: Fn(usize, &mut ColumnBlock<'_>) + Sync,
{
    assert!(
        cols > 0 && block > 0 && len.is_multiple_of(cols),
        "matrix shape"
    );
    let rows = len / cols;
    let blocks = cols.div_ceil(block);
    candle_core::utils::barrier_pool().execute_chunked(blocks, |range| {
        for i in range {
            let start = i * block;
            let mut view = ColumnBlock {
                base: base.0,
                rows,
                stride: cols,
                start,
                width: block.min(cols - start),
                written,
                _borrow: PhantomData,
            };
            fill(i, &mut view);
        }
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_chunk_is_filled_once_with_its_index() {
        let mut out = vec![0f32; 103];
        super::fill_chunks(&mut out, 10, |i, chunk| {
            for v in chunk.iter_mut() {
                *v += i as f32 + 1.0;
            }
        });
        for (j, v) in out.iter().enumerate() {
            assert_eq!(*v as usize, j / 10 + 1);
        }
    }

    #[test]
    fn fresh_blocks_take_written_tiles_and_hold_them() {
        let (rows, cols) = (3, 20);
        let mut out: Vec<f32> = Vec::with_capacity(rows * cols);
        super::fill_fresh_column_blocks(
            &mut out.spare_capacity_mut()[..rows * cols],
            cols,
            16,
            |i, block| {
                let sums: Vec<[f32; 16]> = (0..rows)
                    .map(|r| std::array::from_fn(|c| (i * 100 + r * 10 + c) as f32))
                    .collect();
                block.put_tile(0, 0..block.width, &sums, false);
                // SAFETY: the tile above covers every row and column of the block.
                #[allow(unsafe_code)]
                unsafe {
                    block.assume_written();
                }
                block.put_tile(0, 0..block.width, &sums, true);
            },
        );
        // SAFETY: every block wrote all of its rows and columns.
        #[allow(unsafe_code)]
        unsafe {
            out.set_len(rows * cols);
        }
        for (j, v) in out.iter().enumerate() {
            let (r, c) = (j / cols, j % cols);
            let want = 2.0 * ((c / 16) * 100 + r * 10 + c % 16) as f32;
            assert_eq!(v.to_bits(), want.to_bits(), "element {j}");
        }
    }

    /// Built by hand, not on the pool (whose lock a panicking task would poison for the
    /// other tests).
    #[test]
    #[should_panic(expected = "before it was written")]
    fn a_fresh_block_cannot_be_added_to_before_it_is_written() {
        let mut out: Vec<f32> = Vec::with_capacity(16);
        let mut block = super::ColumnBlock {
            base: out.spare_capacity_mut().as_mut_ptr().cast(),
            rows: 1,
            stride: 16,
            start: 0,
            width: 16,
            written: false,
            _borrow: std::marker::PhantomData,
        };
        block.put_tile(0, 0..16, &[[1.0; 16]], true);
    }

    #[test]
    fn every_column_block_is_filled_once_with_its_index() {
        let (rows, cols) = (7, 45);
        let mut out = vec![0f32; rows * cols];
        super::fill_column_blocks(&mut out, cols, 8, |i, block| {
            assert_eq!(block.start, i * 8);
            for r in 0..rows {
                for v in block.row_mut(r) {
                    *v += i as f32 + 1.0;
                }
            }
        });
        for (j, v) in out.iter().enumerate() {
            assert_eq!(*v as usize, (j % cols) / 8 + 1, "element {j}");
        }
    }
}
