//! A server against the store, with another server competing for the same
//! slots, reordered store traffic, drifting clocks and master notices:
//! in `linearizable` mode it never serves a slot without holding its right,
//! a cache hit is never stale, and in both modes the temporary cache of an
//! owner's slots is gone once the owner is announced online (c3, c6, c16).

use failgroup_model::*;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

const SLOTS_IN_TEST: u16 = 8;

fn config(mode: Mode) -> ProtocolConfig {
    ProtocolConfig {
        mode,
        timing: Timing { lease: 1_000, max_drift: 50, send_timeout: 200, retry_interval: 100, ..Timing::default() },
        ..ProtocolConfig::default()
    }
}

fn topology() -> Arc<Topology> {
    Arc::new(ClusterSpec::local(3, 1, 7101, SLOTS_IN_TEST).validate().unwrap())
}

/// Three keys owned by s1 (ServerId(0)).
fn keys() -> Vec<Vec<u8>> {
    let t = topology();
    (0..).map(|i| format!("k{i}").into_bytes()).filter(|k| t.owner(t.slot(k)) == ServerId(0)).take(3).collect()
}

#[derive(Clone, Debug)]
enum Action {
    Get(usize),
    Set(usize, u8),
    Incr(usize),
    Del(usize),
    /// The store carries out the i-th command it holds.
    StoreExecute(usize),
    /// The server receives the i-th reply the store sent.
    StoreReply(usize),
    /// The other server tries to take the right of key i's slot.
    OtherAcquire(usize),
    /// The other server writes key i under its right, if it holds one.
    OtherWrite(usize, u8),
    /// The master announces the owner offline / online.
    Notice(bool),
    /// The i-th forwarded request fails or gets a reply.
    ForwardDone(usize, bool),
    FireTimer,
    Advance(u64),
    /// The server's clock runs this far from the store's (within the bound).
    Skew(i64),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0usize..3).prop_map(Action::Get),
        2 => (0usize..3, any::<u8>()).prop_map(|(k, v)| Action::Set(k, v)),
        1 => (0usize..3).prop_map(Action::Incr),
        1 => (0usize..3).prop_map(Action::Del),
        4 => (0usize..4).prop_map(Action::StoreExecute),
        4 => (0usize..4).prop_map(Action::StoreReply),
        1 => (0usize..3).prop_map(Action::OtherAcquire),
        1 => (0usize..3, any::<u8>()).prop_map(|(k, v)| Action::OtherWrite(k, v)),
        1 => any::<bool>().prop_map(Action::Notice),
        1 => (0usize..3, any::<bool>()).prop_map(|(i, ok)| Action::ForwardDone(i, ok)),
        3 => Just(Action::FireTimer),
        2 => (0u64..700).prop_map(Action::Advance),
        1 => (-50i64..=50).prop_map(Action::Skew),
    ]
}

struct Harness {
    server: Server,
    st: ServerState,
    store: MemStore,
    /// The store's clock (global time) and the server's skew from it.
    now: u64,
    skew: i64,
    local: Time,
    timers: Timers<ServerTimer>,
    to_store: Vec<(StoreTag, StoreOp)>,
    from_store: Vec<(StoreTag, StoreReply)>,
    /// Operations forwarded, and to whom.
    forwards: Vec<(u64, ServerId)>,
    other: ServerId,
    other_epochs: BTreeMap<Slot, Epoch>,
    /// What the competing server watched: a record's stamp and when.
    other_watch: BTreeMap<Slot, (Stamp, u64)>,
    version: u64,
    seq: u64,
    hits: usize,
}

impl Harness {
    fn new(me: ServerId, mode: Mode) -> Harness {
        let topo = topology();
        let other = topo.servers().find(|&s| s != me && s != ServerId(0)).unwrap_or(ServerId(1));
        let mut h = Harness {
            server: Server::new(me, topo, config(mode)),
            st: ServerState::default(),
            store: MemStore::default(),
            now: 10_000,
            skew: 0,
            local: Time(10_000),
            timers: Timers::new(),
            to_store: vec![],
            from_store: vec![],
            forwards: vec![],
            other,
            other_epochs: BTreeMap::new(),
            other_watch: BTreeMap::new(),
            version: 0,
            seq: 0,
            hits: 0,
        };
        h.step(ServerInput::Start { incarnation: 1 });
        h
    }

    fn tick(&mut self) {
        let t = (self.now as i64 + self.skew).max(0) as u64;
        self.local = self.local.max(Time(t)); // a monotonic clock within the drift bound
    }

    fn key_has_write_in_flight(&self, key: &[u8]) -> bool {
        let in_ops = self.to_store.iter().any(|(_, op)| matches!(op, StoreOp::Write { key: k, .. } if k == key));
        let in_replies = self.from_store.iter().any(|(tag, r)| {
            matches!(r, StoreReply::Written { .. } | StoreReply::Fenced)
                && matches!(tag, StoreTag::Op(id) if self.st.ops.get(id).is_some_and(|p| p.fwd.op.key() == key))
        });
        in_ops || in_replies
    }

