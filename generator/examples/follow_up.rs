//! What a short follow-up costs on a prompt (the self-check's case: a question of a few dozen
//! tokens after sources the model has just read), run the two ways the generator can run it:
//! after the prompt, as a pass of its own on the cached prompt, or as a branch in the prompt's
//! own pass. The prompt alone and the two ways alternate, seven times; shown are the medians of
//! the prompt's time and of what each way added to the prompt beside it (the machines this runs
//! on are shared and noisy: neighbouring runs share the noise).
//!
//! ```sh
//! cargo run -p cairn-generator --example follow_up -- MODEL.gguf [PROMPT_TOKENS [SIZES]]
//! ```
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cairn_generator::{Collect, GenerateOptions, Generator, LoadOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: follow_up MODEL.gguf [PROMPT_TOKENS [SIZES]]";
    let model = PathBuf::from(args.next().ok_or(usage)?);
    let prompt_tokens: usize = args.next().map_or(Ok(450), |a| a.parse())?;
    // Follow-up sizes in tokens, comma-separated.
    let sizes: Vec<usize> = match args.next() {
        Some(a) => a.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![4, 8, 16, 21, 32, 64],
    };
    let mut generator = Generator::load(&model, &LoadOptions::default())?;
    // Ordinary words, so that the tokens are ordinary ones; the follow-up is other words.
    let text =
        "The quick brown fox jumps over the lazy dog while the river runs past the old mill. "
            .repeat(prompt_tokens / 16 + 2);
    let question =
        "Is the answer to this question stated in the sources? Reply Yes or No. ".repeat(8);
    let prompt = generator.tokenizer().encode(&text)?[..prompt_tokens].to_vec();
    let tail = generator.tokenizer().encode(&question)?;
    // The prompt's last few tokens are its own tail; the follow-up branches off before them.
    let fork = prompt_tokens - 5;
    println!(
        "{}: {prompt_tokens}-token prompt, follow-up after token {fork}; medians of 7",
        generator.name()
    );
    println!("follow-up | prompt alone | + follow-up after | + follow-up in the pass");
    // The prompt's pass only: no token is generated.
    let options = GenerateOptions {
        max_tokens: 0,
        ..GenerateOptions::default()
    };
    for n in sizes {
        let probe: Vec<u32> = prompt[..fork].iter().chain(&tail[..n]).copied().collect();
        let mut runs: [Vec<f64>; 3] = Default::default();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        for _ in 0..7 {
            // Alone, then after, then in the pass; nothing cached before each.
            generator.reset();
            let t = Instant::now();
            generator.generate(&prompt, &options, &mut Collect::default())?;
            let alone = ms(t.elapsed());
            generator.reset();
            let t = Instant::now();
            generator.generate(&prompt, &options, &mut Collect::default())?;
            generator.follow_up_logits(&probe)?;
            let after = ms(t.elapsed());
            generator.reset();
            let t = Instant::now();
            generator.generate_probed(
                &prompt,
                &probe,
                &options,
                None,
                &mut Collect::default(),
                &mut |_| true,
            )?;
            let within = ms(t.elapsed());
            runs[0].push(alone);
            runs[1].push(after - alone);
            runs[2].push(within - alone);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let [a, b, c] = &mut runs;
        println!(
            "{n:>9} | {:>9.0} ms | {:>+14.0} ms | {:>+20.0} ms",
            median(a),
            median(b),
            median(c),
        );
    }
    Ok(())
}
