//! The world a model run explores: addresses, messages and their
//! channels, each node's state, what has happened (for properties about
//! the past) and the whole cluster's state.

use super::config::Faults;
use super::linearizer::Linearizer;
use failgroup_model::*;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

/// Who a message is for or from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Addr {
    Master,
    /// A crashed master incarnation, whose last messages may still arrive.
    OldMaster(u64),
    Server(ServerId),
    /// The first process of a server whose identity a second process took
    /// over (`Action::Replace`); it reaches only the store.
    Twin(ServerId),
    Client(u16),
    Store,
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Master => write!(f, "master"),
            Addr::OldMaster(i) => write!(f, "master (incarnation {i}, crashed)"),
            Addr::Server(s) => write!(f, "{s}"),
            Addr::Twin(s) => write!(f, "{s} (first process)"),
            Addr::Client(c) => write!(f, "client{c}"),
            Addr::Store => write!(f, "store"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModelMsg {
    Request {
        req: ReqId,
        op: Op,
    },
    Response {
        seq: u64,
        result: OpResult,
    },
    Forward {
        op: u64,
        incarnation: u64,
        fwd: Forwarded,
    },
    /// `req` is the checker's own record of the request answered (no node
    /// reads it): a server must only complete that request with it.
    ForwardResponse {
        op: u64,
        incarnation: u64,
        result: OpResult,
        req: ReqId,
    },
    Report(Report),
    Master(MasterMsg),
    StoreCall {
        from: Holder,
        tag: StoreTag,
        op: StoreOp,
    },
    StoreAnswer {
        tag: StoreTag,
        reply: StoreReply,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Envelope {
    pub sent: u64,
    pub from: Addr,
    pub to: Addr,
    pub msg: ModelMsg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    Server(ServerId, ServerTimer),
    /// Master process `i`'s lease: renew it, or ask for it.
    Lease(u8),
    /// A timer of the first process of a replaced server.
    Twin(ServerTimer),
    Master(MasterTimer),
    Client(u16, ClientTimer),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Deliver the oldest message of a channel.
    Deliver(Addr, Addr),
    /// Lose the `i`-th message of a channel.
    Drop(Addr, Addr, usize),
    /// Send the `i`-th message of a channel again.
    Duplicate(Addr, Addr, usize),
    /// Hold the oldest message of a channel back one more tick (a call to
    /// the store: a slow store; any other: a slow network).
    Delay(Addr, Addr),
    /// The oldest call on a channel to the store fails: before taking
    /// effect (`false`) or after (`true`: the answer is lost).
    FailStore(Addr, bool),
    Tick,
    /// A tick on which this server's clock stands still (drift).
    Lag(ServerId),
    CatchUp(ServerId),
    Fire(Timer),
    Invoke(u16),
    Crash(ServerId),
    Restart(ServerId),
    Pause(ServerId),
    /// The host is suspended: paused, and its clock stands still.
    Suspend(ServerId),
    Resume(ServerId),
    /// A second process of a paused server's identity starts at its address.
    Replace(ServerId),
    /// The first process of a replaced server resumes.
    ResumeTwin,
    CatchUpTwin,
    /// The store's clock steps forward by a lease.
    StepStoreClock,
    /// A server drops its cached copy of a key (eviction under maxmemory).
    Evict(ServerId, Slot, Vec<u8>),
    /// A server is told to leave gracefully (SIGTERM).
    Drain(ServerId),
    /// The operator moves `slot` to server `to` (the master's change).
    Move(Slot, ServerId),
    /// A drained server's process exits.
    Exit(ServerId),
    CrashMaster,
    RestartMaster,
    Cut(Addr, Addr),
    Heal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProcStatus {
    Up,
    Paused,
    /// Paused with its clock standing still.
    Suspended,
    Crashed,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelServer {
    pub state: ServerState,
    pub status: ProcStatus,
    /// This process's run; a restart or a replacement draws a new one.
    pub incarnation: u64,
    pub clock: u64,
    pub timers: Timers<ServerTimer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientNode {
    pub state: ClientState,
    pub timers: Timers<ClientTimer>,
    /// Operations invoked so far.
    pub invoked: u8,
    pub current: Option<(u64, Op)>,
    pub completed: u8,
    /// An operation ended in an error; its effect is unknown.
    pub failed: bool,
}

/// What has happened, for properties that speak of the past.
///
/// Its hash, by which the checker tells states apart, leaves out the
/// witnesses of `sometimes` properties: two states that differ only in
/// which interesting things happened on the way are one state to explore
/// (the first one found stands for both). A witness can then be missed
/// (reported not reached, which fails the tests, never passes them) but no
/// state is left unexplored: every field safety depends on is hashed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    pub forwarded: bool,
    pub failover_served: bool,
    pub owner_recovered: bool,
    pub marked_offline: bool,
    pub handed_back: bool,
    pub notice_applied: bool,
    pub read_other_write: bool,
    /// The master marked a server offline other than on its own failed probe.
    pub unverified_offline: bool,
    /// A server's view of some server went back to an older notice.
    pub view_regressed: bool,
    /// The store applied a write under a right that was no longer current.
    pub deposed_write: bool,
    /// A server completed a request with a reply to another request, or a
    /// client got a result of another kind than its operation's.
    pub mismatched_reply: bool,
    /// A restarted or replaced server forwarded a request while an earlier
    /// run's request was still waiting at a peer.
    pub restart_while_forwarded: bool,
    /// A drained server exited.
    pub drained_exit: bool,
    /// A hand-over released a batch of rights and kept the rest for later.
    pub batched_hand_over: bool,
    /// A server passed a request on its last hop to a right's holder its
    /// view has offline (a leaving server, which serves what it has not
    /// released yet).
    pub passed_to_leaving: bool,
    /// A slot moved and its new owner served it.
    pub moved_served: bool,
    /// A standby master took the lease over from a crashed one.
    pub took_over: bool,
    /// A master that took over marked a server offline.
    pub failed_over_after_takeover: bool,
    /// Servers whose latest probe the master saw answered.
    pub probe_answered: BTreeSet<ServerId>,
}

pub type Tester = Linearizer;

#[derive(Clone, Debug, PartialEq, Hash)]
pub struct ClusterState {
    pub now: u64,
    pub master: Option<MasterState>,
    pub master_timers: Timers<MasterTimer>,
    pub incarnation: u64,
    pub servers: Vec<ModelServer>,
    /// The first process of a server replaced by a second one.
    pub twin: Option<(ServerId, ModelServer)>,
    pub clients: Vec<ClientNode>,
    pub store: MemStore,
    /// How far the store's clock is ahead of the global one.
    pub store_ahead: u64,
    /// In flight: one FIFO channel per (from, to), as a TCP connection is;
    /// messages on different channels overtake each other freely.
    pub net: BTreeMap<(Addr, Addr), VecDeque<(u64, ModelMsg)>>,
    pub budget: Faults,
    pub cut: Option<(Addr, Addr)>,
    /// One linearizability tester per key.
    pub testers: Vec<Tester>,
    /// Requests a server process took and has not answered yet.
    pub open: BTreeSet<(Addr, Origin)>,
    pub seen: Seen,
    /// The topology the master last persisted in the store (issue 17): a
    /// restarted master continues from it.
    pub saved_topology: Option<std::sync::Arc<Topology>>,
    /// Master processes contending for the lease (with `standbys`; empty
    /// otherwise). `master` is the acting one's protocol state.
    pub masters: Vec<MasterProc>,
    /// Which of `masters` acts.
    pub acting: Option<u8>,
}

/// A master process of a model with standbys: its hold on the lease.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MasterProc {
    pub lease: LeaseState,
    pub up: bool,
    /// Its run: a restart draws a new one (the store tells holders apart by it).
    pub run: u64,
    /// When its lease ticks next.
    pub next_tick: u64,
}

impl std::hash::Hash for Seen {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let Seen {
            unverified_offline,
            view_regressed,
            deposed_write,
            mismatched_reply,
            probe_answered,
            // Witnesses only.
            forwarded: _,
            failover_served: _,
            owner_recovered: _,
            marked_offline: _,
            handed_back: _,
            notice_applied: _,
            read_other_write: _,
            restart_while_forwarded: _,
            drained_exit: _,
            batched_hand_over: _,
            moved_served: _,
            took_over: _,
            failed_over_after_takeover: _,
            passed_to_leaving: _,
        } = self;
        (unverified_offline, view_regressed, deposed_write, mismatched_reply, probe_answered).hash(h)
    }
}

impl ClusterState {
    /// The master's notices still in flight travel on their own (old)
    /// connections, and may arrive after the next master's.
    pub fn retire_master_channels(&mut self) {
        let old = Addr::OldMaster(self.incarnation);
        let channels: Vec<(Addr, Addr)> = self.net.keys().filter(|(f, _)| *f == Addr::Master).copied().collect();
        for (from, to) in channels {
            let chan = self.net.remove(&(from, to)).expect("channel");
            self.net.insert((old, to), chan);
        }
    }

    /// The store's clock moved (a tick, a step): each key's history sees
    /// the keys whose deadline it reached lapse now.
    pub fn store_clock_moved(&mut self) {
        let now = self.now + self.store_ahead;
        for t in &mut self.testers {
            t.tick(now);
        }
    }

    pub(super) fn send(&mut self, from: Addr, to: Addr, msg: ModelMsg) {
        self.net.entry((from, to)).or_default().push_back((self.now, msg));
    }

    /// Removes the `i`-th message of a channel.
    pub(super) fn take(&mut self, from: Addr, to: Addr, i: usize) -> Option<Envelope> {
        let chan = self.net.get_mut(&(from, to))?;
        let (sent, msg) = chan.remove(i)?;
        if chan.is_empty() {
            self.net.remove(&(from, to));
        }
        Some(Envelope { sent, from, to, msg })
    }

    /// The `i`-th message of a channel.
    pub fn peek(&self, from: Addr, to: Addr, i: usize) -> Option<Envelope> {
        let (sent, msg) = self.net.get(&(from, to))?.get(i)?.clone();
        Some(Envelope { sent, from, to, msg })
    }

    /// A node crashed: what was on the way to it is lost with its
    /// connections; what it sent may still arrive.
    pub(super) fn disconnect(&mut self, node: Addr) {
        self.net.retain(|(_, to), _| *to != node);
    }

    pub(super) fn is_cut(&self, a: Addr, b: Addr) -> bool {
        self.cut == Some((a, b)) || self.cut == Some((b, a))
    }
}
