//! One token's products (a row of activations times every weight, read once from memory) on
//! the k-quants, against how fast this machine reads memory: the floor under decoding.
//!
//! The weights are random superblocks at the 1.5B's shapes, 28 layers' worth of one product
//! (several hundred MB, far beyond every cache), visited in turn as a token would.
//!
//! ```sh
//! cargo run -p cairn-generator --example kquant_matvec
//! ```
use std::time::Instant;

use cairn_generator::kquants::{self, KType};
use rand::{Rng, SeedableRng};

fn main() {
    let threads = candle_core::utils::get_num_threads();
    println!("threads {threads}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    // (name, n_out, k, type): the 1.5B's gate/up (Q4_K) and down (Q6_K).
    for (name, n_out, k, ty) in [
        ("gate/up", 8960, 1536, KType::Q4K),
        ("down", 1536, 8960, KType::Q6K),
    ] {
        // LAYERS=1 keeps one layer's weights (a few MB) in cache: the kernels' own speed, apart
        // from memory.
        let layers: usize =
            std::env::var("LAYERS").map_or(28, |l| l.parse().expect("LAYERS is a number"));
        let bb = ty.block_bytes();
        let per_layer = n_out * k / kquants::QK * bb;
        let mut weights = vec![0u8; layers * per_layer];
        rng.fill(&mut weights[..]);
        // Sane f16 factors (random bits would make infinities and NaNs).
        let (d_at, dmin_at) = match ty {
            KType::Q4K => (0, Some(2)),
            KType::Q6K => (208, None),
        };
        for block in weights.chunks_exact_mut(bb) {
            let d = half::f16::from_f32(rng.gen_range(0.001..0.01)).to_le_bytes();
            block[d_at..d_at + 2].copy_from_slice(&d);
            if let Some(at) = dmin_at {
                block[at..at + 2].copy_from_slice(&d);
            }
        }
        let x: Vec<f32> = (0..k).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let acts = kquants::quantize_rows(&x, k);
        let mut out = vec![0f32; n_out];
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t = Instant::now();
            for layer in weights.chunks_exact(per_layer) {
                kquants::matmul_quantized(ty, layer, n_out, k, &acts, &mut out);
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        let read = read_all(&weights, threads);
        println!(
            "{name:8} {ty:?}: {:6.1} ms for {:.0} MB = {:5.1} GB/s | reading the same memory: {:5.1} GB/s",
            best * 1e3,
            weights.len() as f64 / 1e6,
            weights.len() as f64 / best / 1e9,
            read
        );
    }
}

/// How fast `threads` threads read `bytes` (each its own share, summed as u64 words), in
/// GB/s, the best of five.
fn read_all(bytes: &[u8], threads: usize) -> f64 {
    let words: &[u64] = bytemuck::cast_slice(&bytes[..bytes.len() / 64 * 64]);
    let share = words.len().div_ceil(threads);
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        std::thread::scope(|s| {
            for part in words.chunks(share) {
                s.spawn(move || {
                    let mut acc = [0u64; 8];
                    for c in part.chunks_exact(8) {
                        for (a, w) in acc.iter_mut().zip(c) {
                            *a = a.wrapping_add(*w);
                        }
                    }
                    std::hint::black_box(acc);
                });
            }
        });
        best = best.min(t.elapsed().as_secs_f64());
    }
    bytes.len() as f64 / best / 1e9
}
