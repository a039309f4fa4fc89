//! Throughput of the k-quant integer product against the f32 path it replaces, on the shapes
//! of Qwen2.5-1.5B's layers.
//!
//! ```sh
//! cargo run -p cairn-generator --example kquant_gemm -- [ROWS]
//! ```
use std::time::Instant;

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
    // (name, n_out, k): the 1.5B's projections.
    for (name, n_out, k) in [
        ("q/o", 1536, 1536),
        ("gate/up", 8960, 1536),
        ("down", 1536, 8960),
    ] {
        for (ty, dtype) in [(KType::Q4K, GgmlDType::Q4K), (KType::Q6K, GgmlDType::Q6K)] {
            let w: Vec<f32> = (0..n_out * k)
                .map(|i| ((i * 7919) % 1000) as f32 / 5000.0 - 0.1)
                .collect();
            let w = Tensor::from_vec(w, (n_out, k), &Device::Cpu).unwrap();
            let q = QTensor::quantize(&w, dtype).unwrap();
            let data = q.data().unwrap().to_vec();
            let x: Vec<f32> = (0..rows * k)
                .map(|i| ((i * 31) % 200) as f32 / 100.0 - 1.0)
                .collect();
            let xt = Tensor::from_vec(x.clone(), (rows, k), &Device::Cpu).unwrap();
            let mut out = vec![0f32; rows * n_out];
            let flops = 2.0 * (rows * n_out * k) as f64;
            let mut ours = Vec::new();
            let mut f32s = Vec::new();
            // Best of five: on a shared machine the fastest run is the one least disturbed.
            for _ in 0..5 {
                let t = Instant::now();
                kquants::matmul(ty, &data, n_out, k, &x, &mut out);
                ours.push(t.elapsed().as_secs_f64());
                let t = Instant::now();
                let y = xt
                    .matmul(&q.dequantize(&Device::Cpu).unwrap().t().unwrap())
                    .unwrap();
                std::hint::black_box(y);
                f32s.push(t.elapsed().as_secs_f64());
            }
            ours.sort_by(f64::total_cmp);
            f32s.sort_by(f64::total_cmp);
            println!(
                "{name:8} {ty:?}: integer {:7.1} ms = {:6.1} GOP/s | dequantized f32 {:7.1} ms = {:6.1} GFLOP/s",
                ours[0] * 1e3,
                flops / ours[0] / 1e9,
                f32s[0] * 1e3,
                flops / f32s[0] / 1e9
            );
        }
    }
}
