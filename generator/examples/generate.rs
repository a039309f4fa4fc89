//! Drives the generator without the CLI: `cargo run -p cairn-generator --example generate -- MODEL.gguf "question"`.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;

use cairn_generator::{GenerateOptions, Generator, LoadOptions, Message};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = PathBuf::from(args.next().ok_or("usage: generate MODEL.gguf QUESTION")?);
    let question = args
        .next()
        .unwrap_or_else(|| "What is the capital of France?".into());
    let mut generator = Generator::load(&model, &LoadOptions::default())?;
    eprintln!(
        "loaded {} in {:.2?}",
        generator.name(),
        generator.load_time()
    );
    let mut out = std::io::stdout();
    let mut sink = |piece: &str| {
        let _ = out.write_all(piece.as_bytes());
        let _ = out.flush();
        ControlFlow::Continue(())
    };
    let g = generator.chat(
        &[Message::user(question)],
        &GenerateOptions::default(),
        &mut sink,
    )?;
    println!();
    eprintln!(
        "{} prompt tokens, prefill {:.1} tok/s, decode {:.1} tok/s, first token after {:.2?}, {:?}",
        g.prompt_tokens,
        g.prefill_tokens_per_second(),
        g.decode_tokens_per_second(),
        g.time_to_first_token,
        g.finish
    );
    Ok(())
}
