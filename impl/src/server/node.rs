//! The server's event loop: it feeds the core socket messages, store
//! replies, timer expiries and `now`, and carries out what the core
//! outputs; every protocol decision is the core's. A reply's path back:
//! the store thread's answer or a peer's `ForwardReply` becomes a core
//! input (`step`), the core outputs `Reply` to a waiter, and `carry_out`
//! sends it to the library client's connection or completes a part of a
//! RESP command (`pipeline.rs`, `part_done`).

use super::info::{Snapshot, Stats};
use super::session::{Session, Waiter, OUTPUT_PAUSE};
use crate::config::Config;
use crate::net::wire::Msg;
use crate::net::{Clock, Endpoint, Proto, Timers};
use crate::node_error::NodeError;
use crate::store::{self, Done, Identity, Job, StoreStats};
use failgroup_model::{
    Holder, Liveness, Origin, Server, ServerEvent, ServerId, ServerInput, ServerOutput, ServerState, ServerTimer, Slot,
    Topology,
};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use mio::{Events, Token, Waker};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) const WAKER: Token = Token(1);

/// A running server: its socket, connections and sessions, the core's
/// state, timers and the store thread.
pub struct ServerNode {
    pub(super) cfg: Config,
    pub(super) core: Server,
    pub(super) st: ServerState,
    pub(super) clock: Clock,
    pub(super) started: Instant,
    /// The poll, the listener and every connection.
    pub(super) net: Endpoint,
    pub(super) sessions: HashMap<Token, Session>,
    pub(super) timers: Timers<ServerTimer>,
    pub(super) jobs: Option<Sender<Job>>,
    pub(super) done: Receiver<Done>,
    pub(super) store_thread: Option<std::thread::JoinHandle<()>>,
    pub(super) store_stats: Arc<StoreStats>,
    pub(super) peers_out: HashMap<ServerId, Token>,
    pub(super) peers_in: HashMap<ServerId, Token>,
    /// The link each run of a peer (name, incarnation) forwarded on: its
    /// replies go back there. Two processes of one name (a paused one and
    /// a second started meanwhile) each get their own replies.
    pub(super) reply_links: HashMap<(ServerId, u64), Token>,
    /// Peers whose connection from here was lost and that have not been
    /// heard from since (nor had their liveness announced): CLUSTER SLOTS
    /// names another member for their slots, a routing hint only.
    pub(super) unreachable: HashSet<ServerId>,
    /// When the links to every peer were last (re)opened.
    pub(super) links_opened: Instant,
    pub(super) master_in: Option<Token>,
    pub(super) master_out: Option<Token>,
    pub(super) waiters: HashMap<u64, Waiter>,
    pub(super) next_waiter: u64,
    pub(super) client_base: u64,
    /// The next RESP connection's id (from 1: Redis's ids are positive, and
    /// CLIENT KILL ID 0 names no client).
    pub(super) next_client: u64,
    pub(super) inputs: VecDeque<ServerInput>,
    /// The one re-drive queue: RESP connections whose next command may
    /// run (one just completed, or input is left from a pipeline that
    /// yielded or paused on a full output buffer). Drained at the top of the
    /// loop and before output is flushed, so a pipeline's next reply is
    /// written in the same turn as the one before it.
    pub(super) ready: Vec<Token>,
    pub(super) stats: Stats,
    /// INFO commandstats and the slow log.
    pub(super) costs: super::slowlog::Costs,
    /// What the metrics thread shows, and when it was last copied.
    pub(super) published: Arc<std::sync::Mutex<crate::metrics::Published>>,
    pub(super) published_at: Instant,
    /// Forwards awaiting their reply (op -> when sent), and the time each
    /// reply took (the metrics' forward latency).
    pub(super) forwards: HashMap<u64, Instant>,
    pub(super) forward_time: crate::metrics::Hist,
    /// Over `maxmemory` with nothing left to evict: writes are refused.
    pub(super) over_maxmemory: bool,
    /// Memory in use once started, before anything is cached.
    base_memory: u64,
    pub(super) stop: Arc<AtomicBool>,
    /// Leaving, since SIGTERM or `failgroup admin drain`.
    /// Connections held after a failed AUTH, and until when.
    pub(super) held: Vec<(Instant, Token)>,
    pub(super) drain: Option<Drain>,
    /// Set on SIGHUP: re-read the config file.
    hup: Arc<AtomicBool>,
}

