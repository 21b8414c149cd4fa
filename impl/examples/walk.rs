//! Prints one seeded random walk of the default model, as a trace:
//! `cargo run --release --example walk -- SEED`.
use failgroup::check::simulate::{walk, WalkEnd};
use failgroup::check::{trace, CheckConfig};

fn main() {
    let seed = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let cfg = CheckConfig {
        ops_per_client: 1,
        clients: 1,
        losses: 0,
        max_time: 14,
        fault_horizon: 4,
        ..CheckConfig::default()
    };
    let model = cfg.into_model();
    match walk(&model, seed, 10_000) {
        WalkEnd::Done { path, .. } => print!("{}", trace::render(&model, &path)),
        WalkEnd::Failed { property, path } => print!("{property}\n{}", trace::render(&model, &path)),
    }
}
