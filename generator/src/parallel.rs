//! Filling an output buffer in parallel on candle's worker pool.
//!
//! Our kernels run on the same pool as candle's, so the two never compete for the cores.

use std::sync::Mutex;

/// Splits `out` into chunks of `chunk_len` values and calls `fill(index, chunk)` for each, on
/// candle's worker pool. Each chunk is handed out once, behind an uncontended lock, which is
/// how disjoint mutable slices cross into the pool's `Fn + Sync` closure without `unsafe`.
pub(crate) fn fill_chunks<F>(out: &mut [f32], chunk_len: usize, fill: F)
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    let tasks: Vec<Mutex<&mut [f32]>> = out.chunks_mut(chunk_len).map(Mutex::new).collect();
    candle_core::utils::barrier_pool().execute_chunked(tasks.len(), |range| {
        for i in range {
            let mut chunk = tasks[i].lock().expect("no task panics holding its chunk");
            fill(i, &mut chunk);
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
}
