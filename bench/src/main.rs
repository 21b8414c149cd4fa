//! `failgroup-bench`: the failover window and the benchmark plots.
//!
//! `failover` runs a fixed-rate load against three systems in turn, kills
//! one server of each mid-run and restarts it, and records every operation:
//! - `failgroup-client`: `failgroup dev`, the Rust client, `s2` killed;
//! - `failgroup-resp`: the same cluster through plain RESP to `s1`/`s3`
//!   (they forward `s2`'s keys, then take them over);
//! - `twemproxy`: nutcracker in front of two redis-servers
//!   (`auto_eject_hosts`), one of them killed.
//!
//! It writes per-100 ms CSVs and a summary into `--out`; `plot` draws them
//! (and `steady.csv` from `bench/run.sh`) as SVG.

mod load;
mod plot;
mod store;
mod systems;
mod zipf;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "failgroup-bench", about = "failgroup's failover-window benchmark and plots")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Fixed-rate load while one server is killed and restarted, on
    /// failgroup (Rust client, plain RESP) and on twemproxy.
    Failover {
        /// Where the CSVs and the summary go.
        #[arg(long, default_value = "bench/results")]
        out: PathBuf,
        /// Operations per second, all workers together.
        #[arg(long, default_value_t = 2000)]
        rate: u32,
        /// Load threads (each one connection).
        #[arg(long, default_value_t = 8)]
        workers: u32,
        /// Length of each run, seconds.
        #[arg(long, default_value_t = 16.0)]
        secs: f64,
        /// When the server is killed, seconds into the run.
        #[arg(long, default_value_t = 4.0)]
        kill_at: f64,
        /// When it is restarted, seconds into the run.
        #[arg(long, default_value_t = 9.0)]
        restart_at: f64,
        /// First of the loopback ports used (30 from here).
        #[arg(long, default_value_t = 7640)]
        port: u16,
        /// Only these systems (failgroup-client, failgroup-resp, twemproxy).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// kill: one server killed and restarted; rolling-restart: every server stopped for an upgrade and
        /// started again in turn (failgroup: drained; redis-server: SIGTERM), from --kill-at, each failgroup
        /// row followed by a control run with nothing stopped; steady: no fault.
        #[arg(long, value_enum, default_value = "kill")]
        scenario: systems::Scenario,
    },
    /// Zipf-distributed reads through a cache holding a tenth of the keys:
    /// redis-server (cache-aside) beside one failgroup server (bench/zipf.sh
    /// starts both).
    Zipf {
        /// redis-server's address.
        #[arg(long, default_value = "127.0.0.1:7700")]
        redis: String,
        /// The failgroup server's address.
        #[arg(long, default_value = "127.0.0.1:7711")]
        failgroup: String,
        /// Keys in the key space.
        #[arg(long, default_value_t = 100_000)]
        keys: u64,
        /// Reads measured (after a warm-up of a fifth as many).
        #[arg(long, default_value_t = 500_000)]
        reads: u64,
        /// Zipf skew.
        #[arg(long, default_value_t = 0.99)]
        skew: f64,
        /// Value size, bytes.
        #[arg(long, default_value_t = 100)]
        value: usize,
        /// maxmemory-policy of both (noeviction, allkeys-lru, allkeys-lfu, allkeys-random, volatile-lru,
        /// volatile-lfu, volatile-random, volatile-ttl).
        #[arg(long, default_value = "allkeys-lru")]
        policy: String,
    },
    /// Durable SETs through the server's own SQLite store alone (no event
    /// loop, no network), one transaction and fsync per batch, at each
    /// batch size: what the engine itself allows.
    Store {
        /// Batch sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16, 128, 800])]
        batches: Vec<usize>,
        /// Seconds per batch size.
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
        /// Keys written (at random).
        #[arg(long, default_value_t = 100_000)]
        keys: u64,
        /// Value size, bytes.
        #[arg(long, default_value_t = 3)]
        value: usize,
    },
    /// Draws failover.svg and steady.svg from the CSVs in `--out`.
    Plot {
        #[arg(long, default_value = "bench/results")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Failover { out, rate, workers, secs, kill_at, restart_at, port, only, scenario } => {
            let plan = load::Plan { rate, workers, secs, kill_at, restart_at };
            plan.validate().and_then(|()| systems::run_all(&out, &plan, port, &only, scenario))
        }
        Cmd::Plot { out } => plot::draw(&out),
        Cmd::Store { batches, secs, keys, value } => store::run(&store::Plan { batches, secs, keys, value }),
        Cmd::Zipf { redis, failgroup, keys, reads, skew, value, policy } => {
            let plan = zipf::Plan { keys, reads, skew, value, policy };
            zipf::run(&plan, &redis, &failgroup)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
