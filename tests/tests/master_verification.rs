//! The master's verification (c19-c21) and versioned notices (c16, c17).

use failgroup_model::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

const SERVERS: u16 = 4;

fn topology() -> Arc<Topology> {
    Arc::new(ClusterSpec::local(SERVERS, 1, 7101, 64).validate().unwrap())
}

#[derive(Clone, Debug)]
enum Action {
    /// A client or server reports a server.
    Report {
        server: u16,
        offline: bool,
        from_client: bool,
    },
    /// Deliver the i-th probe in flight; a live server answers it.
    DeliverProbe(usize),
    DropProbe(usize),
    /// The master's connection to a server is refused (only a dead one's).
    Refused(u16),
    /// Fire the earliest pending timer (virtual time jumps to it).
    FireTimer,
    /// A server dies or comes back (ground truth the master cannot see).
    SetAlive(u16, bool),
    /// A forged ack, sent by a client under any nonce.
    ForgedAck {
        nonce: u64,
    },
    RestartMaster,
    /// "I am leaving" about a server: from itself (a drain), or from
    /// another node (which must change nothing).
    Leaving {
        server: u16,
        from_self: bool,
    },
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0..SERVERS, any::<bool>(), any::<bool>()).prop_map(|(server, offline, from_client)| Action::Report { server, offline, from_client }),
        3 => (0usize..4).prop_map(Action::DeliverProbe),
        1 => (0usize..4).prop_map(Action::DropProbe),
        2 => (0..SERVERS).prop_map(Action::Refused),
        4 => Just(Action::FireTimer),
        2 => (0..SERVERS, any::<bool>()).prop_map(|(s, a)| Action::SetAlive(s, a)),
        1 => (0u64..20).prop_map(|nonce| Action::ForgedAck { nonce }),
        1 => Just(Action::RestartMaster),
        1 => (0..SERVERS, any::<bool>()).prop_map(|(server, from_self)| Action::Leaving { server, from_self }),
    ]
}

