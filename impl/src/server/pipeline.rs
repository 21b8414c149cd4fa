//! A RESP connection's commands: decoded from its input, answered locally
//! or handed to the core as operations, and each reply written, in the
//! order the commands came, once every part of it is back.
//!
//! A pipeline's commands on different keys run at once (the forwards of a
//! connection are in flight together, one round trip for many); a command
//! naming a key an earlier command in flight names waits for it, as does
//! every command that is not a data command of one key. So commands on
//! one key take effect in order; commands on different keys of one
//! pipeline may take effect in any order (they are concurrent: none was
//! answered before the others were sent), as across the nodes of a Redis
//! Cluster.

use super::clients::ClientRow;
use super::cluster::ClusterView;
use super::commands::{self, Command, KillFilter, Kind, Local};
use super::local::{answer, Context};
use super::node::ServerNode;
use super::session::{InFlight, Session, Waiter, OUTPUT_PAUSE};
use super::slowlog::{Outcome, Started};
use crate::resp::{self, reply, Proto};
use failgroup_model::bytes::{fnv1a, FNV_OFFSET};
use failgroup_model::{
    DbRead, Forwarded, Guard, Op, OpResult, Origin, ReqId, Server, ServerId, ServerInput, ServerState, Topology,
};
use foldhash::HashSet;
use mio::Token;
use std::time::Instant;

/// Rows FLUSHDB reads per page.
const FLUSH_PAGE: u64 = 1000;

/// The data commands of one key, named first, that may start while other
/// commands of their connection are in flight.
const ONE_KEY: &[&[u8]] = &[
    b"get",
    b"set",
    b"setnx",
    b"setex",
    b"psetex",
    b"incr",
    b"decr",
    b"incrby",
    b"decrby",
    b"incrbyfloat",
    b"expire",
    b"pexpire",
    b"expireat",
    b"pexpireat",
    b"persist",
    b"ttl",
    b"pttl",
    b"expiretime",
    b"pexpiretime",
    b"getdel",
    b"getex",
    b"append",
    b"strlen",
    b"getrange",
    b"setrange",
    b"type",
    b"hset",
    b"hmset",
    b"hsetnx",
    b"hget",
    b"hmget",
    b"hgetall",
    b"hkeys",
    b"hvals",
    b"hlen",
    b"hexists",
    b"hstrlen",
    b"hdel",
    b"hincrby",
    b"hincrbyfloat",
    b"hscan",
];

/// The commands of several keys that name one key when given one.
const MAYBE_ONE_KEY: &[&[u8]] = &[b"del", b"unlink", b"exists", b"touch", b"mget"];

/// A key's hash, for telling the keys of commands in flight apart (a
/// collision only makes a command wait).
fn key_hash(key: &[u8]) -> u64 {
    fnv1a(FNV_OFFSET, key)
}

/// Whether a command may start while others of its connection are in
/// flight: a data command of one key that no command in flight names.
fn may_start(s: &Session, args: &[Vec<u8>]) -> bool {
    if s.inflight.is_empty() {
        return true;
    }
    if s.multi.is_some() || !s.authed || args.len() < 2 {
        return false;
    }
    let name = &args[0];
    let one = ONE_KEY.iter().any(|c| name.eq_ignore_ascii_case(c))
        || (args.len() == 2 && MAYBE_ONE_KEY.iter().any(|c| name.eq_ignore_ascii_case(c)));
    let h = key_hash(&args[1]);
    one && s.barriers == 0 && !s.inflight.iter().any(|f| f.keys.contains(&h))
}

impl ServerNode {
    /// Runs a RESP connection's commands, in order, as many at once as
    /// [`may_start`] lets.
    ///
    /// At most `limits.max_pipeline` commands per call: a deep pipeline
    /// yields to the other connections and resumes on the next turn. The
    /// input read is dropped from the buffer once per call, not once per
    /// command (which moved the rest of a pipeline's bytes each time).
    pub(super) fn drive(&mut self, tok: Token) {
        let mut consumed = 0;
        self.drive_from(tok, &mut consumed);
        if let Some(c) = self.net.conns.get_mut(&tok) {
            c.rbuf.drain(..consumed.min(c.rbuf.len()));
        }
    }

