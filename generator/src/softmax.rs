//! Causal softmax over attention scores, fused: the mask is implied by position, never built.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape};

use crate::kv_cache::softmax_in_place;
use crate::parallel::fill_chunks;

/// Rows handed to a worker at a time.
const ROWS_PER_TASK: usize = 32;

/// Softmax of each score row over the keys its query may see.
///
/// The scores are (`groups`, `rows`, `keys`) flattened to rows of `keys`: row `r` belongs to
/// query `r % rows`, at absolute position `first + r % rows`, which sees keys `0..=` that
/// position. Entries after it get probability 0.
pub(crate) struct CausalSoftmax {
    /// Query rows per group (the chunk length).
    pub(crate) rows: usize,
    /// Absolute position of the chunk's first query.
    pub(crate) first: usize,
}

impl CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("causal-softmax expects f32 scores")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("causal-softmax expects contiguous scores")
        };
        let data = &data[start..end];
        let width = layout.shape().dims().last().copied().unwrap_or(1);
        let mut out = vec![0f32; data.len()];
        fill_chunks(&mut out, ROWS_PER_TASK * width, |task, chunk| {
            for (i, out_row) in chunk.chunks_mut(width).enumerate() {
                let r = task * ROWS_PER_TASK + i;
                let visible = (self.first + r % self.rows + 1).min(width);
                out_row[..visible].copy_from_slice(&data[r * width..r * width + visible]);
                softmax_in_place(&mut out_row[..visible]);
            }
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    #[test]
    fn matches_masked_softmax() {
        let (groups, rows, first) = (3, 4, 5);
        let keys = first + rows;
        let n = groups * rows * keys;
        let scores: Vec<f32> = (0..n).map(|i| (i as f32 * 0.61).sin() * 3.0).collect();
        let t = Tensor::from_vec(scores, (groups, rows, keys), &Device::Cpu).unwrap();
        let fused = t
            .apply_op1_no_bwd(&CausalSoftmax { rows, first })
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let mut mask = vec![0f32; rows * keys];
        for i in 0..rows {
            for j in (first + i + 1)..keys {
                mask[i * keys + j] = f32::NEG_INFINITY;
            }
        }
        let mask = Tensor::from_vec(mask, (rows, keys), &Device::Cpu).unwrap();
        let reference = candle_nn::ops::softmax_last_dim(&t.broadcast_add(&mask).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (a, b) in fused.iter().zip(&reference) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
