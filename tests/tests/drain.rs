//! Graceful drain, step by step: a server told to leave (SIGTERM) hands its
//! rights back, tells the master, passes requests on to the servers that
//! take over and says when its process may exit; the master marks it
//! offline on its own word and tells it so.

use failgroup_model::*;
use std::sync::Arc;

fn topology() -> Arc<Topology> {
    Arc::new(ClusterSpec::local(3, 1, 7101, SLOTS).validate().unwrap())
}

/// The owner of "foo", started and granted its slots by the store: at its
/// start it asks for them a batch at a time, the next on each answer (one
/// ask of thousands of rights would hold a store with one writer for every
/// server).
fn serving_owner() -> (Server, ServerState, Vec<u8>) {
    let topo = topology();
    let key = b"foo".to_vec();
    let owner = topo.owner(topo.slot(&key));
    let server = Server::new(owner, topo, ProtocolConfig::default());
    let mut st = ServerState::default();
    let mut out = Vec::new();
    server.step(&mut st, Time(0), ServerInput::Start { incarnation: 1 }, &mut out);
    let asks = failgroup_tests::core::grant_every_ask(&server, &mut st, &out, Time(0), Epoch(1));
    let owned = server.topology.owned_slots(owner).count();
    assert_eq!(st.rights.len(), owned, "every owned slot asked for and granted");
    let batch = ProtocolConfig::default().timing.batch();
    assert_eq!(asks, owned.div_ceil(batch), "a batch of {batch} at a time");
    assert!(st.serves(server.topology.slot(&key), Time(1)));
    (server, st, key)
}

fn get(key: &[u8], seq: u64) -> ServerInput {
    let req = ReqId { client: ClientId(1), seq };
    ServerInput::Request { origin: Origin::Client(seq), fwd: Forwarded { req, op: Op::Get(key.to_vec()), hops: 0 } }
}