/// A server's graceful exit: the core hands its rights back and tells the
/// master ([`ServerInput::Drain`]); once the master has confirmed (or
/// cannot be reached) the server takes no new command and closes each
/// client connection as its last command is answered, so that clients go
/// to the servers that took over; it exits when nothing is left, or at the
/// deadline.
#[derive(Clone, Copy, Debug)]
pub(super) struct Drain {
    pub(super) deadline: Instant,
    /// No new commands: connections close once answered.
    pub(super) closing: bool,
}

impl ServerNode {
    /// Binds the port, opens the store and starts the core.
    /// `topology`: the master's when it answered, else the config's.
    pub fn start(
        cfg: Config,
        topology: Topology,
        id: ServerId,
        stop: Arc<AtomicBool>,
    ) -> Result<ServerNode, NodeError> {
        let addr = cfg.listen_addr(&topology, id);
        let mut net = Endpoint::bind(&addr, WAKER.0 + 1)?;
        let name = topology.name(id).to_string();
        if let Some((tls, at)) = cfg.file.tls.as_ref().and_then(|t| Some((t, t.servers.get(&name)?))) {
            let acceptor = crate::net::tls::acceptor(tls, &cfg.dir)?;
            net.listen_tls(at, acceptor)?;
            tracing::info!(server = %name, addr = %at, "TLS listening");
        }
        if let Some(tls) = cfg.file.tls.as_ref().filter(|t| t.nodes) {
            net.set_node_tls(crate::net::tls::node_tls(tls, &cfg.dir)?);
        }
        let waker = Arc::new(Waker::new(net.poll.registry(), WAKER).map_err(NodeError::os("a poll waker"))?);
        let mut db = cfg.open_store()?;
        // A node of another mode or topology than the store's cluster is
        // refused here (hole 3).
        db.check_mark(&cfg.mark(), false)?;
        // This run of the process: its rights and its forwarded requests
        // are its own, not those of an earlier run of the same name.
        let incarnation = crate::util::random_u64();
        let names = (0..topology.server_count()).map(|s| topology.name(ServerId(s as u16)).to_string()).collect();
        let me = Identity::new(Holder { server: id, incarnation }, names, cfg.file.mode);
        let (jobs_tx, jobs_rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel();
        let store_stats = Arc::new(StoreStats::default());
        let stats2 = store_stats.clone();
        let store_thread = std::thread::Builder::new()
            .name("store".into())
            .spawn(move || {
                store::run_store(db, me, jobs_rx, done_tx, move || drop(waker.wake()), stats2);
            })
            .map_err(NodeError::os("starting the store thread"))?;
        let core = Server::new(id, Arc::new(topology), cfg.protocol());
        let mut node = ServerNode {
            core,
            st: ServerState::default(),
            clock: Clock::new(),
            started: Instant::now(),
            net,
            sessions: HashMap::new(),
            timers: Timers::new(),
            jobs: Some(jobs_tx),
            done: done_rx,
            store_thread: Some(store_thread),
            store_stats,
            peers_out: HashMap::new(),
            unreachable: HashSet::new(),
            links_opened: Instant::now(),
            peers_in: HashMap::new(),
            reply_links: HashMap::new(),
            master_in: None,
            master_out: None,
            waiters: HashMap::new(),
            next_waiter: 0,
            client_base: crate::util::random_u64(),
            next_client: 1,
            inputs: VecDeque::new(),
            ready: Vec::new(),
            stats: Stats::default(),
            costs: super::slowlog::Costs::new(&cfg.file.limits),
            published: Arc::default(),
            published_at: Instant::now(),
            forwards: HashMap::new(),
            forward_time: crate::metrics::Hist::new(crate::metrics::SECONDS),
            over_maxmemory: false,
            base_memory: crate::mem::used(),
            stop,
            drain: None,
            held: Vec::new(),
            hup: crate::util::hup_flag(),
            cfg,
        };
        tracing::info!(server = node.name(), %addr, mode = %node.cfg.file.mode, incarnation, "server listening");
        if let Some(at) = node.cfg.file.metrics.servers.get(node.name()).cloned() {
            // A scrape before the loop's first copy sees zeros, not nothing.
            node.publish();
            let bound =
                crate::metrics::serve(&at, node.published.clone(), None).map_err(NodeError::os("metrics address"))?;
            tracing::info!(server = node.name(), "metrics on http://{bound}/metrics");
        }
        node.step(ServerInput::Start { incarnation });
        Ok(node)
    }

    /// What INFO reports now.
    pub(super) fn snapshot(&self) -> Snapshot<'_> {
        let topo = self.core.topo(&self.st);
        let (me, now) = (self.core.id, self.clock.now());
        let served: Vec<Slot> =
            (0..topo.slot_count()).map(Slot).filter(|s| self.core.serving(&self.st, *s, now)).collect();
        let view = self.st.view();
        Snapshot {
            name: topo.name(me),
            group: topo.group_name(me),
            mode: self.cfg.file.mode,
            port: topo.addr(me).rsplit(':').next().unwrap_or(""),
            uptime_s: self.started.elapsed().as_secs(),
            connected_clients: self.sessions.len(),
            blocked_clients: self.sessions.values().filter(|s| !s.inflight.is_empty()).count(),
            maxclients: self.cfg.file.limits.maxclients,
            stats: &self.stats,
            keys: self.st.cached_keys(),
            view_version: topo.servers().map(|s| view.version_of(s)).max().unwrap_or_default(),
            topology_version: topo.version(),
            offline: view.offline().map(|s| topo.name(s)).collect(),
            slots_owned: topo.owned_slots(me).count(),
            slots_served: served.len(),
            slots_served_for_others: served.iter().filter(|s| topo.owner(**s) != me).count(),
            waiting: self.st.waiting(),
            store: self.cfg.store.kind(),
            store_commits: self.store_stats.commits.load(Ordering::Relaxed),
            store_seconds: self.store_stats.batches.lock().map(|b| b.0.sum).unwrap_or_else(|e| e.into_inner().0.sum),
            store_commands: self.store_stats.commands.load(Ordering::Relaxed),
            used_memory: crate::mem::used(),
            rss: crate::mem::rss(),
            maxmemory: self.cfg.file.cache.maxmemory.0,
            policy: self.cfg.file.cache.maxmemory_policy,
            commandstats: self.costs.info(),
            errorstats: self.costs.errorstats(),
            latencystats: self.costs.latencystats(),
            error_replies: self.costs.error_replies(),
        }
    }

