//! Protocol configuration: consistency mode, retry counts and durations.
//! Static data for the core (durations in milliseconds).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The consistency mode of a cluster.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every key is one linearizable register: a server serves a slot only
    /// while it holds the slot's serving right (lease + fencing epoch).
    #[default]
    Linearizable,
    /// The claims read literally: a non-owner serves at once when
    /// forwarding fails (c15); temporary caches expire after a TTL.
    Available,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "linearizable" => Ok(Mode::Linearizable),
            "available" => Ok(Mode::Available),
            _ => Err(format!("unknown mode {s:?} (expected linearizable or available)")),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Linearizable => "linearizable",
            Mode::Available => "available",
        })
    }
}

/// Deliberately broken variants of the protocol. The model checker must
/// catch each one; they exist so that a passing check means something.
/// Never set in a deployment (the runtime's config has no field for it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Mutant {
    /// The master marks a server offline on a report, without probing it.
    SkipVerification,
    /// A server keeps its old cache of a slot when it gains the right again.
    KeepCacheOnRegain,
    /// The store accepts writes whatever their fencing epoch.
    NoFencing,
    /// Servers apply master notices whatever their version.
    IgnoreNoticeVersions,
    /// The store grants a right another process holds, without a wait.
    EarlyTakeover,
    /// A failover server keeps its temporary cache after handing back.
    KeepTempCache,
    /// A server takes a peer's reply for whatever request has its operation
    /// number, from any peer and any incarnation (hole 1).
    AcceptAnyForwardReply,
    /// The store times leases on its own clock, as it once did: a right is
    /// free once the store's clock says a lease has passed since its last
    /// renewal (hole 2).
    StoreClockLeases,
    /// The store grants a right at once to a new process of the holder's
    /// name (hole 3).
    SameNameTakesOver,
    /// A suspended host's clock stands still and does not catch up on
    /// resume (a runtime timing leases with CLOCK_MONOTONIC, not
    /// CLOCK_BOOTTIME; model checker only).
    SuspendStopsClock,
    /// A server drops a request that must wait (for a right, or for the
    /// master's verdict on a peer) without ever answering it.
    NeverAnswerParked,
    /// The store applies a duplicated or retried transaction again instead
    /// of answering it from its record.
    TransactionsTwice,
    /// A server serves a cached key with a time to live until the time the
    /// store said was left, from sending its command, with no margin for
    /// clock drift.
    TtlCacheNoMargin,
    /// A draining server releases its rights in the store but goes on
    /// serving their slots from its cache until it exits.
    DrainKeepsServing,
    /// A server that a new topology takes slots from releases their rights
    /// in the store at once but goes on serving them from its cache: it
    /// skips draining the slots it gives away.
    MoveSkipsDrain,
    /// A standby master asks for the lease with the stamp it has just seen,
    /// without watching it unchanged for a lease: it takes the lease from a
    /// live master.
    LeaseSkipsWait,
}

impl Mutant {
    pub const ALL: [Mutant; 16] = [
        Mutant::SkipVerification,
        Mutant::KeepCacheOnRegain,
        Mutant::NoFencing,
        Mutant::IgnoreNoticeVersions,
        Mutant::EarlyTakeover,
        Mutant::KeepTempCache,
        Mutant::AcceptAnyForwardReply,
        Mutant::StoreClockLeases,
        Mutant::SameNameTakesOver,
        Mutant::SuspendStopsClock,
        Mutant::NeverAnswerParked,
        Mutant::TransactionsTwice,
        Mutant::TtlCacheNoMargin,
        Mutant::DrainKeepsServing,
        Mutant::MoveSkipsDrain,
        Mutant::LeaseSkipsWait,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mutant::SkipVerification => "skip-verification",
            Mutant::KeepCacheOnRegain => "keep-cache-on-regain",
            Mutant::NoFencing => "no-fencing",
            Mutant::IgnoreNoticeVersions => "ignore-notice-versions",
            Mutant::EarlyTakeover => "early-takeover",
            Mutant::KeepTempCache => "keep-temp-cache",
            Mutant::AcceptAnyForwardReply => "accept-any-forward-reply",
            Mutant::StoreClockLeases => "store-clock-leases",
            Mutant::SameNameTakesOver => "same-name-takes-over",
            Mutant::SuspendStopsClock => "suspend-stops-clock",
            Mutant::NeverAnswerParked => "never-answer-parked",
            Mutant::TransactionsTwice => "transactions-twice",
            Mutant::TtlCacheNoMargin => "ttl-cache-no-margin",
            Mutant::DrainKeepsServing => "drain-keeps-serving",
            Mutant::MoveSkipsDrain => "move-skips-drain",
            Mutant::LeaseSkipsWait => "lease-skips-wait",
        }
    }
}

impl FromStr for Mutant {
    type Err = String;
    fn from_str(s: &str) -> Result<Mutant, String> {
        Mutant::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown mutant {s:?} (see --list-mutants)"))
    }
}

