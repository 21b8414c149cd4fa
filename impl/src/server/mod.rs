//! The server process: one event loop (mio, no async runtime) around the
//! core's [`Server`], and a store thread. The loop feeds the core socket
//! messages, store replies, timer expiries and `now`, and carries out what
//! it outputs; every protocol decision is the core's.
//!
//! One port speaks both RESP (Redis clients) and the node protocol (peers,
//! the master, library clients): a node connection starts with a zero byte,
//! which no RESP request does.

pub mod commands;

use crate::config::Config;
use crate::net::wire::{Msg, Peer};
use crate::net::{self, Clock, Connection, Proto, Timers};
use crate::resp::{self, reply};
use crate::store::{self, Done, Identity, Job, StoreStats};
use commands::{Command, Kind, Local};
use failgroup_model::{
    ClientId, Forwarded, Holder, Liveness, Mode, Op, OpResult, Origin, ReqId, Server, ServerEvent, ServerId,
    ServerInput, ServerOutput, ServerState, ServerTimer,
};
use mio::net::TcpListener;
use mio::{Events, Poll, Token, Waker};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);

/// Who waits for the reply to a core request the runtime started.
#[derive(Clone, Copy, Debug)]
enum Waiter {
    /// Part `part` of the command in flight on a RESP connection.
    Resp { conn: Token, part: usize },
    /// A library client's request `op` on a node connection.
    Lib { conn: Token, op: u64 },
}

/// A data command in flight on a RESP connection.
struct InFlight {
    kind: Kind,
    results: Vec<Option<OpResult>>,
    left: usize,
}

/// A RESP connection's session.
struct Session {
    client: ClientId,
    seq: u64,
    authed: bool,
    name: Option<Vec<u8>>,
    id: u64,
    /// One command at a time, in order: replies keep the request order and
    /// a command sees the effects of the ones before it.
    inflight: Option<InFlight>,
    /// The input holds no whole command: wait for more bytes.
    starved: bool,
}

/// Replies waiting to be sent beyond which a connection's commands pause.
const OUTPUT_PAUSE: usize = 4 * 1024 * 1024;

#[derive(Default)]
struct Stats {
    connections: u64,
    commands: u64,
    hits: u64,
    misses: u64,
    forwarded: u64,
    rejected_connections: u64,
    failovers: u64,
    rights_taken: u64,
    handed_back: u64,
}

pub struct ServerNode {
    cfg: Config,
    core: Server,
    st: ServerState,
    clock: Clock,
    started: Instant,
    poll: Poll,
    listener: TcpListener,
    conns: HashMap<Token, Connection>,
    sessions: HashMap<Token, Session>,
    next_token: usize,
    timers: Timers<ServerTimer>,
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    store_thread: Option<std::thread::JoinHandle<()>>,
    store_stats: Arc<StoreStats>,
    peers_out: HashMap<ServerId, Token>,
    peers_in: HashMap<ServerId, Token>,
    master_in: Option<Token>,
    master_out: Option<Token>,
    /// Core operation id -> the peer it was forwarded to.
    forwards: HashMap<u64, ServerId>,
    waiters: HashMap<u64, Waiter>,
    next_waiter: u64,
    client_base: u64,
    next_client: u64,
    inputs: VecDeque<ServerInput>,
    to_drive: Vec<Token>,
    /// RESP connections with whole commands waiting for their turn.
    backlog: Vec<Token>,
    stats: Stats,
    stop: Arc<AtomicBool>,
}

