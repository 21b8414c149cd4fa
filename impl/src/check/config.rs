//! The bounds of one model run: counts, fault budgets, time horizons and
//! the switches (mode, mutant, reductions), and the one line that says
//! what a run checks.

use super::spec::KvCommand;
use failgroup_model::*;

/// Ticks the clock may run past `max_time` while an operation is pending:
/// more than any operation's timeouts, a failover and a lease take.
pub const DRAIN: u64 = 60;

/// The bounds of one model: counts, fault budgets and time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    pub servers: u16,
    pub groups: u16,
    pub clients: u16,
    pub keys: u16,
    /// Operations each client runs.
    pub ops_per_client: u8,
    /// The commands clients run, in turn: client `c`'s `i`-th operation is
    /// `commands[(c + i) % len]` (the default, SET and GET, has one client
    /// write while the other reads, then the other way round).
    pub commands: Vec<KvCommand>,
    /// How many faults of each kind a run may inject.
    pub faults: Faults,
    /// Clock lag bound in ticks (0: clocks advance together).
    pub drift: u64,
    pub mode: Mode,
    pub mutant: Option<Mutant>,
    /// Faults happen before this tick.
    pub fault_horizon: u64,
    /// Clients start operations before this tick.
    pub op_horizon: u64,
    /// Crashed servers and the master may restart before this tick.
    pub restart_horizon: u64,
    /// The clock stops here; what is in flight is then drained.
    pub max_time: u64,
    /// A message not lost is delivered within this many ticks after the one
    /// it was sent in (0: in the same tick). Messages to a paused node or
    /// over a cut link wait.
    pub max_delay: u64,
    /// The search's reductions (deliveries to one receiver at a time, due
    /// timers in a fixed order, restarts and resumes between a tick's
    /// work): off only to show they change no verdict.
    pub reductions: bool,
    /// Whether servers cache keys with a time to live
    /// ([`ProtocolConfig::cache_ttl_keys`]).
    pub cache_ttl_keys: bool,
    /// Standby master processes beside the first (issue 17): every master
    /// process contends for the lease in the store; a master crash is the
    /// acting one's, a restart brings a process back as a standby.
    pub standbys: u8,
}

impl Default for CheckConfig {
    fn default() -> CheckConfig {
        CheckConfig {
            servers: 3,
            groups: 1,
            clients: 2,
            keys: 1,
            ops_per_client: 1,
            commands: vec![KvCommand::Set, KvCommand::Get],
            faults: Faults { crashes: 1, ..Faults::default() },
            drift: 0,
            mode: Mode::Linearizable,
            mutant: None,
            fault_horizon: 4,
            op_horizon: 4,
            restart_horizon: 12,
            max_time: 20,
            max_delay: 0,
            reductions: true,
            cache_ttl_keys: true,
            standbys: 0,
        }
    }
}

impl CheckConfig {
    /// Protocol timing in ticks.
    pub fn protocol(&self) -> ProtocolConfig {
        ProtocolConfig {
            mode: self.mode,
            mutant: self.mutant,
            cache_ttl_keys: self.cache_ttl_keys,
            usage: Usage::Off,
            timing: Timing {
                retries: 0,
                failover_period: 4,
                // Shorter than a failover takes (the runtime's default is
                // longer): clients and forwarding servers give a silent
                // server up, report it and fail over within a few ticks,
                // which is where the protocol's races are.
                send_timeout: 2,
                probe_timeout: 2,
                reprobe_interval: 3,
                sync_interval: 8,
                lease: 6 + 4 * self.drift,
                max_drift: self.drift,
                retry_interval: 3,
                // A parked request is answered (TRYAGAIN) at the latest
                // after this, well within the drain.
                request_timeout: 24,
                temp_ttl: 8,
                max_hops: 2,
                // One right per batch: a hand-over of two slots releases
                // them in turn, a tick apart, and asks go one at a time.
                hand_over_batch: 1,
                hand_over_gap: 1,
            },
        }
    }

