//! Keys with a time to live: the store's clock decides expiry; a server
//! caches such a key only until a margin for clock drift before the time
//! the store said was left has passed since it sent the command, so it
//! never serves an expired value (or never caches it, with `[cache]
//! ttl_keys = false`). Conditional SET (NX, XX) and PEXPIRE/PTTL through
//! one server and a store.

use failgroup_model::*;
use std::sync::Arc;

/// One server owning every slot, wired to a `MemStore`; every store command
/// is carried out at once, at the store time given.
struct Rig {
    server: Server,
    st: ServerState,
    store: MemStore,
    seq: u64,
    /// Reads the store carried out.
    store_reads: usize,
}

impl Rig {
    /// Lease 2,000 ms and drift bound 100 ms (the margins below are
    /// worked out with them).
    fn new() -> Rig {
        let timing = Timing { lease: 2_000, max_drift: 100, ..Timing::default() };
        Rig::with(ProtocolConfig { timing, ..ProtocolConfig::default() })
    }

    fn with(config: ProtocolConfig) -> Rig {
        let topo = Arc::new(ClusterSpec::local(1, 1, 7101, 16).validate().unwrap());
        let server = Server::new(ServerId(0), topo, config);
        let store = MemStore::new(Mode::Linearizable, None);
        let mut rig = Rig { server, st: ServerState::default(), store, seq: 0, store_reads: 0 };
        rig.feed(Time(0), ServerInput::Start { incarnation: 1 });
        assert!(rig.st.serves(Slot(0), Time(1)), "the owner holds its rights after start");
        rig
    }

    /// Steps the server, carrying out its store commands; returns the replies.
    fn feed(&mut self, now: Time, input: ServerInput) -> Vec<OpResult> {
        let (mut queue, mut replies) = (vec![input], Vec::new());
        while let Some(input) = queue.pop() {
            let mut out = Vec::new();
            self.server.step(&mut self.st, now, input, &mut out);
            for o in out {
                match o {
                    ServerOutput::Store { tag, op } => {
                        let me = Holder { server: self.server.id, incarnation: self.st.incarnation };
                        self.store_reads += matches!(op, StoreOp::Read { .. }) as usize;
                        let reply = self.store.execute(me, op, now);
                        queue.push(ServerInput::Store { tag, reply });
                    }
                    ServerOutput::Reply { result, .. } => replies.push(result),
                    _ => {}
                }
            }
        }
        replies
    }

    fn run(&mut self, now: u64, op: Op) -> OpResult {
        self.seq += 1;
        let req = ReqId { client: ClientId(7), seq: self.seq };
        let input = ServerInput::Request { origin: Origin::Client(self.seq), fwd: Forwarded { req, op, hops: 0 } };
        let replies = self.feed(Time(now), input);
        assert_eq!(replies.len(), 1, "{replies:?}");
        replies[0].clone()
    }

    /// Whether a GET of `key` would be served from the cache (a tombstone
    /// of an uncached key is not).
    fn cached(&self, key: &[u8]) -> bool {
        self.entry(key).is_some_and(|e| e.expires != Time::ZERO)
    }

    fn entry(&self, key: &[u8]) -> Option<&failgroup_model::server::CacheEntry> {
        let k = failgroup_model::KeyRef::new(key);
        self.st.cache.values().find_map(|m| m.get(&k))
    }

    /// A GET at `now` (its rights renewed first), and whether the store
    /// was asked.
    fn get(&mut self, now: u64) -> (OpResult, bool) {
        self.feed(Time(now), ServerInput::Timer(ServerTimer::Renew));
        let before = self.store_reads;
        let r = self.run(now, Op::Get(k()));
        (r, self.store_reads > before)
    }
}

fn k() -> Vec<u8> {
    b"k".to_vec()
}

fn px(ms: u64) -> SetOpts {
    SetOpts { ttl_ms: Some(ms), cond: SetCond::Always }
}