    pub(super) fn name(&self) -> &str {
        self.core.topo(&self.st).name(self.core.id)
    }

    /// Keeps a link open to every peer, reopened every 250 ms once lost: a
    /// peer's death closes it at once, and until the peer is heard from
    /// again CLUSTER SLOTS names another member for its slots (a hint; the
    /// core's view alone decides where requests go).
    fn keep_peer_links(&mut self) {
        if self.links_opened.elapsed() >= Duration::from_millis(250) {
            self.links_opened = Instant::now();
            let me = self.core.id;
            for s in self.core.topo(&self.st).servers().filter(|s| *s != me).collect::<Vec<_>>() {
                let _ = self.peer_conn(s);
            }
        }
        if self.unreachable.is_empty() {
            return;
        }
        let conns = &self.net.conns;
        let connected: Vec<ServerId> = self
            .peers_out
            .iter()
            .filter(|(_, t)| conns.get(t).is_some_and(|c| !c.connecting && !c.dead))
            .map(|(s, _)| *s)
            .collect();
        for s in connected {
            self.unreachable.remove(&s);
        }
    }

    /// Runs until SIGTERM/SIGINT, then drains ([`Drain`]); a second
    /// signal exits at once.
    pub fn run(mut self) -> Result<(), NodeError> {
        let mut events = Events::with_capacity(1024);
        loop {
            if self.stop.swap(false, Ordering::Relaxed) {
                if self.drain.is_some() || self.cfg.file.limits.drain_timeout == 0 {
                    break;
                }
                self.begin_drain();
            }
            // Removed from the cluster (issue 17): its slots' rights are
            // handed over already; it leaves as a drained server does.
            if self.drain.is_none() && self.core.topo(&self.st).is_removed(self.core.id) {
                tracing::info!(server = self.name(), "removed from the cluster: leaving");
                self.begin_drain();
            }
            if self.drain.is_some() && self.drain_step() {
                break;
            }
            if self.hup.swap(false, Ordering::Relaxed) {
                self.reload_config();
            }
            let now = self.clock.now();
            let mut wait = if self.ready.is_empty() { self.timers.wait(now).unwrap_or(1000).min(1000) } else { 0 };
            if let Some(t) = self.held.iter().map(|(t, _)| *t).min() {
                wait = wait.min(t.saturating_duration_since(Instant::now()).as_millis() as u64 + 1);
            }
            self.net.wait(&mut events, Duration::from_millis(wait)).map_err(NodeError::os("poll"))?;
            for ev in events.iter() {
                match ev.token() {
                    Endpoint::LISTENER => self.accept(),
                    Endpoint::TLS_LISTENER => self.accept_tls(),
                    WAKER => {}
                    tok => self.on_readiness(tok),
                }
            }
            self.wake_held();
            self.drive_ready();
            while let Ok((tag, reply)) = self.done.try_recv() {
                self.step(ServerInput::Store { tag, reply });
            }
            let now = self.clock.now();
            while let Some(timer) = self.timers.pop_due(now) {
                self.step(ServerInput::Timer(timer));
            }
            self.housekeeping();
            self.keep_within_maxmemory();
            if self.published_at.elapsed() >= Duration::from_millis(250) {
                self.publish();
            }
        }
        tracing::info!(server = self.name(), "shutting down");
        self.jobs = None;
        // The store's last batch, at most 2 s: what it holds no longer
        // matters to anyone (a stop before it ends is a crash, which the
        // store's fencing covers), and until the process exits its port
        // takes connections nobody serves (on PostgreSQL under load the
        // join took 5-6 s, and a rolling restart's operations waited for
        // it). The ports close together at the exit: a tool that sees the
        // node's port closed may start the node again at once (closing it
        // first left the metrics port held, and the new process exited).
        if let Some(t) = self.store_thread.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                tracing::warn!("the store's last batch did not end within 2 s; exiting without it");
            }
        }
        Ok(())
    }

    /// SIGHUP: re-reads the config file, takes the settings that change
    /// live and says which changed ones need a restart. A file that does
    /// not load changes nothing.
    fn reload_config(&mut self) {
        let Some(path) = self.cfg.path.clone() else { return };
        match Config::load(&path) {
            Err(e) => tracing::error!(server = self.name(), error = %e, "SIGHUP: config refused; nothing changed"),
            Ok(new) => {
                let (cfg, live, restart) = self.cfg.reloaded(&new);
                self.core.config.usage = cfg.file.cache.maxmemory_policy.usage();
                self.costs.slower_than = cfg.file.limits.slowlog_log_slower_than;
                self.costs.set_max_len(cfg.file.limits.slowlog_max_len);
                self.cfg = cfg;
                tracing::info!(server = self.name(), changed = ?live, needs_restart = ?restart, "SIGHUP: config re-read");
            }
        }
    }

    /// Starts leaving gracefully.
    pub(super) fn begin_drain(&mut self) {
        if self.drain.is_some() {
            return;
        }
        let deadline = Instant::now() + Duration::from_millis(self.cfg.file.limits.drain_timeout);
        self.drain = Some(Drain { deadline, closing: false });
        tracing::info!(server = self.name(), rights = self.st.rights.len(), "draining: handing rights back");
        self.step(ServerInput::Drain);
    }

    /// One turn of a drain: whether the server may exit now.
    fn drain_step(&mut self) -> bool {
        let Some(drain) = self.drain else { return false };
        if Instant::now() >= drain.deadline {
            tracing::warn!(
                server = self.name(),
                rights = self.st.rights.len(),
                waiting = self.st.waiting(),
                "drain timed out"
            );
            return true;
        }
        // The master's link to us (probes, notices), or ours to it.
        let live = |t: Option<Token>| t.and_then(|t| self.net.conns.get(&t)).is_some_and(|c| !c.connecting && !c.dead);
        let master_up = live(self.master_in) || live(self.master_out);
        if !drain.closing && self.st.rights.is_empty() && (self.st.left || !master_up) {
            // The master has told the other servers: clients that come back
            // elsewhere are served there.
            self.drain = Some(Drain { closing: true, ..drain });
            tracing::info!(server = self.name(), "rights handed back; closing client connections");
        } else if !drain.closing {
            return false;
        }
        self.close_answered_clients();
        let done = self.st.drained() && self.waiters.is_empty();
        if done {
            tracing::info!(server = self.name(), "drained");
        }
        done
    }

    /// Closes every client connection with nothing in flight (after what
    /// it was sent is written).
    fn close_answered_clients(&mut self) {
        let busy: HashSet<Token> = self
            .waiters
            .values()
            .map(|w| match w {
                Waiter::Lib { conn, .. } | Waiter::Resp { conn, .. } => *conn,
            })
            .collect();
        for (tok, c) in self.net.conns.iter_mut() {
            let client = match c.proto {
                Proto::Resp | Proto::Unknown => true,
                Proto::Node { peer } => matches!(peer, Some(crate::net::wire::Peer::Client(_))),
            };
            if client && !busy.contains(tok) {
                c.closing = true;
            }
        }
    }

    /// Feeds one input to the core and carries out its outputs, and those of
    /// any input they lead to.
    pub(super) fn step(&mut self, input: ServerInput) {
        self.inputs.push_back(input);
        let mut out = Vec::new();
        while let Some(input) = self.inputs.pop_front() {
            self.core.step(&mut self.st, self.clock.now(), input, &mut out);
            for o in out.drain(..) {
                self.carry_out(o);
            }
        }
    }

    pub(super) fn carry_out(&mut self, o: ServerOutput) {
        match o {
            ServerOutput::Reply { to: Origin::Client(w), result } => match self.waiters.remove(&w) {
                Some(Waiter::Resp { conn, cmd, part }) => self.part_done(conn, cmd, part, result),
                Some(Waiter::Lib { conn, op }) => {
                    self.stats.for_library += 1;
                    if let Some(c) = self.net.conns.get_mut(&conn) {
                        c.send(&Msg::ForwardReply { op, incarnation: 0, result });
                    }
                }
                None => {}
            },
            // The reply names the run that forwarded the request: a newer
            // run of that peer, on this connection now, drops it.
            ServerOutput::Reply { to: Origin::Peer { server, incarnation, op }, result } => {
                self.stats.for_peers += 1;
                let link = self.reply_links.get(&(server, incarnation)).or_else(|| self.peers_in.get(&server));
                if let Some(c) = link.and_then(|t| self.net.conns.get_mut(t)) {
                    c.send(&Msg::ForwardReply { op, incarnation, result });
                }
            }
            ServerOutput::Forward { to, op, incarnation, fwd } => {
                self.stats.forwarded += 1;
                match self.peer_conn(to) {
                    Some(c) => {
                        c.send(&Msg::Forward { op, incarnation, fwd });
                        self.forwards.insert(op, Instant::now());
                    }
                    None => self.inputs.push_back(ServerInput::ForwardFailed { op }),
                }
            }
            ServerOutput::Store { tag, op } => {
                if let Some(jobs) = &self.jobs {
                    let _ = jobs.send((tag, op));
                }
            }
            ServerOutput::ToMaster(report) => {
                if let Some(c) = self.master_conn() {
                    c.send(&Msg::Report(report));
                }
            }
            ServerOutput::SetTimer { timer, at } => self.timers.set(timer, at),
            ServerOutput::CancelTimer(timer) => self.timers.cancel(timer),
            ServerOutput::Event(e) => self.on_event(e),
        }
    }

    pub(super) fn on_event(&mut self, e: ServerEvent) {
        let topo = self.core.topo(&self.st);
        match e {
            ServerEvent::RightsTaken(rights) => {
                self.stats.rights_taken += rights.len() as u64;
                let others = rights.iter().filter(|(s, _)| topo.owner(*s) != self.core.id).count();
                tracing::info!(
                    server = topo.name(self.core.id),
                    slots = rights.len(),
                    for_others = others,
                    "rights taken"
                );
            }
            ServerEvent::RightsLost(slots) => {
                tracing::warn!(server = topo.name(self.core.id), slots = slots.len(), "rights lost")
            }
            ServerEvent::HandedBack(slots) => {
                self.stats.handed_back += slots.len() as u64;
                tracing::info!(server = topo.name(self.core.id), slots = slots.len(), "slots handed back");
            }
            ServerEvent::NoticeApplied(s, liveness) => {
                self.unreachable.remove(&s);
                if liveness == Liveness::Offline {
                    self.stats.failovers += 1;
                }
                tracing::info!(server = topo.name(self.core.id), about = topo.name(s), ?liveness, "notice applied");
            }
            ServerEvent::Served { .. } => {}
            ServerEvent::CacheHit => self.stats.cache_hits += 1,
            ServerEvent::CacheMiss => self.stats.cache_misses += 1,
        }
    }

    /// Evicts cached copies while memory is over `maxmemory`, by the
    /// policy (the core chooses them): each turn of the loop as many as
    /// the excess holds at the cache's bytes per key (memory beyond what
    /// the server used at start, over the keys cached), at most 10,000 a
    /// turn. A copy's share of the cache's tree is freed only when the
    /// tree's nodes merge, so memory may stay over the bound for a few
    /// turns and the cache end up somewhat below it.
    fn keep_within_maxmemory(&mut self) {
        let max = self.cfg.file.cache.maxmemory.0;
        let used = if max > 0 { crate::mem::used() } else { 0 };
        if used <= max {
            self.over_maxmemory = false;
            return;
        }
        let policy = self.cfg.file.cache.maxmemory_policy;
        let keys = self.st.cached_keys() as u64;
        let per_key = (used.saturating_sub(self.base_memory) / keys.max(1)).max(1);
        let want = (used - max).div_ceil(per_key).min(10_000) as usize;
        let (now, seed) = (self.clock.now(), crate::util::random_u64());
        let samples = self.cfg.file.cache.maxmemory_samples;
        let dropped = self.st.evict(policy, samples, want, now, seed);
        self.stats.evicted += dropped as u64;
        // Nothing (more) to evict: refuse what would grow memory.
        self.over_maxmemory = dropped < want;
    }

    /// Flushes output, drops dead connections (failing what was forwarded
    /// on them), closes idle clients, and resumes paused RESP connections.
    pub(super) fn housekeeping(&mut self) {
        self.drive_ready();
        self.keep_peer_links();
        let idle = self.cfg.file.limits.idle_timeout;
        let max_out = self.cfg.file.limits.max_output_buffer;
        let connect_timeout = Duration::from_millis(self.cfg.file.timing.send_timeout);
        let mut dead = Vec::new();
        for (tok, c) in self.net.conns.iter_mut() {
            if c.has_output() {
                c.flush();
            }
            if c.wbuf.len() > max_out {
                c.dead = true;
            }
            let client_side = matches!(c.proto, Proto::Resp | Proto::Unknown);
            if idle > 0 && client_side && c.last_active.elapsed() > Duration::from_secs(idle) {
                // Idle means silent with nothing in flight: a command waiting
                // for the store or a peer keeps its connection.
                let busy = self.waiters.values().any(|w| match w {
                    Waiter::Lib { conn, .. } | Waiter::Resp { conn, .. } => conn == tok,
                });
                c.dead |= !busy;
            }
            if c.proto == Proto::Unknown && c.rbuf.is_empty() && c.created.elapsed() > Duration::from_secs(60) {
                c.dead = true;
            }
            // A peer that never completes the handshake (a silent host):
            // give up, so that the next forward tries afresh.
            if c.connecting && c.created.elapsed() > connect_timeout {
                c.dead = true;
            }
            if c.dead {
                dead.push(*tok);
            }
        }
        for tok in dead {
            self.drop_conn(tok);
        }
        // Connections with whole commands left (a pipeline that yielded, or
        // one paused on a full output buffer now drained) go on next turn.
        self.ready = self
            .sessions
            .iter()
            .filter(|(t, s)| {
                s.may_take_more()
                    && !s.starved
                    && self.net.conns.get(t).is_some_and(|c| !c.rbuf.is_empty() && c.wbuf.len() <= OUTPUT_PAUSE)
            })
            .map(|(t, _)| *t)
            .collect();
    }

    /// Connections whose wait after a failed AUTH is over go on.
    fn wake_held(&mut self) {
        let now = Instant::now();
        let (due, held): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held).into_iter().partition(|(t, _)| *t <= now);
        self.held = held;
        self.ready.extend(due.into_iter().map(|(_, tok)| tok));
    }

    /// Runs the next commands of every connection in the re-drive queue.
    fn drive_ready(&mut self) {
        for tok in std::mem::take(&mut self.ready) {
            self.drive(tok);
        }
    }

    pub(super) fn drop_conn(&mut self, tok: Token) {
        self.net.remove(tok);
        self.sessions.remove(&tok);
        if self.master_in == Some(tok) {
            self.master_in = None;
        }
        if self.master_out == Some(tok) {
            self.master_out = None;
        }
        self.peers_in.retain(|_, t| *t != tok);
        self.reply_links.retain(|_, t| *t != tok);
        let lost: Vec<ServerId> = self.peers_out.iter().filter(|(_, t)| **t == tok).map(|(s, _)| *s).collect();
        for peer in lost {
            self.peers_out.remove(&peer);
            self.unreachable.insert(peer);
            for op in self.st.forwarded_to(peer) {
                self.step(ServerInput::ForwardFailed { op });
            }
        }
    }
}

