//! A stateright model of a whole cluster (master, servers in groups,
//! clients, the store) that drives the `failgroup-model` transitions
//! themselves, never a copy. Time is an explicit discrete clock: every node
//! has its own (servers' may lag the store's within the drift bound), timers
//! fire only when their deadline has come on their node's clock, and the
//! clock does not pass a due timer of a running node.
//!
//! Faults, each within a budget and before the fault horizon: message loss,
//! duplication and reordering (any delivery order), crash and restart of a
//! server (its memory is lost, it comes back as a new incarnation) and of
//! the master, a paused server (alive but silent: a gray failure), a
//! suspended host (paused, its clock stands still, and counts the time on
//! resume as CLOCK_BOOTTIME does), a second process of a paused server's
//! identity (the first lives on as its "twin"), a cut link between two
//! nodes, clock lag, and the store's clock stepping forward.

use super::spec::{Command, Linearizer};
use failgroup_model::*;
use stateright::{Model, Property};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;

/// Ticks the clock may run past `max_time` while an operation is pending:
/// more than any operation's timeouts, a failover and a lease take.
pub const DRAIN: u64 = 60;

/// The bounds of one model: counts, fault budgets and time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    pub servers: u16,
    pub groups: u16,
    pub clients: u16,
    pub keys: u16,
    /// Operations each client runs.
    pub ops_per_client: u8,
    /// The commands clients run, in turn: client `c`'s `i`-th operation is
    /// `commands[(c + i) % len]` (the default, SET and GET, has one client
    /// write while the other reads, then the other way round).
    pub commands: Vec<Command>,
    /// How many faults of each kind a run may inject.
    pub faults: Faults,
    /// Clock lag bound in ticks (0: clocks advance together).
    pub drift: u64,
    pub mode: Mode,
    pub mutant: Option<Mutant>,
    /// Faults happen before this tick.
    pub fault_horizon: u64,
    /// Clients start operations before this tick.
    pub op_horizon: u64,
    /// Crashed servers and the master may restart before this tick.
    pub restart_horizon: u64,
    /// The clock stops here; what is in flight is then drained.
    pub max_time: u64,
    /// A message not lost is delivered within this many ticks after the one
    /// it was sent in (0: in the same tick). Messages to a paused node or
    /// over a cut link wait.
    pub max_delay: u64,
    /// The search's reductions (deliveries to one receiver at a time, due
    /// timers in a fixed order, restarts and resumes between a tick's
    /// work): off only to show they change no verdict.
    pub reductions: bool,
}

impl Default for CheckConfig {
    fn default() -> CheckConfig {
        CheckConfig {
            servers: 3,
            groups: 1,
            clients: 2,
            keys: 1,
            ops_per_client: 1,
            commands: vec![Command::Set, Command::Get],
            faults: Faults { crashes: 1, ..Faults::default() },
            drift: 0,
            mode: Mode::Linearizable,
            mutant: None,
            fault_horizon: 4,
            op_horizon: 4,
            restart_horizon: 12,
            max_time: 20,
            max_delay: 0,
            reductions: true,
        }
    }
}

impl CheckConfig {
    /// Protocol timing in ticks.
    pub fn protocol(&self) -> ProtocolConfig {
        ProtocolConfig {
            mode: self.mode,
            mutant: self.mutant,
            timing: Timing {
                retries: 0,
                failover_period: 4,
                // Shorter than a failover takes (the runtime's default is
                // longer): clients and forwarding servers give a silent
                // server up, report it and fail over within a few ticks,
                // which is where the protocol's races are.
                send_timeout: 2,
                probe_timeout: 2,
                reprobe_interval: 3,
                sync_interval: 8,
                lease: 6 + 4 * self.drift,
                max_drift: self.drift,
                retry_interval: 3,
                // A parked request is answered (TRYAGAIN) at the latest
                // after this, well within the drain.
                request_timeout: 24,
                temp_ttl: 8,
                max_hops: 2,
            },
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let check = |ok: bool, msg: &str| if ok { Ok(()) } else { Err(msg.to_string()) };
        check((1..=6).contains(&self.servers), "--servers: must be 1..=6")?;
        check(self.groups >= 1 && self.groups <= self.servers, "--groups: must be 1..=servers")?;
        check((1..=4).contains(&self.clients), "--clients: must be 1..=4")?;
        check((1..=3).contains(&self.keys), "--keys: must be 1..=3")?;
        check((1..=6).contains(&self.ops_per_client), "--ops: must be 1..=6")?;
        check(!self.commands.is_empty(), "--commands: name at least one command")?;
        check(self.fault_horizon <= self.max_time, "--fault-horizon: must not exceed --max-time")?;
        check(self.restart_horizon <= self.max_time, "--restart-horizon: must not exceed --max-time")?;
        check(self.max_time <= 200, "--max-time: at most 200")?;
        check(self.max_delay <= 3, "--max-delay: at most 3")?;
        check(self.drift <= 3, "--drift: at most 3")?;
        self.protocol().timing.validate()
    }

    pub fn into_model(self) -> ClusterModel {
        ClusterModel::new(self)
    }
}

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
pub enum Msg {
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
    pub msg: Msg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    Server(ServerId, ServerTimer),
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
    CrashMaster,
    RestartMaster,
    Cut(Addr, Addr),
    Heal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Up,
    Paused,
    /// Paused with its clock standing still.
    Suspended,
    Crashed,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServerNode {
    pub state: ServerState,
    pub status: Status,
    /// This process's run; a restart or a replacement draws a new one.
    pub incarnation: u64,
    pub clock: u64,
    pub timers: BTreeMap<ServerTimer, Time>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientNode {
    pub state: ClientState,
    pub timers: BTreeMap<ClientTimer, Time>,
    /// Operations invoked so far.
    pub invoked: u8,
    pub current: Option<(u64, Op)>,
    pub completed: u8,
    /// An operation ended in an error; its effect is unknown.
    pub failed: bool,
}

/// Fault budgets: in a configuration, how many of each fault a run may
/// inject; in a state, how many are left.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Faults {
    /// Server crashes (each may be followed by a restart).
    pub crashes: u8,
    /// Lost messages.
    pub losses: u8,
    pub duplicates: u8,
    /// Servers paused (alive but silent), then resumed.
    pub pauses: u8,
    /// Links cut between two nodes (healed later).
    pub cuts: u8,
    pub master_crashes: u8,
    /// Ticks by which store calls may be held back in all (a slow store).
    pub store_delays: u8,
    /// Ticks by which other messages may be held back in all (a slow
    /// network), beyond `max_delay`.
    pub delays: u8,
    /// Hosts suspended (clock stopped), then resumed.
    pub suspends: u8,
    /// Second processes of a paused server's identity.
    pub twins: u8,
    /// Steps of the store's clock, a lease forward each.
    pub clock_steps: u8,
    /// Store calls that fail (`Failed`: a lost connection, a timeout, a
    /// rollback), before or after taking effect.
    pub store_failures: u8,
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
    /// Servers whose latest probe the master saw answered.
    pub probe_answered: BTreeSet<ServerId>,
}

pub type Tester = Linearizer;

#[derive(Clone, Debug, PartialEq, Hash)]
pub struct ClusterState {
    pub now: u64,
    pub master: Option<MasterState>,
    pub master_timers: BTreeMap<MasterTimer, Time>,
    pub incarnation: u64,
    pub servers: Vec<ServerNode>,
    /// The first process of a server replaced by a second one.
    pub twin: Option<(ServerId, ServerNode)>,
    pub clients: Vec<ClientNode>,
    pub store: MemStore,
    /// How far the store's clock is ahead of the global one.
    pub store_ahead: u64,
    /// In flight: one FIFO channel per (from, to), as a TCP connection is;
    /// messages on different channels overtake each other freely.
    pub net: BTreeMap<(Addr, Addr), VecDeque<(u64, Msg)>>,
    pub budget: Faults,
    pub cut: Option<(Addr, Addr)>,
    /// One linearizability tester per key.
    pub testers: Vec<Tester>,
    /// Requests a server process took and has not answered yet.
    pub open: BTreeSet<(Addr, Origin)>,
    pub seen: Seen,
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
        } = self;
        (unverified_offline, view_regressed, deposed_write, mismatched_reply, probe_answered).hash(h)
    }
}

