//! Topology changes in the core (issue 17), step by step: the master makes
//! the next version, has it persisted, then sends it to every server; a
//! server that a version takes slots from hands their rights over after
//! what it sent under them, one that gains slots asks for them; a version
//! not newer than the one held changes nothing; a restarted master
//! continues from the version persisted.

use failgroup_model::*;
use std::sync::Arc;

fn topology() -> Arc<Topology> {
    Arc::new(ClusterSpec::local(3, 1, 7101, SLOTS).validate().unwrap())
}

/// Server `id` started and granted every right it asked for.
fn serving(topo: &Arc<Topology>, id: ServerId) -> (Server, ServerState) {
    let server = Server::new(id, topo.clone(), ProtocolConfig::default());
    let mut st = ServerState::default();
    let mut out = Vec::new();
    server.step(&mut st, Time(0), ServerInput::Start { incarnation: 1 }, &mut out);
    grant_all(&server, &mut st, &out);
    (server, st)
}

fn grant_all(server: &Server, st: &mut ServerState, out: &[ServerOutput]) {
    failgroup_tests::core::grant_every_ask(server, st, out, Time(0), Epoch(2));
}

fn get(key: &[u8], seq: u64) -> ServerInput {
    let req = ReqId { client: ClientId(1), seq };
    ServerInput::Request { origin: Origin::Client(seq), fwd: Forwarded { req, op: Op::Get(key.to_vec()), hops: 0 } }
}

fn moved(topo: &Topology, slot: Slot, to: &str) -> Arc<Topology> {
    let change = TopologyChange::MoveSlots { ranges: vec![[slot.0, slot.0]], to: to.into() };
    Arc::new(topo.change(&change).unwrap())
}

#[test]
fn the_giver_hands_the_right_over_after_its_commands_and_the_taker_asks_for_it() {
    let topo = topology();
    let key = b"foo".to_vec();
    let slot = topo.slot(&key);
    let giver_id = topo.owner(slot);
    let taker_id = topo.servers().find(|s| *s != giver_id).unwrap();
    let (giver, mut g) = serving(&topo, giver_id);
    let (taker, mut t) = serving(&topo, taker_id);
    assert!(g.serves(slot, Time(1)) && !t.serves(slot, Time(1)));

    // A read at the store when the new version arrives.
    let mut out = Vec::new();
    giver.step(&mut g, Time(1), get(&key, 1), &mut out);
    assert!(out.iter().any(|o| matches!(o, ServerOutput::Store { op: StoreOp::Read { .. }, .. })));
    let next = moved(&topo, slot, taker.topology.name(taker_id));
    out.clear();
    giver.step(&mut g, Time(2), ServerInput::Master(MasterMsg::Topology(next.clone())), &mut out);
    // The release goes after the read on the one store connection, and
    // nothing is served from the slot any more.
    let released = out.iter().find_map(|o| match o {
        ServerOutput::Store { op: StoreOp::Release { rights }, .. } => Some(rights.clone()),
        _ => None,
    });
    assert_eq!(released, Some(vec![(slot, Epoch(2))]), "{out:?}");
    assert!(!g.serves(slot, Time(2)) && !g.cache.contains_key(&slot));
    assert_eq!(giver.topo(&g).version(), 1);
    // Its other slots stay.
    assert!(topo.owned_slots(giver_id).filter(|s| *s != slot).all(|s| g.serves(s, Time(2))));
    // A request for the slot now goes to the new owner.
    out.clear();
    giver.step(&mut g, Time(2), get(&key, 2), &mut out);
    assert!(out.iter().any(|o| matches!(o, ServerOutput::Forward { to, .. } if *to == taker_id)), "{out:?}");

    // The taker asks for the right (a new epoch, an empty cache once granted).
    out.clear();
    taker.step(&mut t, Time(2), ServerInput::Master(MasterMsg::Topology(next.clone())), &mut out);
    let asked = out.iter().find_map(|o| match o {
        ServerOutput::Store { op: StoreOp::Acquire { slots, .. }, .. } => Some(slots.clone()),
        _ => None,
    });
    assert_eq!(asked, Some(vec![(slot, None)]), "{out:?}");

    // The same version again, or an older one, changes nothing.
    for old in [next, topo.clone()] {
        let before = g.clone();
        out.clear();
        giver.step(&mut g, Time(3), ServerInput::Master(MasterMsg::Topology(old)), &mut out);
        assert!(out.is_empty() && g == before);
    }
}

