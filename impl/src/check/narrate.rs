//! The world in the protocol's words: what an action does, what a message
//! says, what each node believes. Depends on the world alone, so the model
//! (naming its actions) and the trace printer both use it.

use super::world::{Action, Addr, ClusterState, Envelope, ModelMsg, ProcStatus, Timer};
use failgroup_model::*;
use std::fmt::Write as _;

fn key(k: &[u8]) -> String {
    String::from_utf8_lossy(k).into_owned()
}

pub fn op(o: &Op) -> String {
    match o {
        Op::Get(k) => format!("GET {}", key(k)),
        Op::Set(k, v) => format!("SET {} = {}", key(k), key(v)),
        Op::Del(k) => format!("DEL {}", key(k)),
        Op::Incr(k, d) => format!("INCRBY {} {d}", key(k)),
        Op::SetWith(k, v, o) => format!("SET {} = {} {o:?}", key(k), key(v)),
        Op::Expire(k, ms) => format!("PEXPIRE {} {ms}", key(k)),
        Op::Ttl(k) => format!("PTTL {}", key(k)),
        Op::Update(k, u) => format!("{u:?} {}", key(k)),
        Op::Inspect(k, i) => format!("{i:?} {}", key(k)),
        Op::Atomic(ops) => format!("MULTI {} EXEC", ops.iter().map(op).collect::<Vec<_>>().join("; ")),
        Op::Db(read) => format!("{read:?}"),
        Op::Guard(k, g) => format!("{g:?} {}", key(k)),
        Op::Keys(w) => format!("{w:?}"),
    }
}

fn result(r: &OpResult) -> String {
    match r {
        OpResult::Aborted => "aborted".into(),
        OpResult::Value(None) => "(nil)".into(),
        OpResult::Value(Some(v)) => key(v),
        OpResult::Ok => "OK".into(),
        OpResult::Deleted(n) => format!("deleted {n}"),
        OpResult::NotSet => "(nil): not set".into(),
        OpResult::Int(n) => format!("{n}"),
        OpResult::Err(e) => format!("error: {e}"),
        OpResult::Many(rs) => format!("[{}]", rs.iter().map(result).collect::<Vec<_>>().join(", ")),
        OpResult::Status(s) => s.clone(),
        OpResult::Keys { keys, next } => {
            format!("keys [{}], next {next}", keys.iter().map(|k| key(k)).collect::<Vec<_>>().join(", "))
        }
        OpResult::Values(vs) => {
            let each: Vec<String> = vs.iter().map(|v| v.as_ref().map_or("(nil)".into(), |v| key(v))).collect();
            format!("[{}]", each.join(", "))
        }
        OpResult::Pairs(ps) => {
            let each: Vec<String> = ps.iter().map(|(f, v)| format!("{}={}", key(f), key(v))).collect();
            format!("{{{}}}", each.join(", "))
        }
    }
}

fn store_op(o: &StoreOp) -> String {
    match o {
        StoreOp::Read { key: k } => format!("read {}", key(k)),
        StoreOp::Ttl { key: k } => format!("time to live of {}", key(k)),
        StoreOp::Inspect { key: k, what } => format!("{what:?} of {}", key(k)),
        StoreOp::Db(read) => format!("{read:?}"),
        StoreOp::Atomic { fence, ops, .. } => {
            let each: Vec<String> = ops.iter().map(op).collect();
            match fence {
                Some(e) => format!("atomically [{}] fenced by epoch {}", each.join("; "), e.0),
                None => format!("atomically [{}] unfenced", each.join("; ")),
            }
        }
        StoreOp::Write { fence, key: k, write, .. } => {
            let w = match write {
                Write::Set(v) => format!("set {} = {}", key(k), key(v)),
                Write::Del => format!("delete {}", key(k)),
                Write::Incr(d) => format!("incr {} by {d}", key(k)),
                Write::SetWith(v, o) => format!("set {} = {} {o:?}", key(k), key(v)),
                Write::Expire(ms) => format!("expire {} in {ms} ms", key(k)),
                Write::Update(u) => format!("{u:?} {}", key(k)),
            };
            match fence {
                Some(e) => format!("{w} fenced by epoch {}", e.0),
                None => format!("{w} unfenced"),
            }
        }
        StoreOp::Acquire { slots, .. } => {
            let each: Vec<String> = slots
                .iter()
                .map(|(s, stamp)| match stamp {
                    Some(t) => format!("{s} (watched at epoch {} renewal {})", t.epoch.0, t.renewals),
                    None => s.to_string(),
                })
                .collect();
            format!("acquire the right of {}", each.join(", "))
        }
        StoreOp::Renew { rights, .. } => format!("renew {}", rights_list(rights)),
        StoreOp::Release { rights } => format!("hand back {}", rights_list(rights)),
    }
}