impl ServerNode {
    /// Binds the port, opens the store and starts the core.
    pub fn start(cfg: Config, id: ServerId, stop: Arc<AtomicBool>) -> Result<ServerNode, String> {
        let addr = cfg.topology.addr(id).to_string();
        let (poll, listener) = net::listen(&addr, LISTENER)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(|e| e.to_string())?);
        let mut db = cfg.open_store()?;
        // A node of another mode or topology than the store's cluster is
        // refused here (hole 3).
        db.check_mark(&cfg.mark(), false)?;
        // This run of the process: its rights and its forwarded requests
        // are its own, not those of an earlier run of the same name.
        let incarnation = crate::util::random_u64();
        let names = cfg.topology.servers().map(|s| cfg.topology.name(s).to_string()).collect();
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
            .map_err(|e| e.to_string())?;
        let core = Server::new(id, Arc::new(cfg.topology.clone()), cfg.protocol());
        let mut node = ServerNode {
            core,
            st: ServerState::default(),
            clock: Clock::new(),
            started: Instant::now(),
            poll,
            listener,
            conns: HashMap::new(),
            sessions: HashMap::new(),
            next_token: 2,
            timers: Timers::new(),
            jobs: Some(jobs_tx),
            done: done_rx,
            store_thread: Some(store_thread),
            store_stats,
            peers_out: HashMap::new(),
            peers_in: HashMap::new(),
            master_in: None,
            master_out: None,
            forwards: HashMap::new(),
            waiters: HashMap::new(),
            next_waiter: 0,
            client_base: crate::util::random_u64(),
            next_client: 0,
            inputs: VecDeque::new(),
            to_drive: Vec::new(),
            backlog: Vec::new(),
            stats: Stats::default(),
            stop,
            cfg,
        };
        tracing::info!(server = node.name(), %addr, mode = %node.cfg.file.mode, incarnation, "server listening");
        node.step(ServerInput::Start { incarnation });
        Ok(node)
    }

    fn name(&self) -> &str {
        self.cfg.topology.name(self.core.id)
    }

    /// Runs until SIGTERM/SIGINT.
    pub fn run(mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(1024);
        while !self.stop.load(Ordering::Relaxed) {
            let now = self.clock.now();
            let wait = if self.backlog.is_empty() { self.timers.wait(now).unwrap_or(1000).min(1000) } else { 0 };
            if let Err(e) = self.poll.poll(&mut events, Some(Duration::from_millis(wait))) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(format!("poll: {e}"));
                }
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    tok => self.on_readiness(tok),
                }
            }
            for tok in std::mem::take(&mut self.backlog) {
                self.drive(tok);
            }
            while let Ok((tag, reply)) = self.done.try_recv() {
                self.step(ServerInput::Store { tag, reply });
            }
            let now = self.clock.now();
            while let Some(timer) = self.timers.pop_due(now) {
                self.step(ServerInput::Timer(timer));
            }
            self.housekeeping();
        }
        tracing::info!(server = self.name(), "shutting down");
        self.jobs = None;
        if let Some(t) = self.store_thread.take() {
            let _ = t.join();
        }
        Ok(())
    }

    /// Feeds one input to the core and carries out its outputs, and those of
    /// any input they lead to.
    fn step(&mut self, input: ServerInput) {
        self.inputs.push_back(input);
        let mut out = Vec::new();
        while let Some(input) = self.inputs.pop_front() {
            self.core.step(&mut self.st, self.clock.now(), input, &mut out);
            for o in out.drain(..) {
                self.carry_out(o);
            }
        }
    }

    fn carry_out(&mut self, o: ServerOutput) {
        match o {
            ServerOutput::Reply { to: Origin::Client(w), result } => match self.waiters.remove(&w) {
                Some(Waiter::Resp { conn, part }) => self.part_done(conn, part, result),
                Some(Waiter::Lib { conn, op }) => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.send(&Msg::ForwardReply { op, incarnation: 0, result });
                    }
                }
                None => {}
            },
            // The reply names the run that forwarded the request: a newer
            // run of that peer, on this connection now, drops it.
            ServerOutput::Reply { to: Origin::Peer { server, incarnation, op }, result } => {
                if let Some(c) = self.peers_in.get(&server).and_then(|t| self.conns.get_mut(t)) {
                    c.send(&Msg::ForwardReply { op, incarnation, result });
                }
            }
            ServerOutput::Forward { to, op, incarnation, fwd } => {
                self.stats.forwarded += 1;
                match self.peer_conn(to) {
                    Some(c) => {
                        c.send(&Msg::Forward { op, incarnation, fwd });
                        self.forwards.insert(op, to);
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

    fn on_event(&mut self, e: ServerEvent) {
        let topo = &self.cfg.topology;
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
                if liveness == Liveness::Offline {
                    self.stats.failovers += 1;
                }
                tracing::info!(server = topo.name(self.core.id), about = topo.name(s), ?liveness, "notice applied");
            }
            ServerEvent::Served { .. } => {}
            ServerEvent::CacheHit => self.stats.hits += 1,
        }
    }

    /// The outbound connection to a peer, opened if need be.
    fn peer_conn(&mut self, to: ServerId) -> Option<&mut Connection> {
        if !self.peers_out.get(&to).is_some_and(|t| self.conns.contains_key(t)) {
            let addr = self.cfg.topology.addr(to).to_string();
            let tok = self.open(&addr)?;
            self.peers_out.insert(to, tok);
        }
        self.conns.get_mut(&self.peers_out[&to])
    }

    /// The master's connection to us if there is one, else ours to it.
    fn master_conn(&mut self) -> Option<&mut Connection> {
        if let Some(t) = self.master_in.filter(|t| self.conns.contains_key(t)) {
            return self.conns.get_mut(&t);
        }
        if !self.master_out.is_some_and(|t| self.conns.contains_key(&t)) {
            let addr = self.cfg.file.master.clone();
            self.master_out = self.open(&addr);
        }
        self.conns.get_mut(&self.master_out?)
    }

    fn open(&mut self, addr: &str) -> Option<Token> {
        let from = Peer::Server(self.core.id);
        let mut conn = Connection::connect(addr, from, self.cfg.file.secret.as_deref()).ok()?;
        let tok = Token(self.next_token);
        self.next_token += 1;
        conn.register(self.poll.registry(), tok).ok()?;
        self.conns.insert(tok, conn);
        Some(tok)
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((sock, addr)) => {
                    let _ = sock.set_nodelay(true);
                    let tok = Token(self.next_token);
                    self.next_token += 1;
                    let mut conn = Connection::new(sock, addr, Proto::Unknown);
                    if conn.register(self.poll.registry(), tok).is_ok() {
                        self.stats.connections += 1;
                        self.conns.insert(tok, conn);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    return;
                }
            }
        }
    }

    fn on_readiness(&mut self, tok: Token) {
        let Some(c) = self.conns.get_mut(&tok) else { return };
        c.read_all();
        c.flush();
        if let Some(s) = self.sessions.get_mut(&tok) {
            s.starved = false;
        }
        if c.proto == Proto::Unknown && !c.rbuf.is_empty() {
            if c.rbuf[0] == 0 {
                if c.take_preamble() {
                    c.proto = Proto::Node { peer: None };
                }
            } else {
                let clients = self.sessions.len();
                c.proto = Proto::Resp;
                if clients >= self.cfg.file.limits.maxclients {
                    self.stats.rejected_connections += 1;
                    reply::error(&mut c.wbuf, "ERR max number of clients reached");
                    c.closing = true;
                    c.rbuf.clear();
                    return;
                }
                let id = self.next_client;
                self.next_client += 1;
                let client = ClientId(self.client_base.wrapping_add(id));
                let authed = self.cfg.file.requirepass.is_none();
                self.sessions
                    .insert(tok, Session { client, seq: 0, authed, name: None, id, inflight: None, starved: false });
            }
        }
        match self.conns[&tok].proto {
            Proto::Resp => self.drive(tok),
            Proto::Node { .. } => self.node_input(tok),
            Proto::Unknown => {}
        }
    }

    /// Processes a node connection's messages.
    fn node_input(&mut self, tok: Token) {
        let max = self.cfg.file.limits.max_frame;
        let to_peer = self.peers_out.iter().find(|(_, t)| **t == tok).map(|(s, _)| *s);
        let outbound = to_peer.is_some() || self.master_out == Some(tok);
        loop {
            let Some(c) = self.conns.get_mut(&tok) else { return };
            let Proto::Node { peer } = c.proto else { return };
            let Some(msg) = c.next_msg(max) else { return };
            if outbound {
                match msg {
                    Msg::ForwardReply { op, incarnation, result } => {
                        let Some(from) = to_peer else { continue };
                        if self.forwards.get(&op) == Some(&from) {
                            self.forwards.remove(&op);
                        }
                        self.step(ServerInput::ForwardReply { from, incarnation, op, result });
                    }
                    Msg::Master(m) => self.step(ServerInput::Master(m)),
                    Msg::Refused(why) => {
                        tracing::error!(peer = %c.addr, %why, "refused by a node");
                        c.dead = true;
                    }
                    _ => {}
                }
                continue;
            }
            match (peer, msg) {
                (None, Msg::Hello { from, secret }) => {
                    if let Err(why) = self.welcome(tok, from, secret.as_deref()) {
                        let c = self.conns.get_mut(&tok).expect("connection");
                        c.send(&Msg::Refused(why));
                        c.closing = true;
                        return;
                    }
                }
                (None, _) => {
                    c.send(&Msg::Refused("hello first".into()));
                    c.closing = true;
                    return;
                }
                (Some(Peer::Server(server)), Msg::Forward { op, incarnation, fwd }) => {
                    self.step(ServerInput::Request { origin: Origin::Peer { server, incarnation, op }, fwd });
                }
                (Some(Peer::Client(_)), Msg::Forward { op, fwd, .. }) => {
                    let w = self.next_waiter;
                    self.next_waiter += 1;
                    self.waiters.insert(w, Waiter::Lib { conn: tok, op });
                    self.step(ServerInput::Request { origin: Origin::Client(w), fwd });
                }
                (Some(Peer::Master), Msg::Master(m)) => self.step(ServerInput::Master(m)),
                (Some(_), Msg::InfoRequest) => {
                    c.send(&Msg::Info(Box::new(self.cfg.cluster_info())));
                }
                (Some(p), m) => {
                    tracing::warn!(peer = ?p, msg = ?m, "unexpected node message; closing");
                    c.dead = true;
                    return;
                }
            }
        }
    }

    /// Checks a node's hello; on success the connection is that node's.
    fn welcome(&mut self, tok: Token, from: Peer, secret: Option<&str>) -> Result<(), String> {
        let ip = self.conns[&tok].addr.ip();
        if let Err(why) = self.cfg.admit(from, secret, ip) {
            tracing::warn!(peer = %self.conns[&tok].addr, ?from, %why, "node hello refused");
            return Err(why);
        }
        match from {
            Peer::Server(s) => {
                self.peers_in.insert(s, tok);
            }
            Peer::Master => self.master_in = Some(tok),
            Peer::Client(_) | Peer::Admin => {}
        }
        let c = self.conns.get_mut(&tok).expect("connection");
        c.proto = Proto::Node { peer: Some(from) };
        c.send(&Msg::Welcome);
        Ok(())
    }

    /// Runs a RESP connection's commands, one at a time, in order.
    ///
    /// At most `limits.max_pipeline` commands per call: a deep pipeline
    /// yields to the other connections and resumes on the next turn.
    fn drive(&mut self, tok: Token) {
        let limits = self.cfg.file.limits.clone();
        for _ in 0..limits.max_pipeline {
            let Some(c) = self.conns.get_mut(&tok) else { return };
            let Some(s) = self.sessions.get_mut(&tok) else { return };
            if s.inflight.is_some() || c.closing || c.dead || c.wbuf.len() > OUTPUT_PAUSE {
                return;
            }
            let args = match resp::decode(&c.rbuf, &limits.resp()) {
                Ok(Some((args, used))) => {
                    c.rbuf.drain(..used);
                    args
                }
                Ok(None) => {
                    s.starved = true;
                    if c.rbuf.len() > limits.max_query_buffer {
                        reply::error(&mut c.wbuf, "ERR Protocol error: query buffer limit reached");
                        c.closing = true;
                    }
                    return;
                }
                Err(e) => {
                    reply::error(&mut c.wbuf, &e.to_string());
                    c.closing = true;
                    c.rbuf.clear();
                    return;
                }
            };
            if args.is_empty() {
                continue;
            }
            self.stats.commands += 1;
            self.command(tok, args);
        }
    }

    fn command(&mut self, tok: Token, args: Vec<Vec<u8>>) {
        let name = commands::name_of(&args);
        let s = self.sessions.get_mut(&tok).expect("a RESP connection has a session");
        if !s.authed && !matches!(name.as_str(), "auth" | "hello" | "quit") {
            let c = self.conns.get_mut(&tok).expect("connection");
            return reply::error(&mut c.wbuf, "NOAUTH Authentication required.");
        }
        match commands::parse(&args, &self.cfg.topology) {
            Err(msg) => {
                let c = self.conns.get_mut(&tok).expect("connection");
                reply::error(&mut c.wbuf, &msg);
            }
            Ok(Command::Local(l)) => self.local(tok, l),
            Ok(Command::Data { kind, ops }) => self.submit(tok, kind, ops),
        }
    }

    /// Hands a data command's operations to the core.
    fn submit(&mut self, tok: Token, kind: Kind, ops: Vec<Op>) {
        let s = self.sessions.get_mut(&tok).expect("session");
        let n = ops.len();
        s.inflight = Some(InFlight { kind, results: vec![None; n], left: n });
        let mut requests = Vec::with_capacity(n);
        for (part, op) in ops.into_iter().enumerate() {
            s.seq += 1;
            let req = ReqId { client: s.client, seq: s.seq };
            let w = self.next_waiter;
            self.next_waiter += 1;
            self.waiters.insert(w, Waiter::Resp { conn: tok, part });
            requests.push((w, Forwarded { req, op, hops: 0 }));
        }
        for (w, fwd) in requests {
            if let Op::Get(_) = fwd.op {
                self.stats.misses += 1; // corrected by CacheHit below
            }
            self.step(ServerInput::Request { origin: Origin::Client(w), fwd });
        }
    }

    fn part_done(&mut self, tok: Token, part: usize, result: OpResult) {
        let Some(s) = self.sessions.get_mut(&tok) else { return };
        let Some(f) = s.inflight.as_mut() else { return };
        if f.results[part].replace(result).is_none() {
            f.left -= 1;
        }
        if f.left == 0 {
            let f = s.inflight.take().expect("in flight");
            let results: Vec<OpResult> = f.results.into_iter().map(|r| r.expect("every part done")).collect();
            if let Some(c) = self.conns.get_mut(&tok) {
                commands::encode(f.kind, &results, &mut c.wbuf);
            }
            self.to_drive.push(tok);
        }
    }

    fn local(&mut self, tok: Token, l: Local) {
        let info = if let Local::Info(section) = &l { Some(self.info(section.as_deref())) } else { None };
        let requirepass = self.cfg.file.requirepass.clone();
        let s = self.sessions.get_mut(&tok).expect("session");
        let c = self.conns.get_mut(&tok).expect("connection");
        let out = &mut c.wbuf;
        match l {
            Local::Ping(None) => reply::simple(out, "PONG"),
            Local::Ping(Some(m)) | Local::Echo(m) => reply::bulk(out, &m),
            Local::Info(_) => reply::bulk(out, info.unwrap_or_default().as_bytes()),
            Local::Auth(pass) => match requirepass {
                None => reply::error(
                    out,
                    "ERR AUTH <password> called without any password configured for the default user. \
                     Are you sure your configuration is correct?",
                ),
                Some(p) if crate::net::wire::secret_matches(Some(&p), std::str::from_utf8(&pass).ok()) => {
                    s.authed = true;
                    reply::ok(out);
                }
                Some(_) => reply::error(out, "WRONGPASS invalid username-password pair or user is disabled."),
            },
            Local::Select | Local::Ok => reply::ok(out),
            Local::Quit => {
                reply::ok(out);
                c.closing = true;
            }
            Local::Hello => {
                let fields: [(&str, Vec<u8>); 7] = [
                    ("server", b"redis".to_vec()),
                    ("version", b"7.0.0".to_vec()),
                    ("proto", b"2".to_vec()),
                    ("id", s.id.to_string().into_bytes()),
                    ("mode", b"standalone".to_vec()),
                    ("role", b"master".to_vec()),
                    ("modules", Vec::new()),
                ];
                reply::array(out, fields.len() * 2);
                for (k, v) in fields {
                    reply::bulk(out, k.as_bytes());
                    match k {
                        "proto" | "id" => reply::int(out, String::from_utf8_lossy(&v).parse().unwrap_or(0)),
                        "modules" => reply::array(out, 0),
                        _ => reply::bulk(out, &v),
                    }
                }
            }
            Local::ClientSetName(n) => {
                s.name = Some(n);
                reply::ok(out);
            }
            Local::ClientGetName => reply::bulk_or_nil(out, s.name.as_deref()),
            Local::ClientId => reply::int(out, s.id as i64),
            Local::CommandList => reply::array(out, 0),
            Local::CommandCount => reply::int(out, 22),
            Local::ConfigGet(param) => {
                let limits = &self.cfg.file.limits;
                let known: [(&str, String); 6] = [
                    ("maxclients", limits.maxclients.to_string()),
                    ("proto-max-bulk-len", limits.max_bulk.to_string()),
                    ("timeout", limits.idle_timeout.to_string()),
                    ("save", String::new()),
                    ("appendonly", "no".into()),
                    ("databases", "1".into()),
                ];
                let hits: Vec<&(&str, String)> = known.iter().filter(|(k, _)| glob(&param, k.as_bytes())).collect();
                reply::array(out, hits.len() * 2);
                for (k, v) in hits {
                    reply::bulk(out, k.as_bytes());
                    reply::bulk(out, v.as_bytes());
                }
            }
            Local::DbSize => reply::int(out, self.st.cache.values().map(|m| m.len() as i64).sum()),
        }
    }

    /// INFO, in Redis' format: `# Section` then `field:value` lines.
    fn info(&self, section: Option<&str>) -> String {
        use std::fmt::Write;
        let want = |s: &str| matches!(section, None | Some("all" | "everything" | "default")) || section == Some(s);
        let mut o = String::new();
        let topo = &self.cfg.topology;
        let now = self.clock.now();
        if want("server") {
            let up = self.started.elapsed().as_secs();
            let port = topo.addr(self.core.id).rsplit(':').next().unwrap_or("");
            let _ = write!(
                o,
                "# Server\r\nredis_version:7.0.0\r\nfailgroup_version:{}\r\nredis_mode:standalone\r\n\
                 os:{}\r\nprocess_id:{}\r\ntcp_port:{port}\r\nuptime_in_seconds:{up}\r\nuptime_in_days:{}\r\n\
                 executable:{}\r\n\r\n",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS,
                std::process::id(),
                up / 86400,
                std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
            );
        }
        if want("clients") {
            let blocked = self.sessions.values().filter(|s| s.inflight.is_some()).count();
            let _ = write!(
                o,
                "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{blocked}\r\n\r\n",
                self.sessions.len(),
                self.cfg.file.limits.maxclients,
            );
        }
        if want("stats") {
            let st = &self.stats;
            let _ = write!(
                o,
                "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
                 rejected_connections:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\n\r\n",
                st.connections,
                st.commands,
                st.rejected_connections,
                st.hits,
                st.misses.saturating_sub(st.hits),
            );
        }
        if want("keyspace") {
            let keys: usize = self.st.cache.values().map(|m| m.len()).sum();
            let _ = write!(o, "# Keyspace\r\n");
            if keys > 0 {
                let _ = write!(o, "db0:keys={keys},expires=0,avg_ttl=0\r\n");
            }
            o.push_str("\r\n");
        }
        if want("failgroup") {
            let me = self.core.id;
            let serving: Vec<bool> = (0..topo.slot_count())
                .map(|s| {
                    let slot = failgroup_model::Slot(s);
                    match self.cfg.file.mode {
                        Mode::Linearizable => self.st.serves(slot, now),
                        Mode::Available => self.core.target(&self.st, slot) == Some(me),
                    }
                })
                .collect();
            let served = serving.iter().filter(|b| **b).count();
            let for_others = serving
                .iter()
                .enumerate()
                .filter(|(s, b)| **b && topo.owner(failgroup_model::Slot(*s as u16)) != me)
                .count();
            let version = topo.servers().map(|s| self.st.view.version_of(s)).max().unwrap_or_default();
            let offline: Vec<&str> = self.st.view.offline().map(|s| topo.name(s)).collect();
            let sst = &self.store_stats;
            let _ = write!(
                o,
                "# Failgroup\r\nserver_name:{}\r\ngroup:{}\r\nmode:{}\r\nview_version:{version}\r\n\
                 servers_offline:{}\r\nslots_owned:{}\r\nslots_served:{served}\r\nslots_served_for_others:{for_others}\r\n\
                 failovers_seen:{}\r\nrights_taken:{}\r\nslots_handed_back:{}\r\nrequests_forwarded:{}\r\n\
                 requests_waiting:{}\r\nstore_commits:{}\r\nstore_commands:{}\r\n\r\n",
                topo.name(me),
                topo.group_name(me),
                self.cfg.file.mode,
                offline.join(","),
                topo.owned_slots(me).count(),
                self.stats.failovers,
                self.stats.rights_taken,
                self.stats.handed_back,
                self.stats.forwarded,
                self.st.ops.len(),
                sst.commits.load(Ordering::Relaxed),
                sst.commands.load(Ordering::Relaxed),
            );
        }
        o
    }

    /// Flushes output, drops dead connections (failing what was forwarded
    /// on them), closes idle clients, and resumes paused RESP connections.
    fn housekeeping(&mut self) {
        for tok in std::mem::take(&mut self.to_drive) {
            self.drive(tok);
        }
        let idle = self.cfg.file.limits.idle_timeout;
        let max_out = self.cfg.file.limits.max_output_buffer;
        let connect_timeout = Duration::from_millis(self.cfg.file.timing.send_timeout);
        let mut dead = Vec::new();
        for (tok, c) in self.conns.iter_mut() {
            if !c.wbuf.is_empty() {
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
        self.backlog = self
            .sessions
            .iter()
            .filter(|(t, s)| {
                s.inflight.is_none()
                    && !s.starved
                    && self.conns.get(t).is_some_and(|c| !c.rbuf.is_empty() && c.wbuf.len() <= OUTPUT_PAUSE)
            })
            .map(|(t, _)| *t)
            .collect();
    }

    fn drop_conn(&mut self, tok: Token) {
        if let Some(mut c) = self.conns.remove(&tok) {
            let _ = self.poll.registry().deregister(&mut c.sock);
        }
        self.sessions.remove(&tok);
        if self.master_in == Some(tok) {
            self.master_in = None;
        }
        if self.master_out == Some(tok) {
            self.master_out = None;
        }
        self.peers_in.retain(|_, t| *t != tok);
        let lost: Vec<ServerId> = self.peers_out.iter().filter(|(_, t)| **t == tok).map(|(s, _)| *s).collect();
        for peer in lost {
            self.peers_out.remove(&peer);
            let ops: Vec<u64> = self.forwards.iter().filter(|(_, p)| **p == peer).map(|(o, _)| *o).collect();
            for op in ops {
                self.forwards.remove(&op);
                self.step(ServerInput::ForwardFailed { op });
            }
        }
    }
}

/// Redis-style glob match of CONFIG GET patterns (`*` and `?` only).
fn glob(pattern: &[u8], s: &[u8]) -> bool {
    match (pattern.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&pattern[1..], s) || (!s.is_empty() && glob(pattern, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &s[1..]),
        (Some(p), Some(c)) if p == c => glob(&pattern[1..], &s[1..]),
        _ => false,
    }
}

/// `failgroup server`: runs one server until SIGTERM/SIGINT.
pub fn main(cfg: Config, name: &str) -> Result<(), String> {
    let id = cfg.server_id(name)?;
    let node = ServerNode::start(cfg, id, crate::util::stop_flag())?;
    node.run()
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_get_globs() {
        assert!(super::glob(b"*", b"save"));
        assert!(super::glob(b"max*", b"maxclients"));
        assert!(!super::glob(b"max?", b"maxclients"));
    }
}