    /// `drive`'s loop; `consumed`: how much of the input it has read.
    fn drive_from(&mut self, tok: Token, consumed: &mut usize) {
        let limits = self.cfg.file.limits.clone();
        for _ in 0..limits.max_pipeline {
            let Some(c) = self.net.conns.get_mut(&tok) else { return };
            let Some(s) = self.sessions.get_mut(&tok) else { return };
            // After a failed AUTH the connection's next command waits.
            if let Some(t) = s.held_until {
                if Instant::now() < t {
                    return;
                }
                s.held_until = None;
            }
            let leaving = self.drain.is_some_and(|d| d.closing);
            if !s.may_take_more() || c.closing || c.dead || leaving || c.wbuf.len() > OUTPUT_PAUSE {
                return;
            }
            if let Some(args) = s.stalled.take() {
                if !may_start(s, &args) {
                    s.stalled = Some(args);
                    return;
                }
                self.stats.commands += 1;
                self.command_counted(tok, args);
                continue;
            }
            let args = match resp::decode(&c.rbuf[*consumed..], &limits.resp()) {
                Ok(Some((args, used))) => {
                    *consumed += used;
                    args
                }
                Ok(None) => {
                    s.starved = true;
                    if c.rbuf.len() - *consumed > limits.max_query_buffer {
                        reply::error(&mut c.wbuf, "ERR Protocol error: query buffer limit reached");
                        c.closing = true;
                    }
                    return;
                }
                Err(e) => {
                    reply::error(&mut c.wbuf, &e.to_string());
                    c.closing = true;
                    c.rbuf.clear();
                    *consumed = 0;
                    return;
                }
            };
            if args.is_empty() {
                continue;
            }
            if !may_start(s, &args) {
                s.stalled = Some(args);
                return;
            }
            self.stats.commands += 1;
            self.command_counted(tok, args);
        }
    }

    /// Runs a command and counts the reply it wrote at once if an error
    /// (INFO errorstats; replies that come later are counted as they
    /// are made).
    fn command_counted(&mut self, tok: Token, args: Vec<Vec<u8>>) {
        let (before, made) = (self.net.conns.get(&tok).map_or(0, |c| c.wbuf.len()), self.costs.made);
        self.command(tok, args);
        // A data command done at once (a cache hit) was counted as made.
        if let Some(c) = self.net.conns.get(&tok).filter(|c| c.wbuf.len() > before && self.costs.made == made) {
            self.costs.reply_sent(&c.wbuf[before..]);
        }
    }

