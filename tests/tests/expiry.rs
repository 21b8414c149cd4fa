//! Keys with a time to live: the store's clock decides expiry, and a server
//! never caches such a key, so no server clock can serve an expired value.
//! Conditional SET (NX, XX) and PEXPIRE/PTTL through one server and a store.

use failgroup_model::*;
use std::sync::Arc;

/// One server owning every slot, wired to a `MemStore`; every store command
/// is carried out at once, at the store time given.
struct Rig {
    server: Server,
    st: ServerState,
    store: MemStore,
    seq: u64,
}

impl Rig {
    fn new() -> Rig {
        let topo = Arc::new(ClusterSpec::local(1, 1, 7101, 16).validate().unwrap());
        let server = Server::new(ServerId(0), topo, ProtocolConfig::default());
        let mut rig = Rig { server, st: ServerState::default(), store: MemStore::new(Mode::Linearizable, None), seq: 0 };
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

    fn cached(&self, key: &[u8]) -> bool {
        self.st.cache.values().any(|m| m.contains_key(&failgroup_model::KeyRef::new(key)))
    }
}

fn k() -> Vec<u8> {
    b"k".to_vec()
}

fn px(ms: u64) -> SetOpts {
    SetOpts { ttl_ms: Some(ms), cond: SetCond::Always }
}

#[test]
fn a_key_with_a_ttl_is_never_served_from_the_cache() {
    let mut rig = Rig::new();
    assert_eq!(rig.run(10, Op::Set(k(), b"a".to_vec())), OpResult::Ok);
    assert!(rig.cached(b"k"), "a plain SET is cached");
    assert_eq!(rig.run(20, Op::SetWith(k(), b"b".to_vec(), px(100))), OpResult::Ok);
    assert!(!rig.cached(b"k"), "a SET with a TTL leaves the cache");
    assert_eq!(rig.run(50, Op::Get(k())), OpResult::Value(Some(b"b".to_vec())));
    assert!(!rig.cached(b"k"), "a read of an expiring key is not cached");
    // The store's clock passes the expiry: the key is gone.
    assert_eq!(rig.run(120, Op::Get(k())), OpResult::Value(None));
    assert_eq!(rig.run(121, Op::Ttl(k())), OpResult::Int(-2));
}

#[test]
fn expire_and_ttl_follow_the_store_clock() {
    let mut rig = Rig::new();
    assert_eq!(rig.run(10, Op::Expire(k(), 1000)), OpResult::Int(0), "no key, nothing to expire");
    assert_eq!(rig.run(10, Op::Set(k(), b"1".to_vec())), OpResult::Ok);
    assert_eq!(rig.run(11, Op::Ttl(k())), OpResult::Int(-1));
    assert_eq!(rig.run(20, Op::Expire(k(), 1000)), OpResult::Int(1));
    assert!(!rig.cached(b"k"));
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
