//! A cache server (c1-c3, c6, c15-c17).
//!
//! A request of a slot it usually processes, it processes (c15). Otherwise,
//! if the owner is marked offline and it is the slot's failover server, it
//! processes it with a temporary cache (c1, c3); if the owner is not marked
//! offline it forwards the request to the owner, and when that fails it
//! notifies the master (c15) and then, in `available` mode, processes it at
//! once; in `linearizable` mode it waits until the master's verdict says who
//! serves the slot.
//!
//! In `linearizable` mode "processes" means: while holding the slot's
//! serving right (a lease with a fencing epoch, kept in the store). A server
//! that gains a right starts the slot with an empty cache, and writes carry
//! the epoch so the store refuses them once the right has moved.

use crate::bytes::SmallBytes;
use crate::config::{Mode, Mutant, ProtocolConfig};
use crate::evict::Usage;
use crate::messages::{Forwarded, Liveness, MasterMsg, Origin, Report, View};
use crate::store::{Keep, Stamp, StoreOp, StoreReply, Write};
use crate::topology::Topology;
use crate::types::{DataRef, Epoch, ErrorKind, Inspect, Key, Op, OpResult, ServerId, Slot, Time, Value};
use equivalent::{Comparable, Equivalent};
use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ServerTimer {
    /// Renew held serving rights.
    Renew,
    /// Re-route requests that are waiting, and fail those past deadline.
    Retry,
    /// A forwarded request got no answer in time (c15).
    ForwardTimeout(u64),
    /// Rights watched for a lease may now be taken.
    Watch,
    /// The next batch of a hand-over ([`Timing::hand_over_batch`](crate::Timing)).
    HandOver,
}

/// Says which command a store reply answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StoreTag {
    Op(u64),
    /// `sent`: when the request left, the start of the trusted lease;
    /// `more`: slots past this batch wait to be asked for.
    Acquire {
        sent: Time,
        more: bool,
    },
    Renew {
        sent: Time,
    },
    Release,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ServerInput {
    /// (Re)start: everything in memory is gone. `incarnation` names this
    /// run of the process (the runtime draws it at random): replies to what
    /// an earlier run forwarded are told apart by it.
    Start {
        incarnation: u64,
    },
    /// A request from a client (hops 0) or a peer.
    Request {
        origin: Origin,
        fwd: Forwarded,
    },
    /// A peer's answer to operation `op` of run `incarnation` of this
    /// server; taken only if `op` was forwarded to `from` in this run.
    ForwardReply {
        from: ServerId,
        incarnation: u64,
        op: u64,
        result: OpResult,
    },
    /// The runtime could not deliver a forwarded request.
    ForwardFailed {
        op: u64,
    },
    Store {
        tag: StoreTag,
        reply: StoreReply,
    },
    Master(MasterMsg),
    Timer(ServerTimer),
    /// Leave gracefully (SIGTERM, `failgroup admin drain`): hand every
    /// right back, tell the master, pass requests to the servers that take
    /// over; [`ServerState::drained`] says when the process may exit.
    Drain,
}

/// Notable events, for logs and statistics.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ServerEvent {
    RightsTaken(Vec<(Slot, Epoch)>),
    RightsLost(Vec<Slot>),
    HandedBack(Vec<Slot>),
    NoticeApplied(ServerId, Liveness),
    /// A request was served here (from the cache or through the store);
    /// `for_other`: the slot belongs to another server (c1, c3).
    Served {
        slot: Slot,
        for_other: bool,
    },
    /// A GET served here found its key in the cache.
    CacheHit,
    /// A GET served here did not: it reads the store (c2).
    CacheMiss,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ServerOutput {
    Reply {
        to: Origin,
        result: OpResult,
    },
    /// Forward a request to a peer as operation `op` of run `incarnation`.
    Forward {
        to: ServerId,
        op: u64,
        incarnation: u64,
        fwd: Forwarded,
    },
    Store {
        tag: StoreTag,
        op: StoreOp,
    },
    ToMaster(Report),
    SetTimer {
        timer: ServerTimer,
        at: Time,
    },
    CancelTimer(ServerTimer),
    Event(ServerEvent),
}

/// A serving right as its holder trusts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Right {
    pub epoch: Epoch,
    /// Request time + lease - 2 * drift: ends before the store's lease does.
    pub trusted_until: Time,
}

/// A cached key, ordered by a hash of its bytes before the bytes: a lookup
/// in a slot of many keys compares integers on its way down the tree and the
/// bytes about once (ordered by the bytes alone, GET hits spent half their
/// time in byte comparisons).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CacheKey {
    pub hash: u64,
    /// Inline when short: no heap block of its own.
    pub key: SmallBytes,
}

impl CacheKey {
    pub fn new(key: &[u8]) -> CacheKey {
        CacheKey { hash: KeyRef::new(key).hash, key: SmallBytes::new(key) }
    }

    /// The first key of the order with this hash: a point to look up from
    /// (eviction's random samples).
    pub fn at_hash(hash: u64) -> CacheKey {
        CacheKey { hash, key: SmallBytes::new(b"") }
    }
}

/// A borrowed [`CacheKey`], to look one up without copying the key.
#[derive(Clone, Copy)]
pub struct KeyRef<'a> {
    hash: u64,
    key: &'a [u8],
}

impl<'a> KeyRef<'a> {
    pub fn new(key: &'a [u8]) -> KeyRef<'a> {
        KeyRef { hash: crate::bytes::mix(crate::bytes::fnv1a(crate::bytes::FNV_OFFSET, key)), key }
    }
}

impl Equivalent<CacheKey> for KeyRef<'_> {
    fn equivalent(&self, k: &CacheKey) -> bool {
        self.hash == k.hash && self.key == &*k.key
    }
}