/// Durations (ms) and counts of the protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timing {
    /// R: resends to a server before entering failover mode for it (c12).
    pub retries: u32,
    /// T: how long a client sends straight to the failover server before it
    /// probes the owner again (c13, c14).
    pub failover_period: u64,
    /// How long a client or forwarding server waits for a reply. A refused
    /// connection fails at once; this bounds a silent one, and should exceed
    /// what a failover takes (probe_timeout + lease), so that a request
    /// waiting at the failover server is not counted as a failed send.
    pub send_timeout: u64,
    /// How long the master waits for a server to answer its probe (c19).
    pub probe_timeout: u64,
    /// How often the master re-checks an offline server (c20).
    pub reprobe_interval: u64,
    /// How often the master re-sends its whole view (repairs lost notices).
    pub sync_interval: u64,
    /// Length of a serving right (lease): its holder trusts it for less
    /// (`trusted_lease`) after sending each renewal; a taker waits this long
    /// on its own clock, watching the record unchanged, before it takes it.
    pub lease: u64,
    /// Bound on how far two nodes' clocks may drift apart (rate, not
    /// offset) during one lease.
    pub max_drift: u64,
    /// How often a server re-routes requests that are waiting.
    pub retry_interval: u64,
    /// A request still waiting after this long fails with a timeout.
    pub request_timeout: u64,
    /// `available` mode: lifetime of a temporary cache entry (c3, c6).
    pub temp_ttl: u64,
    /// Forwarding hops a request may take before it waits instead.
    pub max_hops: u8,
    /// Serving rights a server hands over, or asks for, in one store
    /// command: a drain, a hand-back or a slot move releases its rights in
    /// batches of this many, `hand_over_gap` apart, serving the rest
    /// meanwhile, so that only one batch's requests wait at a time; asks
    /// go in batches one after another. 0: all at once.
    pub hand_over_batch: u32,
    /// Milliseconds between two release batches of a hand-over.
    pub hand_over_gap: u64,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            retries: 2,
            failover_period: 5_000,
            send_timeout: 3_000,
            probe_timeout: 500,
            reprobe_interval: 1_000,
            sync_interval: 2_000,
            lease: 600,
            max_drift: 30,
            retry_interval: 10,
            request_timeout: 10_000,
            temp_ttl: 5_000,
            max_hops: 2,
            hand_over_batch: 64,
            hand_over_gap: 15,
        }
    }
}

impl Timing {
    /// Checks relations the safety argument needs; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.lease <= 4 * self.max_drift {
            return Err("timing.lease: must exceed 4 * max_drift".into());
        }
        for (name, v) in [
            ("failover_period", self.failover_period),
            ("send_timeout", self.send_timeout),
            ("probe_timeout", self.probe_timeout),
            ("reprobe_interval", self.reprobe_interval),
            ("sync_interval", self.sync_interval),
            ("retry_interval", self.retry_interval),
            ("request_timeout", self.request_timeout),
        ] {
            if v == 0 {
                return Err(format!("timing.{name}: must be positive"));
            }
        }
        Ok(())
    }

    /// How long a right is trusted locally after its request was sent: the
    /// lease less twice the drift bound, so it ends before the store's.
    pub fn trusted_lease(&self) -> u64 {
        self.lease.saturating_sub(2 * self.max_drift)
    }

    /// How long a server watches another process's right unchanged, on its
    /// own clock, before it may take it: a whole lease.
    pub fn takeover_wait(&self) -> u64 {
        self.lease
    }

    /// How long after sending a command a server may serve from its cache
    /// a key the store said had `left` ms to live: `left` less twice the
    /// drift bound for each lease (or part of one) it spans, so that it
    /// ends before the store's clock reaches the key's expiry whatever the
    /// two clocks' rates (specs/properties.md, "Clocks").
    pub fn ttl_trust(&self, left: u64) -> u64 {
        let leases = left.div_ceil(self.lease.max(1));
        left.saturating_sub(leases.saturating_mul(2 * self.max_drift))
    }

    /// How many rights one hand-over or ask carries at most.
    pub fn batch(&self) -> usize {
        match self.hand_over_batch {
            0 => usize::MAX,
            n => n as usize,
        }
    }

    /// When to renew held rights: a third of the lease.
    pub fn renew_interval(&self) -> u64 {
        (self.lease / 3).max(1)
    }
}

/// Everything static the roles need besides the topology.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProtocolConfig {
    pub mode: Mode,
    pub timing: Timing,
    /// Whether a server caches keys with a time to live (served until
    /// [`Timing::ttl_trust`] of what was left): safe while the store's
    /// clock does not step forward past a cached key's expiry
    /// (specs/properties.md, "steps of any clock").
    pub cache_ttl_keys: bool,
    /// What cache entries record of their uses, for the eviction policy
    /// (the runtime sets it from `maxmemory-policy`; the checker leaves it
    /// off).
    pub usage: crate::evict::Usage,
    /// A deliberate bug, for the model checker only.
    #[serde(skip)]
    pub mutant: Option<Mutant>,
}

impl Default for ProtocolConfig {
    fn default() -> ProtocolConfig {
        ProtocolConfig {
            mode: Mode::default(),
            timing: Timing::default(),
            cache_ttl_keys: true,
            usage: crate::evict::Usage::Off,
            mutant: None,
        }
    }
}

impl ProtocolConfig {
    pub fn has(&self, m: Mutant) -> bool {
        self.mutant == Some(m)
    }
}