/// `failgroup server`: runs one server until SIGTERM/SIGINT. The topology
/// is the master's if it answers with a changed one (a server added since
/// the config was written joins by its name alone), else the config's (as
/// written: a server given a new address in its file starts there).
pub fn main(cfg: Config, name: &str) -> Result<(), NodeError> {
    let topology = match master_topology(&cfg) {
        Ok(t) if t.version() > cfg.topology.version() => t,
        Ok(_) => cfg.topology.clone(),
        Err(why) => {
            tracing::info!(master = %cfg.file.master, %why, "the master did not give its topology; the config's is used");
            cfg.topology.clone()
        }
    };
    let id = match topology.id_of(name).filter(|s| !topology.is_removed(*s)) {
        Some(id) => id,
        None if topology.id_of(name).is_some() => {
            return Err(NodeError::Topology(format!(
                "server {name:?} was removed from the cluster; `failgroup admin add-server` brings it back"
            )))
        }
        // Not in the topology: the config's error lists the names there are.
        None => {
            return Err(match cfg.server_id(name) {
                Err(e) => e.into(),
                Ok(_) => NodeError::Topology(format!("server {name:?} is not in the master's topology")),
            })
        }
    };
    let node = ServerNode::start(cfg, topology, id, crate::util::stop_flag())?;
    node.run()
}

/// The topology in force at the master, asked for over the node protocol.
pub fn master_topology(cfg: &Config) -> Result<Topology, String> {
    use crate::net::wire::{Msg, Peer};
    let timeout = Duration::from_millis(cfg.file.timing.probe_timeout.max(500));
    let options = cfg.client_options().map_err(|e| e.to_string())?;
    let mut link = options.link(&cfg.file.master, Peer::Admin, timeout).map_err(|e| e.to_string())?;
    match link.send(&Msg::InfoRequest).and_then(|()| link.recv()).map_err(|e| e.to_string())? {
        Msg::Info(info) => info.cluster.validate().map_err(|e| e.to_string()),
        other => Err(format!("unexpected answer {other:?}")),
    }
}