/// Timing of `Rig::new`: lease 2,000 ms, drift bound 100 ms. A SET PX 10000
/// sent at 10 is served from the cache until 10 + 10,000 - 5 leases x 200
/// = 9,010 on the server's clock; then a read goes to the store (1,000 ms
/// left: trusted 800 more) and after the store's expiry the key is gone.
#[test]
fn a_key_with_a_ttl_is_served_from_the_cache_until_a_margin_before_it_expires() {
    let mut rig = Rig::new();
    assert_eq!(rig.run(10, Op::SetWith(k(), b"b".to_vec(), px(10_000))), OpResult::Ok);
    assert!(rig.cached(b"k"), "a SET with a TTL is cached");
    let b = OpResult::Value(Some(b"b".to_vec()));
    assert_eq!(rig.get(5_000), (b.clone(), false), "a hit");
    assert_eq!(rig.get(9_009), (b.clone(), false), "a hit, just before the margin");
    assert_eq!(rig.get(9_010), (b.clone(), true), "past the trusted time: the store answers");
    assert_eq!(rig.get(9_809), (b.clone(), false), "refilled with what was left (1,000 ms, 800 trusted)");
    assert_eq!(rig.get(9_810), (b, true));
    // The store's clock passes the expiry: the key is gone.
    assert_eq!(rig.get(10_010), (OpResult::Value(None), true));
    assert_eq!(rig.get(10_011), (OpResult::Value(None), false), "its absence is cached");
    assert_eq!(rig.run(10_012, Op::Ttl(k())), OpResult::Int(-2));
    // EXPIRETIME is not answered from the cache (an entry does not keep it).
    assert_eq!(rig.run(10_013, Op::SetWith(k(), b"c".to_vec(), px(5_000))), OpResult::Ok);
    assert_eq!(rig.run(10_014, Op::Inspect(k(), Inspect::ExpireTime { ms: true })), OpResult::Int(15_013));
    // A time to live shorter than the margin is never served from the cache.
    assert_eq!(rig.run(10_020, Op::SetWith(k(), b"d".to_vec(), px(150))), OpResult::Ok);
    assert_eq!(rig.get(10_020), (OpResult::Value(Some(b"d".to_vec())), true));
}

/// `[cache] ttl_keys = false`: a key with a time to live leaves the cache.
#[test]
fn with_ttl_keys_uncached_a_key_with_a_ttl_is_never_served_from_the_cache() {
    let mut rig = Rig::with(ProtocolConfig { cache_ttl_keys: false, ..ProtocolConfig::default() });
    assert_eq!(rig.run(10, Op::Set(k(), b"a".to_vec())), OpResult::Ok);
    assert!(rig.cached(b"k"), "a plain SET is cached");
    assert_eq!(rig.run(20, Op::SetWith(k(), b"b".to_vec(), px(100))), OpResult::Ok);
    assert!(!rig.cached(b"k"), "a SET with a TTL leaves the cache");
    assert_eq!(rig.get(50), (OpResult::Value(Some(b"b".to_vec())), true));
    assert!(!rig.cached(b"k"), "a read of an expiring key is not cached");
    assert_eq!(rig.get(120), (OpResult::Value(None), true));
    assert_eq!(rig.run(121, Op::Ttl(k())), OpResult::Int(-2));
}

#[test]
fn expire_and_ttl_follow_the_store_clock() {
    let mut rig = Rig::new();
    assert_eq!(rig.run(10, Op::Expire(k(), 1000)), OpResult::Int(0), "no key, nothing to expire");
    assert_eq!(rig.run(10, Op::Set(k(), b"1".to_vec())), OpResult::Ok);
    assert_eq!(rig.run(11, Op::Ttl(k())), OpResult::Int(-1));
    assert_eq!(rig.run(20, Op::Expire(k(), 1000)), OpResult::Int(1));
    assert!(rig.cached(b"k"), "cached for 1,000 ms less the margin");
    assert_eq!(rig.run(520, Op::Ttl(k())), OpResult::Int(500));
    // INCR keeps the time to live, as Redis does.
    assert_eq!(rig.run(600, Op::Incr(k(), 1)), OpResult::Int(2));
    assert_eq!(rig.run(700, Op::Ttl(k())), OpResult::Int(320));
    // A plain SET clears it.
    assert_eq!(rig.run(800, Op::Set(k(), b"x".to_vec())), OpResult::Ok);
    assert_eq!(rig.run(5000, Op::Ttl(k())), OpResult::Int(-1));
    assert_eq!(rig.run(5001, Op::Expire(k(), 0)), OpResult::Int(1), "a TTL of 0 deletes");
    assert_eq!(rig.run(5002, Op::Get(k())), OpResult::Value(None));
}

