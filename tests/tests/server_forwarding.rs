//! c15-c17 step by step: a server forwards what it does not own, processes
//! it when the owner is marked offline, and when forwarding fails tells the
//! master and then (per mode) processes at once or waits for the verdict.

use failgroup_model::*;
use std::sync::Arc;

fn setup() -> (Arc<Topology>, Vec<u8>, ServerId, ServerId) {
    let topo = Arc::new(ClusterSpec::local(3, 1, 7101, SLOTS).validate().unwrap());
    let key = b"foo".to_vec();
    let owner = topo.owner(topo.slot(&key));
    let f = topo.failover_server(topo.slot(&key), |s| s != owner).unwrap();
    (topo, key, owner, f)
}

fn request(key: &[u8]) -> ServerInput {
    let req = ReqId { client: ClientId(1), seq: 1 };
    ServerInput::Request { origin: Origin::Client(1), fwd: Forwarded { req, op: Op::Get(key.to_vec()), hops: 0 } }
}

fn offline(server: ServerId, counter: u64) -> ServerInput {
    let version = Version { incarnation: 1, counter };
    ServerInput::Master(MasterMsg::Notice { server, liveness: Liveness::Offline, version })
}

/// The failover server of "foo" in `mode`, after a client's GET for it: the
/// request is forwarded to the owner (c15). Returns the server, its state,
/// the forwarded operation's id and the owner.
fn forwarded_get(mode: Mode) -> (Server, ServerState, u64, ServerId) {
    let (topo, key, owner, f) = setup();
    // A server that never started has incarnation 0.
    let server = Server::new(f, topo, ProtocolConfig { mode, ..ProtocolConfig::default() });
    let mut st = ServerState::default();
    let mut out = Vec::new();
    server.step(&mut st, Time(0), request(&key), &mut out);
    let Some(ServerOutput::Forward { to, op, fwd, .. }) = out.first().cloned() else { panic!("{mode}: {out:?}") };
    assert!(to == owner && fwd.hops == 1, "{mode}: {out:?}");
    (server, st, op, owner)
}

#[test]
fn a_non_owner_forwards_to_the_owner() {
    for mode in [Mode::Linearizable, Mode::Available] {
        let (server, mut st, op, owner) = forwarded_get(mode);
        // The owner's reply goes back to the client.
        let mut out = Vec::new();
        let result = OpResult::Value(Some(b"v".to_vec()));
        let reply = ServerInput::ForwardReply { from: owner, incarnation: 0, op, result: result.clone() };
        server.step(&mut st, Time(1), reply, &mut out);
        assert!(out.contains(&ServerOutput::Reply { to: Origin::Client(1), result }));
        assert!(st.ops.is_empty());
    }
}

/// Hole 1: a reply completes only the request it answers. A reply from a
/// peer the request was not forwarded to (one tried before), or to an
/// earlier run of this server (same operation number, another
/// incarnation), is dropped; the request still waits for its own.
#[test]
fn a_reply_from_another_peer_or_an_earlier_run_completes_nothing() {
    for mode in [Mode::Linearizable, Mode::Available] {
        let (server, mut st, op, owner) = forwarded_get(mode);
        let other = ServerId((0..3).find(|s| ServerId(*s) != owner && ServerId(*s) != server.id).unwrap());
        let result = OpResult::Ok;
        for (from, incarnation) in [(other, 0), (owner, 7)] {
            let mut out = Vec::new();
            let reply = ServerInput::ForwardReply { from, incarnation, op, result: result.clone() };
            server.step(&mut st, Time(1), reply, &mut out);
            assert!(out.is_empty(), "{mode}: from {from} run {incarnation}: {out:?}");
            assert_eq!(st.ops.len(), 1, "{mode}: the request still waits");
        }
    }
}