#[test]
fn a_draining_server_hands_back_tells_the_master_and_passes_requests_on() {
    let (server, mut st, key) = serving_owner();
    let slot = server.topology.slot(&key);
    let held = st.rights.len();
    assert!(held > 0 && !st.draining && !st.drained());

    // A read waiting at the store when the drain begins.
    let mut out = Vec::new();
    server.step(&mut st, Time(1), get(&key, 1), &mut out);
    let tag = out
        .iter()
        .find_map(|o| match o {
            ServerOutput::Store { tag: tag @ StoreTag::Op(_), .. } => Some(*tag),
            _ => None,
        })
        .expect("a cold GET reads the store");

    // The master hears of it at once: the servers it tells ask for the
    // rights and take each batch as it is released.
    out.clear();
    server.step(&mut st, Time(2), ServerInput::Drain, &mut out);
    assert!(out.contains(&ServerOutput::ToMaster(Report::Leaving { server: server.id })), "{out:?}");
    let timing = ProtocolConfig::default().timing;
    // The rights go a batch at a time, `hand_over_gap` apart; until its
    // batch a right is still served.
    let mut released = Vec::new();
    let mut now = Time(2);
    loop {
        let batch: Vec<(Slot, Epoch)> = out
            .iter()
            .find_map(|o| match o {
                ServerOutput::Store { tag: StoreTag::Release, op: StoreOp::Release { rights } } => Some(rights.clone()),
                _ => None,
            })
            .expect("a batch released");
        assert!(!batch.is_empty() && batch.len() <= timing.batch(), "a batch of {}", batch.len());
        for (s, _) in &batch {
            assert!(!server.serving(&st, *s, now), "released and served");
        }
        released.extend(batch);
        if st.rights.is_empty() {
            assert!(!out.iter().any(|o| matches!(o, ServerOutput::SetTimer { .. })), "no batch left: {out:?}");
            break;
        }
        let kept = *st.rights.keys().next().unwrap();
        assert!(server.serving(&st, kept, now), "a right waiting for its batch is served");
        let at = now.plus(timing.hand_over_gap);
        assert!(out.contains(&ServerOutput::SetTimer { timer: ServerTimer::HandOver, at }), "{out:?}");
        // A renewal before the gap has run releases nothing early; what is
        // kept is renewed.
        out.clear();
        server.step(&mut st, now, ServerInput::Timer(ServerTimer::Renew), &mut out);
        assert!(!out.iter().any(|o| matches!(o, ServerOutput::Store { op: StoreOp::Release { .. }, .. })));
        let (tag, kept) = out
            .iter()
            .find_map(|o| match o {
                ServerOutput::Store { tag, op: StoreOp::Renew { rights, .. } } => Some((*tag, rights.clone())),
                _ => None,
            })
            .expect("the rights kept are renewed");
        assert_eq!(kept.len(), st.rights.len());
        let reply = StoreReply::Renewed { kept, lost: vec![] };
        server.step(&mut st, now, ServerInput::Store { tag, reply }, &mut out);
        now = at;
        out.clear();
        server.step(&mut st, now, ServerInput::Timer(ServerTimer::HandOver), &mut out);
    }
    assert_eq!(released.len(), held);
    assert_eq!(released.iter().map(|(s, _)| *s).collect::<std::collections::BTreeSet<_>>().len(), held);
    assert!(st.draining && st.rights.is_empty() && st.cache.is_empty());
    assert!(!server.serving(&st, slot, now));
    // Not drained while the read it took is unanswered.
    assert!(!st.drained());

    // The store's answer to the read still reaches the client, and fills no
    // cache: the right it was read under is gone.
    out.clear();
    let reply = StoreReply::Read { value: Some(b"v".to_vec()), version: 3, keep: Keep::Ever };
    server.step(&mut st, now.plus(1), ServerInput::Store { tag, reply }, &mut out);
    assert!(out.contains(&ServerOutput::Reply { to: Origin::Client(1), result: OpResult::Value(Some(b"v".to_vec())) }));
    assert!(st.cache.is_empty());
    assert!(st.drained(), "no right, nothing pending: the process may exit");

    // A request arriving now goes to the group's failover server, which
    // takes the released right; the drained server takes no right again.
    out.clear();
    server.step(&mut st, now.plus(2), get(&key, 2), &mut out);
    let failover = server.topology.serving_server(slot, |s| s != server.id).unwrap();
    assert!(
        out.iter().any(|o| matches!(o, ServerOutput::Forward { to, .. } if *to == failover)),
        "forwarded to {failover}: {out:?}"
    );
    assert!(!out.iter().any(|o| matches!(o, ServerOutput::Store { op: StoreOp::Acquire { .. }, .. })));
    assert!(!st.drained(), "the forwarded request is pending");
    let op = out.iter().find_map(|o| match o {
        ServerOutput::Forward { op, .. } => Some(*op),
        _ => None,
    });
    out.clear();
    let result = OpResult::Value(None);
    let reply = ServerInput::ForwardReply { from: failover, incarnation: 1, op: op.unwrap(), result: result.clone() };
    server.step(&mut st, now.plus(3), reply, &mut out);
    assert!(out.contains(&ServerOutput::Reply { to: Origin::Client(2), result }));
    assert!(st.drained());

    // A probe is answered with the leaving, and the master's notice that
    // this server is offline confirms it.
    out.clear();
    server.step(&mut st, now.plus(4), ServerInput::Master(MasterMsg::Probe { nonce: 7 }), &mut out);
    assert_eq!(out, vec![ServerOutput::ToMaster(Report::Leaving { server: server.id })]);
    assert!(!st.left);
    let version = Version { incarnation: 1, counter: 9 };
    let notice = MasterMsg::Notice { server: server.id, liveness: Liveness::Offline, version };
    server.step(&mut st, now.plus(5), ServerInput::Master(notice), &mut out);
    assert!(st.left);

    // A second drain changes nothing.
    let before = st.clone();
    out.clear();
    server.step(&mut st, now.plus(6), ServerInput::Drain, &mut out);
    assert!(out.is_empty() && st == before);
}