    fn step(&mut self, input: ServerInput) {
        self.tick();
        let mut out = Vec::new();
        let notice_online = matches!(input, ServerInput::Master(MasterMsg::Notice { liveness: Liveness::Online, .. }));
        self.server.step(&mut self.st, self.local, input, &mut out);
        let mut hit = false;
        for o in out {
            match o {
                ServerOutput::Event(ServerEvent::CacheHit) => hit = true,
                ServerOutput::Reply { to: Origin::Client(seq), result } if hit => {
                    hit = false;
                    self.hits += 1;
                    self.check_hit(seq, result);
                }
                ServerOutput::Store { tag, op } => self.to_store.push((tag, op)),
                o @ (ServerOutput::SetTimer { .. } | ServerOutput::CancelTimer(_)) => {
                    self.timers.carry_out(&o);
                }
                ServerOutput::Forward { op, to, .. } => self.forwards.push((op, to)),
                _ => {}
            }
        }
        self.check_invariants(notice_online);
    }

    /// A GET served from the cache, with no write of that key in flight,
    /// returns what the store holds; in `linearizable` mode the store also
    /// shows this server as the slot's holder at that instant.
    fn check_hit(&self, seq: u64, result: OpResult) {
        let key = self.requests_key(seq);
        if self.server.config.mode == Mode::Available {
            return; // available mode may be stale: that is its trade
        }
        let slot = self.server.topology.slot(&key);
        let r = self.store.rights.get(&slot).expect("served without any right");
        let me = Holder { server: self.server.id, incarnation: self.st.incarnation };
        assert_eq!(r.holder, me, "served {slot} from cache while {:?} holds it", r.holder);
        assert!(!r.released, "served {slot} from cache after handing it back");
        if !self.key_has_write_in_flight(&key) {
            let stored = self.store.data.get(&key).and_then(|(v, ..)| match v {
                Data::Str(v) => Some(v.clone()),
                Data::Hash(_) => None,
            });
            assert_eq!(result, OpResult::Value(stored), "stale cache hit");
        }
    }

    fn requests_key(&self, seq: u64) -> Vec<u8> {
        keys()[(seq % 3) as usize].clone()
    }

    fn check_invariants(&self, notice_online: bool) {
        let me = self.server.id;
        let topo = &self.server.topology;
        if self.server.config.mode == Mode::Linearizable {
            // Serving only with a right the store grants this very process:
            // at its epoch, or at a newer one it asked for itself (a renewal
            // and a new acquire of one slot may both be in flight; the
            // newer epoch is this process's, and the grant brings a cold
            // cache), never one another process holds or one released.
            for slot in (0..SLOTS_IN_TEST).map(Slot) {
                if self.st.serves(slot, self.local) {
                    let r = &self.store.rights[&slot];
                    let holder = Holder { server: me, incarnation: self.st.incarnation };
                    assert!(
                        r.holder == holder && !r.released && r.epoch >= self.st.rights[&slot].epoch,
                        "{me} trusts a right on {slot} the store does not grant it: {r:?} vs {:?}",
                        self.st.rights[&slot]
                    );
                }
            }
        }
        // c3, c16: once the owner is announced online, nothing of its slots
        // stays here.
        let owner = ServerId(0);
        if notice_online && me != owner && self.st.view.is_online(owner) {
            assert!(self.st.cached_slots().all(|s| topo.owner(s) != owner), "temporary cache kept after hand-back");
            assert!(self.st.rights.keys().all(|s| topo.owner(*s) != owner), "right kept after hand-back");
        }
    }

    fn request(&mut self, key: usize, op: Op) {
        // seq % 3 names the key, so hits can be checked against the store.
        self.seq = (self.seq / 3 + 1) * 3 + key as u64;
        let req = ReqId { client: ClientId(1), seq: self.seq };
        self.step(ServerInput::Request { origin: Origin::Client(self.seq), fwd: Forwarded { req, op, hops: 0 } });
    }

