//! Throughput of the integer products against the f32 path they replace: the k-quants on the
//! shapes of Qwen2.5-1.5B's layers, the 32-weight block types on Qwen2.5-0.5B's.
//!
//! ```sh
//! cargo run -p cairn-generator --example kquant_gemm -- [ROWS]
//! ```
use std::time::Instant;

use cairn_generator::block_strips;
use cairn_generator::kernels::BlockType;
use cairn_generator::kquants::{self, KType};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

fn main() {
    let rows: usize = std::env::args()
        .nth(1)
        .map_or(512, |a| a.parse().expect("ROWS is a number"));
    println!(
        "rows {rows}, threads {}, integer kernel: {}",
        candle_core::utils::get_num_threads(),
        kquants::FAST
    );
    #[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
    {
        let one = multiplier_peak(1);
        let all = multiplier_peak(candle_core::utils::get_num_threads());
        println!(
            "multiplier peak (independent vpmaddubsw, 32 multiply-adds each): \
             {one:.1} GOP/s on one thread, {all:.1} GOP/s on all"
        );
    }
    // (name, n_out, k): the 1.5B's projections.
    for (name, n_out, k) in [
        ("q/o", 1536, 1536),
        ("gate/up", 8960, 1536),
        ("down", 1536, 8960),
    ] {
        for (ty, dtype) in [(KType::Q4K, GgmlDType::Q4K), (KType::Q6K, GgmlDType::Q6K)] {
            let (q, data) = weights(n_out, k, dtype);
            let x = activations(rows, k);
            let xt = Tensor::from_vec(x.clone(), (rows, k), &Device::Cpu).unwrap();
            let mut out = vec![0f32; rows * n_out];
            let (ours, f32s) = best_of_five(
                || kquants::matmul(ty, &data, n_out, k, &x, &mut out),
                || dequantized(&xt, &q),
            );
            report(name, &format!("{ty:?}"), rows * n_out * k, ours, f32s);
        }
    }
    // The 0.5B's Q5_0 projections (and Q4_0, the other width of value; Q8_0 where it has
    // strips), on strips.
    println!(
        "32-weight blocks on strips: {} (512-bit VNNI: {})",
        block_strips::FAST,
        block_strips::VNNI
    );
    for (name, n_out, k) in [("q/o", 896, 896), ("gate/up", 4864, 896)] {
        for (ty, dtype) in [
            (BlockType::Q5_0, GgmlDType::Q5_0),
            (BlockType::Q4_0, GgmlDType::Q4_0),
            (BlockType::Q8_0, GgmlDType::Q8_0),
        ] {
            if !block_strips::supported(ty) {
                continue;
            }
            let (q, data) = weights(n_out, k, dtype);
            let x = activations(rows, k);
            let xt = Tensor::from_vec(x.clone(), (rows, k), &Device::Cpu).unwrap();
            let mut out = vec![0f32; rows * n_out];
            let (ours, f32s) = best_of_five(
                || block_strips::matmul(ty, &data, n_out, k, &x, &mut out),
                || dequantized(&xt, &q),
            );
            report(name, &format!("{ty:?}"), rows * n_out * k, ours, f32s);
        }
    }
}

/// A deterministic weight matrix quantized to `dtype`, and its raw blocks.
fn weights(n_out: usize, k: usize, dtype: GgmlDType) -> (QTensor, Vec<u8>) {
    let w: Vec<f32> = (0..n_out * k)
        .map(|i| ((i * 7919) % 1000) as f32 / 5000.0 - 0.1)
        .collect();
    let w = Tensor::from_vec(w, (n_out, k), &Device::Cpu).unwrap();
    let q = QTensor::quantize(&w, dtype).unwrap();
    let data = q.data().unwrap().to_vec();
    (q, data)
}

fn activations(rows: usize, k: usize) -> Vec<f32> {
    (0..rows * k)
        .map(|i| ((i * 31) % 200) as f32 / 100.0 - 1.0)
        .collect()
}

/// The f32 path: the weight dequantized whole, then candle's matrix product.
fn dequantized(xt: &Tensor, q: &QTensor) {
    let y = xt
        .matmul(&q.dequantize(&Device::Cpu).unwrap().t().unwrap())
        .unwrap();
    std::hint::black_box(y);
}

/// The most integer operations a second `vpmaddubsw` gives on `threads` threads at once: the
/// floor under the AVX2 strip kernels, measured in the same run as they are. Eight independent
/// products (unsigned by signed bytes, pairs summed to 16 bits) and eight 16-bit sums per step,
/// as the kernels do; the best of five runs of 0.2 s.
#[cfg(all(target_arch = "x86_64", target_feature = "avx2"))]
fn multiplier_peak(threads: usize) -> f64 {
    use std::arch::x86_64::{_mm256_add_epi16, _mm256_maddubs_epi16, _mm256_set1_epi8};

    #[target_feature(enable = "avx2")]
    fn run(steps: usize) -> i16 {
        let w: [_; 8] = std::array::from_fn(|i| _mm256_set1_epi8(i as i8 + 1));
        let mut acc = [_mm256_set1_epi8(0); 8];
        for _ in 0..steps {
            let x = std::hint::black_box(_mm256_set1_epi8(3));
            for (a, w) in acc.iter_mut().zip(&w) {
                *a = _mm256_add_epi16(*a, _mm256_maddubs_epi16(*w, x));
            }
        }
        let lanes: [[i16; 16]; 8] = bytemuck::cast(acc);
        lanes.iter().map(|l| l[0]).fold(0, i16::wrapping_add)
    }

    let steps = 20_000_000;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                // SAFETY: this function is compiled only where AVX2 is enabled.
                #[allow(unsafe_code)]
                s.spawn(|| std::hint::black_box(unsafe { run(steps) }));
            }
        });
        best = best.min(t.elapsed().as_secs_f64());
    }
    (threads * steps * 8 * 32 * 2) as f64 / best / 1e9
}

/// The fastest of five alternating runs of each (on a shared machine the fastest run is the
/// one least disturbed), in seconds.
fn best_of_five(mut ours: impl FnMut(), mut f32s: impl FnMut()) -> (f64, f64) {
    let (mut a, mut b) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..5 {
        let t = Instant::now();
        ours();
        a = a.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        f32s();
        b = b.min(t.elapsed().as_secs_f64());
    }
    (a, b)
}

fn report(name: &str, ty: &str, macs: usize, ours: f64, f32s: f64) {
    let ops = 2.0 * macs as f64;
    println!(
        "{name:8} {ty:5}: integer {:7.1} ms = {:6.1} GOP/s | dequantized f32 {:7.1} ms = {:6.1} GFLOP/s",
        ours * 1e3,
        ops / ours / 1e9,
        f32s * 1e3,
        ops / f32s / 1e9
    );
}