fn rights_list(rights: &[(Slot, Epoch)]) -> String {
    rights.iter().map(|(s, e)| format!("{s}@epoch {}", e.0)).collect::<Vec<_>>().join(", ")
}

fn store_reply(r: &StoreReply) -> String {
    match r {
        StoreReply::Read { value, version, .. } => {
            format!("value {} (version {version})", result(&OpResult::Value(value.clone())))
        }
        StoreReply::Written { version, result: r, .. } => format!("written, {} (version {version})", result(r)),
        StoreReply::Rejected(e) => format!("rejected: {e}"),
        StoreReply::Ttl(ms) => format!("time to live {ms} ms"),
        StoreReply::Inspected(r) => result(r),
        StoreReply::Atomic { result: r, .. } => format!("applied atomically: {}", result(r)),
        StoreReply::Fenced => "FENCED: stale epoch".into(),
        StoreReply::Acquired { granted, held } => {
            let mut s = String::new();
            if !granted.is_empty() {
                write!(s, "granted {}", rights_list(granted)).unwrap();
            }
            for (slot, holder, t) in held {
                let sep = if s.is_empty() { "" } else { "; " };
                let (slot, holder) = match *slot == MASTER_SLOT {
                    true => ("the master's lease".to_string(), who(*holder)),
                    false => (slot.to_string(), holder.to_string()),
                };
                write!(s, "{sep}{slot} still held by {holder} (epoch {} renewal {})", t.epoch.0, t.renewals).unwrap();
            }
            s
        }
        StoreReply::Renewed { kept, lost } => format!("renewed [{}], lost [{}]", rights_list(kept), rights_list(lost)),
        StoreReply::Released => "released".into(),
        StoreReply::Failed(m) => format!("failed: {m}"),
    }
}

fn msg(m: &ModelMsg) -> String {
    match m {
        ModelMsg::Request { req, op: o } => format!("{} (request {}#{})", op(o), req.client.0, req.seq),
        ModelMsg::Response { result: r, .. } => format!("reply {}", result(r)),
        ModelMsg::Forward { fwd, .. } => format!("forward {} (hop {})", op(&fwd.op), fwd.hops),
        ModelMsg::ForwardResponse { result: r, .. } => format!("forwarded reply {}", result(r)),
        ModelMsg::Report(Report::ProbeAck { nonce }) => format!("probe answer #{nonce}"),
        ModelMsg::Report(Report::MaybeOffline { server }) => format!("\"{server} may be offline\""),
        ModelMsg::Report(Report::BackOnline { server }) => format!("\"{server} answered again\""),
        ModelMsg::Report(Report::Leaving { server }) => format!("\"{server} is leaving\""),
        ModelMsg::Master(MasterMsg::Probe { nonce }) => format!("probe #{nonce}"),
        ModelMsg::Master(MasterMsg::Notice { server, liveness, version }) => {
            format!(
                "notice: {server} is {} ({version})",
                if *liveness == Liveness::Online { "online" } else { "offline" }
            )
        }
        ModelMsg::Master(MasterMsg::Leaving { server, version }) => {
            format!("notice: {server} is offline, leaving ({version})")
        }
        ModelMsg::Master(MasterMsg::View { version, offline, topology }) => {
            let off: Vec<String> = offline.iter().map(|s| s.to_string()).collect();
            let t = topology.as_ref().map(|t| format!(", topology v{}", t.version())).unwrap_or_default();
            format!("view {version}: offline [{}]{t}", off.join(", "))
        }
        ModelMsg::Master(MasterMsg::Topology(t)) => {
            let owners: Vec<String> = (0..t.slot_count()).map(|s| t.owner(Slot(s)).to_string()).collect();
            format!("topology v{}: slot owners [{}]", t.version(), owners.join(", "))
        }
        ModelMsg::StoreCall { op: o, .. } => store_op(o),
        ModelMsg::StoreAnswer { reply, .. } => store_reply(reply),
    }
}

