//! Embeds lines of a file (or two built-in sentences) and prints throughput and cosines.
//!
//! `cargo run -p cairn-generator --example embed -- MODEL_DIR [FILE] [BATCH]`; `EMBED_OUT=F`
//! also writes the vectors to F as raw little-endian f32; `EMBED_RUNTIME=libonnxruntime.so`
//! runs the encoder on ONNX Runtime (`EMBED_THREADS`, default 2) instead of the built-in one.

use std::time::Instant;

use cairn_generator::BertEmbedder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: embed MODEL_DIR [FILE] [BATCH]")?;
    let file = args.next();
    let batch: usize = args.next().map_or(Ok(32), |b| b.parse())?;
    let t = Instant::now();
    let embedder = match std::env::var_os("EMBED_RUNTIME") {
        Some(lib) => {
            let threads = std::env::var("EMBED_THREADS").map_or(Ok(2), |t| t.parse())?;
            BertEmbedder::load_with_runtime(dir.as_ref(), lib.as_ref(), threads)?
                .with_runtime_min_tokens(0)
        }
        None => BertEmbedder::load(dir.as_ref())?,
    };
    eprintln!(
        "loaded ({}) in {:.2} s",
        embedder.backend(),
        t.elapsed().as_secs_f64()
    );
    let lines: Vec<String> = match file {
        Some(f) => std::fs::read_to_string(f)?
            .lines()
            .map(str::to_owned)
            .collect(),
        None => vec![
            "A man is eating food.".into(),
            "Someone is having a meal.".into(),
            "The sky is blue.".into(),
        ],
    };
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let t = Instant::now();
    let mut vectors = Vec::new();
    for chunk in refs.chunks(batch) {
        vectors.extend(embedder.embed(chunk)?);
    }
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "{} texts in {secs:.2} s: {:.1} texts/s",
        refs.len(),
        refs.len() as f64 / secs
    );
    if let Ok(out) = std::env::var("EMBED_OUT") {
        // Raw little-endian f32, one vector after another, for comparison with a reference.
        let bytes: Vec<u8> = vectors
            .iter()
            .flatten()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        std::fs::write(out, bytes)?;
    }
    println!(
        "{{\"engine\": \"cairn ({})\", \"texts\": {}, \"seconds\": {secs:.3}, \"texts_per_s\": {:.2}, \"batch\": {batch}}}",
        embedder.backend(),
        refs.len(),
        refs.len() as f64 / secs
    );
    for v in vectors.iter().take(3) {
        let dot: f32 = v.iter().zip(&vectors[0]).map(|(a, b)| a * b).sum();
        println!("cos to first: {dot:.6}  head: {:?}", &v[..4]);
    }
    Ok(())
}
