//! Prints one seeded random walk of the default model as a trace, to watch
//! the protocol at work: `cargo run --release --example walk -- SEED`.
use failgroup::check::simulate::{walk, WalkEnd};
use failgroup::check::{trace, CheckConfig};

fn main() {
    let seed = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let model = CheckConfig::default().into_model();
    match walk(&model, seed, 10_000) {
        WalkEnd::Done { path, .. } => print!("{}", trace::render(&model, &path)),
        WalkEnd::Failed { property, path } => print!("{property} violated:\n{}", trace::render(&model, &path)),
    }
}