fn envelope(e: &Envelope) -> String {
    format!("{} -> {}: {}", e.from, e.to, msg(&e.msg))
}

/// One action, in the protocol's words.
pub fn describe(st: Option<&ClusterState>, action: &Action) -> String {
    let env = |from: &Addr, to: &Addr, i: usize| match st.and_then(|st| st.peek(*from, *to, i)) {
        Some(e) => envelope(&e),
        None => format!("{from} -> {to}"),
    };
    match action {
        Action::Deliver(from, to) => env(from, to, 0),
        Action::Drop(from, to, i) => format!("LOST {}", env(from, to, *i)),
        Action::Duplicate(from, to, i) => format!("DUPLICATED {}", env(from, to, *i)),
        Action::Delay(from, Addr::Store) => format!("the store is slow: held back {}", env(from, &Addr::Store, 0)),
        Action::Delay(from, to) => format!("the network is slow: held back a tick {}", env(from, to, 0)),
        Action::FailStore(from, false) => {
            format!("the store FAILS before taking effect: {}", env(from, &Addr::Store, 0))
        }
        Action::FailStore(from, true) => {
            format!("the store takes effect, then its answer is LOST: {}", env(from, &Addr::Store, 0))
        }
        Action::Tick => "clock ticks".into(),
        Action::Lag(s) => format!("clock ticks; {s}'s clock stands still (drift)"),
        Action::CatchUp(s) => format!("{s}'s clock catches up one tick"),
        Action::Fire(Timer::Server(s, t)) => match t {
            ServerTimer::Renew => format!("{s}: time to renew its rights"),
            ServerTimer::Retry => format!("{s}: time to retry waiting requests"),
            ServerTimer::ForwardTimeout(_) => format!("{s}: a forwarded request timed out"),
            ServerTimer::Watch => format!("{s}: rights watched for a lease may be taken"),
            ServerTimer::HandOver => format!("{s}: time to release its next batch of rights"),
        },
        Action::Fire(Timer::Twin(t)) => format!("the first process of the replaced server: timer {t:?}"),
        Action::Fire(Timer::Master(t)) => match t {
            MasterTimer::ProbeTimeout(s) => format!("master: probe of {s} unanswered"),
            MasterTimer::Reprobe(s) => format!("master: time to re-check {s}"),
            MasterTimer::Sync => "master: time to re-send its view".into(),
        },
        Action::Fire(Timer::Client(c, _)) => format!("client{c}: a request timed out"),
        Action::Fire(Timer::Lease(i)) => format!("master process {i}: renews the lease, or asks for it"),
        Action::Invoke(c) => format!("client{c} invokes its next operation"),
        Action::Crash(s) => format!("{s} CRASHES (its memory is lost)"),
        Action::Drain(s) => format!("{s} is told to DRAIN (leave gracefully)"),
        Action::Exit(s) => format!("{s}, drained, exits"),
        Action::Move(slot, to) => format!("the operator moves slot {} to {to}", slot.0),
        Action::Restart(s) => format!("{s} restarts"),
        Action::Pause(s) => format!("{s} PAUSES (alive but silent)"),
        Action::Resume(s) => format!("{s} resumes"),
        Action::Suspend(s) => format!("{s}'s host is SUSPENDED (paused, its clock stands still)"),
        Action::Replace(s) => format!("a SECOND PROCESS of {s} starts at its address (the first is paused)"),
        Action::ResumeTwin => "the first process of the replaced server resumes".into(),
        Action::CatchUpTwin => "the first process's clock catches up one tick".into(),
        Action::StepStoreClock => "the store's clock STEPS forward by a lease".into(),
        Action::Evict(s, _, key) => format!("{s} EVICTS its cached copy of {}", String::from_utf8_lossy(key)),
        Action::CrashMaster => "master CRASHES".into(),
        Action::RestartMaster => "master restarts (with standbys: as a standby)".into(),
        Action::Cut(a, b) => format!("link {a} <-> {b} CUT"),
        Action::Heal => "link healed".into(),
    }
}