    pub(super) fn command(&mut self, tok: Token, args: Vec<Vec<u8>>) {
        let started = Instant::now();
        let name = commands::name_of(&args);
        let s = self.sessions.get_mut(&tok).expect("a RESP connection has a session");
        if !s.authed && !matches!(name.as_str(), "auth" | "hello" | "quit") {
            let c = self.net.conns.get_mut(&tok).expect("connection");
            return reply::error(&mut c.wbuf, "NOAUTH Authentication required.");
        }
        // CLIENT LIST's `cmd`, in the session's buffer (no allocation per
        // command once it has grown).
        s.last_cmd.clear();
        s.last_cmd.push_str(&name);
        if let ("client" | "cluster" | "command" | "config", Some(sub)) = (name.as_str(), args.get(1)) {
            s.last_cmd.push('|');
            s.last_cmd.push_str(&String::from_utf8_lossy(sub).to_ascii_lowercase());
        }
        let mut parsed = commands::parse(&args, &self.cfg.topology);
        // A read-only user's write (in a transaction too: EXEC then aborts).
        if s.readonly && super::local::writes(&name) {
            parsed = Err(commands::CommandError::NoPerm(name.clone()));
        }
        // Over `maxmemory` with nothing left to evict: writes that may
        // grow memory are refused, as Redis refuses them.
        if self.over_maxmemory {
            if let Ok(Command::Data { ops, .. }) = &parsed {
                if ops.iter().any(grows) {
                    parsed = Err(commands::CommandError::Reply(OOM));
                }
            }
        }
        if s.multi.is_some() {
            return self.queue(tok, parsed);
        }
        // A refusal counts as Redis's `rejected_calls` of a command it knows.
        if parsed.is_err() && super::local::known(&name) {
            let name = s.last_cmd.clone();
            self.costs.record(&name, Outcome::Rejected, 0);
        }
        let s = self.sessions.get_mut(&tok).expect("session");
        match parsed {
            // After the replies of the commands still in flight.
            Err(msg) if !s.inflight.is_empty() => {
                let mut done = InFlight::new(Kind::MSet, 0, None);
                let mut out = Vec::new();
                reply::error(&mut out, &msg.to_string());
                self.costs.reply_made(&out);
                done.reply = Some(out);
                s.start(done);
            }
            Err(msg) => {
                let c = self.net.conns.get_mut(&tok).expect("connection");
                reply::error(&mut c.wbuf, &msg.to_string());
            }
            Ok(Command::Local(l)) => {
                let name = s.last_cmd.clone();
                self.local(tok, l);
                self.cost(tok, &name, started, &args, !super::local::skips_slowlog(&name), Outcome::Done);
            }
            Ok(Command::Data { kind: Kind::Watch, ops }) => {
                s.cost = Some(Started { at: started, name: s.last_cmd.clone(), args });
                let mut f = InFlight::new(Kind::Watch, ops.len(), None);
                f.watching = ops.iter().flat_map(Op::keys).map(<[u8]>::to_vec).collect();
                self.hand_over(tok, f, ops);
            }
            Ok(Command::Data { kind, ops }) => {
                s.cost = Some(Started { at: started, name: s.last_cmd.clone(), args });
                self.submit(tok, kind, ops)
            }
        }
    }

    /// Counts a command that ended (INFO commandstats) and logs it if slow
    /// enough (`slowlog`, unless the command is one Redis never logs).
    fn cost(&mut self, tok: Token, name: &str, started: Instant, args: &[Vec<u8>], loggable: bool, outcome: Outcome) {
        let usec = started.elapsed().as_micros() as u64;
        let (sessions, conns) = (&self.sessions, &self.net.conns);
        let client = || {
            let peer = conns.get(&tok).map(|c| c.addr.to_string()).unwrap_or_default();
            (peer, sessions.get(&tok).and_then(|s| s.name.clone()).unwrap_or_default())
        };
        self.costs.ended(name, outcome, usec, args, loggable, client);
    }

    /// EXEC of a transaction with commands queued or keys watched: one
    /// atomic operation, the WATCH guards first (if a watched key changed,
    /// nothing applies and EXEC answers a null array).
    fn exec(&mut self, tok: Token) {
        let topo = &self.cfg.topology;
        let s = self.sessions.get_mut(&tok).expect("session");
        let m = s.multi.take().expect("in a transaction");
        let watched = std::mem::take(&mut s.watched);
        if m.slot.is_some_and(|slot| watched.iter().any(|(k, _)| topo.slot(k) != slot)) {
            let c = self.net.conns.get_mut(&tok).expect("connection");
            return reply::error(&mut c.wbuf, &commands::CommandError::CrossSlot.to_string());
        }
        let mut f = InFlight::new(Kind::MSet, 1, Some(m.cmds));
        f.guards = watched.len();
        let mut ops: Vec<Op> = watched.into_iter().map(|(k, v)| Op::Guard(k, Guard::Version(v))).collect();
        ops.extend(m.ops);
        self.hand_over(tok, f, vec![Op::Atomic(ops)]);
    }