#[test]
fn a_failed_forward_is_reported_then_served_per_mode() {
    for mode in [Mode::Linearizable, Mode::Available] {
        let (server, mut st, op, owner) = forwarded_get(mode);
        let mut out = Vec::new();
        server.step(&mut st, Time(5), ServerInput::ForwardFailed { op }, &mut out);
        // c15: notify the master that the owner is offline.
        assert!(out.contains(&ServerOutput::ToMaster(Report::MaybeOffline { server: owner })));
        let to_store = out.iter().any(|o| matches!(o, ServerOutput::Store { op: StoreOp::Read { .. }, .. }));
        match mode {
            // c15 literally: process the request here at once.
            Mode::Available => assert!(to_store, "{out:?}"),
            // No right yet: wait for the master's verdict.
            Mode::Linearizable => {
                assert!(!to_store);
                assert!(out.iter().any(|o| matches!(o, ServerOutput::SetTimer { timer: ServerTimer::Retry, .. })));
            }
        }
    }
}

#[test]
fn the_failover_server_processes_when_the_owner_is_marked_offline() {
    let (topo, key, owner, f) = setup();
    let server = Server::new(f, topo.clone(), ProtocolConfig::default());
    let mut st = ServerState::default();
    let mut store = MemStore::default();
    let mut out = Vec::new();
    server.step(&mut st, Time(0), offline(owner, 1), &mut out); // c17

    // It asks at once for the rights of every slot it now serves (c1,
    // linearizable mode), a batch at a time, the owner's among them...
    let f = Holder { server: f, incarnation: 0 };
    let asked = failgroup_tests::core::run_every_ask(&server, &mut st, &mut store, f, &out, Time(0));
    assert!(asked.contains(&topo.slot(&key)), "the owner's slot is asked for");
    assert!(asked.iter().all(|s| topo.owner(*s) == owner || topo.owner(*s) == f.server));
    // ...then processes a request for it through the store.
    out.clear();
    server.step(&mut st, Time(1), request(&key), &mut out);
    assert!(
        out.iter().any(|o| matches!(o, ServerOutput::Event(ServerEvent::Served { for_other: true, .. }))),
        "{out:?}"
    );
    let Some(ServerOutput::Store { tag, op }) =
        out.iter().find(|o| matches!(o, ServerOutput::Store { op: StoreOp::Read { .. }, .. })).cloned()
    else {
        panic!("{out:?}")
    };
    let reply = store.execute(f, op, Time(1));
    out.clear();
    server.step(&mut st, Time(2), ServerInput::Store { tag, reply }, &mut out);
    assert!(out.contains(&ServerOutput::Reply { to: Origin::Client(1), result: OpResult::Value(None) }));
    // c16: the owner is back; the right is released and the cache dropped.
    out.clear();
    let version = Version { incarnation: 1, counter: 2 };
    server.step(
        &mut st,
        Time(3),
        ServerInput::Master(MasterMsg::Notice { server: owner, liveness: Liveness::Online, version }),
        &mut out,
    );
    assert!(out.iter().any(|o| matches!(o, ServerOutput::Store { op: StoreOp::Release { .. }, .. })), "{out:?}");
    // The rest go a batch at a time.
    for i in 1..=asked.len() {
        out.clear();
        server.step(&mut st, Time(3 + i as u64 * 50), ServerInput::Timer(ServerTimer::HandOver), &mut out);
        if !st.hand_over_armed {
            break;
        }
    }
    // Of what it asked for, it keeps only its own slots.
    assert!(st.rights.keys().all(|s| topo.owner(*s) == f.server), "rights of others' slots are released");
    assert!(st.cached_slots().all(|s| topo.owner(s) == f.server), "others' slots' cache is dropped");
    assert!(!st.rights.contains_key(&topo.slot(&key)));
}