impl ClusterState {
    fn send(&mut self, from: Addr, to: Addr, msg: Msg) {
        self.net.entry((from, to)).or_default().push_back((self.now, msg));
    }

    /// Removes the `i`-th message of a channel.
    fn take(&mut self, from: Addr, to: Addr, i: usize) -> Option<Envelope> {
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
    fn disconnect(&mut self, node: Addr) {
        self.net.retain(|(_, to), _| *to != node);
    }

    fn is_cut(&self, a: Addr, b: Addr) -> bool {
        self.cut == Some((a, b)) || self.cut == Some((b, a))
    }
}

/// The model: static configuration and the roles' static parts.
pub struct ClusterModel {
    pub cfg: CheckConfig,
    pub topology: Arc<Topology>,
    pub servers: Vec<Server>,
    pub clients: Vec<Client>,
    pub master: Master,
    pub keys: Vec<Key>,
}

impl ClusterModel {
    pub fn new(cfg: CheckConfig) -> ClusterModel {
        // One slot per key keeps the state small: slot i belongs to server
        // i * servers / keys, so one key lives on s0.
        let spec = ClusterSpec::local(cfg.servers, cfg.groups, 7101, cfg.keys);
        let topology = Arc::new(spec.validate().expect("model topology"));
        let protocol = cfg.protocol();
        let servers = topology.servers().map(|s| Server::new(s, topology.clone(), protocol.clone())).collect();
        let clients =
            (0..cfg.clients).map(|c| Client::new(ClientId(c as u64 + 1), topology.clone(), protocol.clone())).collect();
        let keys = (0..cfg.keys)
            .map(|k| (0..).map(|i| format!("k{i}").into_bytes()).find(|key| topology.slot(key) == Slot(k)).unwrap())
            .collect();
        let master = Master::new(topology.clone(), protocol);
        ClusterModel { cfg, topology, servers, clients, master, keys }
    }

    /// The operation a client runs `i`-th: the configured commands in
    /// turn (see [`CheckConfig::commands`]), keys in turn, values unique to
    /// the client and the operation (`10 * (client + 1) + i`); the `i`-th
    /// operations of all clients go to the same key, so they race.
    pub fn script(&self, client: u16, i: u8) -> Op {
        let key = self.keys[i as usize % self.keys.len()].clone();
        let cmds = &self.cfg.commands;
        let cmd = cmds[(client as usize + i as usize) % cmds.len()];
        cmd.op(key, (client as u64 + 1) * 10 + i as u64)
    }

    fn key_index(&self, key: &[u8]) -> usize {
        self.keys.iter().position(|k| k == key).expect("model key")
    }