/// What each node believes, one line per node.
pub fn beliefs(st: &ClusterState) -> Vec<(String, String)> {
    let mut out = Vec::new();
    out.push((
        "master".into(),
        match &st.master {
            None => "down".into(),
            Some(m) => {
                let off: Vec<String> = m.offline().iter().map(|s| s.to_string()).collect();
                format!("offline [{}] at {}", off.join(", "), m.version)
            }
        },
    ));
    for (i, n) in st.servers.iter().enumerate() {
        let s = ServerId(i as u16);
        let b = match n.status {
            ProcStatus::Crashed => "crashed".into(),
            status => {
                let rights: Vec<String> = n
                    .state
                    .rights
                    .iter()
                    .map(|(slot, r)| {
                        let valid = if n.state.serves(*slot, Time(n.clock)) { "" } else { " (lapsed)" };
                        format!("{slot}@epoch {}{valid}", r.epoch.0)
                    })
                    .collect();
                let cache: Vec<String> = n
                    .state
                    .cache
                    .values()
                    .flat_map(|m| m.iter())
                    .map(|(k, e)| {
                        format!("{}={}", key(&k.key), result(&OpResult::Value(e.value.as_deref().map(<[u8]>::to_vec))))
                    })
                    .collect();
                let off: Vec<String> = n.state.view.offline().map(|s| s.to_string()).collect();
                let lag = if n.clock == st.now { String::new() } else { format!(", clock {} (lags)", n.clock) };
                format!(
                    "{}serves [{}], cache [{}], sees offline [{}]{lag}",
                    match status {
                        ProcStatus::Paused => "PAUSED, ",
                        ProcStatus::Suspended => "SUSPENDED, ",
                        _ => "",
                    },
                    rights.join(", "),
                    cache.join(", "),
                    off.join(", "),
                )
            }
        };
        out.push((s.to_string(), b));
    }
    for (c, n) in st.clients.iter().enumerate() {
        let modes: Vec<String> = n.state.modes.keys().map(|s| s.to_string()).collect();
        out.push((format!("client{c}"), format!("failover mode for [{}]", modes.join(", "))));
    }
    out.push(("store".into(), {
        let data: Vec<String> = st
            .store
            .data
            .iter()
            .map(|(k, (v, ..))| match v {
                Data::Str(v) => format!("{}={}", key(k), key(v)),
                Data::Hash(h) => format!("{}={}", key(k), result(&OpResult::Pairs(h.clone()))),
            })
            .collect();
        let rights: Vec<String> = st
            .store
            .rights
            .iter()
            .map(|(s, r)| {
                let state = if r.released { "released" } else { "held" };
                let (who, inc, epoch, renewals) = (who(r.holder.server), r.holder.incarnation, r.epoch.0, r.renewals);
                let s = if *s == MASTER_SLOT { "the master's lease".to_string() } else { s.to_string() };
                format!("{s}: {state} by {who} (run {inc}) epoch {epoch} renewal {renewals}")
            })
            .collect();
        format!("[{}], rights [{}]", data.join(", "), rights.join("; "))
    }));
    out
}

/// A rights holder in the model's words: a server, or master process `i`
/// (the lease's holders, `ServerId(u16::MAX - 1 - i)`).
fn who(s: ServerId) -> String {
    match u16::MAX - 1 - s.0.min(u16::MAX - 1) {
        i if i < 16 => format!("master process {i}"),
        _ => s.to_string(),
    }
}
