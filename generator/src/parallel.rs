//! Filling an output buffer in parallel on candle's worker pool.
//!
//! Our kernels run on the same pool as candle's, so the two never compete for the cores.

use std::marker::PhantomData;
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

/// A block of whole columns of a row-major matrix, writable one row at a time.
pub(crate) struct ColumnBlock<'a> {
    base: *mut f32,
    rows: usize,
    stride: usize,
    /// First column of the block.
    pub start: usize,
    /// Columns in the block.
    pub width: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

impl ColumnBlock<'_> {
    /// The block's part of row `r`.
    ///
    /// # Panics
    /// If `r` is not a row of the matrix.
    pub fn row_mut(&mut self, r: usize) -> &mut [f32] {
        assert!(r < self.rows, "row {r} of {}", self.rows);
        // SAFETY: `fill_column_blocks` checked that the matrix (`rows × stride`, with
        // `start + width ≤ stride`) lies inside the slice it borrows mutably for `'a`, and
        // hands out each block exactly once, so no other `ColumnBlock` covers these columns;
        // the returned slice borrows `self` mutably, so this block lends one row at a time.
        #[allow(unsafe_code)]
        unsafe {
            std::slice::from_raw_parts_mut(self.base.add(r * self.stride + self.start), self.width)
        }
    }

    /// Writes `sums[i]` to row `first_row + i`, columns `cols` of the block (a tile of a
    /// product), or adds it to what is there when `add` (a later step along the shared
    /// dimension).
    pub fn put_tile(
        &mut self,
        first_row: usize,
        cols: std::ops::Range<usize>,
        sums: &[[f32; 16]],
        add: bool,
    ) {
        for (i, sum) in sums.iter().enumerate() {
            let dst = &mut self.row_mut(first_row + i)[cols.clone()];
            let src = &sum[..dst.len()];
            if add {
                for (d, v) in dst.iter_mut().zip(src) {
                    *d += v;
                }
            } else {
                dst.copy_from_slice(src);
            }
        }
    }
}

/// The matrix's address, shared with the pool's threads; only [`ColumnBlock`] writes through it.
struct Base(*mut f32);
// SAFETY: the pointer is only turned into slices by `ColumnBlock::row_mut`, over columns that
// belong to one block, which one task owns.
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
    assert!(
        cols > 0 && block > 0 && out.len().is_multiple_of(cols),
        "matrix shape"
    );
    let rows = out.len() / cols;
    let base = Base(out.as_mut_ptr());
    let base = &base;
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