    /// A command after MULTI: queued (`QUEUED`) if it is a data command of
    /// the transaction's slot; EXEC runs the queue as one atomic
    /// operation. A refused command makes EXEC abort, as in Redis.
    fn queue(&mut self, tok: Token, parsed: Result<Command, commands::CommandError>) {
        let topo = &self.cfg.topology;
        let s = self.sessions.get_mut(&tok).expect("session");
        let m = s.multi.as_mut().expect("in a transaction");
        let c = self.net.conns.get_mut(&tok).expect("connection");
        match parsed {
            Ok(Command::Local(Local::Exec)) if !m.dirty && (!m.ops.is_empty() || !s.watched.is_empty()) => {
                self.exec(tok)
            }
            // Not queued, and the transaction goes on (as Redis answers).
            Ok(Command::Data { kind: Kind::Watch, .. }) => {
                reply::error(&mut c.wbuf, "ERR WATCH inside MULTI is not allowed")
            }
            Ok(Command::Local(Local::Unwatch)) => {
                m.cmds.push((Kind::Unwatch, 0));
                reply::simple(&mut c.wbuf, "QUEUED");
            }
            Ok(Command::Local(l @ (Local::Exec | Local::Discard | Local::Multi | Local::Quit))) => self.local(tok, l),
            Ok(Command::Local(_)) => {
                m.dirty = true;
                reply::error(&mut c.wbuf, "ERR this server queues only data commands in a transaction");
            }
            Err(e) => {
                m.dirty = true;
                reply::error(&mut c.wbuf, &e.to_string());
            }
            Ok(Command::Data { kind, ops }) => {
                let ops: Vec<Op> = ops
                    .into_iter()
                    .flat_map(|o| match o {
                        Op::Atomic(inner) => inner,
                        o => vec![o],
                    })
                    .collect();
                // Whole-database reads (DBSIZE, SCAN) name no slot.
                let keyed: Vec<&Op> = ops.iter().filter(|o| !matches!(o, Op::Db(_))).collect();
                if let Some(first) = keyed.first() {
                    let slot = *m.slot.get_or_insert_with(|| topo.slot(first.key()));
                    if keyed.iter().any(|o| topo.slot(o.key()) != slot) {
                        m.dirty = true;
                        return reply::error(&mut c.wbuf, &commands::CommandError::CrossSlot.to_string());
                    }
                }
                m.cmds.push((kind, ops.len()));
                m.ops.extend(ops);
                reply::simple(&mut c.wbuf, "QUEUED");
            }
        }
    }

    /// FLUSHDB from the page after version `after`: the database's keys a
    /// page at a time (a whole-database read), each page's keys deleted
    /// through the core, per slot in one atomic operation (so each key's
    /// delete is fenced and linearizable like any DEL; the whole is not
    /// atomic: a key written meanwhile may stay or go, as across the nodes
    /// of a Redis Cluster).
    pub(super) fn flush_page(&mut self, tok: Token, after: u64) {
        let page = DbRead::Scan { after, count: FLUSH_PAGE, pattern: None, type_name: None };
        self.submit(tok, Kind::FlushScan, vec![Op::Db(page)]);
    }

    /// A FLUSHDB page read: its keys' deletes, grouped by slot.
    fn flush_keys(&mut self, tok: Token, keys: Vec<Vec<u8>>, next: u64) {
        let topo = &self.cfg.topology;
        let mut by_slot: std::collections::BTreeMap<_, Vec<Op>> = std::collections::BTreeMap::new();
        for key in keys {
            by_slot.entry(topo.slot(&key)).or_default().push(Op::Del(key));
        }
        let ops: Vec<Op> = by_slot
            .into_values()
            .map(|mut dels| if dels.len() == 1 { dels.remove(0) } else { Op::Atomic(dels) })
            .collect();
        match (ops.is_empty(), next) {
            (true, 0) => {
                if let Some(c) = self.net.conns.get_mut(&tok) {
                    reply::ok(&mut c.wbuf);
                }
                self.ready.push(tok);
            }
            (true, next) => self.flush_page(tok, next),
            (false, next) => {
                let n = ops.len();
                self.hand_over(tok, InFlight::new(Kind::FlushDel { next }, n, None), ops)
            }
        }
    }

    /// Hands a data command's operations to the core.
    pub(super) fn submit(&mut self, tok: Token, kind: Kind, ops: Vec<Op>) {
        self.hand_over(tok, InFlight::new(kind, ops.len(), None), ops)
    }