/// The mutant the model checker catches (`drain-keeps-serving`): the
/// release goes to the store, but the server still trusts its rights.
#[test]
fn the_drain_mutant_keeps_serving_what_it_released() {
    let (server, mut st, key) = serving_owner();
    let slot = server.topology.slot(&key);
    let server = Server::new(
        server.id,
        server.topology.clone(),
        ProtocolConfig { mutant: Some(Mutant::DrainKeepsServing), ..ProtocolConfig::default() },
    );
    let mut out = Vec::new();
    server.step(&mut st, Time(2), ServerInput::Drain, &mut out);
    assert!(out.iter().any(|o| matches!(o, ServerOutput::Store { op: StoreOp::Release { .. }, .. })));
    assert!(server.serving(&st, slot, Time(2)), "the bug: released yet served");
}

fn master() -> (Master, MasterState) {
    let master = Master::new(topology(), ProtocolConfig::default());
    let mut st = master.initial_state();
    let mut out = Vec::new();
    master.step(&mut st, Time(0), MasterInput::Start { incarnation: 1, topology: None }, &mut out);
    // The boot round: every server answers.
    for (s, nonce) in st.probes.clone() {
        let report = MasterInput::Report { from: Node::Server(s), report: Report::ProbeAck { nonce } };
        master.step(&mut st, Time(1), report, &mut out);
    }
    assert!(!st.booting);
    (master, st)
}

#[test]
fn the_master_marks_a_leaving_server_offline_on_its_own_word_and_tells_it() {
    let (master, mut st) = master();
    let (x, other) = (ServerId(1), ServerId(0));
    let version = st.version;

    // Another node's word about x is not x's: nothing changes.
    let mut out = Vec::new();
    for from in [Node::Server(other), Node::Client(ClientId(3))] {
        master.step(&mut st, Time(2), MasterInput::Report { from, report: Report::Leaving { server: x } }, &mut out);
    }
    assert!(out.is_empty() && st.is_online(x) && st.version == version, "{out:?}");

    master.step(
        &mut st,
        Time(3),
        MasterInput::Report { from: Node::Server(x), report: Report::Leaving { server: x } },
        &mut out,
    );
    assert!(!st.is_online(x) && st.version > version);
    assert!(out.contains(&MasterOutput::Event(MasterEvent::MarkedOffline(x, st.version))));
    // Every other server is told that x leaves (it still serves what it
    // has not released), x that it is offline (its confirmation).
    for s in master.topology.servers() {
        let told = out.iter().any(|o| match o {
            MasterOutput::Send { to, msg: MasterMsg::Notice { server, liveness: Liveness::Offline, .. } } => {
                *to == s && *server == x && s == x
            }
            MasterOutput::Send { to, msg: MasterMsg::Leaving { server, .. } } => *to == s && *server == x && s != x,
            _ => false,
        });
        assert!(told, "{s} told: {out:?}");
    }
    // Re-checked later (c20); a report that x answers again starts a
    // probe, and x is announced on its answer to it (c21).
    assert!(out.iter().any(|o| matches!(o, MasterOutput::SetTimer { timer: MasterTimer::Reprobe(s), .. } if *s == x)));
    out.clear();
    master.step(
        &mut st,
        Time(4),
        MasterInput::Report { from: Node::Server(x), report: Report::BackOnline { server: x } },
        &mut out,
    );
    assert!(!st.is_online(x), "not before the probe is answered");
    let nonce = out
        .iter()
        .find_map(|o| match o {
            MasterOutput::Probe { to, nonce } if *to == x => Some(*nonce),
            _ => None,
        })
        .expect("a probe of x");
    master.step(
        &mut st,
        Time(5),
        MasterInput::Report { from: Node::Server(x), report: Report::ProbeAck { nonce } },
        &mut out,
    );
    assert!(st.is_online(x));
}