struct Harness {
    master: Master,
    state: MasterState,
    now: Time,
    incarnation: u64,
    timers: Timers<MasterTimer>,
    probes: Vec<(ServerId, u64)>,
    /// The nonce of the master's latest probe of each server.
    last_probe: BTreeMap<ServerId, u64>,
    /// Probes that the server answered (the ack reached the master).
    answered: BTreeSet<(ServerId, u64)>,
    last_version: Version,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(ProtocolConfig::default())
    }

    fn with(config: ProtocolConfig) -> Harness {
        let master = Master::new(topology(), config);
        let state = master.initial_state();
        let mut h = Harness {
            master,
            state,
            now: Time(0),
            incarnation: 1,
            timers: Timers::new(),
            probes: vec![],
            last_probe: BTreeMap::new(),
            answered: BTreeSet::new(),
            last_version: Version::default(),
        };
        h.step(MasterInput::Start { incarnation: 1, topology: None });
        h
    }

    fn step(&mut self, input: MasterInput) {
        let mut out = Vec::new();
        let probing = self.state.probes.clone();
        // A server's own word that it leaves (a drain) stands for the
        // master's contact with it.
        let leaving = match &input {
            MasterInput::Report { from: Node::Server(f), report: Report::Leaving { server } } if f == server => {
                Some(*server)
            }
            _ => None,
        };
        self.master.step(&mut self.state, self.now, input.clone(), &mut out);
        for o in out {
            match o {
                MasterOutput::Probe { to, nonce } => {
                    self.probes.push((to, nonce));
                    self.last_probe.insert(to, nonce);
                }
                o @ (MasterOutput::SetTimer { .. } | MasterOutput::CancelTimer(_)) => {
                    self.timers.carry_out(&o);
                }
                MasterOutput::Event(MasterEvent::MarkedOffline(s, v)) => {
                    // c19: only when its own contact with s failed (timed
                    // out, or refused while a probe of s was outstanding).
                    if leaving == Some(s) {
                        assert!(v > self.last_version, "versions must grow");
                        self.last_version = v;
                        continue;
                    }
                    assert!(
                        matches!(input, MasterInput::Timer(MasterTimer::ProbeTimeout(p)) | MasterInput::Unreachable(p) if p == s)
                            && probing.contains_key(&s),
                        "{s} marked offline without a failed probe"
                    );
                    let nonce = self.last_probe[&s];
                    assert!(!self.answered.contains(&(s, nonce)), "{s} answered probe {nonce} but was marked offline");
                    assert!(v > self.last_version, "versions must grow");
                    self.last_version = v;
                }
                MasterOutput::Event(MasterEvent::MarkedOnline(s, v)) => {
                    // c21: only on an answer from s itself.
                    let MasterInput::Report { from, .. } = &input else { panic!("{s} marked online on {input:?}") };
                    assert_eq!(*from, Node::Server(s));
                    assert!(v > self.last_version, "versions must grow");
                    self.last_version = v;
                }
                MasterOutput::Send { to, msg: MasterMsg::Notice { server, version, .. } } => {
                    // c19, c21: the subject of a notice is not told, but for
                    // the confirmation a leaving server gets.
                    assert!(to != server || leaving == Some(to), "{to} told of itself on {input:?}");
                    assert!(self.state.is_online(to) || leaving == Some(to));
                    assert!(version <= self.state.version && version.incarnation == self.incarnation);
                }
                _ => {}
            }
        }
    }

    fn apply(&mut self, action: Action, alive: &mut [bool]) {
        match action {
            Action::Report { server, offline, from_client } => {
                let server = ServerId(server);
                let from = if from_client { Node::Client(ClientId(9)) } else { Node::Server(ServerId(0)) };
                let report = if offline { Report::MaybeOffline { server } } else { Report::BackOnline { server } };
                self.step(MasterInput::Report { from, report });
            }
            Action::DeliverProbe(i) if i < self.probes.len() => {
                let (s, nonce) = self.probes.remove(i);
                if alive[s.0 as usize] {
                    if self.state.probes.get(&s) == Some(&nonce) {
                        self.answered.insert((s, nonce));
                    }
                    self.step(MasterInput::Report { from: Node::Server(s), report: Report::ProbeAck { nonce } });
                }
            }
            Action::DropProbe(i) if i < self.probes.len() => {
                self.probes.remove(i);
            }
            Action::Refused(s) if !alive[s as usize] => {
                self.probes.retain(|(to, _)| to.0 != s);
                self.step(MasterInput::Unreachable(ServerId(s)));
            }
            Action::FireTimer => {
                if let Some((timer, at)) = self.timers.pop_next() {
                    self.now = self.now.max(at);
                    self.step(MasterInput::Timer(timer));
                }
            }
            Action::SetAlive(s, a) => alive[s as usize] = a,
            Action::ForgedAck { nonce } => {
                // Never counts as an answer: the marking checks would fail.
                self.step(MasterInput::Report { from: Node::Client(ClientId(66)), report: Report::ProbeAck { nonce } });
            }
            Action::Leaving { server, from_self } => {
                let s = ServerId(server);
                let from = if from_self { Node::Server(s) } else { Node::Server(ServerId((server + 1) % SERVERS)) };
                let was_online = self.state.is_online(s);
                self.step(MasterInput::Report { from, report: Report::Leaving { server: s } });
                if from_self {
                    assert!(!self.state.is_online(s), "a leaving server is marked offline");
                } else {
                    assert_eq!(self.state.is_online(s), was_online, "another node's word about {s} changed it");
                }
            }
            Action::RestartMaster => {
                self.incarnation += 1;
                self.timers.clear();
                self.probes.clear();
                self.answered.clear();
                self.last_probe.clear();
                self.step(MasterInput::Start { incarnation: self.incarnation, topology: None });
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The master marks a server offline only after its own probe of it went
    /// unanswered, online only on that server's answer, with growing versions.
    #[test]
    fn master_verifies_before_marking(actions in proptest::collection::vec(action(), 1..80)) {
        let mut h = Harness::new();
        let mut alive = vec![true; SERVERS as usize];
        for a in actions {
            h.apply(a, &mut alive);
        }
    }
}

#[test]
fn a_report_about_a_live_server_is_refuted() {
    let mut h = Harness::new();
    let mut alive = vec![true; SERVERS as usize];
    // Boot round: every server answers.
    while !h.probes.is_empty() {
        h.apply(Action::DeliverProbe(0), &mut alive);
    }
    h.apply(Action::Report { server: 2, offline: true, from_client: true }, &mut alive);
    assert_eq!(h.probes.len(), 1);
    h.apply(Action::DeliverProbe(0), &mut alive);
    h.apply(Action::FireTimer, &mut alive); // the (cancelled) timeout is gone; this fires Sync
    assert!(h.state.is_online(ServerId(2)));
    // A dead one is marked offline after the probe timeout, then back online
    // when a re-probe is answered (c20, c21).
    alive[2] = false;
    h.apply(Action::Report { server: 2, offline: true, from_client: false }, &mut alive);
    h.apply(Action::DeliverProbe(0), &mut alive);
    while h.state.is_online(ServerId(2)) {
        h.apply(Action::FireTimer, &mut alive);
    }
    alive[2] = true;
    for _ in 0..10 {
        h.apply(Action::FireTimer, &mut alive);
        if !h.probes.is_empty() {
            h.apply(Action::DeliverProbe(0), &mut alive);
        }
    }
    assert!(h.state.is_online(ServerId(2)), "the re-probe found it again");
}

/// A refused connection fails the probe outstanding at once (the dead
/// server is marked offline without waiting out the probe's timeout); with
/// no probe outstanding it means nothing.
#[test]
fn a_refused_connection_fails_the_probe_at_once() {
    let mut h = Harness::new();
    let mut alive = vec![true; SERVERS as usize];
    while !h.probes.is_empty() {
        h.apply(Action::DeliverProbe(0), &mut alive);
    }
    alive[2] = false;
    let before = h.state.clone();
    h.apply(Action::Refused(2), &mut alive);
    assert_eq!(h.state, before, "no probe outstanding: nothing concluded");
    h.apply(Action::Report { server: 2, offline: true, from_client: true }, &mut alive);
    assert!(h.state.is_online(ServerId(2)), "a report alone marks nothing");
    // No timer fires in between: the refusal itself concludes.
    h.apply(Action::Refused(2), &mut alive);
    assert!(!h.state.is_online(ServerId(2)), "marked offline on the refusal");
    assert!(
        !h.timers.due(Time(u64::MAX)).any(|t| t == MasterTimer::ProbeTimeout(ServerId(2))),
        "the probe's timeout is cancelled"
    );
}

fn notice() -> impl Strategy<Value = (u16, bool, u64, u64)> {
    (1..SERVERS, any::<bool>(), 1u64..3, 0u64..30)
}

proptest! {
    /// Whatever order notices arrive in, a server ends with, for each server,
    /// the liveness of the newest notice about it; a notice older than one
    /// already applied changes nothing at all.
    #[test]
    fn notices_of_older_versions_change_nothing(notices in proptest::collection::vec(notice(), 1..30)) {
        let topo = topology();
        let server = Server::new(ServerId(0), topo, ProtocolConfig::default());
        let mut st = ServerState::default();
        let mut newest: BTreeMap<u16, (Version, Liveness)> = BTreeMap::new();
        for (s, offline, incarnation, counter) in notices {
            let version = Version { incarnation, counter };
            let liveness = if offline { Liveness::Offline } else { Liveness::Online };
            let before = st.clone();
            let mut out = Vec::new();
            let stale = newest.get(&s).is_some_and(|(v, _)| *v >= version);
            server.step(&mut st, Time(0), ServerInput::Master(MasterMsg::Notice { server: ServerId(s), liveness, version }), &mut out);
            if stale {
                prop_assert_eq!(&st, &before);
                prop_assert!(out.is_empty());
            } else {
                newest.insert(s, (version, liveness));
            }
        }
        for (s, (_, liveness)) in newest {
            prop_assert_eq!(st.view.is_online(ServerId(s)), liveness == Liveness::Online);
        }
    }
}

/// The harness's checks bite: a master that skips verification is caught.
#[test]
#[should_panic(expected = "marked offline without a failed probe")]
fn skipping_verification_is_caught() {
    let mut h = Harness::with(ProtocolConfig { mutant: Some(Mutant::SkipVerification), ..ProtocolConfig::default() });
    let mut alive = vec![true; SERVERS as usize];
    while !h.probes.is_empty() {
        h.apply(Action::DeliverProbe(0), &mut alive);
    }
    h.apply(Action::Report { server: 1, offline: true, from_client: true }, &mut alive);
}
