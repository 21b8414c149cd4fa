//! The `failgroup` binary.

use clap::{Args, Parser, Subcommand};
use failgroup::check::model::Faults;
use failgroup::check::{self, CheckConfig, Outcome, RunOptions, Strategy};
use failgroup::config::Config;
use failgroup_model::{Mode, Mutant};
use stateright::{Expectation, Model as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "failgroup", version, about = "A partitioned cache cluster with a model-checked failover protocol")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a local cluster: the master on 127.0.0.1:PORT, servers on the
    /// ports after it, each its own process, one SQLite file.
    Dev {
        #[arg(long, default_value_t = 3)]
        servers: u16,
        #[arg(long, default_value_t = 1)]
        groups: u16,
        /// The master's port; servers listen on PORT+1..PORT+N.
        #[arg(long, default_value_t = 7100)]
        port: u16,
        /// Where the config (cluster.toml) and the database go
        /// [default: failgroup-dev-PORT in the temporary directory].
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, default_value = "linearizable")]
        mode: Mode,
        /// The database: sqlite:PATH (relative to --data) or
        /// postgres://user[:password]@host[:port]/dbname.
        #[arg(long, default_value = "sqlite:data.db")]
        store: String,
    },
    /// Run one cache server of a cluster.
    Server {
        #[arg(long)]
        config: PathBuf,
        /// The server's name in the config, e.g. s1.
        #[arg(long)]
        id: String,
    },
    /// Run the master of a cluster.
    Master {
        #[arg(long)]
        config: PathBuf,
    },
    /// Record this config's mode and topology in the store, replacing the
    /// ones recorded, and drop every serving right. Run it once, with every
    /// node of the cluster stopped, after changing the mode or the servers.
    Adopt {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the master's view: servers online/offline, who serves which slots.
    Status {
        /// The master's address [default: from --config, else 127.0.0.1:7100].
        #[arg(long)]
        master: Option<String>,
        /// Read the master's address and the secret from this config.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Model-check the failover protocol (the same core the servers run).
    Check(CheckArgs),
    /// Browse the model's state space in stateright's web explorer.
    Explore {
        #[command(flatten)]
        model: ModelArgs,
        /// Loopback address to serve on.
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: String,
    },
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// Servers (one group unless --groups says otherwise); 2 by default, so
    /// that the default check exhausts in seconds.
    #[arg(long, default_value_t = 2)]
    servers: u16,
    #[arg(long, default_value_t = 1)]
    groups: u16,
    #[arg(long, default_value_t = 2)]
    clients: u16,
    #[arg(long, default_value_t = 1)]
    keys: u16,
    /// Operations per client (alternately SET and GET).
    #[arg(long, default_value_t = 1)]
    ops: u8,
    /// Server crashes (each may be followed by a restart).
    #[arg(long, default_value_t = 1)]
    crashes: u8,
    /// Lost messages.
    #[arg(long, default_value_t = 0)]
    losses: u8,
    #[arg(long, default_value_t = 0)]
    duplicates: u8,
    /// Servers paused (alive but silent), then resumed.
    #[arg(long, default_value_t = 0)]
    pauses: u8,
    /// Links cut between two nodes (healed later).
    #[arg(long, default_value_t = 0)]
    cuts: u8,
    #[arg(long, default_value_t = 0)]
    master_crashes: u8,
    /// Ticks by which store calls may be held back in all (a slow store).
    #[arg(long, default_value_t = 0)]
    store_delays: u8,
    /// Hosts suspended (paused with their clock stopped), then resumed.
    #[arg(long, default_value_t = 0)]
    suspends: u8,
    /// Second processes of a paused server's identity.
    #[arg(long, default_value_t = 0)]
    twins: u8,
    /// Steps of the store's clock, a lease forward each.
    #[arg(long, default_value_t = 0)]
    clock_steps: u8,
    /// Clock lag bound, in ticks.
    #[arg(long, default_value_t = 0)]
    drift: u64,
    #[arg(long, default_value = "linearizable")]
    mode: Mode,
    /// A deliberately broken protocol variant (see --list-mutants).
    #[arg(long)]
    mutant: Option<Mutant>,
    /// Faults happen before this tick.
    #[arg(long, default_value_t = 4)]
    fault_horizon: u64,
    /// Clients start operations before this tick.
    #[arg(long, default_value_t = 4)]
    op_horizon: u64,
    /// Crashed nodes may restart before this tick.
    #[arg(long, default_value_t = 12)]
    restart_horizon: u64,
    /// The clock stops at this tick.
    #[arg(long, default_value_t = 20)]
    max_time: u64,
    /// Ticks after its own within which a message not lost is delivered.
    #[arg(long, default_value_t = 0)]
    max_delay: u64,
}

impl ModelArgs {
    fn config(&self) -> CheckConfig {
        CheckConfig {
            servers: self.servers,
            groups: self.groups,
            clients: self.clients,
            keys: self.keys,
            ops_per_client: self.ops,
            faults: Faults {
                crashes: self.crashes,
                losses: self.losses,
                duplicates: self.duplicates,
                pauses: self.pauses,
                cuts: self.cuts,
                master_crashes: self.master_crashes,
                store_delays: self.store_delays,
                suspends: self.suspends,
                twins: self.twins,
                clock_steps: self.clock_steps,
            },
            drift: self.drift,
            mode: self.mode,
            mutant: self.mutant,
            fault_horizon: self.fault_horizon,
            op_horizon: self.op_horizon,
            restart_horizon: self.restart_horizon,
            max_time: self.max_time,
            max_delay: self.max_delay,
        }
    }
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    model: ModelArgs,
    #[arg(long, default_value = "bfs")]
    strategy: Strategy,
    /// Explore no deeper than this many steps.
    #[arg(long)]
    depth: Option<usize>,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// First seed of the random walks (simulate).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Random walks to run (simulate).
    #[arg(long, default_value_t = 1_000)]
    walks: u64,
    /// Give up after this many seconds.
    #[arg(long)]
    timeout: Option<u64>,
    /// Keep searching after the first counterexample.
    #[arg(long)]
    all: bool,
    /// Print the mutants' names and exit.
    #[arg(long)]
    list_mutants: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Dev { servers, groups, port, data, mode, store } => {
            let data = data.unwrap_or_else(|| std::env::temp_dir().join(format!("failgroup-dev-{port}")));
            failgroup::net::init_logging("info");
            exit(failgroup::dev::run(failgroup::dev::DevOptions { servers, groups, port, data, mode, store }))
        }
        Command::Server { config, id } => {
            failgroup::net::init_logging("info");
            exit(Config::load(&config).and_then(|cfg| failgroup::server::main(cfg, &id)))
        }
        Command::Master { config } => {
            failgroup::net::init_logging("info");
            exit(Config::load(&config).and_then(failgroup::master::main))
        }
        Command::Adopt { config } => exit(Config::load(&config).and_then(|cfg| {
            cfg.open_store()?.check_mark(&cfg.mark(), true)?;
            println!(
                "the store now belongs to this config's cluster ({} mode); every right was dropped",
                cfg.file.mode
            );
            Ok(())
        })),
        Command::Status { master, config } => {
            let cfg = match config.map(|c| Config::load(&c)).transpose() {
                Ok(cfg) => cfg,
                Err(e) => return exit(Err(e)),
            };
            let secret = cfg.as_ref().and_then(|c| c.file.secret.clone());
            let addr = master.or(cfg.map(|c| c.file.master)).unwrap_or_else(|| "127.0.0.1:7100".into());
            exit(failgroup::dev::fetch_status(&addr, secret.as_deref()).map(|s| {
                print!("{}", failgroup::dev::format_status(&s));
            }))
        }
        Command::Check(args) => run_check(args),
        Command::Explore { model, addr } => {
            let cfg = model.config();
            if let Err(e) = cfg.validate() {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            println!("serving the explorer on http://{addr}");
            cfg.into_model().checker().serve(addr.as_str());
            ExitCode::SUCCESS
        }
    }
}

fn exit(r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_check(args: CheckArgs) -> ExitCode {
    if args.list_mutants {
        for m in Mutant::ALL {
            println!("{}", m.name());
        }
        return ExitCode::SUCCESS;
    }
    let cfg = args.model.config();
    if let Err(e) = cfg.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if args.threads == 0 {
        eprintln!("error: --threads: must be at least 1");
        return ExitCode::from(2);
    }
    let opts = RunOptions {
        strategy: args.strategy,
        threads: args.threads,
        depth: args.depth,
        seed: args.seed,
        walks: args.walks,
        stop_at_first_failure: !args.all,
        timeout: args.timeout.map(Duration::from_secs),
    };
    println!(
        "checking {} servers in {} group(s), {} client(s), {} key(s), mode {}{}; faults: {} crash, {} loss, {} dup, {} pause, {} cut, {} master crash, drift {}; time {}..{}",
        cfg.servers,
        cfg.groups,
        cfg.clients,
        cfg.keys,
        cfg.mode,
        cfg.mutant.map(|m| format!(", mutant {}", m.name())).unwrap_or_default(),
        cfg.faults.crashes,
        cfg.faults.losses,
        cfg.faults.duplicates,
        cfg.faults.pauses,
        cfg.faults.cuts,
        cfg.faults.master_crashes,
        cfg.drift,
        cfg.fault_horizon,
        cfg.max_time
    );
    let report = check::run(cfg, &opts, |p| {
        eprintln!(
            "states {}, unique {}, {:.0} states/s, depth {}",
            p.states,
            p.unique,
            p.states as f64 / p.secs.max(1e-9),
            p.depth
        );
    });
    for v in &report.verdicts {
        let kind = match v.expectation {
            Expectation::Always => "always",
            Expectation::Eventually => "eventually",
            Expectation::Sometimes => "sometimes",
        };
        let verdict = match &v.outcome {
            Outcome::Holds => "holds",
            Outcome::Violated(_) => "VIOLATED",
            Outcome::Reached => "reached",
            Outcome::NotReached => "not reached",
        };
        println!("  {kind:<10} {:<28} {verdict}", v.name);
    }
    for v in report.failures() {
        if let Outcome::Violated(trace) = &v.outcome {
            println!("\ncounterexample for `{}`:\n{trace}", v.name);
        }
    }
    if let Some(seed) = report.failing_seed {
        println!("replay with: --strategy simulate --seed {seed} --walks 1");
    }
    println!("{}", report.summary());
    ExitCode::from(report.exit_code() as u8)
}