    fn node_mut<'a>(&self, st: &'a mut ClusterState, at: Addr) -> &'a mut ServerNode {
        match at {
            Addr::Server(s) => &mut st.servers[s.0 as usize],
            Addr::Twin(_) => &mut st.twin.as_mut().expect("a twin").1,
            _ => unreachable!("a server process"),
        }
    }

    fn server_step(&self, st: &mut ClusterState, s: ServerId, input: ServerInput) {
        self.process_step(st, Addr::Server(s), input)
    }

    /// Feeds one input to the server process at `me` (a server, or the
    /// first process of a replaced one) and carries out its outputs.
    fn process_step(&self, st: &mut ClusterState, me: Addr, input: ServerInput) {
        let s = match me {
            Addr::Server(s) | Addr::Twin(s) => s,
            _ => unreachable!("a server process"),
        };
        let node = self.node_mut(st, me);
        let now = Time(node.clock);
        let holder = Holder { server: s, incarnation: node.incarnation };
        let mut out = Vec::new();
        // A restart forgets the view; otherwise it never goes back.
        let restart = matches!(input, ServerInput::Start { .. });
        let before: Vec<Version> = self.topology.servers().map(|x| node.state.view.version_of(x)).collect();
        // Which request each reply to a peer answers (the checker's record).
        let ops_before = node.state.ops.clone();
        let arriving = match &input {
            ServerInput::Request { origin, fwd } => Some((*origin, fwd.req)),
            _ => None,
        };
        if let Some((origin, _)) = arriving {
            st.open.insert((me, origin));
        }
        let node = self.node_mut(st, me);
        self.servers[s.0 as usize].step(&mut node.state, now, input, &mut out);
        if !restart && self.topology.servers().zip(before).any(|(x, v)| node.state.view.version_of(x) < v) {
            st.seen.view_regressed = true;
        }
        for o in out {
            if let ServerOutput::Reply { to, .. } = &o {
                st.open.remove(&(me, *to));
            }
            match o {
                ServerOutput::Reply { to: Origin::Client(token), result } => {
                    let seq = token & 0xFFFF_FFFF;
                    st.send(me, Addr::Client((token >> 32) as u16), Msg::Response { seq, result })
                }
                ServerOutput::Reply { to: to @ Origin::Peer { server, incarnation, op }, result } => {
                    let req = ops_before
                        .values()
                        .find(|p| p.origin == to)
                        .map(|p| p.fwd.req)
                        .or(arriving.filter(|(o, _)| *o == to).map(|(_, r)| r))
                        .expect("a reply answers a request this server had");
                    st.send(me, Addr::Server(server), Msg::ForwardResponse { op, incarnation, result, req })
                }
                ServerOutput::Forward { to, op, incarnation: inc, fwd } => {
                    st.seen.forwarded = true;
                    if self.earlier_run_waits(st, s, inc) {
                        st.seen.restart_while_forwarded = true;
                    }
                    st.send(me, Addr::Server(to), Msg::Forward { op, incarnation: inc, fwd })
                }
                ServerOutput::Store { tag, op } => st.send(me, Addr::Store, Msg::StoreCall { from: holder, tag, op }),
                ServerOutput::ToMaster(r) => st.send(me, Addr::Master, Msg::Report(r)),
                ServerOutput::SetTimer { timer, at } => {
                    self.node_mut(st, me).timers.insert(timer, at);
                }
                ServerOutput::CancelTimer(timer) => {
                    self.node_mut(st, me).timers.remove(&timer);
                }
                ServerOutput::Event(e) => match e {
                    ServerEvent::Served { for_other: true, .. } => st.seen.failover_served = true,
                    ServerEvent::Served { for_other: false, .. } if st.seen.failover_served => {
                        st.seen.owner_recovered = true
                    }
                    ServerEvent::HandedBack(_) => st.seen.handed_back = true,
                    ServerEvent::NoticeApplied(..) => st.seen.notice_applied = true,
                    _ => {}
                },
            }
        }
    }

    /// Whether a request an earlier run of `s` forwarded (not run `inc`)
    /// still waits at a peer or on its way to or from one.
    fn earlier_run_waits(&self, st: &ClusterState, s: ServerId, inc: u64) -> bool {
        let waiting = st.servers.iter().any(|n| {
            n.state.ops.values().any(
                |p| matches!(p.origin, Origin::Peer { server, incarnation, .. } if server == s && incarnation != inc),
            )
        });
        let ours = |a: &Addr| matches!(a, Addr::Server(x) | Addr::Twin(x) if *x == s);
        let travelling = st.net.iter().any(|((from, to), chan)| {
            chan.iter().any(|(_, m)| match m {
                Msg::Forward { incarnation, .. } => ours(from) && *incarnation != inc,
                Msg::ForwardResponse { incarnation, .. } => ours(to) && *incarnation != inc,
                _ => false,
            })
        });
        waiting || travelling
    }

    fn master_step(&self, st: &mut ClusterState, input: MasterInput) {
        let Some(mut mst) = st.master.take() else { return };
        let mut out = Vec::new();
        self.master.step(&mut mst, Time(st.now), input.clone(), &mut out);
        st.master = Some(mst);
        for o in out {
            match o {
                MasterOutput::Probe { to, nonce } => {
                    st.seen.probe_answered.remove(&to);
                    st.send(Addr::Master, Addr::Server(to), Msg::Master(MasterMsg::Probe { nonce }))
                }
                MasterOutput::Send { to, msg } => st.send(Addr::Master, Addr::Server(to), Msg::Master(msg)),
                MasterOutput::SetTimer { timer, at } => {
                    st.master_timers.insert(timer, at);
                }
                MasterOutput::CancelTimer(timer) => {
                    st.master_timers.remove(&timer);
                }
                MasterOutput::Event(MasterEvent::MarkedOffline(s, _)) => {
                    // c19: only on the master's own probe of s timing out,
                    // and never when s answered that probe.
                    let own_probe = input == MasterInput::Timer(MasterTimer::ProbeTimeout(s));
                    if !own_probe || st.seen.probe_answered.contains(&s) {
                        st.seen.unverified_offline = true;
                    }
                    st.seen.marked_offline = true;
                }
                MasterOutput::Event(_) => {}
            }
        }
    }

    fn client_step(&self, st: &mut ClusterState, c: u16, input: ClientInput) {
        let node = &mut st.clients[c as usize];
        let mut out = Vec::new();
        self.clients[c as usize].step(&mut node.state, Time(st.now), input, &mut out);
        for o in out {
            match o {
                ClientOutput::Send { to, req, op } => {
                    st.send(Addr::Client(c), Addr::Server(to), Msg::Request { req, op })
                }
                ClientOutput::ToMaster(r) => st.send(Addr::Client(c), Addr::Master, Msg::Report(r)),
                ClientOutput::SetTimer { timer, at } => {
                    st.clients[c as usize].timers.insert(timer, at);
                }
                ClientOutput::CancelTimer(timer) => {
                    st.clients[c as usize].timers.remove(&timer);
                }
                ClientOutput::Complete { seq, result } => self.complete(st, c, seq, result),
            }
        }
    }

    fn complete(&self, st: &mut ClusterState, c: u16, seq: u64, result: OpResult) {
        let node = &mut st.clients[c as usize];
        let Some((cur, op)) = node.current.clone() else { return };
        if cur != seq {
            return;
        }
        node.current = None;
        let k = self.key_index(op.key());
        match answers(&op, &result) {
            Answer::Definite => {}
            // An error: the effect is unknown, so the operation stays open
            // in the history and this client stops.
            Answer::Unknown => {
                node.failed = true;
                return;
            }
            // A result of another kind than the operation's answers some
            // other request (hole 1).
            Answer::Mismatch => {
                st.seen.mismatched_reply = true;
                node.failed = true;
                return;
            }
        }
        if let (Op::Get(_), OpResult::Value(Some(v))) = (&op, &result) {
            let writer = std::str::from_utf8(v).ok().and_then(|v| v.parse::<u64>().ok()).map(|v| v / 10);
            if writer.is_some_and(|w| w != c as u64 + 1) {
                st.seen.read_other_write = true;
            }
        }
        node.completed += 1;
        st.testers[k].ret(c, &result);
    }

    fn deliver(&self, st: &mut ClusterState, env: Envelope) {
        match (env.to, env.msg) {
            (Addr::Store, Msg::StoreCall { from: holder, tag, op }) => {
                let fence = match &op {
                    StoreOp::Write { slot, fence: Some(epoch), req, .. } if !st.store.applied.contains_key(req) => {
                        Some((*slot, *epoch))
                    }
                    _ => None,
                };
                let store_now = Time(st.now + st.store_ahead);
                let reply = st.store.execute(holder, op, store_now);
                // A write fenced by a right takes effect only while that
                // right is the slot's current one.
                if let (Some((slot, epoch)), StoreReply::Written { .. }) = (fence, &reply) {
                    if !st.store.rights.get(&slot).is_some_and(|r| r.held_by(holder, epoch)) {
                        st.seen.deposed_write = true;
                    }
                }
                // The answer goes to the process that asked, if it still runs.
                let s = holder.server.0 as usize;
                let to = if st.servers[s].incarnation == holder.incarnation && st.servers[s].status != Status::Crashed {
                    Some(Addr::Server(holder.server))
                } else if st
                    .twin
                    .as_ref()
                    .is_some_and(|(t, n)| *t == holder.server && n.incarnation == holder.incarnation)
                {
                    Some(Addr::Twin(holder.server))
                } else {
                    None
                };
                if let Some(to) = to {
                    st.send(Addr::Store, to, Msg::StoreAnswer { tag, reply });
                }
            }
            (Addr::Twin(_), Msg::StoreAnswer { tag, reply }) => {
                self.process_step(st, env.to, ServerInput::Store { tag, reply });
            }
            (Addr::Server(s), msg) if st.servers[s.0 as usize].status == Status::Crashed => {
                // Connection refused: the sender learns at once.
                match (env.from, msg) {
                    (Addr::Client(c), Msg::Request { req, .. }) => {
                        self.client_step(st, c, ClientInput::SendFailed { seq: req.seq, to: s })
                    }
                    (Addr::Server(f), Msg::Forward { op, incarnation, .. })
                        if st.servers[f.0 as usize].status == Status::Up
                            && st.servers[f.0 as usize].incarnation == incarnation =>
                    {
                        self.server_step(st, f, ServerInput::ForwardFailed { op })
                    }
                    _ => {}
                }
            }
            (Addr::Server(s), Msg::ForwardResponse { op, incarnation, result, req }) => {
                let (Addr::Server(from) | Addr::Twin(from)) = env.from else { return };
                // Hole 1: the reply may complete only the request it answers.
                let waiting = st.servers[s.0 as usize].state.ops.get(&op).map(|p| p.fwd.req);
                self.server_step(st, s, ServerInput::ForwardReply { from, incarnation, op, result });
                if waiting.is_some_and(|w| w != req && !st.servers[s.0 as usize].state.ops.contains_key(&op)) {
                    st.seen.mismatched_reply = true;
                }
            }
            (Addr::Server(s), msg) => {
                let input = match (env.from, msg) {
                    (Addr::Client(c), Msg::Request { req, op }) => {
                        let origin = Origin::Client(((c as u64) << 32) | req.seq);
                        ServerInput::Request { origin, fwd: Forwarded { req, op, hops: 0 } }
                    }
                    (Addr::Server(f) | Addr::Twin(f), Msg::Forward { op, incarnation, fwd }) => {
                        ServerInput::Request { origin: Origin::Peer { server: f, incarnation, op }, fwd }
                    }
                    (_, Msg::Master(m)) => ServerInput::Master(m),
                    (_, Msg::StoreAnswer { tag, reply }) => ServerInput::Store { tag, reply },
                    _ => return,
                };
                self.server_step(st, s, input);
            }
            (Addr::Client(c), Msg::Response { seq, result }) => {
                let (Addr::Server(from) | Addr::Twin(from)) = env.from else { return };
                self.client_step(st, c, ClientInput::Reply { seq, from, result });
            }
            (Addr::Master, Msg::Report(report)) => {
                let from = match env.from {
                    Addr::Server(s) => Node::Server(s),
                    Addr::Client(c) => Node::Client(ClientId(c as u64 + 1)),
                    _ => return,
                };
                if let (Node::Server(s), Report::ProbeAck { nonce }) = (from, &report) {
                    if st.master.as_ref().is_some_and(|m| m.probes.get(&s) == Some(nonce)) {
                        st.seen.probe_answered.insert(s);
                    }
                }
                self.master_step(st, MasterInput::Report { from, report });
            }
            _ => {}
        }
    }

    /// The clock runs until `max_time`, and past it (up to a drain bound)
    /// while an operation is pending, so that every operation has the time
    /// its timeouts need to end, and `requests complete` can hold.
    fn clock_runs(&self, st: &ClusterState) -> bool {
        let pending =
            st.clients.iter().any(|c| c.current.is_some()) || st.open.iter().any(|(at, _)| self.running(st, *at));
        st.now < self.cfg.max_time || (pending && st.now < self.cfg.max_time + DRAIN)
    }

    /// Time is up and nothing is left to deliver (messages to a node
    /// paused for good never arrive) or to fire: where a run ends.
    fn finished(&self, st: &ClusterState) -> bool {
        !self.clock_runs(st)
            && !st.net.keys().any(|(from, to)| self.deliverable(st, *from, *to))
            && self.due_timers(st).is_empty()
    }

    /// Whether the server process at `at` runs (not crashed, not paused).
    fn running(&self, st: &ClusterState, at: Addr) -> bool {
        match at {
            Addr::Server(s) => st.servers[s.0 as usize].status == Status::Up,
            Addr::Twin(_) => st.twin.as_ref().is_some_and(|(_, n)| n.status == Status::Up),
            _ => false,
        }
    }

    fn deliverable(&self, st: &ClusterState, from: Addr, to: Addr) -> bool {
        let paused = |a: Addr| match a {
            Addr::Server(s) => matches!(st.servers[s.0 as usize].status, Status::Paused | Status::Suspended),
            Addr::Twin(_) => st.twin.as_ref().is_some_and(|(_, n)| n.status != Status::Up),
            _ => false,
        };
        !paused(to) && !st.is_cut(from, to)
    }

    fn due_timers(&self, st: &ClusterState) -> Vec<Timer> {
        let mut due = Vec::new();
        for (i, n) in st.servers.iter().enumerate() {
            if n.status == Status::Up {
                let s = ServerId(i as u16);
                due.extend(n.timers.iter().filter(|(_, at)| at.0 <= n.clock).map(|(t, _)| Timer::Server(s, *t)));
            }
        }
        if let Some((_, n)) = st.twin.as_ref().filter(|(_, n)| n.status == Status::Up) {
            due.extend(n.timers.iter().filter(|(_, at)| at.0 <= n.clock).map(|(t, _)| Timer::Twin(*t)));
        }
        if st.master.is_some() {
            due.extend(st.master_timers.iter().filter(|(_, at)| at.0 <= st.now).map(|(t, _)| Timer::Master(*t)));
        }
        for (c, n) in st.clients.iter().enumerate() {
            due.extend(n.timers.iter().filter(|(_, at)| at.0 <= st.now).map(|(t, _)| Timer::Client(c as u16, *t)));
        }
        due
    }

    /// What a server's clock reads at global time `now`: a suspended host's
    /// clock stands still while it sleeps and, as CLOCK_BOOTTIME does,
    /// counts the time slept when it wakes (unless the mutant says not).
    fn clock_of(&self, n: &ServerNode, now: u64) -> u64 {
        if n.status == Status::Suspended && self.cfg.mutant != Some(Mutant::SuspendStopsClock) {
            n.clock.max(now.saturating_sub(self.cfg.drift))
        } else {
            n.clock
        }
    }

    fn tick(&self, st: &mut ClusterState, lagging: Option<ServerId>) {
        st.now += 1;
        // A suspended host's clock stands still.
        for (i, n) in st.servers.iter_mut().enumerate() {
            if lagging != Some(ServerId(i as u16)) && n.status != Status::Suspended {
                n.clock += 1;
            }
        }
        if let Some((_, n)) = st.twin.as_mut().filter(|(_, n)| n.status != Status::Suspended) {
            n.clock += 1;
        }
    }
}

