//! The `failgroup` command line: its arguments and what each subcommand runs.

pub mod dev;

use crate::check::config::Faults;
use crate::check::{self, CheckConfig, Outcome, RunOptions, Strategy};
use crate::config::Config;
use crate::node_error::NodeError;
use crate::util::LogFormat;
use clap::{Args, Parser, Subcommand};
use failgroup_model::{Mode, Mutant, TopologyChange};
use stateright::{Expectation, Model as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "failgroup", version, about = "A partitioned cache cluster with a model-checked failover protocol")]
struct Cli {
    #[command(subcommand)]
    command: CliCommand,
    /// How nodes write their log lines (stderr): text, or one JSON object per line
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum CliCommand {
    /// Run a local cluster: the master on 127.0.0.1:PORT, servers on the
    /// ports after it, each its own process, one SQLite file.
    Dev {
        /// Cache servers, s1..sN, each its own process (1..=64).
        #[arg(long, default_value_t = 3)]
        servers: u16,
        /// Failover groups the servers are spread over (1..=servers).
        #[arg(long, default_value_t = 1)]
        groups: u16,
        /// The master's port; servers listen on PORT+1..PORT+N.
        #[arg(long, default_value_t = 7100)]
        port: u16,
        /// Where the config (cluster.toml) and the database go
        /// [default: failgroup-dev-PORT in the temporary directory].
        #[arg(long)]
        data: Option<PathBuf>,
        /// The cluster's mode: linearizable (no stale reads) or available
        /// (the claims read literally).
        #[arg(long, default_value = "linearizable")]
        mode: Mode,
        /// The database: sqlite:PATH (relative to --data) or
        /// postgres://user[:password]@host[:port]/dbname.
        #[arg(long, default_value = "sqlite:data.db")]
        store: String,
        /// Where the nodes serve their metrics: the master on 127.0.0.1:P,
        /// servers on P+1..P+N, the standby master on P+N+1; 0 for none
        /// [default: PORT+1000, or none
        /// where that would pass 65535].
        #[arg(long)]
        metrics_port: Option<u16>,
    },
    /// Run one cache server of a cluster.
    Server {
        /// The cluster's configuration file (TOML: see docs/DEPLOYMENT.md).
        #[arg(long)]
        config: PathBuf,
        /// The server's name in the config, e.g. s1.
        #[arg(long)]
        id: String,
    },
    /// Run the master of a cluster.
    Master {
        /// The cluster's configuration file (TOML: see docs/DEPLOYMENT.md).
        #[arg(long)]
        config: PathBuf,
        /// Listen here instead of the config's `master`: a standby master (list it in
        /// `standby_masters`). Every master process contends for the lease in the store; the
        /// one holding it acts.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Record this config's mode and topology in the store, replacing the
    /// ones recorded, and drop every serving right. Run it once, with every
    /// node of the cluster stopped, after changing the mode or the servers.
    Adopt {
        /// The cluster's configuration file (TOML: see docs/DEPLOYMENT.md).
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the master's view: servers online/offline, who serves which slots.
    #[command(after_help = "Exit status: 0 printed; 2 a bad config or flag, or an answer that is not a status; \
                            3 the master could not be reached (with --watch: only if it never was).")]
    Status {
        /// The master's address [default: from --config, else 127.0.0.1:7100].
        #[arg(long)]
        master: Option<String>,
        /// Read the master's address and the secret from this config.
        #[arg(long)]
        config: Option<PathBuf>,
        /// One JSON document (mode, view_version, servers: name, addr, group,
        /// online, serves as [first, last] slot ranges, failovers) instead of
        /// the table; with --watch, one document per line.
        #[arg(long)]
        json: bool,
        /// Print the status again every SECONDS, until interrupted; an
        /// unreachable master is reported and asked again.
        #[arg(long, value_name = "SECONDS", value_parser = watch_interval)]
        watch: Option<f64>,
    },
    /// Operate on a running cluster.
    #[command(subcommand)]
    Admin(AdminCommand),
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

#[derive(Subcommand)]
enum AdminCommand {
    /// Tell a server to leave gracefully, as SIGTERM does: it hands its
    /// slots to its group's failover servers, the master marks it offline,
    /// it closes its client connections as their commands are answered and
    /// exits. Waits for the exit (at most `limits.drain_timeout` and 5 s).
    #[command(after_help = "Exit status: 0 drained and exited; 2 a bad config or name, or refused; \
                            3 the server could not be reached; 4 it did not exit in time.")]
    Drain {
        /// The cluster's configuration file (the server's address, the secret).
        #[arg(long)]
        config: PathBuf,
        /// The server's name in the config, e.g. s2.
        name: String,
    },
    /// Add a server to the running cluster. It owns no slot until
    /// `move-slots` or `rebalance` gives it some; start it with `failgroup
    /// server --config FILE --id NAME` (the config need not name it: it
    /// asks the master). A removed server's name brings it back.
    #[command(after_help = CHANGE_EXIT)]
    AddServer {
        /// The cluster's configuration file (the master's address, the secret).
        #[arg(long)]
        config: PathBuf,
        /// Its group (created if new).
        #[arg(long)]
        group: String,
        /// A new name, e.g. s4.
        name: String,
        /// Where its clients and peers reach it, e.g. 127.0.0.1:7104.
        addr: String,
    },
    /// Remove a server: its slots go to the other members of its group,
    /// evenly; it hands their rights over and exits.
    #[command(after_help = CHANGE_EXIT)]
    RemoveServer {
        /// The cluster's configuration file (the master's address, the secret).
        #[arg(long)]
        config: PathBuf,
        /// The server's name, e.g. s2.
        name: String,
    },
    /// Move slots to a server: the owners hand their rights over (each
    /// after the commands it sent under them), the new owner takes them
    /// with a new fencing epoch and an empty cache.
    #[command(after_help = CHANGE_EXIT)]
    MoveSlots {
        /// The cluster's configuration file (the master's address, the secret).
        #[arg(long)]
        config: PathBuf,
        /// The server the slots go to.
        #[arg(long)]
        to: String,
        /// Slots or inclusive ranges: 42, 0-5460.
        #[arg(required = true, value_parser = slot_range)]
        slots: Vec<[u16; 2]>,
    },
    /// Within each group, spread the slots evenly over its members, moving
    /// as few as it can.
    #[command(after_help = CHANGE_EXIT)]
    Rebalance {
        /// The cluster's configuration file (the master's address, the secret).
        #[arg(long)]
        config: PathBuf,
    },
}

const CHANGE_EXIT: &str = "Prints the new topology version. Exit status: 0 done; 2 a bad config, or the master \
                           refused the change (the reason is printed); 3 the master could not be reached.";

/// A slot or an inclusive range of slots: `42`, `0-5460`.
fn slot_range(s: &str) -> Result<[u16; 2], String> {
    let num = |t: &str| t.trim().parse::<u16>().map_err(|_| format!("{s:?}: a slot (0-16383) or a range A-B"));
    match s.split_once('-') {
        Some((a, b)) => Ok([num(a)?, num(b)?]),
        None => num(s).map(|n| [n, n]),
    }
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// Servers, in one group unless --groups says otherwise [default: 2]
    #[arg(long)]
    servers: Option<u16>,
    /// Failover groups [default: 1]
    #[arg(long)]
    groups: Option<u16>,
    /// Clients [default: 2]
    #[arg(long)]
    clients: Option<u16>,
    /// Keys, each in a slot of its own (with 2 servers and 2 keys, of different owners) [default: 1]
    #[arg(long)]
    keys: Option<u16>,
    /// Operations per client [default: 1]
    #[arg(long)]
    ops: Option<u8>,
    /// The commands clients run in turn, comma-separated: get, set, set-nx, set-xx, set-px, del, incr, decr,
    /// incrby, pexpire, pexpire-0, pttl, getdel, append, set-get, pexpire-nx, persist, strlen, multi-incr-get,
    /// multi-set-append, hset, hincrby, hdel, hgetall, msetnx, rename, copy, set-pxat (its key lapses at the
    /// store's tick 3) [default: set,get]
    #[arg(long, value_delimiter = ',')]
    commands: Option<Vec<ModelCommand>>,
    /// Server crashes, each may be followed by a restart [default: 1]
    #[arg(long)]
    crashes: Option<u8>,
    /// Lost messages [default: 0]
    #[arg(long)]
    losses: Option<u8>,
    /// Duplicated messages [default: 0]
    #[arg(long)]
    duplicates: Option<u8>,
    /// Servers paused (alive but silent), then resumed [default: 0]
    #[arg(long)]
    pauses: Option<u8>,
    /// Links cut between two nodes, healed later [default: 0]
    #[arg(long)]
    cuts: Option<u8>,
    /// Master crashes, each followed by a restart [default: 0]
    #[arg(long)]
    master_crashes: Option<u8>,
    /// Ticks by which store calls may be held back in all: a slow store [default: 0]
    #[arg(long)]
    store_delays: Option<u8>,
    /// Ticks by which other messages may be held back in all: a slow network [default: 0]
    #[arg(long)]
    delays: Option<u8>,
    /// Store calls that fail, before or after taking effect [default: 0]
    #[arg(long)]
    store_failures: Option<u8>,
    /// Hosts suspended (paused with their clock stopped), then resumed [default: 0]
    #[arg(long)]
    suspends: Option<u8>,
    /// Second processes of a paused server's identity [default: 0]
    #[arg(long)]
    twins: Option<u8>,
    /// Steps of the store's clock, a lease forward each [default: 0]
    #[arg(long)]
    clock_steps: Option<u8>,
    /// Cached copies evicted (a server drops its copy of a key, at any moment) [default: 0]
    #[arg(long)]
    evictions: Option<u8>,
    /// Graceful drains (a server hands its rights back and leaves, as on SIGTERM; it exits once drained and may
    /// restart) [default: 0]
    #[arg(long)]
    drains: Option<u8>,
    /// Slot moves (the operator moves one slot to another server through the master, at any moment; the
    /// model's "server joining" is a move to a server that owns no slot) [default: 0]
    #[arg(long)]
    moves: Option<u8>,
    /// Standby master processes beside the first: each contends for the master's lease in the store, the
    /// holder acts; a master crash is the acting one's [default: 0]
    #[arg(long)]
    standbys: Option<u8>,
    /// Clock lag bound, in ticks [default: 0]
    #[arg(long)]
    drift: Option<u64>,
    /// The cluster's mode: linearizable or available [default: linearizable]
    #[arg(long)]
    mode: Option<Mode>,
    /// A deliberately broken protocol variant (see --list-mutants). Alone, it runs the configuration (and
    /// strategy) that catches it; other flags change that configuration.
    #[arg(long)]
    mutant: Option<Mutant>,
    /// Faults happen before this tick [default: 4]
    #[arg(long)]
    fault_horizon: Option<u64>,
    /// Clients start operations before this tick [default: 4]
    #[arg(long)]
    op_horizon: Option<u64>,
    /// Crashed nodes may restart before this tick [default: 12]
    #[arg(long)]
    restart_horizon: Option<u64>,
    /// The clock stops at this tick [default: 20]
    #[arg(long)]
    max_time: Option<u64>,
    /// Ticks after its own within which a message not lost is delivered [default: 0]
    #[arg(long)]
    max_delay: Option<u64>,
    /// Explore without the search's reductions (slower; for showing they change no verdict)
    #[arg(long)]
    no_reductions: bool,
    /// Servers do not cache keys with a time to live (the config's `[cache] ttl_keys = false`)
    #[arg(long)]
    no_ttl_cache: bool,
}

impl ModelArgs {
    /// The configuration: the mutant's catching one, or the default, with
    /// each flag given replacing its part.
    fn config(&self, base: CheckConfig) -> CheckConfig {
        let b = base;
        let f = b.faults.clone();
        CheckConfig {
            servers: self.servers.unwrap_or(b.servers),
            groups: self.groups.unwrap_or(b.groups),
            clients: self.clients.unwrap_or(b.clients),
            keys: self.keys.unwrap_or(b.keys),
            ops_per_client: self.ops.unwrap_or(b.ops_per_client),
            commands: self.commands.clone().map(|c| c.into_iter().map(|c| c.0).collect()).unwrap_or(b.commands),
            faults: Faults {
                crashes: self.crashes.unwrap_or(f.crashes),
                losses: self.losses.unwrap_or(f.losses),
                duplicates: self.duplicates.unwrap_or(f.duplicates),
                pauses: self.pauses.unwrap_or(f.pauses),
                cuts: self.cuts.unwrap_or(f.cuts),
                master_crashes: self.master_crashes.unwrap_or(f.master_crashes),
                store_delays: self.store_delays.unwrap_or(f.store_delays),
                store_failures: self.store_failures.unwrap_or(f.store_failures),
                delays: self.delays.unwrap_or(f.delays),
                suspends: self.suspends.unwrap_or(f.suspends),
                twins: self.twins.unwrap_or(f.twins),
                clock_steps: self.clock_steps.unwrap_or(f.clock_steps),
                evictions: self.evictions.unwrap_or(f.evictions),
                drains: self.drains.unwrap_or(f.drains),
                moves: self.moves.unwrap_or(f.moves),
            },
            standbys: self.standbys.unwrap_or(b.standbys),
            drift: self.drift.unwrap_or(b.drift),
            mode: self.mode.unwrap_or(b.mode),
            mutant: self.mutant.or(b.mutant),
            fault_horizon: self.fault_horizon.unwrap_or(b.fault_horizon),
            op_horizon: self.op_horizon.unwrap_or(b.op_horizon),
            restart_horizon: self.restart_horizon.unwrap_or(b.restart_horizon),
            max_time: self.max_time.unwrap_or(b.max_time),
            max_delay: self.max_delay.unwrap_or(b.max_delay),
            reductions: b.reductions && !self.no_reductions,
            cache_ttl_keys: b.cache_ttl_keys && !self.no_ttl_cache,
        }
    }
}

/// A model command as a flag value.
#[derive(Clone, Debug)]
struct ModelCommand(check::spec::KvCommand);

impl std::str::FromStr for ModelCommand {
    type Err = check::spec::UnknownName;
    fn from_str(s: &str) -> Result<ModelCommand, check::spec::UnknownName> {
        s.parse().map(ModelCommand)
    }
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// bfs, dfs or simulate [default: bfs, or the mutant's]
    #[arg(long)]
    strategy: Option<Strategy>,
    /// Explore no deeper than this many steps.
    #[arg(long)]
    depth: Option<usize>,
    /// Threads exploring at once (1 or more).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// First seed of the random walks (simulate).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Random walks to run (simulate) [default: 1000, or the mutant's]
    #[arg(long)]
    walks: Option<u64>,
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

/// Runs the command line; the binary's `main`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        CliCommand::Dev { servers, groups, port, data, mode, store, metrics_port } => {
            let data = data.unwrap_or_else(|| std::env::temp_dir().join(format!("failgroup-dev-{port}")));
            crate::util::init_logging("info", cli.log_format);
            let log_format = cli.log_format;
            let metrics_port = metrics_port.unwrap_or_else(|| {
                let p = port as u32 + 1000;
                if p + u32::from(servers) < 65535 {
                    p as u16
                } else {
                    0
                }
            });
            let o = dev::DevOptions { servers, groups, port, data, mode, store, metrics_port, log_format };
            exit(dev::run(o))
        }
        CliCommand::Server { config, id } => {
            crate::util::init_logging("info", cli.log_format);
            exit(Config::load(&config).map_err(NodeError::from).and_then(|cfg| crate::server::main(cfg, &id)))
        }
        CliCommand::Master { config, listen } => {
            crate::util::init_logging("info", cli.log_format);
            exit(Config::load(&config).map_err(NodeError::from).and_then(|cfg| crate::master::main(cfg, listen)))
        }
        CliCommand::Adopt { config } => exit(Config::load(&config).map_err(NodeError::from).and_then(|cfg| {
            cfg.open_store()?.check_mark(&cfg.mark(), true)?;
            println!(
                "the store now belongs to this config's cluster ({} mode); every right was dropped",
                cfg.file.mode
            );
            Ok(())
        })),
        CliCommand::Status { master, config, json, watch } => {
            let cfg = match config.map(|c| Config::load(&c)).transpose() {
                Ok(cfg) => cfg,
                Err(e) => return exit(Err(e)),
            };
            let options = match cfg.as_ref().map(Config::client_options).transpose() {
                Ok(o) => o.unwrap_or_default(),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let addr = master.or(cfg.map(|c| c.file.master)).unwrap_or_else(|| "127.0.0.1:7100".into());
            status(&addr, &options, json, watch)
        }
        CliCommand::Admin(AdminCommand::Drain { config, name }) => match Config::load(&config) {
            Ok(cfg) => drain(&cfg, &name),
            Err(e) => exit(Err(e)),
        },
        CliCommand::Admin(AdminCommand::AddServer { config, group, name, addr }) => {
            change(&config, TopologyChange::AddServer { name, addr, group })
        }
        CliCommand::Admin(AdminCommand::RemoveServer { config, name }) => {
            change(&config, TopologyChange::RemoveServer { name })
        }
        CliCommand::Admin(AdminCommand::MoveSlots { config, to, slots }) => {
            change(&config, TopologyChange::MoveSlots { ranges: slots, to })
        }
        CliCommand::Admin(AdminCommand::Rebalance { config }) => change(&config, TopologyChange::Rebalance),
        CliCommand::Check(args) => run_check(args),
        CliCommand::Explore { model, addr } => {
            let base = model.mutant.and_then(check::mutants::catching).map_or_else(check::default_config, |c| c.cfg);
            let cfg = model.config(base);
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

/// `--watch`'s interval: a number of seconds, at least 0.1.
fn watch_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.1 => Ok(v),
        _ => Err(format!("{s:?}: a number of seconds, at least 0.1")),
    }
}

/// `failgroup status`: the master's view, once or every `watch` seconds.
fn status(addr: &str, options: &crate::ClientOptions, json: bool, watch: Option<f64>) -> ExitCode {
    let show = |s: &crate::net::wire::ClusterStatus| match (json, watch.is_some()) {
        (true, false) => println!("{}", serde_json::to_string_pretty(s).expect("a status encodes")),
        (true, true) => println!("{}", serde_json::to_string(s).expect("a status encodes")),
        (false, _) => print!("{}", dev::format_status(s)),
    };
    let Some(every) = watch else {
        return match dev::fetch_status(addr, options) {
            Ok(s) => {
                show(&s);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(e.exit_code())
            }
        };
    };
    let mut reached = false;
    loop {
        match dev::fetch_status(addr, options) {
            Ok(s) => {
                reached = true;
                if !json {
                    println!("-- {}", crate::util::unix_ms());
                }
                show(&s);
            }
            Err(e @ dev::StatusError::Unreachable(_)) if reached => eprintln!("error: {e}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(e.exit_code());
            }
        }
        std::thread::sleep(std::time::Duration::from_secs_f64(every));
    }
}

/// An admin's node link to `addr` (`what` names it in errors), or the exit
/// code: 2 when refused (a wrong secret, not a node), 3 when unreachable.
fn admin_link(
    addr: &str,
    what: &str,
    cfg: &Config,
    timeout: std::time::Duration,
) -> Result<crate::net::NodeLink, ExitCode> {
    let options = cfg.client_options().map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    options.link(addr, crate::net::wire::Peer::Admin, timeout).map_err(|e| {
        eprintln!("error: {what}: {e}");
        match e.kind() {
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::InvalidData => ExitCode::from(2),
            _ => ExitCode::from(3),
        }
    })
}

/// `failgroup admin add-server` and the other topology changes: asks the
/// master, prints the new version.
fn change(config: &std::path::Path, change: TopologyChange) -> ExitCode {
    use crate::net::wire::Msg;
    let cfg = match Config::load(config) {
        Ok(cfg) => cfg,
        Err(e) => return exit(Err(e)),
    };
    let master = &cfg.file.master;
    let timeout = std::time::Duration::from_secs(10);
    let mut link = match admin_link(master, &format!("master {master}"), &cfg, timeout) {
        Ok(link) => link,
        Err(code) => return code,
    };
    match link.send(&Msg::Change(change.clone())).and_then(|()| link.recv()) {
        Ok(Msg::Changed(Ok(version))) => {
            println!("{change}: topology version {version}");
            ExitCode::SUCCESS
        }
        Ok(Msg::Changed(Err(why))) => {
            eprintln!("error: {change}: {why}");
            ExitCode::from(2)
        }
        Ok(other) => {
            eprintln!("error: master {master}: unexpected answer {other:?}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: master {master}: {e}");
            ExitCode::from(3)
        }
    }
}

/// `failgroup admin drain NAME`.
fn drain(cfg: &Config, name: &str) -> ExitCode {
    use crate::net::wire::Msg;
    use std::time::{Duration, Instant};
    // The master's topology names servers added since the config was
    // written; without the master, the config's.
    let topology = crate::server::master_topology(cfg).unwrap_or_else(|_| cfg.topology.clone());
    let addr = match topology.id_of(name).filter(|s| !topology.is_removed(*s)) {
        Some(id) => topology.addr(id).to_string(),
        None if topology.id_of(name).is_some() => {
            eprintln!("error: {name} was removed from the cluster");
            return ExitCode::from(2);
        }
        None => {
            let e =
                cfg.server_id(name).err().map_or(format!("{name} is not in the master's topology"), |e| e.to_string());
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut link = match admin_link(&addr, &format!("{name} ({addr})"), cfg, Duration::from_secs(2)) {
        Ok(link) => link,
        Err(code) => return code,
    };
    match link.send(&Msg::Drain).and_then(|()| link.recv()) {
        Ok(Msg::Draining) => println!("{name} is draining"),
        Ok(other) => {
            eprintln!("error: {name} ({addr}): unexpected answer {other:?}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {name} ({addr}): {e}");
            return ExitCode::from(3);
        }
    }
    // The server closes this link when its process exits.
    let deadline = Instant::now() + Duration::from_millis(cfg.file.limits.drain_timeout) + Duration::from_secs(5);
    while Instant::now() < deadline {
        let _ = link.set_read_timeout(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1)));
        match link.recv() {
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
            Err(_) => {
                println!("{name} drained and exited");
                return ExitCode::SUCCESS;
            }
        }
    }
    eprintln!("error: {name} ({addr}) did not exit in time");
    ExitCode::from(4)
}

fn exit<E: std::fmt::Display>(r: Result<(), E>) -> ExitCode {
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
    let catch = args.model.mutant.and_then(check::mutants::catching);
    if let (Some(m), None) = (args.model.mutant, &catch) {
        eprintln!(
            "note: no configuration within the checker's reach catches {}; running the default bounds (the test \
             mutant_{}_is_caught drives the core along the path that does)",
            m.name(),
            m.name().replace('-', "_")
        );
    }
    let base = catch.as_ref().map_or_else(check::default_config, |c| c.cfg.clone());
    let cfg = args.model.config(base);
    if let Err(e) = cfg.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if args.threads == 0 {
        eprintln!("error: --threads: must be at least 1");
        return ExitCode::from(2);
    }
    let opts = RunOptions {
        strategy: args.strategy.or(catch.as_ref().map(|c| c.strategy)).unwrap_or(Strategy::Bfs),
        threads: args.threads,
        depth: args.depth,
        seed: args.seed,
        walks: args.walks.or(catch.as_ref().map(|c| c.walks)).unwrap_or(1_000),
        stop_at_first_failure: !args.all,
        timeout: args.timeout.map(Duration::from_secs),
    };
    println!("checking {}", cfg.describe());
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every flag of every subcommand says what it is in `--help`.
    #[test]
    fn every_flag_is_documented() {
        let cli = Cli::command();
        let mut bare = Vec::new();
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    bare.push(format!("{} --{id}", sub.get_name()));
                }
            }
        }
        assert!(bare.is_empty(), "flags without help: {bare:?}");
    }
}