    /// Hands operations to the core, `f` waiting for their results: set up
    /// first, since the core may answer (from its cache) at once.
    fn hand_over(&mut self, tok: Token, mut f: InFlight, ops: Vec<Op>) {
        let s = self.sessions.get_mut(&tok).expect("session");
        f.cost = s.cost.take();
        f.id = s.next_cmd;
        s.next_cmd += 1;
        for op in &ops {
            match op {
                Op::Atomic(_) | Op::Keys(_) => f.keys.extend(op.keys().into_iter().map(key_hash)),
                Op::Db(_) => f.barrier = true,
                op => f.keys.push(key_hash(op.key())),
            }
        }
        f.barrier |= f.exec.is_some() || matches!(f.kind, Kind::Watch | Kind::FlushScan | Kind::FlushDel { .. });
        let cmd = f.id;
        s.start(f);
        let mut requests = Vec::with_capacity(ops.len());
        for (part, op) in ops.into_iter().enumerate() {
            s.seq += 1;
            let req = ReqId { client: s.client, seq: s.seq };
            let w = self.next_waiter;
            self.next_waiter += 1;
            self.waiters.insert(w, Waiter::Resp { conn: tok, cmd, part });
            requests.push((w, Forwarded { req, op, hops: 0 }));
        }
        for (w, fwd) in requests {
            self.step(ServerInput::Request { origin: Origin::Client(w), fwd });
        }
    }

    pub(super) fn part_done(&mut self, tok: Token, cmd: u64, part: usize, result: OpResult) {
        let Some(s) = self.sessions.get_mut(&tok) else { return };
        let Some(at) = s.inflight.iter().position(|f| f.id == cmd && f.reply.is_none()) else { return };
        let f = &mut s.inflight[at];
        if f.results[part].replace(result).is_none() {
            f.left -= 1;
        }
        if f.left == 0 {
            let results: Vec<OpResult> =
                std::mem::take(&mut f.results).into_iter().map(|r| r.expect("every part done")).collect();
            let f = &mut s.inflight[at];
            if let Some(c) = f.cost.take() {
                let outcome = match results.iter().any(|r| matches!(r, OpResult::Err(_))) {
                    true => Outcome::Failed,
                    false => Outcome::Done,
                };
                let usec = c.at.elapsed().as_micros() as u64;
                let (conns, name) = (&self.net.conns, &s.name);
                let peer = || {
                    (conns.get(&tok).map(|c| c.addr.to_string()).unwrap_or_default(), name.clone().unwrap_or_default())
                };
                self.costs.ended(&c.name, outcome, usec, &c.args, true, peer);
            }
            let f = &s.inflight[at];
            // INFO's keyspace hits and misses, as Redis counts them: a key
            // a GET or MGET looked up found or not (wherever it was served).
            if matches!(f.kind, Kind::Get | Kind::MGet) {
                let (found, missing) = lookups(&results);
                self.stats.hits += found;
                self.stats.misses += missing;
            }
            // FLUSHDB goes on to its next step unless a step failed (a
            // barrier: alone in flight).
            let failed = || {
                results.iter().any(|r| match r {
                    OpResult::Many(rs) => rs.iter().any(|r| matches!(r, OpResult::Err(_))),
                    r => matches!(r, OpResult::Err(_)),
                })
            };
            match (f.kind, &results[..]) {
                (Kind::FlushScan, [OpResult::Keys { keys, next }]) => {
                    s.finish(at);
                    return self.flush_keys(tok, keys.clone(), *next);
                }
                (Kind::FlushDel { next }, _) if next != 0 && !failed() => {
                    s.finish(at);
                    return self.flush_page(tok, next);
                }
                _ => {}
            }
            let f = &mut s.inflight[at];
            if !f.watching.is_empty() {
                // WATCH: the versions read, one per key.
                let versions: Vec<&OpResult> = results
                    .iter()
                    .flat_map(|r| match r {
                        OpResult::Many(rs) => rs.iter().collect(),
                        r => vec![r],
                    })
                    .collect();
                if versions.iter().all(|r| matches!(r, OpResult::Int(_))) {
                    for (key, r) in std::mem::take(&mut f.watching).into_iter().zip(versions) {
                        if let OpResult::Int(v) = r {
                            s.watched.push((key, *v as u64));
                        }
                    }
                }
            }
            let f = &mut s.inflight[at];
            match self.net.conns.get_mut(&tok) {
                // The first in flight: its reply goes out now, then every
                // reply done behind it.
                Some(c) if at == 0 => {
                    let before = c.wbuf.len();
                    encode_done(f, &results, s.proto, &mut c.wbuf);
                    self.costs.reply_made(&c.wbuf[before..]);
                    s.finish(0);
                    while let Some(out) = s.inflight.front_mut().and_then(|f| f.reply.take()) {
                        c.wbuf.extend_from_slice(&out);
                        s.finish(0);
                    }
                }
                _ => {
                    let mut out = Vec::new();
                    encode_done(f, &results, s.proto, &mut out);
                    self.costs.reply_made(&out);
                    f.reply = Some(out);
                }
            }
            self.ready.push(tok);
        }
    }