#[test]
fn a_removed_server_hands_everything_over_and_may_exit() {
    let topo = topology();
    let (server, mut st) = serving(&topo, ServerId(1));
    assert!(!st.rights.is_empty() && !server.removed(&st));
    let next = Arc::new(topo.change(&TopologyChange::RemoveServer { name: "s2".into() }).unwrap());
    let held = st.rights.len();
    let mut out = Vec::new();
    server.step(&mut st, Time(1), ServerInput::Master(MasterMsg::Topology(next)), &mut out);
    // Its rights go a batch at a time, a gap apart; it may exit once the
    // last is released.
    let timing = ProtocolConfig::default().timing;
    let mut released = 0;
    for batch in 1..=held.div_ceil(timing.batch()) {
        released += out
            .iter()
            .filter_map(|o| match o {
                ServerOutput::Store { op: StoreOp::Release { rights }, .. } => Some(rights.len()),
                _ => None,
            })
            .sum::<usize>();
        assert_eq!(server.removed(&st), released == held, "after batch {batch}");
        out.clear();
        let at = Time(1 + batch as u64 * timing.hand_over_gap);
        server.step(&mut st, at, ServerInput::Timer(ServerTimer::HandOver), &mut out);
    }
    assert!(st.rights.is_empty());
    assert!(server.removed(&st), "no right, nothing pending");
}

#[test]
fn the_master_sends_a_change_to_every_server_once_persisted() {
    let topo = topology();
    let master = Master::new(topo.clone(), ProtocolConfig::default());
    let mut st = master.initial_state();
    let mut out = Vec::new();
    master.step(&mut st, Time(0), MasterInput::Start { incarnation: 1, topology: None }, &mut out);
    let change = TopologyChange::AddServer { name: "s4".into(), addr: "127.0.0.1:7104".into(), group: "g1".into() };
    out.clear();
    master.step(&mut st, Time(1), MasterInput::Change(change.clone()), &mut out);
    let Some(MasterOutput::Persist(t)) = out.first().cloned() else { panic!("persisted first: {out:?}") };
    assert_eq!((t.version(), out.len()), (1, 1), "nothing sent before it is persisted");
    assert_eq!(st.topology.version(), 0);
    // A second change waits for the first.
    out.clear();
    master.step(&mut st, Time(1), MasterInput::Change(TopologyChange::Rebalance), &mut out);
    assert!(matches!(&out[..], [MasterOutput::Event(MasterEvent::ChangeRefused(_))]), "{out:?}");
    // The store did not take it: refused, nothing changes.
    out.clear();
    master.step(&mut st, Time(2), MasterInput::Persisted { version: 1, ok: false }, &mut out);
    assert!(matches!(&out[..], [MasterOutput::Event(MasterEvent::ChangeRefused(_))]), "{out:?}");
    assert_eq!(st.topology.version(), 0);
    // Again, and persisted: every server hears it, the new one too.
    out.clear();
    master.step(&mut st, Time(3), MasterInput::Change(change), &mut out);
    out.clear();
    master.step(&mut st, Time(3), MasterInput::Persisted { version: 1, ok: true }, &mut out);
    assert_eq!(st.topology.version(), 1);
    let told: Vec<ServerId> = out
        .iter()
        .filter_map(|o| match o {
            MasterOutput::Send { to, msg: MasterMsg::Topology(t) } if t.version() == 1 => Some(*to),
            _ => None,
        })
        .collect();
    assert_eq!(told, (0..4).map(ServerId).collect::<Vec<_>>());
    assert!(out.contains(&MasterOutput::Event(MasterEvent::TopologyChanged(1))));
    // A change that cannot be: refused with the reason.
    out.clear();
    master.step(&mut st, Time(4), MasterInput::Change(TopologyChange::RemoveServer { name: "s9".into() }), &mut out);
    assert!(matches!(&out[..], [MasterOutput::Event(MasterEvent::ChangeRefused(why))] if why.contains("s9")));

    // A restarted master continues from the version persisted, and its
    // views carry it (a server that missed it, or restarted, catches up).
    let persisted = st.topology.clone();
    let mut st2 = master.initial_state();
    out.clear();
    master.step(&mut st2, Time(5), MasterInput::Start { incarnation: 2, topology: Some(persisted) }, &mut out);
    assert_eq!(st2.topology.version(), 1);
    let probed: Vec<ServerId> = out
        .iter()
        .filter_map(|o| match o {
            MasterOutput::Probe { to, .. } => Some(*to),
            _ => None,
        })
        .collect();
    assert_eq!(probed.len(), 4, "the added server is probed too");
    for (s, nonce) in st2.probes.clone() {
        master.step(
            &mut st2,
            Time(6),
            MasterInput::Report { from: Node::Server(s), report: Report::ProbeAck { nonce } },
            &mut out,
        );
    }
    out.clear();
    master.step(&mut st2, Time(7), MasterInput::Timer(MasterTimer::Sync), &mut out);
    let synced = out
        .iter()
        .filter(|o| matches!(o, MasterOutput::Send { msg: MasterMsg::View { topology: Some(t), .. }, .. } if t.version() == 1))
        .count();
    assert_eq!(synced, 4, "{out:?}");
}