impl Model for ClusterModel {
    type State = ClusterState;
    type Action = Action;

    fn init_states(&self) -> Vec<ClusterState> {
        let c = &self.cfg;
        let mut st = ClusterState {
            now: 0,
            master: Some(self.master.initial_state()),
            master_timers: BTreeMap::new(),
            incarnation: 1,
            servers: self
                .topology
                .servers()
                .map(|_| ServerNode {
                    state: ServerState::default(),
                    status: Status::Up,
                    incarnation: 1,
                    clock: 0,
                    timers: BTreeMap::new(),
                })
                .collect(),
            clients: (0..c.clients)
                .map(|_| ClientNode {
                    state: ClientState::default(),
                    timers: BTreeMap::new(),
                    invoked: 0,
                    current: None,
                    completed: 0,
                    failed: false,
                })
                .collect(),
            twin: None,
            store: MemStore::new(c.mode, c.mutant),
            store_ahead: 0,
            net: BTreeMap::new(),
            budget: c.faults.clone(),
            cut: None,
            testers: (0..c.keys).map(|_| Linearizer::default()).collect(),
            open: BTreeSet::new(),
            seen: Seen::default(),
        };
        // Start-up is not interesting: servers take their rights and the
        // master's first probe round settles before the checker begins.
        for s in self.topology.servers() {
            self.server_step(&mut st, s, ServerInput::Start { incarnation: 1 });
        }
        self.master_step(&mut st, MasterInput::Start { incarnation: 1 });
        while let Some(&(from, to)) = st.net.keys().next() {
            let env = st.take(from, to, 0).expect("message");
            self.deliver(&mut st, env);
        }
        st.seen = Seen::default();
        vec![st]
    }