#[test]
fn a_restarted_owner_waits_for_the_failover_holder_then_forwards_to_it() {
    let (topo, key, owner, f) = setup();
    let mut store = MemStore::default();
    let slot = topo.slot(&key);
    // The failover server holds the slot's right.
    let holder = Holder { server: f, incarnation: 1 };
    store.execute(holder, StoreOp::Acquire { slots: vec![(slot, None)], lease: 2_000 }, Time(0));
    let server = Server::new(owner, topo, ProtocolConfig::default());
    let mut st = ServerState::default();
    let mut out = Vec::new();
    server.step(&mut st, Time(10), ServerInput::Start { incarnation: 1 }, &mut out);
    let owner = Holder { server: owner, incarnation: 1 };
    let asked = failgroup_tests::core::run_every_ask(&server, &mut st, &mut store, owner, &out, Time(10));
    assert!(asked.contains(&slot));
    assert!(!st.serves(slot, Time(11)), "the owner must not serve while another holds the right");
    out.clear();
    server.step(&mut st, Time(12), request(&key), &mut out);
    let ServerOutput::Store { tag, op } = out.remove(0) else { panic!("{out:?}") };
    let reply = store.execute(owner, op, Time(12));
    out.clear();
    server.step(&mut st, Time(13), ServerInput::Store { tag, reply }, &mut out);
    assert!(matches!(&out[0], ServerOutput::Forward { to, .. } if *to == f), "{out:?}");
}

/// The owner, acquiring its slot's right, finds it still held by another
/// server (a hand-back in flight, a batch not yet released). A request with
/// a hop to spare is sent to the holder, which serves it while it holds the
/// right; one that has used its hops waits for the right.
#[test]
fn requests_with_hops_to_spare_go_to_the_holder() {
    let (topo, key, owner, f) = setup();
    let server = Server::new(owner, topo.clone(), ProtocolConfig::default());
    let slot = topo.slot(&key);
    let max = ProtocolConfig::default().timing.max_hops;
    for (hops, forwarded) in [(0u8, true), (max - 1, true), (max, false)] {
        let mut st = ServerState::default();
        let mut out = Vec::new();
        let ServerInput::Request { origin, mut fwd } = request(&key) else { unreachable!() };
        fwd.hops = hops;
        server.step(&mut st, Time(0), ServerInput::Request { origin, fwd }, &mut out);
        let Some(ServerOutput::Store { tag, .. }) =
            out.iter().find(|o| matches!(o, ServerOutput::Store { .. })).cloned()
        else {
            panic!("the owner acquires its right: {out:?}")
        };
        out.clear();
        let reply = StoreReply::Acquired { granted: vec![], held: vec![(slot, f, Stamp::default())] };
        server.step(&mut st, Time(1), ServerInput::Store { tag, reply }, &mut out);
        let sent =
            out.iter().any(|o| matches!(o, ServerOutput::Forward { to, fwd, .. } if *to == f && fwd.hops == hops + 1));
        assert_eq!(sent, forwarded, "hops {hops}: {out:?}");
        assert_eq!(st.ops.len(), 1, "the request is still pending");
    }
}