/// The mutant the model checker catches (`move-skips-drain`): the release
/// goes to the store, but the giver still trusts the right.
#[test]
fn the_move_skips_drain_mutant_keeps_serving_what_it_released() {
    let topo = topology();
    let slot = Slot(0);
    let owner = topo.owner(slot);
    let mutant = ProtocolConfig { mutant: Some(Mutant::MoveSkipsDrain), ..ProtocolConfig::default() };
    let server = Server::new(owner, topo.clone(), mutant);
    let mut st = ServerState::default();
    let mut out = Vec::new();
    server.step(&mut st, Time(0), ServerInput::Start { incarnation: 1 }, &mut out);
    grant_all(&server, &mut st, &out);
    out.clear();
    let next = moved(&topo, slot, "s3");
    server.step(&mut st, Time(1), ServerInput::Master(MasterMsg::Topology(next)), &mut out);
    assert!(out.iter().any(|o| matches!(o, ServerOutput::Store { op: StoreOp::Release { .. }, .. })));
    assert!(st.serves(slot, Time(1)), "the bug: released, still trusted");
}

/// A server that missed a change (or restarted with the configured
/// topology) takes it from the master's next view.
#[test]
fn a_view_carries_the_topology_to_a_server_that_missed_it() {
    let topo = topology();
    let slot = Slot(0);
    let (server, mut st) = serving(&topo, topo.owner(slot));
    let next = moved(&topo, slot, "s3");
    let view = MasterMsg::View {
        version: Version { incarnation: 1, counter: 5 },
        offline: Default::default(),
        topology: Some(next),
    };
    let mut out = Vec::new();
    server.step(&mut st, Time(1), ServerInput::Master(view), &mut out);
    assert_eq!(server.topo(&st).version(), 1);
    assert!(!st.serves(slot, Time(1)));
    assert!(out.iter().any(|o| matches!(o, ServerOutput::Store { op: StoreOp::Release { .. }, .. })), "{out:?}");
}

/// A removed server is marked and probed no more: its own leaving (it
/// drains once idle) is only confirmed, reports about it change nothing,
/// and a re-check of it probes nobody.
#[test]
fn the_master_leaves_a_removed_server_alone() {
    let topo = topology();
    let master = Master::new(topo.clone(), ProtocolConfig::default());
    let mut st = master.initial_state();
    let mut out = Vec::new();
    let removed = Arc::new(topo.change(&TopologyChange::RemoveServer { name: "s2".into() }).unwrap());
    master.step(&mut st, Time(2), MasterInput::Start { incarnation: 2, topology: Some(removed) }, &mut out);
    assert!(!st.probes.contains_key(&ServerId(1)), "not probed at start");
    let s2 = ServerId(1);
    out.clear();
    let leaving = MasterInput::Report { from: Node::Server(s2), report: Report::Leaving { server: s2 } };
    master.step(&mut st, Time(3), leaving, &mut out);
    assert!(matches!(&out[..], [MasterOutput::Send { to, msg: MasterMsg::Notice { .. } }] if *to == s2), "{out:?}");
    assert!(st.is_online(s2), "not marked");
    out.clear();
    let report = MasterInput::Report { from: Node::Server(ServerId(0)), report: Report::MaybeOffline { server: s2 } };
    master.step(&mut st, Time(4), report, &mut out);
    master.step(&mut st, Time(5), MasterInput::Timer(MasterTimer::Reprobe(s2)), &mut out);
    assert!(out.is_empty(), "{out:?}");
}