#[test]
fn a_leaving_answer_to_a_probe_fails_it() {
    let (master, mut st) = master();
    let x = ServerId(2);
    let mut out = Vec::new();
    let report = Report::MaybeOffline { server: x };
    master.step(&mut st, Time(2), MasterInput::Report { from: Node::Client(ClientId(1)), report }, &mut out);
    assert!(st.probes.contains_key(&x));
    out.clear();
    master.step(
        &mut st,
        Time(3),
        MasterInput::Report { from: Node::Server(x), report: Report::Leaving { server: x } },
        &mut out,
    );
    assert!(!st.probes.contains_key(&x) && !st.is_online(x));
    assert!(out.contains(&MasterOutput::CancelTimer(MasterTimer::ProbeTimeout(x))));
}

/// The failover server of a leaving server's slot, told by the master, with
/// a request a peer sent it on its last hop parked there while its ask for
/// the slot's right is out; then the store's answer: the right still held
/// by the leaving server (its batch not yet released). Returns what the
/// failover server did with the request.
fn taker_answered_held(told: impl Fn(ServerId, Version) -> MasterMsg) -> (ServerId, Vec<ServerOutput>) {
    let topo = topology();
    let leaving = topo.owner(topo.slot(b"foo"));
    let taker = topo.serving_server(topo.slot(b"foo"), |s| s != leaving).unwrap();
    let peer = topo.servers().find(|s| *s != leaving && *s != taker).unwrap();
    let server = Server::new(taker, topo.clone(), ProtocolConfig::default());
    let mut st = ServerState::default();
    let mut out = Vec::new();
    server.step(&mut st, Time(0), ServerInput::Start { incarnation: 1 }, &mut out);
    failgroup_tests::core::grant_every_ask(&server, &mut st, &out, Time(0), Epoch(1));
    out.clear();
    let version = Version { incarnation: 1, counter: 5 };
    server.step(&mut st, Time(10), ServerInput::Master(told(leaving, version)), &mut out);
    let asks: Vec<(StoreTag, Vec<Slot>)> = out
        .iter()
        .filter_map(|o| match o {
            ServerOutput::Store { tag, op: StoreOp::Acquire { slots, .. } } => {
                Some((*tag, slots.iter().map(|(s, _)| *s).collect()))
            }
            _ => None,
        })
        .collect();
    // The first batch asked for, and a key of its first slot.
    let (tag, asked) = asks.into_iter().next().expect("an ask for the leaving server's slots");
    let key = (0..100_000).map(|i| format!("k{i}").into_bytes()).find(|k| topo.slot(k) == asked[0]).unwrap();
    // The peer's request, on its last hop (the peer sent it here as the
    // slot's failover server).
    let req = ReqId { client: ClientId(1), seq: 1 };
    let origin = Origin::Peer { server: peer, incarnation: 1, op: 1 };
    let fwd = Forwarded { req, op: Op::Get(key), hops: 1 };
    server.step(&mut st, Time(11), ServerInput::Request { origin, fwd }, &mut out);
    out.clear();
    let held = asked.iter().map(|s| (*s, leaving, Stamp { epoch: Epoch(1), renewals: 0 })).collect();
    let reply = StoreReply::Acquired { granted: vec![], held };
    server.step(&mut st, Time(12), ServerInput::Store { tag, reply }, &mut out);
    (leaving, out)
}

/// A leaving server serves the rights it has not released yet: the master
/// says it is leaving, and a failover server passes it the requests of the
/// slots it still holds at once, even on their last hop (a drain stalls no
/// request). A server marked offline after a failed probe is not passed
/// them: it may be paused, and would keep them past the sending peer's
/// timeout; they wait for the right.
#[test]
fn a_failover_server_passes_a_leaving_holder_its_requests_and_an_offline_one_none() {
    let (leaving, out) = taker_answered_held(|server, version| MasterMsg::Leaving { server, version });
    assert!(
        out.iter().any(|o| matches!(o, ServerOutput::Forward { to, fwd, .. } if *to == leaving && fwd.hops == 2)),
        "passed to the leaving holder: {out:?}"
    );
    let (offline, out) =
        taker_answered_held(|server, version| MasterMsg::Notice { server, liveness: Liveness::Offline, version });
    assert!(
        !out.iter().any(|o| matches!(o, ServerOutput::Forward { to, .. } if *to == offline)),
        "kept for the right: {out:?}"
    );
}
