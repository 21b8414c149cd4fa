//! The client's failover mode (c10-c14) against a reference model written
//! from the claims' words, driven in virtual time: a send that times out
//! jumps the clock to the timer's deadline.

use failgroup_model::client::Mode as ClientMode;
use failgroup_model::*;
use proptest::prelude::*;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};
use std::collections::BTreeMap;
use std::sync::Arc;

const SERVERS: u16 = 4;

fn config() -> ProtocolConfig {
    ProtocolConfig {
        timing: Timing { retries: 2, failover_period: 1_000, send_timeout: 100, ..Timing::default() },
        ..ProtocolConfig::default()
    }
}

fn topology() -> Arc<Topology> {
    Arc::new(ClusterSpec::local(SERVERS, 1, 7101, SLOTS).validate().unwrap())
}

/// A key owned by each server.
fn key_of(owner: u16) -> Vec<u8> {
    let t = topology();
    (0..).map(|i| format!("key{i}").into_bytes()).find(|k| t.owner(t.slot(k)) == ServerId(owner)).unwrap()
}

#[derive(Clone, Debug)]
struct Reference {
    now: u64,
    up: [bool; SERVERS as usize],
    modes: BTreeMap<ServerId, ClientMode>,
    /// What the last request should have done.
    sends: Vec<ServerId>,
    reports: Vec<Report>,
    completed: bool,
}

#[derive(Clone, Debug)]
enum Step {
    Advance(u64),
    SetUp(u16, bool),
    /// A request to `owner`'s key; failed sends show up as refusals or as
    /// timeouts.
    Request {
        owner: u16,
        by_timeout: bool,
    },
}

impl Reference {
    /// c10, c12: up to 1 + R sends to `to`; true if one got through.
    fn try_send(&mut self, to: ServerId, attempts: u32, by_timeout: bool) -> bool {
        for _ in 0..attempts {
            self.sends.push(to);
            if self.up[to.0 as usize] {
                return true;
            }
            if by_timeout {
                self.now += config().timing.send_timeout;
            }
        }
        false
    }

    fn request(&mut self, owner: ServerId, by_timeout: bool) {
        let t = config().timing;
        let tries = 1 + t.retries;
        (self.sends, self.reports) = (Vec::new(), Vec::new());
        let mode = self.modes.get(&owner).copied().unwrap_or(ClientMode::Normal);
        self.completed = match mode {
            ClientMode::Normal => {
                // c10, c12: the owner, R resends, then failover mode.
                if self.try_send(owner, tries, by_timeout) {
                    true
                } else {
                    self.modes.insert(owner, ClientMode::Failover { since: Time(self.now) });
                    self.reports.push(Report::MaybeOffline { server: owner });
                    self.failover_chain(owner, by_timeout)
                }
            }
            // c13: in failover mode for less than T: the failover server.
            ClientMode::Failover { since } if self.now - since.0 < t.failover_period => {
                self.probe_or_chain(owner, by_timeout)
            }
            // c14: after T, the owner once; success leaves failover mode.
            ClientMode::Failover { .. } => {
                if self.try_send(owner, 1, by_timeout) {
                    self.modes.remove(&owner);
                    self.reports.push(Report::BackOnline { server: owner });
                    true
                } else {
                    self.modes.insert(owner, ClientMode::Failover { since: Time(self.now) });
                    self.failover_chain(owner, by_timeout)
                }
            }
        };
    }

    /// c10: the failover server: the online group peer chosen by the
    /// topology among servers not in failover mode; if it fails too, it
    /// enters failover mode as well and the next one is tried.
    fn failover_chain(&mut self, owner: ServerId, by_timeout: bool) -> bool {
        let topo = topology();
        let slot = topo.slot(&key_of(owner.0));
        loop {
            let Some(f) = topo.failover_server(slot, |s| !self.modes.contains_key(&s)) else { return false };
            if self.try_send(f, 1 + config().timing.retries, by_timeout) {
                return true;
            }
            self.modes.insert(f, ClientMode::Failover { since: Time(self.now) });
            self.reports.push(Report::MaybeOffline { server: f });
        }
    }

