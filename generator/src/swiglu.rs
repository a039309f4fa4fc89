//! The feed-forward gate, fused: `silu(gate) · up` in one pass over both, in parallel, with the
//! vectorizing `exp` of the attention's softmax. candle's `silu` calls libm's `expf` value by
//! value and writes a tensor that the product then reads back (6% of a prompt's time).

use candle_core::{CpuStorage, CustomOp2, Layout, Shape};

use crate::kquants::{self, Q8KBlock, QK};
use crate::kv_cache::exp;
use crate::parallel::fill_chunks;

/// Values per task: a prompt's gate (rows × 8,960 for the 1.5B) makes hundreds of tasks; a
/// token's (8,960) runs on the calling thread.
const CHUNK: usize = 16 * 1024;

/// `silu(gate) · up`, elementwise, for two f32 tensors of one shape.
pub(crate) struct SiluGate;

impl CustomOp2 for SiluGate {
    fn name(&self) -> &'static str {
        "silu-gate"
    }

    fn cpu_fwd(
        &self,
        gate: &CpuStorage,
        gate_layout: &Layout,
        up: &CpuStorage,
        up_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(gate), CpuStorage::F32(up)) = (gate, up) else {
            candle_core::bail!("silu-gate expects f32 tensors")
        };
        let (Some((g0, g1)), Some((u0, u1))) = (
            gate_layout.contiguous_offsets(),
            up_layout.contiguous_offsets(),
        ) else {
            candle_core::bail!("silu-gate expects contiguous tensors")
        };
        if gate_layout.shape() != up_layout.shape() {
            candle_core::bail!(
                "silu-gate: gate {:?} and up {:?} differ in shape",
                gate_layout.shape(),
                up_layout.shape()
            )
        }
        let (gate, up) = (&gate[g0..g1], &up[u0..u1]);
        let mut out = vec![0f32; gate.len()];
        if out.len() <= CHUNK {
            gated(gate, up, &mut out);
        } else {
            fill_chunks(&mut out, CHUNK, |i, chunk| {
                let at = i * CHUNK;
                gated(&gate[at..], &up[at..], chunk);
            });
        }
        Ok((CpuStorage::F32(out), gate_layout.shape().clone()))
    }
}

/// `silu(gate) · up` quantized for a k-quant product, as [`kquants::quantize_rows`] would
/// quantize [`SiluGate`]'s output (rows of `k`), to the bit, without that output: each 256
/// values are made on the stack and quantized at once (a prompt's gate is tens of MB, which the
/// tensor in between wrote, zeroed first, and the quantizing read back).
///
/// # Panics
/// If the two differ in length or `k` is not a multiple of 256.
pub(crate) fn quantized_gated(gate: &[f32], up: &[f32], k: usize) -> Vec<Q8KBlock> {
    assert_eq!(gate.len(), up.len(), "gate and up differ in length");
    kquants::quantize_rows_with(gate.len(), k, |at, block| {
        let mut values = [0f32; QK];
        gated(&gate[at..at + QK], &up[at..at + QK], &mut values);
        kquants::quantize_block(&values, block);
    })
}

/// `out[i] = silu(gate[i]) · up[i]` for as many values as `out` holds.
fn gated(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g / (1.0 + exp(-g)) * u;
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    #[test]
    fn the_fused_gate_is_silu_times_up() {
        // Two shapes: one task on the calling thread, and several on the pool with a short last.
        for n in [1000, 3 * CHUNK + 17] {
            let values = |seed: f32| -> Vec<f32> {
                (0..n)
                    .map(|i| (i as f32 * 0.37 + seed).sin() * 12.0)
                    .collect()
            };
            let gate = Tensor::from_vec(values(0.1), n, &Device::Cpu).unwrap();
            let up = Tensor::from_vec(values(0.9), gate.shape(), &Device::Cpu).unwrap();
            let fused = gate.apply_op2_no_bwd(&up, &SiluGate).unwrap();
            let reference = (gate.silu().unwrap() * &up).unwrap();
            let (fused, reference) = (
                fused.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                reference.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            assert_eq!(fused.len(), n);
            for (a, b) in fused.iter().zip(&reference) {
                assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn the_gate_quantized_as_made_is_the_gate_quantized_after() {
        // Rows of 512 values, more rows than one task takes.
        let (rows, k) = (37, 512);
        let values = |seed: f32| -> Vec<f32> {
            (0..rows * k)
                .map(|i| (i as f32 * 0.61 + seed).sin() * 9.0)
                .collect()
        };
        let (gate, up) = (values(0.2), values(1.3));
        let fused = quantized_gated(&gate, &up, k);
        let g = Tensor::from_vec(gate, (rows, k), &Device::Cpu).unwrap();
        let u = Tensor::from_vec(up, (rows, k), &Device::Cpu).unwrap();
        let made = g.apply_op2_no_bwd(&u, &SiluGate).unwrap();
        let after = kquants::quantize_rows(&made.flatten_all().unwrap().to_vec1().unwrap(), k);
        assert_eq!(fused.len(), after.len());
        for (i, (a, b)) in fused.iter().zip(&after).enumerate() {
            kquants::assert_same_bits(a, b, &format!("block {i}"));
        }
    }

    #[test]
    fn tensors_of_different_shapes_are_refused() {
        let a = Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        let b = Tensor::zeros((3, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(a.apply_op2_no_bwd(&b, &SiluGate).is_err());
    }
}