    fn actions(&self, st: &ClusterState, actions: &mut Vec<Action>) {
        let c = &self.cfg;
        let faults = st.now < c.fault_horizon;
        // Deliveries to different receivers commute (a delivery changes only
        // its receiver, the channels and, for the store, the store), so when
        // messages wait for several receivers only those to the first one are
        // offered: the others follow in later steps. Every property checked
        // is either stable (once violated, violated for good) or about one
        // node's own state, which this reduction preserves.
        let mut overdue = false;
        let receiver = st.net.keys().filter(|(from, to)| self.deliverable(st, *from, *to)).map(|(_, to)| *to).min();
        for (&(from, to), chan) in &st.net {
            let lossy = from != Addr::Store && to != Addr::Store;
            let across_cut = st.is_cut(from, to);
            if self.deliverable(st, from, to) {
                if Some(to) == receiver || !c.reductions {
                    actions.push(Action::Deliver(from, to));
                }
                overdue |= chan[0].0 + c.max_delay <= st.now;
            }
            let budget = if to == Addr::Store { st.budget.store_delays } else { st.budget.delays };
            if faults && budget > 0 && chan[0].0 <= st.now {
                actions.push(Action::Delay(from, to));
            }
            if to == Addr::Store && faults && st.budget.store_failures > 0 {
                actions.push(Action::FailStore(from, false));
                actions.push(Action::FailStore(from, true));
            }
            for i in 0..chan.len() {
                if across_cut || (faults && lossy && st.budget.losses > 0) {
                    actions.push(Action::Drop(from, to, i));
                }
                if faults && lossy && st.budget.duplicates > 0 {
                    actions.push(Action::Duplicate(from, to, i));
                }
            }
        }
        // Due timers fire one at a time in a fixed order (node, then timer),
        // interleaved freely with deliveries: timers of different nodes
        // touch only their own node, so their mutual order adds states but
        // no behaviour.
        let due = self.due_timers(st);
        let urgent = !due.is_empty() || overdue;
        // Operations start, and nodes restart or resume, between a tick's
        // work, when nothing is in flight or due: when they do still varies
        // over the ticks, and the interleavings saved are many.
        let quiet = (receiver.is_none() && !urgent) || !c.reductions;
        if c.reductions {
            actions.extend(due.into_iter().next().map(Action::Fire));
        } else {
            actions.extend(due.into_iter().map(Action::Fire));
        }
        if !urgent && self.clock_runs(st) {
            actions.push(Action::Tick);
            if c.drift > 0 {
                for (i, n) in st.servers.iter().enumerate() {
                    if n.status != Status::Crashed && st.now + 1 - n.clock <= c.drift && faults {
                        actions.push(Action::Lag(ServerId(i as u16)));
                    }
                }
            }
        }
        for (i, n) in st.servers.iter().enumerate() {
            let s = ServerId(i as u16);
            if n.clock < st.now && matches!(n.status, Status::Up | Status::Paused) {
                actions.push(Action::CatchUp(s));
            }
            match n.status {
                Status::Up if faults && st.budget.crashes > 0 => actions.push(Action::Crash(s)),
                // A crashed server may come back until the restart horizon
                // (late enough to be served for a while by its failover).
                Status::Crashed if quiet && st.now < c.restart_horizon => actions.push(Action::Restart(s)),
                // Paused nodes, too, come back before the restart horizon, so
                // that the views settle before time is up (`views agree`).
                Status::Paused if quiet && st.now < c.restart_horizon => actions.push(Action::Resume(s)),
                _ => {}
            }
            if n.status == Status::Up && faults && st.budget.pauses > 0 {
                actions.push(Action::Pause(s));
            }
            if n.status == Status::Up && faults && st.budget.suspends > 0 {
                actions.push(Action::Suspend(s));
            }
            if n.status == Status::Suspended && quiet && st.now < c.restart_horizon {
                actions.push(Action::Resume(s));
            }
            // A second process of a paused server's identity.
            let paused = matches!(n.status, Status::Paused | Status::Suspended);
            if paused && faults && st.budget.twins > 0 && st.twin.is_none() {
                actions.push(Action::Replace(s));
            }
        }
        if let Some((_, n)) = &st.twin {
            if n.clock < st.now && n.status == Status::Up {
                actions.push(Action::CatchUpTwin);
            }
            if n.status != Status::Up && quiet && st.now < c.restart_horizon {
                actions.push(Action::ResumeTwin);
            }
        }
        if faults && st.budget.clock_steps > 0 {
            actions.push(Action::StepStoreClock);
        }
        if faults && st.budget.master_crashes > 0 && st.master.is_some() {
            actions.push(Action::CrashMaster);
        }
        if st.master.is_none() && st.now < c.restart_horizon {
            actions.push(Action::RestartMaster);
        }
        if faults && st.budget.cuts > 0 && st.cut.is_none() {
            let nodes: Vec<Addr> = std::iter::once(Addr::Master)
                .chain(self.topology.servers().map(Addr::Server))
                .chain((0..c.clients).map(Addr::Client))
                .collect();
            for (i, &a) in nodes.iter().enumerate() {
                for &b in &nodes[i + 1..] {
                    if !matches!((a, b), (Addr::Client(_), Addr::Client(_)) | (Addr::Master, Addr::Client(_))) {
                        actions.push(Action::Cut(a, b));
                    }
                }
            }
        }
        if st.cut.is_some() {
            actions.push(Action::Heal);
        }
        // Operations start at any moment: while messages are in flight and
        // other clients' operations are pending.
        if st.now < c.op_horizon {
            for (i, n) in st.clients.iter().enumerate() {
                if n.current.is_none() && !n.failed && n.invoked < c.ops_per_client {
                    actions.push(Action::Invoke(i as u16));
                }
            }
        }
    }