impl Comparable<CacheKey> for KeyRef<'_> {
    fn compare(&self, k: &CacheKey) -> Ordering {
        self.hash.cmp(&k.hash).then_with(|| self.key.cmp(&*k.key))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CacheEntry {
    /// Inline when short, as the key.
    pub value: Option<SmallBytes>,
    pub version: u64,
    /// Served while the server's clock is before it: [`Time::NEVER`] for
    /// an entry under a right; in `available` mode, another server's slot,
    /// a temporary entry (c3); `Time::ZERO`: a tombstone of a key that is
    /// not cached. (Not an `Option`: 8 bytes less per cached key.)
    pub expires: Time,
    /// Its uses as the eviction policy counts them ([`Usage`]): 0 unless
    /// one that needs them is set.
    pub used: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Stage {
    /// Waiting for a right, a verdict or a retry.
    Parked,
    /// At the store, under `epoch` (none in `available` mode), sent at
    /// `sent` on this server's clock.
    Store { epoch: Option<Epoch>, sent: Time },
    /// Forwarded to a peer.
    Forwarded(ServerId),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Pending {
    pub origin: Origin,
    pub fwd: Forwarded,
    pub slot: Slot,
    pub deadline: Time,
    pub stage: Stage,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServerState {
    /// This run of the process (from [`ServerInput::Start`]).
    pub incarnation: u64,
    pub view: View,
    pub rights: OrdMap<Slot, Right>,
    pub acquiring: OrdSet<Slot>,
    /// Rights another process holds that this server waits to take: the
    /// record's stamp and when (on this server's clock) it first saw it.
    pub watching: OrdMap<Slot, (Stamp, Time)>,
    /// Holders of watched rights seen renewing one, or servers the master
    /// said are leaving ([`MasterMsg::Leaving`]), and when.
    pub renewing: OrdMap<ServerId, Time>,
    pub cache: OrdMap<Slot, OrdMap<CacheKey, CacheEntry>>,
    /// Requests in flight. A std map: it changes with every forwarded or
    /// stored request and stays small, where a persistent map pays for
    /// shared nodes on every change (12 % of a forwarding server).
    pub ops: std::collections::BTreeMap<u64, Pending>,
    pub next_op: u64,
    pub retry_armed: bool,
    pub renew_armed: bool,
    /// A hand-over has rights left to release at its next batch.
    pub hand_over_armed: bool,
    /// Leaving ([`ServerInput::Drain`]): this server serves nothing and
    /// takes no right.
    pub draining: bool,
    /// The master has confirmed this server's leaving (it is marked
    /// offline, so its peers route to the failover servers).
    pub left: bool,
    /// The topology the master last sent, if newer than the one this
    /// process started with (issue 17).
    pub topology: Option<Arc<Topology>>,
}

impl ServerState {
    /// Whether this server may serve `slot` at `now` (`linearizable` mode).
    pub fn serves(&self, slot: Slot, now: Time) -> bool {
        self.right(slot, now).is_some()
    }

    fn right(&self, slot: Slot, now: Time) -> Option<Epoch> {
        self.rights.get(&slot).filter(|r| now < r.trusted_until).map(|r| r.epoch)
    }

    /// This server's view of who is online, as the master's notices said.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// How many keys the cache holds.
    pub fn cached_keys(&self) -> usize {
        self.cache.values().map(|m| m.len()).sum()
    }

    /// Requests waiting here: being served, forwarded, or parked.
    pub fn waiting(&self) -> usize {
        self.ops.len()
    }

    /// The operations forwarded to `peer` and not yet answered (c15).
    pub fn forwarded_to(&self, peer: ServerId) -> Vec<u64> {
        self.ops.iter().filter(|(_, p)| p.stage == Stage::Forwarded(peer)).map(|(id, _)| *id).collect()
    }

    /// A draining server has handed every right back and answered every
    /// request it took: its process may exit without stalling a slot.
    pub fn drained(&self) -> bool {
        self.draining && self.rights.is_empty() && self.ops.is_empty()
    }

    /// Slots with at least one cached entry.
    pub fn cached_slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.cache.iter().filter(|(_, m)| !m.is_empty()).map(|(s, _)| *s)
    }
}

/// The answer to a read from the cache of `slot`, if every key it reads is
/// there (and not past a temporary entry's expiry): a GET, an `Inspect`
/// (by the store's own function), or an atomic operation of such reads.
fn cached_answer(st: &ServerState, slot: Slot, op: &Op, now: Time) -> Option<OpResult> {
    let cached = |key: &[u8]| {
        let e = st.cache.get(&slot).and_then(|m| m.get(&KeyRef::new(key)))?;
        (now < e.expires).then_some(e.value.as_deref().map(|v| (v, e.version)))
    };
    match op {
        Op::Get(k) => cached(k).map(|v| OpResult::Value(v.map(|(v, _)| v.to_vec()))),
        // A cached entry does not say when its key expires: EXPIRETIME
        // asks the store.
        Op::Inspect(_, Inspect::ExpireTime { .. }) => None,
        Op::Inspect(k, what) => {
            cached(k).map(|v| crate::store::inspect(what, v.map(|(v, ver)| (DataRef::Str(v), None, ver))))
        }
        Op::Atomic(ops) => ops
            .iter()
            .map(|o| match o {
                Op::Get(_) | Op::Inspect(..) => cached_answer(st, slot, o, now),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(OpResult::Many),
        _ => None,
    }
}

/// Records a use of each key a read answered from the cache of `slot` read,
/// for the eviction policy (nothing when it needs none).
fn touch(st: &mut ServerState, slot: Slot, op: &Op, usage: Usage, now: Time) {
    if usage == Usage::Off {
        return;
    }
    let Some(m) = st.cache.get_mut(&slot) else { return };
    let ops = match op {
        Op::Atomic(ops) => &ops[..],
        op => std::slice::from_ref(op),
    };
    for key in ops.iter().flat_map(Op::keys) {
        let k = KeyRef::new(key);
        if let Some(e) = m.get_mut(&k) {
            // LFU's coin: a hash of the key and the time (the core draws
            // no randomness).
            let coin = ((k.hash ^ now.0).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32;
            e.used = usage.hit(e.used, now, coin);
        }
    }
}

/// A server's static part: identity, topology and configuration.
#[derive(Clone, Debug)]
pub struct Server {
    pub id: ServerId,
    pub topology: Arc<Topology>,
    pub config: ProtocolConfig,
}

impl Server {
    pub fn new(id: ServerId, topology: Arc<Topology>, config: ProtocolConfig) -> Server {
        Server { id, topology, config }
    }

    /// The topology in force here: the newest the master sent, else the
    /// one this process started with.
    pub fn topo<'a>(&'a self, st: &'a ServerState) -> &'a Topology {
        st.topology.as_deref().unwrap_or(&self.topology)
    }

    /// Who serves `slot` in this server's view (c1, c15): a draining
    /// server counts itself offline.
    pub fn target(&self, st: &ServerState, slot: Slot) -> Option<ServerId> {
        self.topo(st).serving_server(slot, |s| if s == self.id { !st.draining } else { st.view.is_online(s) })
    }

    /// This server was removed from the cluster (issue 17), has handed
    /// every right over and answered every request: its process may exit.
    pub fn removed(&self, st: &ServerState) -> bool {
        self.topo(st).is_removed(self.id) && st.rights.is_empty() && st.ops.is_empty()
    }

    /// Whether this server answers for `slot` itself now: in `linearizable`
    /// mode while it holds the slot's serving right (c20, c21); in
    /// `available` mode when its view makes it the slot's serving server
    /// (c1, c15).
    pub fn serving(&self, st: &ServerState, slot: Slot, now: Time) -> bool {
        match self.config.mode {
            Mode::Linearizable => st.serves(slot, now),
            Mode::Available => self.target(st, slot) == Some(self.id),
        }
    }

    pub fn step(&self, st: &mut ServerState, now: Time, input: ServerInput, out: &mut Vec<ServerOutput>) {
        match input {
            ServerInput::Start { incarnation } => {
                *st = ServerState { incarnation, ..ServerState::default() };
                if self.config.mode == Mode::Linearizable {
                    // A batch at a time, the next on the answer to the last
                    // (as any ask): one ask of thousands of rights is one
                    // long store transaction, and on a store with one writer
                    // (SQLite) every other server's commands wait behind it
                    // (issue 17: a restart in a rolling upgrade).
                    let slots: Vec<Slot> = self.topology.owned_slots(self.id).collect();
                    self.acquire(st, slots, self.config.timing.batch(), now, out);
                }
            }
            ServerInput::Drain => {
                if st.draining {
                    return;
                }
                st.draining = true;
                // The master is told at once: the failover servers it tells
                // ask for the rights, find them held and watch them, and
                // take each batch as this server releases it (on the first
                // request for it, which this server forwards to them), while
                // this server serves the rights not yet released. Releases
                // go to the store after every command sent under the rights
                // (one connection, in order), so the takers' epochs fence
                // nothing this server still has in flight.
                out.push(ServerOutput::ToMaster(Report::Leaving { server: self.id }));
                self.reconcile(st, now, out);
                // Renewed a gap from now, when the takers, told by the
                // master, have asked once: seeing the stamps change, they
                // know this holder alive and pass it the requests of the
                // rights it still holds.
                if !st.rights.is_empty() {
                    st.renew_armed = true;
                    let at = now.plus(self.config.timing.hand_over_gap.max(1));
                    out.push(ServerOutput::SetTimer { timer: ServerTimer::Renew, at });
                }
                self.reroute_parked(st, now, out);
            }
            ServerInput::Request { origin, fwd } => {
                // An atomic operation is fenced by its slot's right alone:
                // one naming a key of another slot would write it unfenced.
                if let Some(e) = self.topo(st).atomic_refusal(&fwd.op) {
                    return out.push(ServerOutput::Reply { to: origin, result: OpResult::Err(e) });
                }
                // A read of the whole database: the store answers it for
                // the server the client reached, which needs no right for it
                // (every acknowledged write is in the store, c2).
                if let Op::Db(read) = &fwd.op {
                    let (id, read) = (st.next_op, read.clone());
                    st.next_op += 1;
                    let deadline = now.plus(self.config.timing.request_timeout);
                    let stage = Stage::Store { epoch: None, sent: now };
                    st.ops.insert(id, Pending { origin, fwd, slot: Slot(0), deadline, stage });
                    return out.push(ServerOutput::Store { tag: StoreTag::Op(id), op: StoreOp::Db(read) });
                }
                let id = st.next_op;
                st.next_op += 1;
                let slot = self.topo(st).slot(fwd.op.key());
                // A read this server serves now from its cache: answered at
                // once, as `route` and `execute` would, without a pending
                // record (the state left is the same).
                let here = match self.config.mode {
                    Mode::Linearizable => st.right(slot, now).is_some(),
                    Mode::Available => match self.target(st, slot) {
                        Some(to) => to == self.id || fwd.hops >= self.config.timing.max_hops,
                        None => true,
                    },
                };
                if here {
                    if let Some(result) = cached_answer(st, slot, &fwd.op, now) {
                        touch(st, slot, &fwd.op, self.config.usage, now);
                        let for_other = self.topo(st).owner(slot) != self.id;
                        out.push(ServerOutput::Event(ServerEvent::Served { slot, for_other }));
                        if !matches!(fwd.op, Op::Inspect(..)) {
                            out.push(ServerOutput::Event(ServerEvent::CacheHit));
                        }
                        return out.push(ServerOutput::Reply { to: origin, result });
                    }
                }
                let deadline = now.plus(self.config.timing.request_timeout);
                st.ops.insert(id, Pending { origin, fwd, slot, deadline, stage: Stage::Parked });
                self.route(st, id, now, out);
            }
            ServerInput::ForwardReply { from, incarnation, op, result } => {
                // Hole 1: only the peer this run forwarded `op` to answers it;
                // a late reply to an earlier run, or from a peer tried
                // before, is dropped (specs/properties.md, "Replies answer
                // their requests").
                let any = self.config.has(Mutant::AcceptAnyForwardReply);
                let ours = |p: &&Pending| match p.stage {
                    Stage::Forwarded(to) => any || (to == from && incarnation == st.incarnation),
                    _ => false,
                };
                if result == OpResult::Err(ErrorKind::Leaving) && st.ops.get(&op).is_some_and(|p| ours(&p)) {
                    // The peer leaves: wait for the master's word on it.
                    out.push(ServerOutput::CancelTimer(ServerTimer::ForwardTimeout(op)));
                    return match self.config.mode {
                        Mode::Available => self.execute(st, op, None, now, out),
                        Mode::Linearizable => self.park(st, op, now, out),
                    };
                }
                if let Some(p) = st.ops.get(&op).filter(ours) {
                    out.push(ServerOutput::Reply { to: p.origin, result });
                    out.push(ServerOutput::CancelTimer(ServerTimer::ForwardTimeout(op)));
                    st.ops.remove(&op);
                }
            }
            ServerInput::ForwardFailed { op } | ServerInput::Timer(ServerTimer::ForwardTimeout(op)) => {
                let Some(Stage::Forwarded(to)) = st.ops.get(&op).map(|p| p.stage) else { return };
                out.push(ServerOutput::CancelTimer(ServerTimer::ForwardTimeout(op)));
                out.push(ServerOutput::ToMaster(Report::MaybeOffline { server: to })); // c15
                match self.config.mode {
                    // c15 literally: process it here, at once.
                    Mode::Available => self.execute(st, op, None, now, out),
                    // Wait for the master's verdict: serving needs the right.
                    Mode::Linearizable => self.park(st, op, now, out),
                }
            }
            ServerInput::Store { tag, reply } => self.on_store(st, tag, reply, now, out),
            ServerInput::Master(msg) => self.on_master(st, msg, now, out),
            ServerInput::Timer(ServerTimer::Retry) => {
                st.retry_armed = false;
                let parked: Vec<u64> =
                    st.ops.iter().filter(|(_, p)| p.stage == Stage::Parked).map(|(i, _)| *i).collect();
                for id in parked {
                    if now >= st.ops[&id].deadline {
                        let p = st.ops.remove(&id).expect("parked op");
                        out.push(ServerOutput::Reply { to: p.origin, result: OpResult::Err(ErrorKind::Timeout) });
                    } else {
                        self.route(st, id, now, out);
                    }
                }
            }
            // The rights watched for a lease: ask for them, with their stamps.
            ServerInput::Timer(ServerTimer::Watch) => self.look_at_new_slots(st, None, now, out),
            ServerInput::Timer(ServerTimer::HandOver) => {
                st.hand_over_armed = false;
                self.reconcile(st, now, out);
            }
            ServerInput::Timer(ServerTimer::Renew) => {
                st.renew_armed = false;
                self.reconcile(st, now, out);
                self.renew(st, now, out);
            }
        }
    }

    /// Decides where a request goes (c15, c1).
    fn route(&self, st: &mut ServerState, id: u64, now: Time, out: &mut Vec<ServerOutput>) {
        let p = &st.ops[&id];
        let (slot, hops) = (p.slot, p.fwd.hops);
        let can_forward = hops < self.config.timing.max_hops;
        match self.config.mode {
            Mode::Linearizable => {
                if let Some(epoch) = st.right(slot, now) {
                    return self.execute(st, id, Some(epoch), now, out);
                }
                match self.target(st, slot) {
                    Some(me) if me == self.id => {
                        self.acquire(st, vec![slot], 1, now, out);
                        self.park(st, id, now, out);
                    }
                    Some(to) if can_forward => self.forward(st, id, to, now, out),
                    // A request from a peer that this server can neither
                    // serve nor pass on goes back: the peer routes it again
                    // (a peer that sent it here has not yet heard that this
                    // server leaves, or sent it to the right's holder just
                    // as a hand-over released it, and would otherwise wait
                    // here until the request times out).
                    Some(_) if matches!(p.origin, Origin::Peer { .. }) => {
                        let p = st.ops.remove(&id).expect("a pending op");
                        out.push(ServerOutput::Reply { to: p.origin, result: OpResult::Err(ErrorKind::Leaving) });
                    }
                    _ => self.park(st, id, now, out),
                }
            }
            Mode::Available => match self.target(st, slot) {
                Some(to) if to != self.id && can_forward => self.forward(st, id, to, now, out),
                _ => self.execute(st, id, None, now, out),
            },
        }
    }

    fn park(&self, st: &mut ServerState, id: u64, now: Time, out: &mut Vec<ServerOutput>) {
        if self.config.has(Mutant::NeverAnswerParked) {
            st.ops.remove(&id);
            return;
        }
        st.ops.get_mut(&id).expect("a pending op").stage = Stage::Parked;
        if !st.retry_armed {
            st.retry_armed = true;
            let at = now.plus(self.config.timing.retry_interval);
            out.push(ServerOutput::SetTimer { timer: ServerTimer::Retry, at });
        }
    }

    fn forward(&self, st: &mut ServerState, id: u64, to: ServerId, now: Time, out: &mut Vec<ServerOutput>) {
        let p = st.ops.get_mut(&id).expect("a pending op");
        p.stage = Stage::Forwarded(to);
        let fwd = Forwarded { hops: p.fwd.hops + 1, ..p.fwd.clone() };
        out.push(ServerOutput::Forward { to, op: id, incarnation: st.incarnation, fwd });
        let at = now.plus(self.config.timing.send_timeout);
        out.push(ServerOutput::SetTimer { timer: ServerTimer::ForwardTimeout(id), at });
    }

    /// Serves a request here: from the cache, or through the store.
    fn execute(&self, st: &mut ServerState, id: u64, epoch: Option<Epoch>, now: Time, out: &mut Vec<ServerOutput>) {
        let p = &st.ops[&id];
        let slot = p.slot;
        let for_other = self.topo(st).owner(slot) != self.id;
        out.push(ServerOutput::Event(ServerEvent::Served { slot, for_other }));
        // A read of keys all in the cache answers here, at one instant
        // under the right: GET, STRLEN and the like, MGET of one slot's keys.
        if let Some(result) = cached_answer(st, slot, &p.fwd.op, now) {
            if self.config.usage != Usage::Off {
                let op = p.fwd.op.clone();
                touch(st, slot, &op, self.config.usage, now);
            }
            let p = &st.ops[&id];
            if !matches!(p.fwd.op, Op::Inspect(..)) {
                out.push(ServerOutput::Event(ServerEvent::CacheHit));
            }
            out.push(ServerOutput::Reply { to: p.origin, result });
            st.ops.remove(&id);
            return;
        }
        let op = match &p.fwd.op {
            Op::Get(key) => {
                out.push(ServerOutput::Event(ServerEvent::CacheMiss));
                StoreOp::Read { key: key.clone() }
            }
            Op::Ttl(key) => StoreOp::Ttl { key: key.clone() },
            Op::Inspect(key, what) => StoreOp::Inspect { key: key.clone(), what: what.clone() },
            Op::Update(key, u) => self.write_op(p, epoch, key, Write::Update(u.clone())),
            Op::Db(read) => StoreOp::Db(read.clone()),
            Op::Atomic(ops) => StoreOp::Atomic { slot, fence: epoch, req: p.fwd.req, ops: ops.clone() },
            // A guard alone, or keys written together: an atomic operation
            // of one part.
            Op::Guard(..) | Op::Keys(_) => {
                StoreOp::Atomic { slot, fence: epoch, req: p.fwd.req, ops: vec![p.fwd.op.clone()] }
            }
            Op::SetWith(key, v, opts) => self.write_op(p, epoch, key, Write::SetWith(v.clone(), *opts)),
            Op::Expire(key, ms) => self.write_op(p, epoch, key, Write::Expire(*ms)),
            Op::Set(key, v) => self.write_op(p, epoch, key, Write::Set(v.clone())),
            Op::Del(key) => self.write_op(p, epoch, key, Write::Del),
            Op::Incr(key, d) => self.write_op(p, epoch, key, Write::Incr(*d)),
        };
        st.ops.get_mut(&id).expect("a pending op").stage = Stage::Store { epoch, sent: now };
        out.push(ServerOutput::Store { tag: StoreTag::Op(id), op });
    }

    fn write_op(&self, p: &Pending, fence: Option<Epoch>, key: &Key, write: Write) -> StoreOp {
        StoreOp::Write { slot: p.slot, fence, req: p.fwd.req, key: key.clone(), write }
    }

    /// Asks the store for rights (hole 2, 3). A slot another process holds
    /// is asked for with the stamp this server has watched unchanged for a
    /// whole lease, if it has: only then may the store hand it over. Before
    /// that the ask still finds a right released or free meanwhile, and
    /// tells who holds it. At most `batch` of `slots` (in order) are asked
    /// for; the answer to a whole batch asks for the next
    /// (`look_at_new_slots`), so that one ask of thousands of rights does
    /// not hold up the requests behind it on the store's connection.
    fn acquire(&self, st: &mut ServerState, slots: Vec<Slot>, batch: usize, now: Time, out: &mut Vec<ServerOutput>) {
        let wait = self.config.timing.takeover_wait();
        let mut fresh: Vec<Slot> = slots.into_iter().filter(|s| !st.acquiring.contains(s)).collect();
        let more = fresh.len() > batch;
        fresh.truncate(batch);
        let slots: Vec<(Slot, Option<Stamp>)> = fresh
            .into_iter()
            .inspect(|s| {
                st.acquiring.insert(*s);
            })
            .map(|s| match st.watching.get(&s) {
                Some((stamp, seen)) if now.since(*seen) >= wait => (s, Some(*stamp)),
                _ => (s, None),
            })
            .collect();
        if !slots.is_empty() {
            let lease = self.config.timing.lease;
            out.push(ServerOutput::Store {
                tag: StoreTag::Acquire { sent: now, more },
                op: StoreOp::Acquire { slots, lease },
            });
        }
    }

    /// Whether `peer` is alive as far as this server knows: online in its
    /// view, or seen renewing a right within the last lease.
    fn alive(&self, st: &ServerState, peer: ServerId, now: Time) -> bool {
        st.view.is_online(peer) || st.renewing.get(&peer).is_some_and(|t| now.since(*t) < self.config.timing.lease)
    }

    /// Renews every right held.
    fn renew(&self, st: &mut ServerState, now: Time, out: &mut Vec<ServerOutput>) {
        let rights: Vec<(Slot, Epoch)> = st.rights.iter().map(|(s, r)| (*s, r.epoch)).collect();
        if !rights.is_empty() {
            let lease = self.config.timing.lease;
            out.push(ServerOutput::Store { tag: StoreTag::Renew { sent: now }, op: StoreOp::Renew { rights, lease } });
            self.arm_renew(st, now, out);
        }
    }

    fn arm_renew(&self, st: &mut ServerState, now: Time, out: &mut Vec<ServerOutput>) {
        if !st.renew_armed {
            st.renew_armed = true;
            let at = now.plus(self.config.timing.renew_interval());
            out.push(ServerOutput::SetTimer { timer: ServerTimer::Renew, at });
        }
    }

    fn drop_slot(&self, st: &mut ServerState, slot: Slot) {
        st.rights.remove(&slot);
        st.cache.remove(&slot);
    }

    /// Puts a value read or written under `epoch` into the cache, unless the
    /// right moved meanwhile or a newer version is already there. A key with
    /// a time to live is served until less than what the store said was
    /// left has passed on this server's clock since it sent the command
    /// ([`Timing::ttl_trust`](crate::Timing::ttl_trust)); a key that is not
    /// a string leaves the cache.
    #[allow(clippy::too_many_arguments)]
    fn fill(
        &self,
        st: &mut ServerState,
        p: &Pending,
        key: &[u8],
        value: Option<Value>,
        version: u64,
        keep: Keep,
        now: Time,
    ) {
        let slot = p.slot;
        let Stage::Store { epoch, sent } = p.stage else { return };
        let expires = match self.config.mode {
            Mode::Linearizable if st.rights.get(&slot).map(|r| r.epoch) != epoch => return,
            Mode::Linearizable => Time::NEVER,
            // c3: only while this server is the one the view says serves it.
            Mode::Available if self.target(st, slot) != Some(self.id) => return,
            Mode::Available if self.topo(st).owner(slot) == self.id => Time::NEVER,
            Mode::Available => now.plus(self.config.timing.temp_ttl),
        };
        let m = st.cache.entry(slot).or_default();
        let k = KeyRef::new(key);
        if m.get(&k).is_none_or(|e| e.version <= version) {
            // An uncached key leaves a tombstone, never served (it expired
            // at time zero), that keeps its version: a reply of an older
            // version arriving late cannot bring the old value back.
            let (value, expires) = match keep {
                Keep::Ever => (value, expires),
                Keep::For(left) if self.config.cache_ttl_keys => {
                    let trust = match self.config.has(Mutant::TtlCacheNoMargin) {
                        true => left,
                        false => self.config.timing.ttl_trust(left),
                    };
                    (value, expires.min(sent.plus(trust)))
                }
                Keep::For(_) | Keep::Not => (None, Time::ZERO),
            };
            let used = self.config.usage.fresh(now);
            m.insert(CacheKey::new(key), CacheEntry { value: value.map(SmallBytes::from), version, expires, used });
        }
    }

    fn on_store(&self, st: &mut ServerState, tag: StoreTag, reply: StoreReply, now: Time, out: &mut Vec<ServerOutput>) {
        let t = &self.config.timing;
        match (tag, reply) {
            (StoreTag::Op(id), reply) => {
                let Some(p) = st.ops.get(&id).cloned() else { return };
                let Stage::Store { epoch, .. } = p.stage else { return };
                let key = p.fwd.op.key();
                let result = match reply {
                    StoreReply::Read { value, version, keep } => {
                        self.fill(st, &p, key, value.clone(), version, keep, now);
                        OpResult::Value(value)
                    }
                    StoreReply::Written { version, value, keep, result } => {
                        self.fill(st, &p, key, value, version, keep, now);
                        result
                    }
                    StoreReply::Atomic { result, keys } => {
                        for k in keys {
                            self.fill(st, &p, &k.key, k.value, k.version, k.keep, now);
                        }
                        match (&p.fwd.op, result) {
                            (Op::Atomic(_), result) => result,
                            // One operation sent as an atomic one of one part
                            // (Op::Keys, Op::Guard): its own result.
                            (_, OpResult::Many(mut one)) if one.len() == 1 => one.pop().expect("one result"),
                            (_, result) => result,
                        }
                    }
                    StoreReply::Inspected(result) => result,
                    StoreReply::Ttl(ms) => OpResult::Int(ms),
                    StoreReply::Rejected(e) => OpResult::Err(e),
                    StoreReply::Fenced => {
                        // The right moved: drop it and its cache, route again.
                        if st.rights.get(&p.slot).map(|r| r.epoch) == epoch {
                            self.drop_slot(st, p.slot);
                            out.push(ServerOutput::Event(ServerEvent::RightsLost(vec![p.slot])));
                        }
                        st.ops.get_mut(&id).expect("a pending op").stage = Stage::Parked;
                        return self.route(st, id, now, out);
                    }
                    StoreReply::Failed(msg) => {
                        // Outcome unknown: forget the keys so no guess is served.
                        if let Some(m) = st.cache.get_mut(&p.slot) {
                            let ops = match &p.fwd.op {
                                Op::Atomic(ops) => &ops[..],
                                op => std::slice::from_ref(op),
                            };
                            for key in ops.iter().flat_map(Op::keys) {
                                m.remove(&KeyRef::new(key));
                            }
                        }
                        OpResult::Err(ErrorKind::Store(msg))
                    }
                    _ => return,
                };
                st.ops.remove(&id);
                out.push(ServerOutput::Reply { to: p.origin, result });
            }
            (StoreTag::Acquire { sent, more }, StoreReply::Acquired { granted, held }) => {
                for (slot, epoch) in &granted {
                    st.acquiring.remove(slot);
                    st.watching.remove(slot);
                    // A right gained starts with a cold cache: writes may have
                    // happened under other epochs since this server last held it.
                    if !self.config.has(Mutant::KeepCacheOnRegain) {
                        st.cache.remove(slot);
                    }
                    st.rights.insert(*slot, Right { epoch: *epoch, trusted_until: sent.plus(t.trusted_lease()) });
                }
                if !granted.is_empty() {
                    out.push(ServerOutput::Event(ServerEvent::RightsTaken(granted.clone())));
                    self.arm_renew(st, now, out);
                }
                let mut watch_started = false;
                for (slot, holder, stamp) in &held {
                    st.acquiring.remove(slot);
                    // A new stamp starts the wait again: the holder renewed,
                    // so it was alive a moment ago.
                    if st.watching.get(slot).is_none_or(|(seen, _)| seen != stamp) {
                        if st.watching.contains_key(slot) {
                            st.renewing.insert(*holder, now);
                        }
                        st.watching.insert(*slot, (*stamp, now));
                        watch_started = true;
                    }
                }
                if watch_started {
                    let at = now.plus(t.takeover_wait());
                    out.push(ServerOutput::SetTimer { timer: ServerTimer::Watch, at });
                }
                self.reconcile(st, now, out);
                // A batch answered with more to ask: the next, past its last slot.
                if more {
                    let last = granted.iter().map(|(s, _)| *s).chain(held.iter().map(|(s, ..)| *s)).max();
                    self.look_at_new_slots(st, last, now, out);
                }
                // Waiting requests: serve them, or send them to the holder,
                // which serves them while it holds the right (a hand-over's
                // batch not yet released) or sends them back once released:
                // if it could still pass them on (a hop to spare after this
                // one), or, with the last hop, if it is alive as far as this
                // server knows (online in its view, or seen renewing within
                // a lease): a silent holder would keep the request past the
                // timeout of the peer that sent it here.
                let waiting: Vec<u64> =
                    st.ops.iter().filter(|(_, p)| p.stage == Stage::Parked).map(|(i, _)| *i).collect();
                for id in waiting {
                    let p = &st.ops[&id];
                    match held.iter().find(|(s, ..)| *s == p.slot) {
                        // A holder this topology does not name (a store
                        // shared with another config) is waited out here.
                        Some((_, holder, _))
                            if *holder != self.id
                                && (holder.0 as usize) < self.topo(st).server_count()
                                && (p.fwd.hops + 1 < t.max_hops
                                    || (p.fwd.hops < t.max_hops && self.alive(st, *holder, now))) =>
                        {
                            self.forward(st, id, *holder, now, out)
                        }
                        Some(_) => {}
                        None if granted.iter().any(|(s, _)| *s == p.slot) => self.route(st, id, now, out),
                        None => {}
                    }
                }
            }
            (StoreTag::Acquire { .. }, _) => {
                st.acquiring.clear(); // the store failed; parked requests retry
            }
            (StoreTag::Renew { sent }, StoreReply::Renewed { kept, lost }) => {
                for (slot, epoch) in kept {
                    if let Some(r) = st.rights.get_mut(&slot).filter(|r| r.epoch == epoch) {
                        r.trusted_until = sent.plus(t.trusted_lease());
                    }
                }
                let lost: Vec<Slot> = lost
                    .into_iter()
                    .filter(|(s, e)| st.rights.get(s).map(|r| r.epoch) == Some(*e))
                    .map(|(s, _)| s)
                    .collect();
                for slot in &lost {
                    self.drop_slot(st, *slot);
                }
                if !lost.is_empty() {
                    out.push(ServerOutput::Event(ServerEvent::RightsLost(lost)));
                }
            }
            _ => {}
        }
    }

    fn on_master(&self, st: &mut ServerState, msg: MasterMsg, now: Time, out: &mut Vec<ServerOutput>) {
        let ignore = self.config.has(Mutant::IgnoreNoticeVersions);
        let mut changed = false;
        match msg {
            // A draining server answers that it is leaving, not that it is
            // there to serve.
            MasterMsg::Probe { .. } if st.draining => {
                out.push(ServerOutput::ToMaster(Report::Leaving { server: self.id }));
                return;
            }
            MasterMsg::Probe { nonce } => {
                out.push(ServerOutput::ToMaster(Report::ProbeAck { nonce }));
                return;
            }
            MasterMsg::Notice { server, liveness: Liveness::Offline, .. } if server == self.id && st.draining => {
                st.left = true;
                return;
            }
            // c16, c17: a notice newer than what this server holds.
            MasterMsg::Notice { server, liveness, version } if server != self.id => {
                if st.view.apply(server, liveness, version, ignore) {
                    out.push(ServerOutput::Event(ServerEvent::NoticeApplied(server, liveness)));
                    changed = true;
                }
            }
            // Issue 17: offline, and leaving: it serves the rights it
            // still holds until it releases them, so it counts as alive
            // (`alive`) for a lease from now; a newer notice's word stands.
            MasterMsg::Leaving { server, version } if server != self.id => {
                if st.view.apply(server, Liveness::Offline, version, ignore) {
                    out.push(ServerOutput::Event(ServerEvent::NoticeApplied(server, Liveness::Offline)));
                    st.renewing.insert(server, now);
                    changed = true;
                }
            }
            MasterMsg::Leaving { .. } => {}
            MasterMsg::View { version, offline, topology } => {
                if let Some(t) = topology {
                    changed |= self.take_topology(st, t, now, out);
                }
                let servers: Vec<ServerId> = self.topo(st).servers().filter(|&s| s != self.id).collect();
                for s in servers {
                    let liveness = if offline.contains(&s) { Liveness::Offline } else { Liveness::Online };
                    if st.view.apply(s, liveness, version, ignore) {
                        out.push(ServerOutput::Event(ServerEvent::NoticeApplied(s, liveness)));
                        changed = true;
                    }
                }
            }
            MasterMsg::Notice { .. } => {}
            // Issue 17: a newer topology. The slots it takes from this
            // server are handed over as on a notice (`reconcile`: the
            // release follows every command sent under their rights on the
            // one store connection, and nothing is served from them after);
            // those it gives are asked for (`look_at_new_slots`).
            MasterMsg::Topology(t) => changed = self.take_topology(st, t, now, out),
        }
        if changed {
            self.reconcile(st, now, out);
            self.look_at_new_slots(st, None, now, out);
            self.reroute_parked(st, now, out);
        }
    }

    /// Takes `t` if newer than the topology in force; returns whether it
    /// did (the caller then hands over and asks as on a notice).
    fn take_topology(&self, st: &mut ServerState, t: Arc<Topology>, now: Time, out: &mut Vec<ServerOutput>) -> bool {
        if t.version() <= self.topo(st).version() {
            return false;
        }
        if self.config.has(Mutant::MoveSkipsDrain) {
            // The bug: released in the store, still served here.
            let rights: Vec<(Slot, Epoch)> = st
                .rights
                .iter()
                .filter(|(s, _)| t.owner(**s) != self.id && self.topo(st).owner(**s) == self.id)
                .map(|(s, r)| (*s, r.epoch))
                .collect();
            st.topology = Some(t);
            if !rights.is_empty() {
                out.push(ServerOutput::Store { tag: StoreTag::Release, op: StoreOp::Release { rights } });
            }
            self.look_at_new_slots(st, None, now, out);
            return false;
        }
        st.topology = Some(t);
        true
    }

    fn reroute_parked(&self, st: &mut ServerState, now: Time, out: &mut Vec<ServerOutput>) {
        let parked: Vec<u64> = st.ops.iter().filter(|(_, p)| p.stage == Stage::Parked).map(|(i, _)| *i).collect();
        for id in parked {
            self.route(st, id, now, out);
        }
    }

    /// Asks for the rights of every slot this server serves in its view but
    /// holds no right on (`linearizable` mode), past `after` if given, in
    /// batches (`acquire`): a right another process holds can be taken only
    /// a lease after this server first sees it, so the watch of each slot
    /// starts now, not at its first request (otherwise a dead server's slots
    /// would move one lease at a time).
    fn look_at_new_slots(&self, st: &mut ServerState, after: Option<Slot>, now: Time, out: &mut Vec<ServerOutput>) {
        if self.config.mode != Mode::Linearizable {
            return;
        }
        let from = after.map_or(0, |s| s.0 + 1);
        // A batch, and one more to know whether more are left: the next
        // batch starts where this one ends, so a round over thousands of
        // slots looks at each once.
        let slots: Vec<Slot> = (from..self.topo(st).slot_count())
            .map(Slot)
            .filter(|s| !st.rights.contains_key(s) && !st.acquiring.contains(s) && self.target(st, *s) == Some(self.id))
            .take(self.config.timing.batch().saturating_add(1))
            .collect();
        self.acquire(st, slots, self.config.timing.batch(), now, out);
    }

    /// Hands back what this server no longer serves in its view: releases the
    /// rights and drops the temporary cache (c3, c6, c16). Rights go a batch
    /// at a time ([`Timing::hand_over_batch`](crate::Timing)), the next
    /// batch `hand_over_gap` later; a right not yet released is still
    /// served, so only the requests of one batch's slots wait for the
    /// takers at a time.
    fn reconcile(&self, st: &mut ServerState, now: Time, out: &mut Vec<ServerOutput>) {
        let stale: Vec<Slot> = st
            .rights
            .keys()
            .chain(st.cache.keys())
            .copied()
            .filter(|&s| self.target(st, s) != Some(self.id))
            .collect::<OrdSet<Slot>>()
            .into_iter()
            .collect();
        // No longer this server's to take: stop watching.
        let unwatch: Vec<Slot> = st.watching.keys().copied().filter(|&s| self.target(st, s) != Some(self.id)).collect();
        for slot in unwatch {
            st.watching.remove(&slot);
        }
        if stale.is_empty() {
            return;
        }
        if st.draining && self.config.has(Mutant::DrainKeepsServing) {
            // The bug: released in the store, still served from memory.
            let rights: Vec<(Slot, Epoch)> =
                stale.iter().filter_map(|s| st.rights.get(s).map(|r| (*s, r.epoch))).collect();
            if !rights.is_empty() {
                out.push(ServerOutput::Store { tag: StoreTag::Release, op: StoreOp::Release { rights } });
            }
            return;
        }
        // While a batch's gap runs, no right goes (caches without one do).
        let batch = if st.hand_over_armed { 0 } else { self.config.timing.batch() };
        let (mut rights, mut dropped, mut kept) = (Vec::new(), Vec::new(), false);
        for slot in stale {
            match st.rights.get(&slot) {
                Some(r) if rights.len() < batch => {
                    rights.push((slot, r.epoch));
                    dropped.push(slot);
                }
                Some(_) => kept = true,
                None => dropped.push(slot),
            }
        }
        for slot in &dropped {
            st.rights.remove(slot);
            if !self.config.has(Mutant::KeepTempCache) {
                st.cache.remove(slot);
            }
        }
        if !rights.is_empty() {
            out.push(ServerOutput::Store { tag: StoreTag::Release, op: StoreOp::Release { rights } });
        }
        if kept && !st.hand_over_armed {
            st.hand_over_armed = true;
            let at = now.plus(self.config.timing.hand_over_gap);
            out.push(ServerOutput::SetTimer { timer: ServerTimer::HandOver, at });
        }
        if !dropped.is_empty() {
            out.push(ServerOutput::Event(ServerEvent::HandedBack(dropped)));
        }
    }
}