#[test]
fn nx_and_xx_apply_only_when_their_condition_holds() {
    let mut rig = Rig::new();
    let nx = SetOpts { ttl_ms: None, cond: SetCond::IfAbsent };
    let xx = SetOpts { ttl_ms: None, cond: SetCond::IfPresent };
    assert_eq!(rig.run(1, Op::SetWith(k(), b"x".to_vec(), xx)), OpResult::NotSet);
    assert_eq!(rig.run(2, Op::Get(k())), OpResult::Value(None));
    assert_eq!(rig.run(3, Op::SetWith(k(), b"a".to_vec(), nx)), OpResult::Ok);
    assert_eq!(rig.run(4, Op::SetWith(k(), b"b".to_vec(), nx)), OpResult::NotSet);
    assert_eq!(rig.run(5, Op::Get(k())), OpResult::Value(Some(b"a".to_vec())));
    assert_eq!(rig.run(6, Op::SetWith(k(), b"c".to_vec(), xx)), OpResult::Ok);
    assert_eq!(rig.run(7, Op::Get(k())), OpResult::Value(Some(b"c".to_vec())));
}

/// Hole 5: store replies reordered. A read of the old value (version 1)
/// answered after a SET with a time to live (version 2) must not bring the
/// old value into the cache: the expiring key's entry (a tombstone when
/// such keys are not cached) keeps its version. Before, it left nothing,
/// and the late read filled the cache with the old value, served to the
/// next GET.
#[test]
fn a_late_read_reply_never_revives_a_value_an_expiring_write_replaced() {
    for ttl_keys in [true, false] {
        let rig = Rig::with(ProtocolConfig { cache_ttl_keys: ttl_keys, ..ProtocolConfig::default() });
        // The write's entry: its value when such keys are cached, else a
        // tombstone; never the old value.
        late_read_reply(rig, ttl_keys.then_some(&b"new"[..]));
    }
}

fn late_read_reply(mut rig: Rig, cached: Option<&[u8]>) {
    assert_eq!(rig.run(1, Op::Set(k(), b"old".to_vec())), OpResult::Ok);
    // Drop the cached entry so the next GET goes to the store.
    rig.st.cache.clear();
    let req = |seq| ReqId { client: ClientId(8), seq };
    let (mut out, now) = (Vec::new(), Time(2));
    let get = Forwarded { req: req(1), op: Op::Get(k()), hops: 0 };
    rig.server.step(&mut rig.st, now, ServerInput::Request { origin: Origin::Client(100), fwd: get }, &mut out);
    let set = Forwarded { req: req(2), op: Op::SetWith(k(), b"new".to_vec(), px(10_000)), hops: 0 };
    rig.server.step(&mut rig.st, now, ServerInput::Request { origin: Origin::Client(101), fwd: set }, &mut out);
    let calls: Vec<(StoreTag, StoreOp)> = out
        .drain(..)
        .filter_map(|o| match o {
            ServerOutput::Store { tag, op } => Some((tag, op)),
            _ => None,
        })
        .collect();
    assert_eq!(calls.len(), 2, "a read and a write go to the store");
    // The store runs them in order; the replies arrive the other way round.
    let me = Holder { server: rig.server.id, incarnation: rig.st.incarnation };
    let replies: Vec<(StoreTag, StoreReply)> =
        calls.into_iter().map(|(tag, op)| (tag, rig.store.execute(me, op, now))).collect();
    for (tag, reply) in replies.into_iter().rev() {
        rig.server.step(&mut rig.st, now, ServerInput::Store { tag, reply }, &mut out);
    }
    let e = rig.entry(b"k").expect("the write's entry");
    assert_eq!((e.version, e.value.as_deref()), (2, cached), "not the old value");
    assert_eq!(rig.run(3, Op::Get(k())), OpResult::Value(Some(b"new".to_vec())));
}