    /// c13 when every member is in failover mode: probe one whose mode
    /// began before now (the owner first) once; an answer ends its failover
    /// mode (c14, extended to the group); a failure fails the operation.
    fn probe_or_chain(&mut self, owner: ServerId, by_timeout: bool) -> bool {
        let topo = topology();
        let slot = topo.slot(&key_of(owner.0));
        if topo.failover_server(slot, |s| !self.modes.contains_key(&s)).is_some() {
            return self.failover_chain(owner, by_timeout);
        }
        let now = self.now;
        let eligible =
            |s: ServerId| matches!(self.modes.get(&s), Some(ClientMode::Failover { since }) if since.0 < now);
        let Some(p) = topo.serving_server(slot, eligible) else { return false };
        if self.try_send(p, 1, by_timeout) {
            self.modes.remove(&p);
            self.reports.push(Report::BackOnline { server: p });
            return true;
        }
        self.modes.insert(p, ClientMode::Failover { since: Time(self.now) });
        false
    }
}

struct ClientModel;

impl ReferenceStateMachine for ClientModel {
    type State = Reference;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Reference> {
        Just(Reference {
            now: 0,
            up: [true; SERVERS as usize],
            modes: BTreeMap::new(),
            sends: vec![],
            reports: vec![],
            completed: true,
        })
        .boxed()
    }

    fn transitions(_: &Reference) -> BoxedStrategy<Step> {
        prop_oneof![
            2 => (0u64..1_500).prop_map(Step::Advance),
            2 => (0..SERVERS, any::<bool>()).prop_map(|(s, up)| Step::SetUp(s, up)),
            5 => (0..SERVERS, any::<bool>()).prop_map(|(owner, by_timeout)| Step::Request { owner, by_timeout }),
        ]
        .boxed()
    }

    fn apply(mut state: Reference, step: &Step) -> Reference {
        match *step {
            Step::Advance(ms) => state.now += ms,
            Step::SetUp(s, up) => state.up[s as usize] = up,
            Step::Request { owner, by_timeout } => state.request(ServerId(owner), by_timeout),
        }
        state
    }
}

struct Sut {
    client: Client,
    state: ClientState,
    now: Time,
    seq: u64,
}

impl StateMachineTest for ClientModel {
    type SystemUnderTest = Sut;
    type Reference = ClientModel;

    fn init_test(_: &Reference) -> Sut {
        Sut {
            client: Client::new(ClientId(1), topology(), config()),
            state: ClientState::default(),
            now: Time(0),
            seq: 0,
        }
    }