/// A server that has just released a slot (a hand-over's batch) gets a
/// request for it from a peer that sent it there as to the holder, with no
/// hop left to pass it on: it sends it back (`Leaving`), and the peer waits
/// and routes it again, where the released right is now free. Before
/// hand-overs went in batches such a request waited at the server that
/// could neither serve nor forward it until it timed out.
#[test]
fn a_request_a_server_can_neither_serve_nor_pass_on_goes_back_to_its_peer() {
    let (topo, key, owner, f) = setup();
    // The failover server f, the owner online in its view: it holds no
    // right of the owner's slot, and a request from the owner with no hop
    // left comes back.
    let server = Server::new(f, topo.clone(), ProtocolConfig::default());
    let mut st = ServerState::default();
    let mut out = Vec::new();
    let ServerInput::Request { mut fwd, .. } = request(&key) else { unreachable!() };
    fwd.hops = ProtocolConfig::default().timing.max_hops;
    let from = Origin::Peer { server: owner, incarnation: 1, op: 7 };
    server.step(&mut st, Time(0), ServerInput::Request { origin: from, fwd }, &mut out);
    assert_eq!(out, vec![ServerOutput::Reply { to: from, result: OpResult::Err(ErrorKind::Leaving) }]);
    assert!(st.ops.is_empty(), "nothing left waiting here");
    // The owner, which forwarded it to f as the holder, waits and routes
    // it again: its retry asks for the right.
    let owner_server = Server::new(owner, topo.clone(), ProtocolConfig::default());
    let mut st = ServerState { incarnation: 1, ..ServerState::default() };
    let mut out = Vec::new();
    server_forwarded_to_holder(&owner_server, &mut st, &key, f, &mut out);
    let op = out
        .iter()
        .find_map(|o| match o {
            ServerOutput::Forward { op, .. } => Some(*op),
            _ => None,
        })
        .unwrap();
    out.clear();
    let back = ServerInput::ForwardReply { from: f, incarnation: 1, op, result: OpResult::Err(ErrorKind::Leaving) };
    owner_server.step(&mut st, Time(2), back, &mut out);
    assert!(!out.iter().any(|o| matches!(o, ServerOutput::Reply { .. })), "no error reaches the client: {out:?}");
    assert_eq!(st.ops.values().next().map(|p| p.stage), Some(Stage::Parked));
    out.clear();
    owner_server.step(&mut st, Time(20), ServerInput::Timer(ServerTimer::Retry), &mut out);
    let slot = topo.slot(&key);
    assert!(
        out.iter().any(
            |o| matches!(o, ServerOutput::Store { op: StoreOp::Acquire { slots, .. }, .. } if slots.iter().any(|(s, _)| *s == slot))
        ),
        "the retry asks for the right again: {out:?}"
    );
}

/// `server` (the owner) takes a client's GET of `key`, asks for the right,
/// finds it held by `holder` and forwards the request to it.
fn server_forwarded_to_holder(
    server: &Server,
    st: &mut ServerState,
    key: &[u8],
    holder: ServerId,
    out: &mut Vec<ServerOutput>,
) {
    server.step(st, Time(0), request(key), out);
    let tag = out
        .iter()
        .find_map(|o| match o {
            ServerOutput::Store { tag, op: StoreOp::Acquire { .. } } => Some(*tag),
            _ => None,
        })
        .expect("an ask");
    out.clear();
    let slot = server.topology.slot(key);
    let reply = StoreReply::Acquired { granted: vec![], held: vec![(slot, holder, Stamp::default())] };
    server.step(st, Time(1), ServerInput::Store { tag, reply }, out);
    assert!(out.iter().any(|o| matches!(o, ServerOutput::Forward { to, .. } if *to == holder)), "{out:?}");
}

/// The owner of its slots, started and granted them by the store.
fn serving_owner(topo: Arc<Topology>, owner: ServerId) -> (Server, ServerState) {
    let server = Server::new(owner, topo, ProtocolConfig::default());
    let mut st = ServerState::default();
    let mut out = Vec::new();
    server.step(&mut st, Time(0), ServerInput::Start { incarnation: 1 }, &mut out);
    let asks = failgroup_tests::core::grant_every_ask(&server, &mut st, &out, Time(0), Epoch(1));
    assert!(asks > 0, "the owner asks for its rights: {out:?}");
    (server, st)
}

fn topo_slot(server: &Server, key: &[u8]) -> Slot {
    server.topology.slot(key)
}