    /// A command the server answers itself (`local.rs`): run only when no
    /// command of its connection is in flight.
    pub(super) fn local(&mut self, tok: Token, l: Local) {
        if let Local::ClientKill(f) = l {
            return self.client_kill(tok, f);
        }
        if let Local::Flush = l {
            return self.flush_page(tok, 0);
        }
        if let Local::Slowlog(cmd) = l {
            let c = self.net.conns.get_mut(&tok).expect("connection");
            return self.costs.answer(cmd, &mut c.wbuf);
        }
        if let Local::ConfigSet(pairs) = l {
            let result = self.config_set(pairs);
            let c = self.net.conns.get_mut(&tok).expect("connection");
            return match result {
                Ok(()) => reply::ok(&mut c.wbuf),
                Err(e) => reply::error(&mut c.wbuf, &e),
            };
        }
        let clients =
            if matches!(l, Local::ClientList(_) | Local::ClientInfo) { self.client_rows() } else { Vec::new() };
        let info = match &l {
            Local::Info(section) => Some(super::info::render(&self.snapshot(), section.as_deref())),
            _ => None,
        };
        // A client on a TLS address is given the servers' TLS addresses.
        let tls = self.net.conns.get(&tok).is_some_and(|c| c.is_tls());
        let addrs = self.cfg.file.tls.as_ref().filter(|_| tls).map(|t| &t.servers);
        let cluster = matches!(l, Local::Cluster(_))
            .then(|| cluster_view(self.core.topo(&self.st), &self.core, &self.st, &self.unreachable).with_addrs(addrs));
        let requirepass = self.cfg.file.requirepass.as_deref();
        let (limits, cache, users) = (&self.cfg.file.limits, &self.cfg.file.cache, &self.cfg.file.users[..]);
        let ctx = Context { requirepass, users, limits, cache, info, cluster, clients };
        let s = self.sessions.get_mut(&tok).expect("session");
        let c = self.net.conns.get_mut(&tok).expect("connection");
        if answer(l, s, &ctx, &mut c.wbuf) {
            c.closing = true;
        }
        // A failed AUTH holds the connection: woken when the wait is over.
        if let Some(t) = s.held_until {
            self.held.push((t, tok));
        }
    }
}