    fn next_state(&self, last: &ClusterState, action: Action) -> Option<ClusterState> {
        let mut st = last.clone();
        match action {
            Action::Deliver(from, to) => {
                let env = st.take(from, to, 0)?;
                self.deliver(&mut st, env);
            }
            Action::Drop(from, to, i) => {
                if !st.is_cut(from, to) {
                    st.budget.losses -= 1;
                }
                st.take(from, to, i)?;
            }
            Action::Duplicate(from, to, i) => {
                st.budget.duplicates -= 1;
                let env = st.peek(from, to, i)?;
                st.send(from, to, env.msg);
            }
            Action::Delay(from, to) => {
                if to == Addr::Store {
                    st.budget.store_delays -= 1;
                } else {
                    st.budget.delays -= 1;
                }
                let now = st.now;
                st.net.get_mut(&(from, to))?.front_mut()?.0 = now + 1;
            }
            Action::FailStore(from, applied) => {
                st.budget.store_failures -= 1;
                let env = st.take(from, Addr::Store, 0)?;
                let Msg::StoreCall { from: holder, tag, op } = env.msg else { return None };
                if applied {
                    // It took effect; the answer is lost with the connection.
                    let store_now = Time(st.now + st.store_ahead);
                    st.store.execute(holder, op, store_now);
                }
                let reply = StoreReply::Failed(if applied { "connection lost" } else { "store unavailable" }.into());
                st.send(Addr::Store, from, Msg::StoreAnswer { tag, reply });
            }
            Action::Tick => self.tick(&mut st, None),
            Action::Lag(s) => self.tick(&mut st, Some(s)),
            Action::CatchUp(s) => st.servers[s.0 as usize].clock += 1,
            Action::Fire(timer) => match timer {
                Timer::Server(s, t) => {
                    st.servers[s.0 as usize].timers.remove(&t);
                    self.server_step(&mut st, s, ServerInput::Timer(t));
                }
                Timer::Twin(t) => {
                    let (s, n) = st.twin.as_mut()?;
                    n.timers.remove(&t);
                    let s = *s;
                    self.process_step(&mut st, Addr::Twin(s), ServerInput::Timer(t));
                }
                Timer::Master(t) => {
                    st.master_timers.remove(&t);
                    self.master_step(&mut st, MasterInput::Timer(t));
                }
                Timer::Client(c, t) => {
                    st.clients[c as usize].timers.remove(&t);
                    self.client_step(&mut st, c, ClientInput::Timer(t));
                }
            },
            Action::Invoke(c) => {
                let node = &mut st.clients[c as usize];
                let op = self.script(c, node.invoked);
                node.invoked += 1;
                let seq = node.invoked as u64;
                node.current = Some((seq, op.clone()));
                let k = self.key_index(op.key());
                st.testers[k].invoke(c, op.clone());
                self.client_step(&mut st, c, ClientInput::Invoke { seq, op });
            }
            Action::Crash(s) => {
                st.budget.crashes -= 1;
                let n = &mut st.servers[s.0 as usize];
                n.status = Status::Crashed;
                n.timers.clear();
                // What was on the way to it is gone; its calls already on the
                // way to the store may still land.
                st.disconnect(Addr::Server(s));
                st.open.retain(|(at, _)| *at != Addr::Server(s));
            }
            Action::Restart(s) => {
                let n = &mut st.servers[s.0 as usize];
                n.status = Status::Up;
                n.clock = st.now;
                n.incarnation += 1;
                let incarnation = n.incarnation;
                self.server_step(&mut st, s, ServerInput::Start { incarnation });
            }
            Action::Pause(s) => {
                st.budget.pauses -= 1;
                st.servers[s.0 as usize].status = Status::Paused;
            }
            Action::Suspend(s) => {
                st.budget.suspends -= 1;
                st.servers[s.0 as usize].status = Status::Suspended;
            }
            Action::Resume(s) => {
                let now = st.now;
                let n = &mut st.servers[s.0 as usize];
                n.clock = self.clock_of(n, now);
                n.status = Status::Up;
            }
            Action::Replace(s) => {
                st.budget.twins -= 1;
                let i = s.0 as usize;
                let fresh = ServerNode {
                    state: ServerState::default(),
                    status: Status::Up,
                    incarnation: st.servers[i].incarnation + 1,
                    clock: st.now,
                    timers: BTreeMap::new(),
                };
                let first = std::mem::replace(&mut st.servers[i], fresh);
                st.twin = Some((s, first));
                // What the first process took is its to answer.
                st.open = std::mem::take(&mut st.open)
                    .into_iter()
                    .map(|(at, o)| (if at == Addr::Server(s) { Addr::Twin(s) } else { at }, o))
                    .collect();
                // The first process keeps its connection to the store; the
                // address, and what comes to it, is the second's now.
                for (from, to) in [(Addr::Server(s), Addr::Store), (Addr::Store, Addr::Server(s))] {
                    if let Some(chan) = st.net.remove(&(from, to)) {
                        let rename = |a: Addr| if a == Addr::Server(s) { Addr::Twin(s) } else { a };
                        st.net.insert((rename(from), rename(to)), chan);
                    }
                }
                let incarnation = st.servers[i].incarnation;
                self.server_step(&mut st, s, ServerInput::Start { incarnation });
            }
            Action::ResumeTwin => {
                let now = st.now;
                let n = &mut st.twin.as_mut()?.1;
                n.clock = self.clock_of(n, now);
                n.status = Status::Up;
            }
            Action::CatchUpTwin => st.twin.as_mut()?.1.clock += 1,
            Action::StepStoreClock => {
                st.budget.clock_steps -= 1;
                st.store_ahead += self.cfg.protocol().timing.lease;
            }
            Action::CrashMaster => {
                st.budget.master_crashes -= 1;
                st.master = None;
                st.master_timers.clear();
                st.disconnect(Addr::Master);
                // Its notices still in flight travel on their own (old)
                // connections, and may arrive after the next master's.
                let old = Addr::OldMaster(st.incarnation);
                let channels: Vec<(Addr, Addr)> = st.net.keys().filter(|(f, _)| *f == Addr::Master).copied().collect();
                for (from, to) in channels {
                    let chan = st.net.remove(&(from, to)).expect("channel");
                    st.net.insert((old, to), chan);
                }
            }
            Action::RestartMaster => {
                st.incarnation += 1;
                st.master = Some(self.master.initial_state());
                let incarnation = st.incarnation;
                self.master_step(&mut st, MasterInput::Start { incarnation });
            }
            Action::Cut(a, b) => {
                st.budget.cuts -= 1;
                st.cut = Some((a, b));
            }
            Action::Heal => st.cut = None,
        }
        Some(st)
    }