    fn apply(&mut self, a: Action) {
        let keys = keys();
        match a {
            Action::Get(k) => self.request(k, Op::Get(keys[k].clone())),
            Action::Set(k, v) => self.request(k, Op::Set(keys[k].clone(), vec![v])),
            Action::Incr(k) => self.request(k, Op::Incr(keys[k].clone(), 1)),
            Action::Del(k) => self.request(k, Op::Del(keys[k].clone())),
            Action::StoreExecute(i) if i < self.to_store.len() => {
                let (tag, op) = self.to_store.remove(i);
                let me = Holder { server: self.server.id, incarnation: self.st.incarnation };
                let reply = self.store.execute(me, op, Time(self.now));
                self.from_store.push((tag, reply));
            }
            Action::StoreReply(i) if i < self.from_store.len() => {
                let (tag, reply) = self.from_store.remove(i);
                self.step(ServerInput::Store { tag, reply });
            }
            Action::OtherAcquire(k) => {
                let slot = self.server.topology.slot(&keys[k]);
                // The competitor follows the protocol: it takes a right only
                // with a stamp it has watched unchanged for a whole lease.
                let lease = self.server.config.timing.lease;
                let stamp = self.other_watch.get(&slot).filter(|(_, seen)| self.now >= seen + lease).map(|w| w.0);
                let op = StoreOp::Acquire { slots: vec![(slot, stamp)], lease };
                let other = Holder { server: self.other, incarnation: 1 };
                if let StoreReply::Acquired { granted, held } = self.store.execute(other, op, Time(self.now)) {
                    self.other_epochs.extend(granted);
                    for (slot, _, stamp) in held {
                        if self.other_watch.get(&slot).is_none_or(|(s, _)| *s != stamp) {
                            self.other_watch.insert(slot, (stamp, self.now));
                        }
                    }
                }
            }
            Action::OtherWrite(k, v) => {
                let slot = self.server.topology.slot(&keys[k]);
                if let Some(&epoch) = self.other_epochs.get(&slot) {
                    self.seq += 3;
                    let req = ReqId { client: ClientId(2), seq: self.seq };
                    let op = StoreOp::Write {
                        slot,
                        fence: Some(epoch),
                        req,
                        key: keys[k].clone(),
                        write: Write::Set(vec![v]),
                    };
                    self.store.execute(Holder { server: self.other, incarnation: 1 }, op, Time(self.now));
                }
            }
            Action::Notice(offline) => {
                self.version += 1;
                let liveness = if offline { Liveness::Offline } else { Liveness::Online };
                let version = Version { incarnation: 1, counter: self.version };
                self.step(ServerInput::Master(MasterMsg::Notice { server: ServerId(0), liveness, version }));
            }
            Action::ForwardDone(i, ok) if i < self.forwards.len() => {
                let (op, from) = self.forwards.remove(i);
                let incarnation = self.st.incarnation;
                self.step(if ok {
                    ServerInput::ForwardReply { from, incarnation, op, result: OpResult::Value(None) }
                } else {
                    ServerInput::ForwardFailed { op }
                });
            }
            Action::FireTimer => {
                if let Some((timer, at)) = self.timers.pop_next() {
                    // Virtual time: jump the store's clock so the server's reaches `at`.
                    let global = (at.0 as i64 - self.skew).max(self.now as i64) as u64;
                    self.now = global;
                    self.step(ServerInput::Timer(timer));
                }
            }
            Action::Advance(ms) => self.now += ms,
            Action::Skew(s) => self.skew = s,
            _ => {}
        }
    }
}

fn run(me: ServerId, mode: Mode, actions: Vec<Action>) -> usize {
    let mut h = Harness::new(me, mode);
    for a in actions {
        h.apply(a);
    }
    h.hits
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn owner_serves_only_with_its_right(actions in proptest::collection::vec(action(), 1..120)) {
        run(ServerId(0), Mode::Linearizable, actions);
    }

    #[test]
    fn failover_server_serves_only_with_the_right_and_hands_back(actions in proptest::collection::vec(action(), 1..120)) {
        run(ServerId(1), Mode::Linearizable, actions.clone());
        run(ServerId(2), Mode::Linearizable, actions);
    }

    #[test]
    fn available_mode_drops_the_temporary_cache(actions in proptest::collection::vec(action(), 1..120)) {
        run(ServerId(1), Mode::Available, actions.clone());
        run(ServerId(2), Mode::Available, actions);
    }
}

/// The checks above bite: with the cold-cache rule removed, some run serves
/// a stale hit (found by a fixed search over seeds, so the test is stable).
#[test]
fn keeping_the_cache_on_regain_is_caught() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha),
    );
    let strategy = proptest::collection::vec(action(), 1..200);
    let mut caught = false;
    for _ in 0..5_000 {
        let actions = strategy.new_tree(&mut runner).unwrap().current();
        let result = std::panic::catch_unwind(|| {
            let mut h = Harness::new(ServerId(0), Mode::Linearizable);
            h.server.config.mutant = Some(Mutant::KeepCacheOnRegain);
            for a in actions {
                h.apply(a);
            }
        });
        if result.is_err() {
            caught = true;
            break;
        }
    }
    assert!(caught, "no run caught a server that keeps its cache when it regains a right");
}

/// Hits do happen: the property is not vacuous.
#[test]
fn cache_hits_are_exercised() {
    let mut h = Harness::new(ServerId(0), Mode::Linearizable);
    h.apply(Action::StoreExecute(0));
    h.apply(Action::StoreReply(0)); // the owner holds its rights
    h.apply(Action::Set(0, 7));
    h.apply(Action::StoreExecute(0));
    h.apply(Action::StoreReply(0));
    h.apply(Action::Get(0));
    assert_eq!(h.hits, 1);
}