    fn apply(mut sut: Sut, reference: &Reference, step: Step) -> Sut {
        let (owner, by_timeout) = match step {
            Step::Advance(ms) => {
                sut.now = sut.now.plus(ms);
                return sut;
            }
            Step::SetUp(..) => return sut,
            Step::Request { owner, by_timeout } => (owner, by_timeout),
        };
        sut.seq += 1;
        let seq = sut.seq;
        let (mut sends, mut reports, mut result) = (vec![], vec![], None);
        let mut inputs = vec![ClientInput::Invoke { seq, op: Op::Get(key_of(owner)) }];
        let mut timer = None;
        for _ in 0..100 {
            let Some(input) = inputs.pop() else { break };
            let mut out = Vec::new();
            sut.client.step(&mut sut.state, sut.now, input, &mut out);
            for o in out {
                match o {
                    ClientOutput::Send { to, .. } => {
                        sends.push(to);
                        let up = reference.up[to.0 as usize];
                        inputs.push(if up {
                            ClientInput::Reply { seq, from: to, result: OpResult::Value(None) }
                        } else if by_timeout {
                            ClientInput::Timer(ClientTimer::SendTimeout(seq))
                        } else {
                            ClientInput::SendFailed { seq, to }
                        });
                    }
                    ClientOutput::SetTimer { at, .. } => timer = Some(at),
                    ClientOutput::CancelTimer(_) => timer = None,
                    ClientOutput::ToMaster(r) => reports.push(r),
                    ClientOutput::Complete { result: r, .. } => result = Some(r),
                }
            }
            // Virtual time: a timeout input happens at the timer's deadline.
            if let (Some(ClientInput::Timer(_)), Some(at)) = (inputs.last(), timer) {
                sut.now = at;
            }
        }
        assert_eq!(sends, reference.sends, "sends");
        assert_eq!(reports, reference.reports, "reports to the master");
        let expected = if reference.completed { OpResult::Value(None) } else { OpResult::Err(ErrorKind::Unavailable) };
        assert_eq!(result, Some(expected), "result");
        assert_eq!(sut.now, Time(reference.now), "virtual time");
        let modes: BTreeMap<ServerId, ClientMode> = sut.state.modes.iter().map(|(k, v)| (*k, *v)).collect();
        assert_eq!(modes, reference.modes, "failover modes");
        assert!(sut.state.inflight.is_empty());
        sut
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn client_failover_mode_follows_c10_to_c14(sequential 1..40 => ClientModel);
}

/// The whole story once, by hand: retries, failover, T, a failed probe, a
/// successful probe.
#[test]
fn failover_mode_story() {
    let topo = topology();
    let client = Client::new(ClientId(1), topo.clone(), config());
    let mut st = ClientState::default();
    let key = key_of(0);
    let owner = ServerId(0);
    let f = topo.failover_server(topo.slot(&key), |s| s != owner).unwrap();
    let mut out = Vec::new();
    client.step(&mut st, Time(0), ClientInput::Invoke { seq: 1, op: Op::Get(key.clone()) }, &mut out);
    for _ in 0..3 {
        client.step(&mut st, Time(0), ClientInput::SendFailed { seq: 1, to: owner }, &mut out);
    }
    assert_eq!(st.mode(owner), ClientMode::Failover { since: Time(0) });
    assert!(out.contains(&ClientOutput::ToMaster(Report::MaybeOffline { server: owner })));
    assert!(
        matches!(out.iter().rev().find(|o| matches!(o, ClientOutput::Send { .. })), Some(ClientOutput::Send { to, .. }) if *to == f)
    );
    // c13: within T, straight to the failover server.
    out.clear();
    client.step(&mut st, Time(500), ClientInput::Invoke { seq: 2, op: Op::Get(key.clone()) }, &mut out);
    assert!(matches!(&out[0], ClientOutput::Send { to, .. } if *to == f));
    // c14: after T, the owner; success leaves failover mode and tells the master.
    out.clear();
    client.step(&mut st, Time(1_000), ClientInput::Invoke { seq: 3, op: Op::Get(key) }, &mut out);
    assert!(matches!(&out[0], ClientOutput::Send { to, .. } if *to == owner));
    client.step(&mut st, Time(1_001), ClientInput::Reply { seq: 3, from: owner, result: OpResult::Ok }, &mut out);
    assert_eq!(st.mode(owner), ClientMode::Normal);
    assert!(out.contains(&ClientOutput::ToMaster(Report::BackOnline { server: owner })));
}

/// Regression (found by the fault suite once its nemesis faulted every
/// server, seed 47753): the client had one group member in failover mode
/// from an earlier crash when the other two died. Every operation then
/// failed at once with CLUSTERDOWN for the rest of the failover period,
/// though that member was back. Now the client probes it rather than
/// refuse, and an answer ends its failover mode.
#[test]
fn a_member_back_before_its_period_ends_is_probed_not_refused() {
    let topo = topology();
    let client = Client::new(ClientId(1), topo.clone(), config());
    let mut st = ClientState::default();
    let key = key_of(0);
    // Every member of the group in failover mode, all since time 0.
    for s in topo.group(ServerId(0)).iter().copied() {
        st.modes.insert(s, ClientMode::Failover { since: Time(0) });
    }
    let mut out = Vec::new();
    client.step(&mut st, Time(10), ClientInput::Invoke { seq: 1, op: Op::Get(key) }, &mut out);
    let Some(ClientOutput::Send { to, .. }) = out.iter().find(|o| matches!(o, ClientOutput::Send { .. })) else {
        panic!("the client refused instead of probing: {out:?}")
    };
    let to = *to;
    client.step(&mut st, Time(11), ClientInput::Reply { seq: 1, from: to, result: OpResult::Value(None) }, &mut out);
    assert!(out.contains(&ClientOutput::Complete { seq: 1, result: OpResult::Value(None) }));
    assert_eq!(st.mode(to), ClientMode::Normal, "the member that answered is back");
    assert!(out.contains(&ClientOutput::ToMaster(Report::BackOnline { server: to })));
}