impl ServerNode {
    /// CONFIG SET of the settings that change live (the cache's bound and
    /// policy, the client limits, the password, the log level), all or
    /// none, with Redis's errors.
    fn config_set(&mut self, pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), String> {
        let mut cache = self.cfg.file.cache.clone();
        let mut limits = self.cfg.file.limits.clone();
        let mut requirepass = self.cfg.file.requirepass.clone();
        let mut loglevel = None;
        let failed = |name: &[u8], why: &str| {
            let name = String::from_utf8_lossy(name);
            format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}")
        };
        let int = |name: &[u8], text: &str, lo: i64, hi: i64| -> Result<i64, String> {
            let n: i64 = text.parse().map_err(|_| failed(name, "argument couldn't be parsed into an integer"))?;
            match (lo..=hi).contains(&n) {
                true => Ok(n),
                false => Err(failed(name, &format!("argument must be between {lo} and {hi} inclusive"))),
            }
        };
        for (i, (name, value)) in pairs.iter().enumerate() {
            let text = String::from_utf8_lossy(value);
            match name.as_slice() {
                _ if pairs[..i].iter().any(|(n, _)| n == name) => return Err(failed(name, "duplicate parameter")),
                b"maxclients" => limits.maxclients = int(name, &text, 1, u32::MAX as i64)? as usize,
                b"timeout" => limits.idle_timeout = int(name, &text, 0, i32::MAX as i64)? as u64,
                b"slowlog-log-slower-than" => limits.slowlog_log_slower_than = int(name, &text, -1, i64::MAX)?,
                b"slowlog-max-len" => limits.slowlog_max_len = int(name, &text, 0, i64::MAX)? as usize,
                b"proto-max-bulk-len" => {
                    let m: crate::config::Memory =
                        text.parse().map_err(|_| failed(name, "argument must be a memory value"))?;
                    if m.0 < 1024 * 1024 || m.0 > i64::MAX as u64 {
                        return Err(failed(name, "argument must be between 1048576 and 9223372036854775807 inclusive"));
                    }
                    limits.max_bulk = m.0 as usize
                }
                // An empty password turns the password off, as in Redis.
                b"requirepass" if value.is_empty() => requirepass = None,
                // The node protocol on this port runs requests too: without
                // the nodes' secret it would run them without the password.
                b"requirepass" if self.cfg.file.secret.is_none() => {
                    return Err(failed(name, "the config sets no secret: the node protocol would bypass the password"))
                }
                b"requirepass" => requirepass = Some(text.into_owned()),
                b"loglevel" => match crate::util::LOG_LEVELS.iter().find(|(n, _)| n.eq_ignore_ascii_case(&text)) {
                    Some((n, _)) => loglevel = Some(*n),
                    None => {
                        return Err(failed(
                            name,
                            "argument(s) must be one of the following: debug, verbose, notice, warning",
                        ))
                    }
                },
                b"maxmemory" => {
                    cache.maxmemory = text.parse().map_err(|_| failed(name, "argument must be a memory value"))?
                }
                b"maxmemory-policy" => {
                    cache.maxmemory_policy = text.parse().map_err(|_| {
                        failed(
                            name,
                            "argument(s) must be one of the following: volatile-lru, volatile-lfu, \
                             volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction",
                        )
                    })?
                }
                b"maxmemory-samples" => {
                    let n: i64 =
                        text.parse().map_err(|_| failed(name, "argument couldn't be parsed into an integer"))?;
                    if !crate::config::CacheConfig::SAMPLES.contains(&n) {
                        return Err(failed(name, "argument must be between 1 and 2147483647 inclusive"));
                    }
                    cache.maxmemory_samples = n as usize
                }
                _ => {
                    let name = String::from_utf8_lossy(name);
                    return Err(format!("ERR Unknown option or number of arguments for CONFIG SET - '{name}'"));
                }
            }
        }
        self.core.config.usage = cache.maxmemory_policy.usage();
        self.costs.slower_than = limits.slowlog_log_slower_than;
        self.costs.set_max_len(limits.slowlog_max_len);
        self.cfg.file.cache = cache;
        self.cfg.file.limits = limits;
        self.cfg.file.requirepass = requirepass;
        if let Some(level) = loglevel {
            crate::util::set_log_level(level);
        }
        Ok(())
    }

    /// Every RESP connection as CLIENT LIST shows it, oldest first.
    fn client_rows(&self) -> Vec<ClientRow> {
        let mut rows: Vec<ClientRow> = self
            .sessions
            .iter()
            .filter_map(|(tok, s)| {
                let c = self.net.conns.get(tok)?;
                Some(ClientRow {
                    id: s.id,
                    addr: c.addr.to_string(),
                    laddr: c.sock.local_addr().map(|a| a.to_string()).unwrap_or_default(),
                    name: s.name.as_deref().map(|n| String::from_utf8_lossy(n).into_owned()).unwrap_or_default(),
                    age_s: c.created.elapsed().as_secs(),
                    idle_s: c.last_active.elapsed().as_secs(),
                    multi: s.multi.as_ref().map(|m| m.cmds.len()),
                    qbuf: c.rbuf.len(),
                    obl: c.wbuf.len(),
                    cmd: s.last_cmd.clone(),
                    resp: s.proto.number(),
                    user: s.user.clone(),
                })
            })
            .collect();
        rows.sort_by_key(|r| r.id);
        rows
    }

    /// CLIENT KILL: closes the connections the filter matches, after their
    /// pending replies, and answers how many (or OK, in the old form).
    fn client_kill(&mut self, tok: Token, f: KillFilter) {
        let me = self.sessions.get(&tok).map(|s| s.id);
        let rows = self.client_rows();
        let doomed: Vec<u64> = rows
            .iter()
            .filter(|r| {
                f.id.is_none_or(|id| r.id == id)
                    && f.addr.as_ref().is_none_or(|a| *a == r.addr)
                    && f.laddr.as_ref().is_none_or(|a| *a == r.laddr)
                    && f.user.as_ref().is_none_or(|u| *u == r.user)
                    && f.normal != Some(false)
                    && !(f.skip_me && Some(r.id) == me)
            })
            .map(|r| r.id)
            .collect();
        for (t, s) in &self.sessions {
            if doomed.contains(&s.id) {
                if let Some(c) = self.net.conns.get_mut(t) {
                    // After what it has to send, if anything.
                    c.closing = true;
                    c.dead |= c.wbuf.is_empty();
                }
            }
        }
        let c = self.net.conns.get_mut(&tok).expect("connection");
        match (f.old_form, doomed.len()) {
            (true, 0) => reply::error(&mut c.wbuf, "ERR No such client"),
            (true, _) => reply::ok(&mut c.wbuf),
            (false, n) => reply::int(&mut c.wbuf, n as i64),
        }
    }
}

