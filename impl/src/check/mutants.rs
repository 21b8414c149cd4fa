//! Each mutant's catching configuration: the bounds (and strategy) in which
//! the checker finds it, used by `failgroup check --mutant NAME` and by the
//! tests, which also run the same bounds without the mutant (the control)
//! and require every property to hold there.

use super::config::{CheckConfig, Faults};
use super::spec::KvCommand;
use super::Strategy;
use failgroup_model::Mutant;

/// Where a mutant is caught.
#[derive(Clone, Debug)]
pub struct Catch {
    pub cfg: CheckConfig,
    pub strategy: Strategy,
    /// Random walks, when the strategy is `simulate`.
    pub walks: u64,
    /// The property the mutant violates.
    pub property: &'static str,
    /// `sometimes` properties the control run cannot reach in these bounds.
    pub unreached: &'static [&'static str],
}

/// `sometimes` properties one client with one operation and no crash
/// cannot reach: only a crash makes the master mark the owner offline
/// for long enough that it is announced back and handed its slots back.
pub const ONE_CLIENT: &[&str] =
    &["read another client's write", "restart while forwarded", "handed back", "owner recovered"];

/// `sometimes` properties a run with no server crash and every client at
/// the key's owner (both clients, or one, beside a master's takeover)
/// cannot reach: no server is marked offline, none serves another's slot,
/// nothing is forwarded.
pub const NO_CRASH_ONE_SERVER: &[&str] = &[
    "read another client's write",
    "failover served",
    "marked offline",
    "handed back",
    "owner recovered",
    "notice applied",
    "forwarded",
];

/// `sometimes` properties one client with one operation, a slot move and
/// no crash cannot reach: nobody is marked offline, nothing fails over.
pub const ONE_MOVE: &[&str] =
    &["read another client's write", "failover served", "marked offline", "owner recovered", "notice applied"];

fn exhaustive(cfg: CheckConfig, property: &'static str, unreached: &'static [&'static str]) -> Catch {
    Catch { cfg, strategy: Strategy::Bfs, walks: 0, property, unreached }
}

/// Two servers, one client with one operation: the bounds of the hole-2
/// and hole-3 checks, with the one fault each needs.
fn small(faults: Faults) -> CheckConfig {
    CheckConfig { clients: 1, ops_per_client: 1, faults, ..super::default_config() }
}

/// The configuration that catches `m`; `None` for the one mutant no
/// configuration within the checker's reach catches: `keep-cache-on-regain`
/// needs an owner paused, a peer taking its right after a lease, writing,
/// handing back, and the owner regaining it before its renewal is refused.
/// The test `mutant_keep_cache_on_regain_is_caught` drives the core's
/// server and store transitions along that path, with and without it.
pub fn catching(m: Mutant) -> Option<Catch> {
    let d = super::default_config;
    let faults = |f: Faults| CheckConfig { faults: f, ..d() };
    Some(match m {
        Mutant::SkipVerification => exhaustive(d(), "verified offline", &[]),
        Mutant::KeepTempCache => {
            exhaustive(faults(Faults { losses: 1, crashes: 1, ..Faults::default() }), "temporary cache dropped", &[])
        }
        Mutant::EarlyTakeover => exhaustive(
            CheckConfig { clients: 1, ..faults(Faults { pauses: 1, crashes: 1, ..Faults::default() }) },
            "one server per slot",
            &["read another client's write", "owner recovered", "restart while forwarded"],
        ),
        // Also the check of a master crash beside a server crash, with one
        // client (613,521 states; with two, 5,858,194: specs/results.md).
        Mutant::IgnoreNoticeVersions => exhaustive(
            CheckConfig { clients: 1, ..faults(Faults { crashes: 1, master_crashes: 1, ..Faults::default() }) },
            "notices in order",
            &["read another client's write"],
        ),
        // The owner pauses while its write waits at a slow store; the
        // failover server takes the right (a report, a probe, a lease
        // watched: some 20 ticks) before the write lands. Too many states to
        // exhaust with a slow store that long: seeded random walks.
        Mutant::NoFencing => Catch {
            cfg: CheckConfig {
                clients: 1,
                fault_horizon: 20,
                ..faults(Faults { pauses: 1, store_delays: 20, ..Faults::default() })
            },
            strategy: Strategy::Simulate,
            walks: 20_000,
            property: "fenced writes",
            unreached: ONE_CLIENT,
        },
        Mutant::StoreClockLeases => exhaustive(
            small(Faults { pauses: 1, clock_steps: 1, ..Faults::default() }),
            "one server per slot",
            ONE_CLIENT,
        ),
        // A key set to lapse at tick 3 is cached by its owner; the owner's
        // clock lags a tick; a GET at tick 3 finds it still cached.
        Mutant::TtlCacheNoMargin => exhaustive(
            CheckConfig {
                commands: vec![KvCommand::SetPxAt, KvCommand::Get],
                drift: 1,
                faults: Faults::default(),
                ..d()
            },
            "linearizable",
            NO_CRASH_ONE_SERVER,
        ),
        Mutant::SuspendStopsClock => {
            exhaustive(small(Faults { suspends: 1, ..Faults::default() }), "one server per slot", ONE_CLIENT)
        }
        Mutant::SameNameTakesOver => {
            exhaustive(small(Faults { pauses: 1, twins: 1, ..Faults::default() }), "one server per slot", ONE_CLIENT)
        }
        // A server restarted while what it forwarded waited at a paused
        // peer; its new requests reuse operation numbers. The path is long
        // (two crashes, a pause, a slow store): seeded random walks find it.
        Mutant::AcceptAnyForwardReply => Catch {
            cfg: CheckConfig {
                servers: 2,
                ops_per_client: 3,
                faults: Faults { crashes: 2, pauses: 1, store_delays: 2, ..Faults::default() },
                fault_horizon: 14,
                op_horizon: 14,
                restart_horizon: 18,
                max_time: 30,
                ..d()
            },
            strategy: Strategy::Simulate,
            walks: 20_000,
            property: "replies match requests",
            unreached: &[],
        },
        Mutant::NeverAnswerParked => exhaustive(CheckConfig { servers: 2, ..d() }, "requests complete", &[]),
        // A client's transaction delivered twice races another client's
        // increment: applied twice, the increment answers one too many.
        Mutant::TransactionsTwice => exhaustive(
            CheckConfig {
                servers: 2,
                commands: vec![KvCommand::MultiIncrGet, KvCommand::Incr],
                ..faults(Faults { duplicates: 1, ..Faults::default() })
            },
            "linearizable",
            NO_CRASH_ONE_SERVER,
        ),
        // A server drains: its failover server takes the released right
        // while the draining server still trusts it.
        Mutant::DrainKeepsServing => {
            exhaustive(small(Faults { drains: 1, ..Faults::default() }), "one server per slot", ONE_CLIENT)
        }
        // A slot moves: its new owner takes the released right while the
        // old owner, skipping the drain, still trusts it.
        Mutant::MoveSkipsDrain => {
            exhaustive(small(Faults { moves: 1, ..Faults::default() }), "one server per slot", ONE_MOVE)
        }
        // A standby takes the lease from a live master: two act at once.
        Mutant::LeaseSkipsWait => exhaustive(
            CheckConfig { standbys: 1, ..small(Faults { crashes: 0, master_crashes: 1, ..Faults::default() }) },
            "one acting master",
            NO_CRASH_ONE_SERVER,
        ),
        Mutant::KeepCacheOnRegain => return None,
    })
}