    pub fn validate(&self) -> Result<(), OutOfBounds> {
        let check = |ok: bool, msg: &'static str| if ok { Ok(()) } else { Err(OutOfBounds::Flag(msg)) };
        check((1..=6).contains(&self.servers), "--servers: must be 1..=6")?;
        check(self.groups >= 1 && self.groups <= self.servers, "--groups: must be 1..=servers")?;
        check((1..=4).contains(&self.clients), "--clients: must be 1..=4")?;
        check((1..=3).contains(&self.keys), "--keys: must be 1..=3")?;
        check((1..=6).contains(&self.ops_per_client), "--ops: must be 1..=6")?;
        check(!self.commands.is_empty(), "--commands: name at least one command")?;
        check(self.fault_horizon <= self.max_time, "--fault-horizon: must not exceed --max-time")?;
        check(self.restart_horizon <= self.max_time, "--restart-horizon: must not exceed --max-time")?;
        check(self.max_time <= 200, "--max-time: at most 200")?;
        check(self.max_delay <= 3, "--max-delay: at most 3")?;
        check(self.drift <= 3, "--drift: at most 3")?;
        self.protocol().timing.validate().map_err(OutOfBounds::Timing)
    }
}

/// Bounds the checker refuses: a flag out of its range (the flag and the
/// range), or timing the protocol refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutOfBounds {
    Flag(&'static str),
    Timing(String),
}

impl std::fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OutOfBounds::Flag(why) => f.write_str(why),
            OutOfBounds::Timing(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for OutOfBounds {}

/// Fault budgets: in a configuration, how many of each fault a run may
/// inject; in a state, how many are left.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Faults {
    /// Server crashes (each may be followed by a restart).
    pub crashes: u8,
    /// Lost messages.
    pub losses: u8,
    pub duplicates: u8,
    /// Servers paused (alive but silent), then resumed.
    pub pauses: u8,
    /// Links cut between two nodes (healed later).
    pub cuts: u8,
    pub master_crashes: u8,
    /// Ticks by which store calls may be held back in all (a slow store).
    pub store_delays: u8,
    /// Ticks by which other messages may be held back in all (a slow
    /// network), beyond `max_delay`.
    pub delays: u8,
    /// Hosts suspended (clock stopped), then resumed.
    pub suspends: u8,
    /// Second processes of a paused server's identity.
    pub twins: u8,
    /// Steps of the store's clock, a lease forward each.
    pub clock_steps: u8,
    /// Cached copies a server drops (eviction), at any moment.
    pub evictions: u8,
    /// Servers told to drain (leave gracefully); each exits once drained
    /// and may restart.
    pub drains: u8,
    /// Slot moves an operator asks the master for (`move-slots`): one
    /// slot to another server, at any moment (issue 17).
    pub moves: u8,
    /// Store calls that fail (`Failed`: a lost connection, a timeout, a
    /// rollback), before or after taking effect.
    pub store_failures: u8,
}

impl CheckConfig {
    /// One line saying what is checked.
    pub fn describe(&self) -> String {
        let f = &self.faults;
        let commands: Vec<&str> = self.commands.iter().map(|c| c.name()).collect();
        format!(
            "{} servers in {} group(s), {} client(s) x {} op(s) of [{}], {} key(s), mode {}{}; faults: {} crash, \
             {} loss, {} dup, {} pause, {} cut, {} master crash, {} store delay, {} delay, {} store failure, {} suspend, \
             {} twin, {} clock step, {} eviction, {} drain, {} move, drift {}, max delay {}; time {}..{}{}{}{}",
            self.servers,
            self.groups,
            self.clients,
            self.ops_per_client,
            commands.join(","),
            self.keys,
            self.mode,
            self.mutant.map(|m| format!(", mutant {}", m.name())).unwrap_or_default(),
            f.crashes,
            f.losses,
            f.duplicates,
            f.pauses,
            f.cuts,
            f.master_crashes,
            f.store_delays,
            f.delays,
            f.store_failures,
            f.suspends,
            f.twins,
            f.clock_steps,
            f.evictions,
            f.drains,
            f.moves,
            self.drift,
            self.max_delay,
            self.fault_horizon,
            self.max_time,
            if self.reductions { "" } else { ", no reductions" },
            if self.cache_ttl_keys { "" } else { ", keys with a time to live uncached" },
            if self.standbys == 0 { String::new() } else { format!(", {} standby master(s)", self.standbys) },
        )
    }
}