/// Who serves each slot in this server's view (the core's target), a peer
/// it has lost its connection to counted as offline already: a cluster
/// client that found a server dead is sent to the member that will serve
/// its slots, rather than back to the dead one until the master's verdict.
/// A hint only: whichever server it reaches forwards by the core's view.
fn cluster_view<'a>(
    topo: &'a Topology,
    core: &Server,
    st: &ServerState,
    unreachable: &HashSet<ServerId>,
) -> ClusterView<'a> {
    let view = st.view();
    let online: Vec<bool> =
        topo.servers().map(|s| s == core.id || (view.is_online(s) && !unreachable.contains(&s))).collect();
    let up = online.clone();
    ClusterView::new(topo, core.id, online, move |slot| topo.serving_server(slot, |s| up[s.0 as usize]))
}

/// A done command's reply from its results.
fn encode_done(f: &InFlight, results: &[OpResult], proto: Proto, out: &mut Vec<u8>) {
    let queued = f.exec.as_ref().map(|cmds| f.guards + cmds.iter().map(|(_, n)| n).sum::<usize>());
    match (&f.exec, results) {
        // EXEC: one reply per queued command, in an array.
        (Some(cmds), [OpResult::Many(all)]) if Some(all.len()) == queued => {
            reply::array(out, cmds.len());
            let mut at = f.guards;
            for (kind, n) in cmds {
                commands::encode(*kind, &all[at..at + n], proto, out);
                at += n;
            }
        }
        // A watched key changed: nothing applied.
        (Some(_), [OpResult::Aborted]) => reply::null_array(out, proto),
        _ => commands::encode(f.kind, results, proto, out),
    }
}

/// How many keys a read's results found and how many they did not.
fn lookups(results: &[OpResult]) -> (u64, u64) {
    results.iter().fold((0, 0), |(found, missing), r| match r {
        OpResult::Value(Some(_)) => (found + 1, missing),
        OpResult::Value(None) => (found, missing + 1),
        OpResult::Values(vs) => {
            let n = vs.iter().filter(|v| v.is_some()).count() as u64;
            (found + n, missing + vs.len() as u64 - n)
        }
        OpResult::Many(rs) => {
            let (f, m) = lookups(rs);
            (found + f, missing + m)
        }
        _ => (found, missing),
    })
}

/// Redis's error for a write refused over `maxmemory`.
const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// Whether an operation may grow memory: any write but a deletion.
fn grows(op: &Op) -> bool {
    match op {
        Op::Del(_) | Op::Update(_, failgroup_model::Update::GetDel) => false,
        Op::Atomic(ops) => ops.iter().any(grows),
        op => op.is_write(),
    }
}