    fn format_action(&self, action: &Action) -> String {
        super::trace::describe(None, action)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties = vec![
            // Safety, each paired below with a `sometimes` showing its
            // interesting path is reachable.
            Property::always("linearizable", |_, st: &ClusterState| st.testers.iter().all(|t| t.is_linearizable())),
            Property::always("one server per slot", |m: &ClusterModel, st: &ClusterState| {
                (0..m.topology.slot_count()).map(Slot).all(|slot| {
                    let serving =
                        st.servers.iter().chain(st.twin.as_ref().map(|(_, n)| n)).filter(|n| {
                            n.status != Status::Crashed && n.state.serves(slot, Time(m.clock_of(n, st.now)))
                        });
                    serving.count() <= 1
                })
            }),
            Property::always("replies match requests", |_: &ClusterModel, st: &ClusterState| !st.seen.mismatched_reply),
            Property::always("fenced writes", |_: &ClusterModel, st: &ClusterState| !st.seen.deposed_write),
            Property::always("notices in order", |_: &ClusterModel, st: &ClusterState| !st.seen.view_regressed),
            Property::always("verified offline", |_: &ClusterModel, st: &ClusterState| !st.seen.unverified_offline),
            Property::always("temporary cache dropped", |m: &ClusterModel, st: &ClusterState| {
                st.servers.iter().enumerate().filter(|(_, n)| n.status != Status::Crashed).all(|(i, n)| {
                    n.state.cached_slots().all(|slot| {
                        let owner = m.topology.owner(slot);
                        owner == ServerId(i as u16) || !n.state.view.is_online(owner)
                    })
                })
            }),
            // Liveness, bounded: checked where the run ends (time is up and
            // everything in flight is delivered).
            // Every operation invoked has returned once time is up and
            // nothing is left to deliver or fire; with an error only if a
            // store call failed (its outcome then unknown).
            // Once time is up and nothing is left to deliver or fire: every
            // operation invoked has returned (with a result or an error),
            // and every request a running server process took has been
            // answered.
            Property::always("requests complete", |m: &ClusterModel, st: &ClusterState| {
                !m.finished(st)
                    || (st.clients.iter().all(|c| c.current.is_none())
                        && st.open.iter().all(|(at, _)| !m.running(st, *at)))
            }),
            // Once time is up and all is delivered, every running server's
            // view is the master's.
            Property::eventually("views agree", |m: &ClusterModel, st: &ClusterState| {
                if !m.finished(st) {
                    return false;
                }
                let Some(master) = &st.master else { return true };
                st.servers.iter().enumerate().filter(|(_, n)| n.status == Status::Up).all(|(i, n)| {
                    m.topology
                        .servers()
                        .filter(|&s| s.0 as usize != i)
                        .all(|s| n.state.view.is_online(s) == master.is_online(s))
                })
            }),
            Property::sometimes("read another client's write", |_: &ClusterModel, st: &ClusterState| {
                st.seen.read_other_write
            }),
            Property::sometimes("failover served", |_: &ClusterModel, st: &ClusterState| st.seen.failover_served),
            Property::sometimes("marked offline", |_: &ClusterModel, st: &ClusterState| st.seen.marked_offline),
            Property::sometimes("handed back", |_: &ClusterModel, st: &ClusterState| st.seen.handed_back),
            Property::sometimes("owner recovered", |_: &ClusterModel, st: &ClusterState| st.seen.owner_recovered),
            Property::sometimes("notice applied", |_: &ClusterModel, st: &ClusterState| st.seen.notice_applied),
            Property::sometimes("forwarded", |_: &ClusterModel, st: &ClusterState| st.seen.forwarded),
        ];
        // The witness of `replies match requests`, where a restart can meet
        // a request still waiting at a peer (a pause, a slow store or a
        // second process holds it there).
        let f = &self.cfg.faults;
        if f.crashes > 0 && (f.pauses > 0 || f.suspends > 0 || f.store_delays > 0 || f.twins > 0) {
            properties.push(Property::sometimes("restart while forwarded", |_: &ClusterModel, st: &ClusterState| {
                st.seen.restart_while_forwarded
            }));
        }
        properties
    }
}