/// An atomic operation holds keys of one slot: its store command is fenced
/// by that slot's right alone, so one that named a key of another slot
/// would write it without that slot's right (a library client or another
/// runtime embedding the core could send one). The core refuses it with
/// CROSSSLOT before anything reaches the store, as it refuses an empty or
/// a nested one.
#[test]
fn an_atomic_operation_across_slots_is_refused_before_the_store() {
    let (topo, key, owner, _) = setup();
    let other = (0..1000).map(|i| format!("k{i}").into_bytes()).find(|k| topo.slot(k) != topo.slot(&key)).unwrap();
    let (server, mut st) = serving_owner(topo, owner);
    assert!(st.serves(topo_slot(&server, &key), Time(1)));
    let bad = [
        Op::Atomic(vec![Op::Set(key.clone(), b"1".to_vec()), Op::Set(other.clone(), b"2".to_vec())]),
        Op::Atomic(vec![]),
        Op::Atomic(vec![Op::Atomic(vec![Op::Get(key.clone())])]),
    ];
    for (seq, op) in bad.into_iter().enumerate() {
        let mut out = Vec::new();
        let req = ReqId { client: ClientId(1), seq: seq as u64 };
        let fwd = Forwarded { req, op: op.clone(), hops: 0 };
        server.step(&mut st, Time(1), ServerInput::Request { origin: Origin::Client(9), fwd }, &mut out);
        assert!(
            !out.iter().any(|o| matches!(o, ServerOutput::Store { op: StoreOp::Atomic { .. }, .. })),
            "{op:?} reached the store: {out:?}"
        );
        let refused = out.iter().any(|o| {
            matches!(o, ServerOutput::Reply { to: Origin::Client(9), result: OpResult::Err(ErrorKind::Reply(e)) }
                if e.starts_with("CROSSSLOT") || e.starts_with("ERR"))
        });
        assert!(refused, "{op:?} refused with an error: {out:?}");
    }
}

/// Reads of one slot's keys as one atomic operation (MGET, EXISTS, a
/// read-only transaction) answer from the cache when every key is in it,
/// at one instant under the right; one key missing sends the whole to the
/// store, which reads them in one transaction.
#[test]
fn atomic_reads_of_cached_keys_answer_from_the_cache() {
    let (topo, ..) = setup();
    let (a, b) = (b"{t}a".to_vec(), b"{t}b".to_vec());
    let (server, mut st) = serving_owner(topo.clone(), topo.owner(topo.slot(&a)));
    let read = |st: &mut ServerState, seq: u64| {
        let mut out = Vec::new();
        let op = Op::Atomic(vec![Op::Get(a.clone()), Op::Inspect(b.clone(), Inspect::Strlen)]);
        let fwd = Forwarded { req: ReqId { client: ClientId(1), seq }, op, hops: 0 };
        server.step(st, Time(1), ServerInput::Request { origin: Origin::Client(seq), fwd }, &mut out);
        out
    };
    // Nothing cached: the store reads both.
    let out = read(&mut st, 1);
    let Some(tag) = out.iter().find_map(|o| match o {
        ServerOutput::Store { tag, op: StoreOp::Atomic { .. } } => Some(*tag),
        _ => None,
    }) else {
        panic!("to the store: {out:?}")
    };
    // Its answer fills the cache with both keys.
    let keys = vec![
        KeyAfter { key: a.clone(), value: Some(b"1".to_vec()), version: 3, keep: Keep::Ever },
        KeyAfter { key: b.clone(), value: Some(b"xyz".to_vec()), version: 4, keep: Keep::Ever },
    ];
    let many = OpResult::Many(vec![OpResult::Value(Some(b"1".to_vec())), OpResult::Int(3)]);
    let mut out = Vec::new();
    let reply = StoreReply::Atomic { result: many.clone(), keys };
    server.step(&mut st, Time(1), ServerInput::Store { tag, reply }, &mut out);
    assert!(out.contains(&ServerOutput::Reply { to: Origin::Client(1), result: many.clone() }), "{out:?}");
    // Now both are cached: answered here, nothing to the store.
    let out = read(&mut st, 2);
    assert!(out.contains(&ServerOutput::Reply { to: Origin::Client(2), result: many }), "{out:?}");
    assert!(!out.iter().any(|o| matches!(o, ServerOutput::Store { .. })), "{out:?}");
}