/// What a result says of an operation's effect.
enum Answer {
    /// Its effect, as the sequential specification predicts it.
    Definite,
    /// An error: the operation may or may not have taken effect.
    Unknown,
    /// A result no such operation gives: the answer to another request.
    Mismatch,
}

fn answers(op: &Op, result: &OpResult) -> Answer {
    use OpResult as R;
    match (op, result) {
        (Op::Incr(..), R::Err(ErrorKind::NotInteger)) => Answer::Definite,
        (_, R::Err(_)) => Answer::Unknown,
        (Op::Get(_), R::Value(_))
        | (Op::Set(..), R::Ok)
        | (Op::SetWith(..), R::Ok | R::NotSet)
        | (Op::Del(_), R::Deleted(_))
        | (Op::Incr(..) | Op::Expire(..) | Op::Ttl(_), R::Int(_)) => Answer::Definite,
        _ => Answer::Mismatch,
    }
}

impl CheckConfig {
    /// One line saying what is checked.
    pub fn describe(&self) -> String {
        let f = &self.faults;
        let commands: Vec<&str> = self.commands.iter().map(|c| c.name()).collect();
        format!(
            "{} servers in {} group(s), {} client(s) x {} op(s) of [{}], {} key(s), mode {}{}; faults: {} crash, \
             {} loss, {} dup, {} pause, {} cut, {} master crash, {} store delay, {} delay, {} store failure, {} suspend, \
             {} twin, {} clock step, drift {}, max delay {}; time {}..{}{}",
            self.servers,
            self.groups,
            self.clients,
            self.ops_per_client,
            commands.join(","),
            self.keys,
            self.mode,
            self.mutant.map(|m| format!(", mutant {}", m.name())).unwrap_or_default(),
            f.crashes,
            f.losses,
            f.duplicates,
            f.pauses,
            f.cuts,
            f.master_crashes,
            f.store_delays,
            f.delays,
            f.store_failures,
            f.suspends,
            f.twins,
            f.clock_steps,
            self.drift,
            self.max_delay,
            self.fault_horizon,
            self.max_time,
            if self.reductions { "" } else { ", no reductions" },
        )
    }
}
