//! The fault suite on real processes. Concurrent clients (two
//! `failgroup::Client`s and three plain RESP connections, each entering
//! through a server of its own and moving to the next when that server
//! dies) run every data command (GET, SET, SET NX/XX/PX, DEL, INCRBY,
//! PEXPIRE, PTTL) on three keys and INCR/GET on a counter, and record every
//! invocation and completion, while a nemesis, on a schedule drawn from a
//! printed seed, kills servers (`kill -9`, the RESP clients' entry servers
//! among them), pauses one past its lease (`SIGSTOP`/`SIGCONT`, the gray
//! failure), restarts them, kills and restarts the master, takes two
//! servers of the group down at once and holds the database's write lock
//! (a slow store). Then:
//!
//! - each key's history, the counter's too, must be linearizable in real
//!   time against the key-value specification the model checker uses
//!   (`failgroup_tests::history`);
//! - every acknowledged write is in the database (its request id is among
//!   the store's applied writes), and the counter equals the acknowledged
//!   increments (plus at most those whose outcome is unknown);
//! - no client sees an error reply: one member of the group is always up;
//!   a RESP connection is lost only with its entry server (at most once per
//!   kill of that server), and its operation then counts as in flight.
//!
//! `FAILGROUP_FAULT_SEED` replays a schedule, `FAILGROUP_FAULT_ROUNDS` makes
//! it longer (default 1 round of every fault kind), `FAILGROUP_FAULT_MODE=available`
//! runs it in `available` mode and reports the keys whose history is not
//! linearizable instead of failing.

use failgroup::resp::Reply;
use failgroup_model::{ErrorKind, Op, OpResult, SetCond, SetOpts, Update};
use failgroup_tests::history::{self, Event, What};
use failgroup_tests::{Cluster, Resp, TestStore};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Owned by s2, s3 and s1 (a key of every server): every command.
const KEYS: [&str; 3] = ["fa", "fb", "fd"];
/// Owned by s1: INCR and GET only, so it counts the acknowledged increments.
const COUNTER: &str = "fh";
/// The counter's number in the history (after `KEYS`).
const COUNTER_KEY: usize = KEYS.len();
/// The time to live SET PX and PEXPIRE give: longer than any run.
const TTL_MS: i64 = 600_000;
/// The largest step of a server's wall clock the clock nemesis makes.
const MAX_CLOCK_STEP_MS: i64 = 120_000;

/// A PTTL answer as the history records it. Keys expire by the store's
/// clock, which for SQLite is the clock of the server running the
/// transaction: a wall-clock step moves expiries (specs/properties.md,
/// "steps of any clock"), so a time to live set on a server whose clock was
/// ahead reads up to a step longer elsewhere. Within that bound it is
/// recorded as the time set; beyond it, as it came (and fails the check).
fn pttl_seen(op: &Op, ret: OpResult) -> OpResult {
    match (op, ret) {
        (Op::Ttl(_), OpResult::Int(r)) if r > TTL_MS && r <= TTL_MS + MAX_CLOCK_STEP_MS => OpResult::Int(TTL_MS),
        (_, ret) => ret,
    }
}

#[derive(Default)]
struct Record {
    events: Vec<Event>,
    /// Error replies and library client errors: none is allowed.
    errors: Vec<String>,
    /// RESP connections lost, per (worker, entry server).
    losses: BTreeMap<(u64, String), u64>,
    /// Acknowledged writes of library clients: (client id, request seq).
    acked_writes: Vec<(u64, u64)>,
    acked_incrs: i64,
    /// Increments of the counter whose outcome is unknown.
    unknown_incrs: i64,
    ops: u64,
}

/// splitmix64: the schedule's random numbers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The `n`-th operation of worker `id` and its key's number: on the
/// counter INCR (15%) or GET (5%); on the other keys every command, with a
/// value unique to the worker and the operation (decimal, so INCRBY
/// applies to it).
///
/// A plain RESP client (`resp`) loses its operation with its entry server,
/// and each lost INCRBY or PEXPIRE multiplies the ways a history can be
/// linearized (every sum, every time to live of the lost ones): those
/// clients INCR the counter only, and read where a library client would
/// INCRBY or PEXPIRE another key; they send a transaction (MULTI SET GET
/// EXEC) in place of one SET and SET XX GET in place of SET XX, and library
/// clients GETDEL in place of DEL.
fn draw(rng: &mut Rng, id: u64, n: u64, resp: bool) -> (usize, Op) {
    let c = rng.below(20);
    if c < 4 {
        let k = COUNTER.as_bytes().to_vec();
        return (COUNTER_KEY, if c < 3 { Op::Incr(k, 1) } else { Op::Get(k) });
    }
    let key = rng.below(KEYS.len() as u64) as usize;
    let k = KEYS[key].as_bytes().to_vec();
    let v = ((id + 1) * 1_000_000 + n).to_string().into_bytes();
    let with = |ttl_ms, cond| SetOpts { ttl_ms, cond };
    let op = match rng.below(16) {
        0..=4 => Op::Get(k),
        // MULTI SET GET EXEC: a transaction, one operation, in place of a
        // SET (a RESP client's lost writes make a history ambiguous: the
        // workload keeps as many as it had).
        7 if resp => Op::Atomic(vec![Op::Set(k.clone(), v), Op::Get(k)]),
        5..=7 => Op::Set(k, v),
        8 => Op::SetWith(k, v, with(None, SetCond::IfAbsent)),
        9 if resp => {
            Op::Update(k, Update::Set { value: v, cond: SetCond::IfPresent, expiry: None, keep_ttl: false, get: true })
        }
        9 => Op::SetWith(k, v, with(None, SetCond::IfPresent)),
        10 => Op::SetWith(k, v, with(Some(TTL_MS as u64), SetCond::Always)),
        // A lost GETDEL may delete at any later moment: library clients,
        // which lose no operation to a dead entry server, send it in place
        // of DEL (the workload's writes stay as many as they were).
        11 if !resp => Op::Update(k, Update::GetDel),
        11 => Op::Del(k),
        12 if resp => Op::Get(k),
        12 => Op::Incr(k, 1 + rng.below(5) as i64),
        13 if resp => Op::Ttl(k),
        13 => Op::Expire(k, TTL_MS),
        _ => Op::Ttl(k),
    };
    (key, op)
}

/// The RESP commands of an operation: one, or MULTI, its commands and EXEC.
fn resp_commands(op: &Op) -> Vec<Vec<Vec<u8>>> {
    match op {
        Op::Atomic(ops) => std::iter::once(vec![b"MULTI".to_vec()])
            .chain(ops.iter().map(resp_args))
            .chain(std::iter::once(vec![b"EXEC".to_vec()]))
            .collect(),
        op => vec![resp_args(op)],
    }
}

/// The RESP command of a one-command operation.
fn resp_args(op: &Op) -> Vec<Vec<u8>> {
    let w = |s: &str| s.as_bytes().to_vec();
    match op {
        Op::Get(k) => vec![w("GET"), k.clone()],
        Op::Set(k, v) => vec![w("SET"), k.clone(), v.clone()],
        Op::SetWith(k, v, o) => {
            let mut a = vec![w("SET"), k.clone(), v.clone()];
            if let Some(ms) = o.ttl_ms {
                a.extend([w("PX"), ms.to_string().into_bytes()]);
            }
            match o.cond {
                SetCond::IfAbsent => a.push(w("NX")),
                SetCond::IfPresent => a.push(w("XX")),
                SetCond::Always => {}
            }
            a
        }
        Op::Del(k) => vec![w("DEL"), k.clone()],
        Op::Incr(k, d) => vec![w("INCRBY"), k.clone(), d.to_string().into_bytes()],
        Op::Expire(k, ms) => vec![w("PEXPIRE"), k.clone(), ms.to_string().into_bytes()],
        Op::Ttl(k) => vec![w("PTTL"), k.clone()],
        Op::Update(k, Update::GetDel) => vec![w("GETDEL"), k.clone()],
        Op::Update(k, Update::Set { value, cond: SetCond::IfPresent, get: true, .. }) => {
            vec![w("SET"), k.clone(), value.clone(), w("XX"), w("GET")]
        }
        other => panic!("the workload draws no {other:?}"),
    }
}

/// A RESP reply as the operation's result; `Err` for an error reply or
/// one of the wrong type.
fn resp_result(op: &Op, reply: Reply) -> Result<OpResult, String> {
    match (op, reply) {
        (Op::Get(_), Reply::Bulk(v)) => Ok(OpResult::Value(v)),
        (Op::Set(..) | Op::SetWith(..), Reply::Simple(s)) if s == "OK" => Ok(OpResult::Ok),
        (Op::SetWith(..), Reply::Bulk(None)) => Ok(OpResult::NotSet),
        (Op::Del(_), Reply::Int(n)) => Ok(OpResult::Deleted(n as u8)),
        (Op::Incr(..) | Op::Expire(..) | Op::Ttl(_), Reply::Int(n)) => Ok(OpResult::Int(n)),
        (Op::Incr(..), Reply::Error(e)) if e == ErrorKind::NotInteger.to_string() => {
            Ok(OpResult::Err(ErrorKind::NotInteger))
        }
        (Op::Update(..), Reply::Bulk(v)) => Ok(OpResult::Value(v)),
        (Op::Atomic(ops), Reply::Array(Some(parts))) if parts.len() == ops.len() => {
            ops.iter().zip(parts).map(|(o, r)| resp_result(o, r)).collect::<Result<_, _>>().map(OpResult::Many)
        }
        (_, other) => Err(format!("{other:?}")),
    }
}

/// What one worker talks through: a library client, or a RESP connection
/// entering through `entries[at]` (the next entry once that one is lost).
enum Conn {
    Lib(Box<failgroup::Client>),
    Resp { conn: Option<Resp>, entries: Vec<(String, String)>, at: usize },
}

enum Outcome {
    Done(OpResult),
    /// An error reply: the operation may or may not have taken effect.
    Error(String),
    /// The connection to this entry server was lost.
    Lost(String),
}

fn run_op(conn: &mut Conn, op: &Op) -> Outcome {
    match conn {
        Conn::Lib(c) => match c.run(op.clone()) {
            Ok(r) => Outcome::Done(r),
            Err(failgroup::client::Error::Cluster(ErrorKind::NotInteger)) => {
                Outcome::Done(OpResult::Err(ErrorKind::NotInteger))
            }
            Err(e) => Outcome::Error(e.to_string()),
        },
        Conn::Resp { conn, entries, at } => {
            // A dead entry refuses at once; try each entry for at most 10 s.
            for _ in 0..100 {
                if conn.is_some() {
                    break;
                }
                match Resp::try_connect(&entries[*at].1) {
                    Ok(c) => *conn = Some(c),
                    Err(_) => {
                        *at = (*at + 1) % entries.len();
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
            let Some(c) = conn.as_mut() else { return Outcome::Error("no entry server accepts".into()) };
            // Every reply before the last (MULTI's OK, each QUEUED) must
            // accept; the last one answers the operation.
            let mut last = Ok(Reply::Null);
            for args in resp_commands(op) {
                let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                if let Ok(Reply::Error(e)) = &last {
                    // Refused inside a transaction: drop the connection, so
                    // the next operation does not land in its queue.
                    *conn = None;
                    return Outcome::Error(format!("in a transaction: {e}"));
                }
                last = c.try_cmd(&args);
                if last.is_err() {
                    break;
                }
            }
            match last {
                Ok(reply) => resp_result(op, reply).map_or_else(Outcome::Error, Outcome::Done),
                Err(_) => {
                    *conn = None;
                    let lost = entries[*at].0.clone();
                    *at = (*at + 1) % entries.len();
                    Outcome::Lost(lost)
                }
            }
        }
    }
}

fn worker(id: u64, mut conn: Conn, seed: u64, stop: Arc<AtomicBool>, rec: Arc<Mutex<Record>>) {
    let mut rng = Rng(seed ^ (id << 32));
    let mut generation = 0u16;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        // A thread whose operation was abandoned is not used again.
        let thread = id as u16 * 10_000 + generation;
        let (key, op) = draw(&mut rng, id, n, matches!(conn, Conn::Resp { .. }));
        let is_incr = key == COUNTER_KEY && matches!(op, Op::Incr(..));
        let is_write = op.is_write();
        rec.lock().unwrap().events.push(Event { at: Instant::now(), thread, key, what: What::Invoke(op.clone()) });
        let outcome = run_op(&mut conn, &op);
        let mut r = rec.lock().unwrap();
        r.ops += 1;
        let what = match outcome {
            Outcome::Done(ret) => {
                r.acked_incrs += is_incr as i64;
                if let (Conn::Lib(c), true) = (&conn, is_write) {
                    r.acked_writes.push((c.id().0, c.last_seq()));
                }
                What::Return(pttl_seen(&op, ret))
            }
            Outcome::Error(e) => {
                r.errors.push(format!("worker {id} {op:?}: {e}"));
                What::Abandon
            }
            Outcome::Lost(server) => {
                *r.losses.entry((id, server)).or_default() += 1;
                What::Abandon
            }
        };
        if matches!(what, What::Abandon) {
            generation += 1;
            r.unknown_incrs += is_incr as i64;
        }
        r.events.push(Event { at: Instant::now(), thread, key, what });
        drop(r);
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs every server under libfaketime, its wall clock read from a file the
/// clock nemesis writes (`clock-sN` in the cluster's directory). Returns
/// false, saying so, where libfaketime is missing.
fn steppable_clocks(cluster: &mut Cluster) -> bool {
    let Some(lib) = failgroup_tests::libfaketime() else {
        eprintln!("clock nemesis SKIPPED: libfaketime is not installed (apt-get install faketime)");
        return false;
    };
    for s in ["s1", "s2", "s3"] {
        let file = cluster.dir.join(format!("clock-{s}"));
        std::fs::write(&file, "+0").expect("clock file");
        let file = file.display().to_string();
        cluster.set_server_env(
            s,
            &[
                ("LD_PRELOAD", lib.as_str()),
                ("FAKETIME_TIMESTAMP_FILE", file.as_str()),
                ("FAKETIME_CACHE_DURATION", "1"),
                // The monotonic clocks are the host's: they never step.
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ],
        );
        cluster.kill9(s);
        cluster.restart(s);
    }
    true
}

/// The faults, each bounded in time, on any server (the RESP workers'
/// entry servers too); at least one server stays up. Returns how often each
/// server was stopped (`kill -9`, or a drain): each stop may close a RESP
/// worker's connection once.
fn nemesis(cluster: &mut Cluster, rng: &mut Rng, rounds: u64, t0: Instant, clocks: bool) -> BTreeMap<String, u64> {
    const SERVERS: [&str; 3] = ["s1", "s2", "s3"];
    let pick = |rng: &mut Rng| SERVERS[rng.below(3) as usize];
    // Two different servers.
    let pair = |rng: &mut Rng| {
        let a = rng.below(3) as usize;
        (SERVERS[a], SERVERS[(a + 1 + rng.below(2) as usize) % 3])
    };
    let mut kills: BTreeMap<String, u64> = BTreeMap::new();
    for round in 0..rounds {
        let mut kinds: Vec<u64> = (0..9).filter(|k| clocks || *k != 5).collect();
        for i in (1..kinds.len()).rev() {
            kinds.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for kind in kinds {
            let settle = Duration::from_millis(2000 + rng.below(1000));
            match kind {
                0 => {
                    let s = pick(rng);
                    eprintln!("{:?} round {round}: kill -9 {s}, restart", t0.elapsed());
                    cluster.kill9(s);
                    *kills.entry(s.into()).or_default() += 1;
                    std::thread::sleep(Duration::from_millis(2500 + rng.below(1500)));
                    cluster.restart(s);
                }
                1 => {
                    let s = pick(rng);
                    let pause = Duration::from_millis(3000 + rng.below(1500)); // > the lease (600 ms by default)
                    eprintln!("{:?} round {round}: SIGSTOP {s} for {pause:?}", t0.elapsed());
                    cluster.signal(s, "STOP");
                    std::thread::sleep(pause);
                    cluster.signal(s, "CONT");
                }
                2 => {
                    eprintln!("{:?} round {round}: kill -9 the master, restart", t0.elapsed());
                    cluster.kill_master();
                    std::thread::sleep(Duration::from_millis(1500 + rng.below(1500)));
                    cluster.start_master();
                }
                3 => {
                    let (a, b) = pair(rng);
                    eprintln!("{:?} round {round}: kill -9 {a} and {b}, restart both", t0.elapsed());
                    cluster.kill9(a);
                    cluster.kill9(b);
                    *kills.entry(a.into()).or_default() += 1;
                    *kills.entry(b.into()).or_default() += 1;
                    std::thread::sleep(Duration::from_millis(3000 + rng.below(1500)));
                    cluster.restart(a);
                    cluster.restart(b);
                }
                4 => {
                    let hold = Duration::from_millis(500 + rng.below(500));
                    eprintln!("{:?} round {round}: slow store, write lock held {hold:?}", t0.elapsed());
                    cluster.store.hold_write_lock(&cluster.dir, hold);
                }
                5 => {
                    // Hole 2: leases once expired on the store's clock. Steps
                    // stay within the store's memory of applied writes (10 min).
                    let s = ["s1", "s2", "s3"][rng.below(3) as usize];
                    let step = 20 + rng.below(MAX_CLOCK_STEP_MS as u64 / 1000 - 20) as i64;
                    let step = if rng.below(2) == 0 { step } else { -step };
                    let hold = Duration::from_millis(2000 + rng.below(2000));
                    eprintln!("{:?} round {round}: {s}'s wall clock steps {step:+} s for {hold:?}", t0.elapsed());
                    let file = cluster.dir.join(format!("clock-{s}"));
                    std::fs::write(&file, format!("{step:+}")).expect("clock file");
                    std::thread::sleep(hold);
                    std::fs::write(&file, "+0").expect("clock file");
                }
                6 => {
                    // Hole 1: a server restarts while what it forwarded waits
                    // at a paused peer.
                    let (paused, restarted) = pair(rng);
                    eprintln!(
                        "{:?} round {round}: SIGSTOP {paused}, kill -9 {restarted} and restart, SIGCONT",
                        t0.elapsed()
                    );
                    cluster.signal(paused, "STOP");
                    std::thread::sleep(Duration::from_millis(300 + rng.below(500)));
                    cluster.kill9(restarted);
                    *kills.entry(restarted.into()).or_default() += 1;
                    cluster.restart(restarted);
                    std::thread::sleep(Duration::from_millis(300 + rng.below(500)));
                    cluster.signal(paused, "CONT");
                }
                8 => {
                    let s = pick(rng);
                    eprintln!("{:?} round {round}: SIGTERM {s} (a drain), restart", t0.elapsed());
                    cluster.drain(s);
                    *kills.entry(s.into()).or_default() += 1;
                    std::thread::sleep(Duration::from_millis(500 + rng.below(1000)));
                    cluster.restart(s);
                }
                _ => {
                    // Hole 3: a second process of a paused server's identity
                    // (a copied config with another address) runs a while.
                    let s = pick(rng);
                    let twin_addr = format!("127.0.0.1:{}", cluster.port + 50);
                    let twin_config = cluster.twin_config(s, &twin_addr);
                    let run = Duration::from_millis(2500 + rng.below(1000));
                    eprintln!("{:?} round {round}: SIGSTOP {s}, a second {s} on {twin_addr} for {run:?}", t0.elapsed());
                    cluster.signal(s, "STOP");
                    let twin = cluster.spawn_server(s, &twin_config, &twin_addr, &[]);
                    std::thread::sleep(run);
                    cluster.kill_pid(twin);
                    cluster.signal(s, "CONT");
                }
            }
            std::thread::sleep(settle);
        }
    }
    kills
}

/// The workload: two library clients and a RESP connection through each
/// of `entries` (in turn, from each one's own), recording into one
/// `Record` until stopped.
struct Workload {
    stop: Arc<AtomicBool>,
    rec: Arc<Mutex<Record>>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Workload {
    /// The clients run in network namespace `netns` if given (a host of
    /// their own).
    fn start(cluster: &Cluster, seed: u64, entries: &[&str], netns: Option<&str>) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let rec = Arc::new(Mutex::new(Record::default()));
        let entries: Vec<(String, String)> = entries.iter().map(|s| (s.to_string(), cluster.addr(s))).collect();
        let mut handles = Vec::new();
        for id in 0..2 + entries.len() as u64 {
            let (stop, rec, netns) = (stop.clone(), rec.clone(), netns.map(str::to_string));
            let (lib_entry, mut mine) = (entries[0].1.clone(), entries.clone());
            handles.push(std::thread::spawn(move || {
                if let Some(ns) = netns {
                    failgroup_tests::enter_netns(&ns);
                }
                let conn = if id < 2 {
                    Conn::Lib(Box::new(failgroup::Client::connect(&lib_entry).expect("client")))
                } else {
                    mine.rotate_left(id as usize - 2);
                    let first = Resp::connect(&mine[0].1);
                    Conn::Resp { conn: Some(first), entries: mine, at: 0 }
                };
                worker(id, conn, seed, stop, rec)
            }));
        }
        Workload { stop, rec, handles }
    }

    /// Stops the workers and closes each key's history with a final read,
    /// once everything has settled. Returns the record and the counter.
    fn finish(self, cluster: &Cluster) -> (Record, i64) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            h.join().expect("a worker panicked");
        }
        let mut r = std::mem::take(&mut *self.rec.lock().unwrap());
        let mut last = failgroup::Client::connect(&cluster.addr("s3")).expect("client");
        let mut counter = 0;
        for (key, name) in KEYS.iter().chain([&COUNTER]).enumerate() {
            let op = Op::Get(name.as_bytes().to_vec());
            let thread = 60_000;
            r.events.push(Event { at: Instant::now(), thread, key, what: What::Invoke(op.clone()) });
            let v = last.run(op).expect("the final read");
            if let (COUNTER_KEY, OpResult::Value(Some(v))) = (key, &v) {
                counter = String::from_utf8_lossy(v).parse().expect("the counter is a number");
            }
            r.events.push(Event { at: Instant::now(), thread, key, what: What::Return(v) });
        }
        (r, counter)
    }
}

/// Acknowledged library writes whose request id the store has not applied.
fn missing_writes(cluster: &Cluster, acked: &[(u64, u64)]) -> usize {
    acked.iter().filter(|(client, seq)| !cluster.store.applied(&cluster.dir, *client, *seq)).count()
}

/// The keys whose history is not linearizable, each printed with the
/// events that led to it.
fn violations(r: &Record) -> Vec<&'static str> {
    let t = Instant::now();
    let found = history::check(&r.events);
    eprintln!("history of {} events checked in {:?}", r.events.len(), t.elapsed());
    found
        .into_iter()
        .map(|v| {
            let name = KEYS.iter().chain([&COUNTER]).nth(v.key).copied().expect("a key");
            eprintln!("{name}: {:?} from event {}:\n{}", v.kind, v.event, history::describe(&r.events, &v, 24));
            name
        })
        .collect()
}

#[test]
fn faults_cause_no_stale_reads_no_lost_writes_and_no_errors() {
    let seed: u64 = std::env::var("FAILGROUP_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| failgroup::util::random_u64() % 1_000_000);
    let rounds: u64 = std::env::var("FAILGROUP_FAULT_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let mode = std::env::var("FAILGROUP_FAULT_MODE").unwrap_or_else(|_| "linearizable".into());
    eprintln!("fault suite: seed {seed} (FAILGROUP_FAULT_SEED={seed} replays it), {rounds} round(s), mode {mode}");
    // A second process of a server's name keeps its slots while it renews,
    // and the first takes them back a lease after it stops: requests may
    // wait longer than the 10 s default (one TRYAGAIN seen on PostgreSQL,
    // seed 169760), so this run lets them wait 20 s (below the history's
    // bound on how long a request stays in flight). The library clients'
    // failover period is 1 s, below the nemesis's spacing of faults: with
    // the default 5 s, faults of two servers within it can put every member
    // of the group in a client's failover mode, and the client answers
    // CLUSTERDOWN (the known limit in docs/DEPLOYMENT.md; seed 364312 failed
    // so with 2-8 errors, on the code of 0038dbc as on today's).
    let timing = "[timing]\nrequest_timeout = 20000\nfailover_period = 1000\n";
    let mut cluster = Cluster::with_config(22800, 3, &format!("mode = \"{mode}\""), timing);
    let clocks = steppable_clocks(&mut cluster);
    let load = Workload::start(&cluster, seed, &["s1", "s2", "s3"], None);
    std::thread::sleep(Duration::from_secs(1));
    let mut rng = Rng(seed);
    let start = Instant::now();
    let kills = nemesis(&mut cluster, &mut rng, rounds, start, clocks);
    let (r, counter) = load.finish(&cluster);
    eprintln!("workload finished {:?} after the first fault", start.elapsed());
    if mode == "available" {
        let bad = violations(&r);
        eprintln!(
            "available mode: keys not linearizable {bad:?}, {} operations, {} client-visible errors (seed {seed})",
            r.ops,
            r.errors.len()
        );
        return;
    }
    eprintln!("{} operations in {:?}, kills {kills:?}", r.ops, start.elapsed());
    assert_checks_hold(&format!("seed {seed}"), &cluster, &r, counter, &kills);
}

/// A rolling restart under load: each server in turn is stopped with
/// SIGTERM (it drains: hands its slots to its group's failover servers,
/// closes its client connections as their commands are answered, exits)
/// and started again. No client sees an error, every key's history is
/// linearizable, no acknowledged write is lost; and no operation waits
/// for a lease to lapse: with a 3 s lease, a server that exits without
/// handing its slots over (`limits.drain_timeout = 0`) stalls its keys for
/// more than 3 s, and this test fails. The drains are 1.5 s apart, longer
/// than the library clients' `failover_period` here (1 s): a client that
/// has every member of a group in failover mode fails an operation whose
/// failover servers all refuse with CLUSTERDOWN (docs/BENCHMARKS.md, "A
/// rolling restart"; with the default 5 s period this test failed so in
/// two runs of three).
#[test]
fn a_rolling_restart_by_drains_loses_nothing_and_waits_for_no_lease() {
    let timing = "[timing]\nlease = 3000\nmax_drift = 100\nfailover_period = 1000\n";
    let mut cluster = Cluster::with_config(22900, 3, "", timing);
    // A rolling restart of a cluster that serves: not one still taking
    // its rights at start (which on PostgreSQL here took over a second,
    // and the first drain then met it).
    cluster.wait_serving_own_slots();
    let seed = failgroup::util::random_u64() % 1_000_000;
    let load = Workload::start(&cluster, seed, &["s1", "s2", "s3"], None);
    std::thread::sleep(Duration::from_secs(1));
    let mut stops = BTreeMap::new();
    for s in ["s1", "s2", "s3"] {
        cluster.drain(s);
        *stops.entry(s.to_string()).or_default() += 1;
        cluster.restart(s);
        std::thread::sleep(Duration::from_millis(1500));
    }
    let (r, counter) = load.finish(&cluster);
    // The longest operation: from its invocation to its thread's next event.
    let mut invoked: BTreeMap<u16, Instant> = BTreeMap::new();
    let (mut longest, mut which) = (Duration::ZERO, String::new());
    let start = r.events.first().map(|e| e.at);
    for e in &r.events {
        match &e.what {
            What::Invoke(_) => {
                invoked.insert(e.thread, e.at);
            }
            outcome => {
                if let Some(t) = invoked.remove(&e.thread) {
                    if e.at.duration_since(t) > longest {
                        longest = e.at.duration_since(t);
                        let from = start.map(|s| t.duration_since(s)).unwrap_or_default();
                        which = format!("thread {} key {} from {from:?} into the run: {outcome:?}", e.thread, e.key);
                    }
                }
            }
        }
    }
    eprintln!("rolling restart: longest operation {longest:?} ({which})");
    assert!(longest < Duration::from_millis(1500), "an operation waited {longest:?} ({which}): a lease ran out");
    assert_checks_hold(&format!("rolling restart, seed {seed}"), &cluster, &r, counter, &stops);
}

/// Network namespaces joined by a bridge: node `i` is `10.79.N.(10+i)`,
/// the bridge (this process's side) `10.79.N.1`; N tells tests apart.
struct Net {
    tag: String,
    subnet: u8,
    nodes: usize,
}

fn ip(args: &str) -> Result<(), String> {
    let out = std::process::Command::new("ip").args(args.split(' ')).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {args}: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Net {
    fn create(nodes: usize, subnet: u8) -> Result<Net, String> {
        let tag = format!("fg{}x{subnet}", std::process::id() % 100_000);
        let net = Net { tag: tag.clone(), subnet, nodes: 0 };
        ip(&format!("link add {tag}br type bridge"))?;
        ip(&format!("link set {tag}br up"))?;
        ip(&format!("addr add 10.79.{subnet}.1/24 dev {tag}br"))?;
        let mut net = net;
        for i in 0..nodes {
            let ns = format!("{tag}n{i}");
            ip(&format!("netns add {ns}"))?;
            net.nodes = i + 1;
            ip(&format!("link add {tag}v{i} type veth peer name {tag}p{i}"))?;
            ip(&format!("link set {tag}p{i} netns {ns}"))?;
            ip(&format!("link set {tag}v{i} master {tag}br"))?;
            ip(&format!("link set {tag}v{i} up"))?;
            ip(&format!("netns exec {ns} ip addr add {}/24 dev {tag}p{i}", net.host(i)))?;
            ip(&format!("netns exec {ns} ip link set {tag}p{i} up"))?;
            ip(&format!("netns exec {ns} ip link set lo up"))?;
        }
        Ok(net)
    }

    /// As `create`, or None after saying why the test is skipped.
    fn create_or_skip(nodes: usize, subnet: u8) -> Option<Net> {
        Net::create(nodes, subnet)
            .inspect_err(|e| eprintln!("SKIPPED: network namespaces are not available here ({e})"))
            .ok()
    }

    /// (address, namespace) of the first `n` nodes, for `Cluster::on_hosts`.
    fn hosts(&self, n: usize) -> Vec<(String, Option<String>)> {
        (0..n).map(|i| (self.host(i), Some(self.ns(i)))).collect()
    }

    fn host(&self, i: usize) -> String {
        format!("10.79.{}.{}", self.subnet, 10 + i)
    }

    fn ns(&self, i: usize) -> String {
        format!("{}n{i}", self.tag)
    }

    /// Cuts node `i` off both ways (its link goes down), or heals it.
    fn link(&self, i: usize, up: bool) {
        ip(&format!("link set {}v{i} {}", self.tag, if up { "up" } else { "down" })).expect("link");
    }

    /// One way: node `i` can receive but not send (or can again).
    fn mute(&self, i: usize, on: bool) {
        let verb = if on { "add" } else { "del" };
        let s = self.subnet;
        for half in [format!("10.79.{s}.0/25"), format!("10.79.{s}.128/25")] {
            ip(&format!("netns exec {} ip route {verb} blackhole {half}", self.ns(i))).expect("route");
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 0..self.nodes {
            let _ = ip(&format!("netns del {}", self.ns(i)));
        }
        let _ = ip(&format!("link del {}br", self.tag));
    }
}

/// Nodes in their own network namespaces; s1's link is cut both ways, then
/// s2 is made unable to send (one way), while the workload runs through s3.
/// The store is one SQLite file all namespaces share, so a cut server still
/// reaches it and keeps renewing its serving rights: its slots wait until
/// the link heals (a cut longer than the request timeout, 10 s, would fail
/// requests with TRYAGAIN; these cuts are shorter, so no client sees an
/// error). No read is stale and no acknowledged write is lost. Skips, saying
/// so, where namespaces cannot be made.
#[test]
fn partitions_keep_reads_fresh_and_writes_safe() {
    if TestStore::postgres_selected() {
        // Nodes in namespaces cannot reach a database on this host's
        // loopback; `a_cluster_across_hosts_on_postgres` runs this on PostgreSQL.
        eprintln!("SKIPPED on PostgreSQL: see a_cluster_across_hosts_on_postgres");
        return;
    }
    let Some(net) = Net::create_or_skip(4, 0) else { return };
    let cluster = Cluster::on_hosts(23000, &net.hosts(4), "", "");
    let load = Workload::start(&cluster, 7, &["s3"], None);
    std::thread::sleep(Duration::from_secs(2));
    eprintln!("cut s1 both ways for 4 s");
    net.link(1, false);
    std::thread::sleep(Duration::from_secs(4));
    net.link(1, true);
    std::thread::sleep(Duration::from_secs(4));
    mute_s2_then_settle(&net);
    let (r, counter) = load.finish(&cluster);
    assert_checks_hold("partitions", &cluster, &r, counter, &BTreeMap::new());
}

/// s2 can receive but not send for 4 s; then 5 s for everything to settle.
fn mute_s2_then_settle(net: &Net) {
    eprintln!("s2 can receive but not send, for 4 s");
    net.mute(2, true);
    std::thread::sleep(Duration::from_secs(4));
    net.mute(2, false);
    std::thread::sleep(Duration::from_secs(5));
}

/// The fault suite's checks on a finished workload: it ran, no client
/// error, connections lost only with their entry server (`kills`: how often
/// each server was killed), every key's history linearizable, the counter
/// matches, nothing acknowledged lost.
fn assert_checks_hold(label: &str, cluster: &Cluster, r: &Record, counter: i64, kills: &BTreeMap<String, u64>) {
    eprintln!(
        "{label}: {} operations, {} client-visible errors, connections lost {:?}, counter {counter} for {} \
         acknowledged INCRs (+{} unknown), {} acknowledged library writes",
        r.ops,
        r.errors.len(),
        r.losses,
        r.acked_incrs,
        r.unknown_incrs,
        r.acked_writes.len()
    );
    assert!(r.ops > 200, "{label}: the load ran");
    assert!(r.errors.is_empty(), "{label}: client-visible errors: {:?}", r.errors);
    for ((worker, server), n) in &r.losses {
        let killed = kills.get(server).copied().unwrap_or(0);
        assert!(*n <= killed, "{label}: worker {worker} lost its connection to {server} {n} times, {killed} kills");
    }
    let bad = violations(r);
    assert!(bad.is_empty(), "{label}: not linearizable: {bad:?}");
    assert!(
        counter >= r.acked_incrs && counter <= r.acked_incrs + r.unknown_incrs,
        "{label}: counter {counter}: acknowledged {} + unknown {}",
        r.acked_incrs,
        r.unknown_incrs
    );
    assert_eq!(missing_writes(cluster, &r.acked_writes), 0, "{label}: acknowledged writes missing from the store");
}

/// The model checker's counterexample for `available` mode, on real
/// processes: the owner of a key dies, its failover server serves the key
/// from a temporary cache, the owner comes back and takes a write before
/// the master has announced it online, and the failover server still
/// answers from its temporary cache: a stale read. The same steps in
/// `linearizable` mode read the new value.
#[test]
fn available_mode_shows_the_stale_read_the_checker_predicts() {
    let topo = failgroup_model::ClusterSpec::local(3, 1, 7101, failgroup_model::SLOTS).validate().unwrap();
    let key = "fa"; // owned by s2
    let slot = topo.slot(key.as_bytes());
    let owner = topo.owner(slot);
    assert_eq!(topo.name(owner), "s2");
    let f = topo.failover_server(slot, |s| s != owner).unwrap();
    let f = topo.name(f).to_string();
    let mut reads = Vec::new();
    for (port, mode) in [(23100, "available"), (23200, "linearizable")] {
        // A slow re-probe keeps the window between the owner's return and
        // its announcement open long enough to look into it.
        let top = format!("mode = \"{mode}\"\n[timing]\nreprobe_interval = 5000\n");
        let mut cluster = Cluster::with_config(port, 3, &top, "");
        let mut via_owner = Resp::connect(&cluster.addr("s2"));
        let mut via_f = Resp::connect(&cluster.addr(&f));
        assert_eq!(via_owner.cmd(&[b"SET", key.as_bytes(), b"old"]), Reply::Simple("OK".into()));
        cluster.kill9("s2");
        // Once the master has marked s2 offline, f serves the key itself
        // (a temporary cache in `available` mode).
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            assert_eq!(via_f.cmd(&[b"GET", key.as_bytes()]), Reply::Bulk(Some(b"old".to_vec())), "{mode}");
            let offline = failgroup_tests::info_field(&mut via_f, "failgroup", "servers_offline");
            if offline.as_deref() == Some("s2") {
                break;
            }
            assert!(Instant::now() < deadline, "{mode}: s2 marked offline");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(via_f.cmd(&[b"GET", key.as_bytes()]), Reply::Bulk(Some(b"old".to_vec())));
        cluster.restart("s2");
        let mut via_owner = Resp::connect(&cluster.addr("s2"));
        assert_eq!(via_owner.cmd(&[b"SET", key.as_bytes(), b"new"]), Reply::Simple("OK".into()), "{mode}");
        let read = via_f.cmd(&[b"GET", key.as_bytes()]);
        eprintln!("{mode}: after SET new through the returned owner, GET through {f} = {read:?}");
        reads.push(read);
    }
    assert_eq!(reads[0], Reply::Bulk(Some(b"old".to_vec())), "available mode reads the overwritten value");
    assert_eq!(reads[1], Reply::Bulk(Some(b"new".to_vec())), "linearizable mode reads the new value");
}

/// A cluster across hosts: the master, three servers, the PostgreSQL
/// database and the clients each on a host of their own (network
/// namespaces joined by a bridge; the database is a throwaway instance the
/// test starts on its host). Under the fault suite's workload, run from the
/// clients' host: s1 is cut off both ways, from the database too, so its
/// rights lapse and a survivor serves its slots while it is away (with one
/// shared SQLite file they would wait for it); then s2 can receive but not
/// send. The fault suite's checks hold: no stale read, no lost write, no
/// client error. Skips, saying so, where namespaces or PostgreSQL are missing.
#[test]
fn a_cluster_across_hosts_on_postgres() {
    if std::process::Command::new("ls").arg("/usr/lib/postgresql").output().map_or(true, |o| !o.status.success()) {
        assert!(
            std::env::var_os("FAILGROUP_REQUIRE_PG").is_none(),
            "FAILGROUP_REQUIRE_PG is set but PostgreSQL is missing"
        );
        eprintln!("SKIPPED: PostgreSQL is not installed (apt-get install postgresql)");
        return;
    }
    let Some(net) = Net::create_or_skip(6, 1) else { return };
    // Hosts: 0 master, 1-3 servers, 4 database, 5 clients.
    let db = Postgres::start(&net.ns(4), &net.host(4));
    let url = failgroup::store::postgres::protocol::PgUrl::parse(&format!(
        "postgres://postgres@{}:5432/postgres?timeout_ms=3000",
        net.host(4)
    ))
    .expect("url");
    let cluster = Cluster::on_hosts_with(23300, &net.hosts(4), "", "", TestStore::Postgres(url));
    let load = Workload::start(&cluster, 11, &["s3"], Some(&net.ns(5)));
    std::thread::sleep(Duration::from_secs(2));
    // Until a survivor serves s1's slots (detection over a silent link
    // takes the send timeout, 3 s, then the master's probe and the end of
    // s1's lease), and a second more; at most 20 s.
    eprintln!("cut s1 (from everyone, the database too) until a survivor serves its slots");
    net.link(1, false);
    let cut = Instant::now();
    let taken_over = served_for_others(&cluster, Duration::from_secs(20));
    eprintln!("a survivor served s1's slots {:?} after the cut", cut.elapsed());
    std::thread::sleep(Duration::from_secs(1));
    net.link(1, true);
    std::thread::sleep(Duration::from_secs(5));
    mute_s2_then_settle(&net);
    let (r, counter) = load.finish(&cluster);
    assert!(taken_over > 0, "a survivor took s1's slots over while s1 could not reach the database");
    assert_checks_hold("across hosts", &cluster, &r, counter, &BTreeMap::new());
    drop(cluster);
    drop(db);
}

/// Watches s2's and s3's INFO until one serves slots for another server
/// (returns how many) or `limit` passes (returns 0).
fn served_for_others(cluster: &Cluster, limit: Duration) -> u64 {
    let end = Instant::now() + limit;
    let mut most = 0;
    while most == 0 && Instant::now() < end {
        for s in ["s2", "s3"] {
            if let Ok(stream) = std::net::TcpStream::connect_timeout(
                &cluster.addr(s).parse().expect("addr"),
                Duration::from_millis(300),
            ) {
                drop(stream);
                let mut c = Resp::connect(&cluster.addr(s));
                let v = failgroup_tests::info_field(&mut c, "failgroup", "slots_served_for_others");
                most = most.max(v.and_then(|v| v.parse().ok()).unwrap_or(0));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    most
}

/// A throwaway PostgreSQL in network namespace `ns`, listening on `addr`,
/// stopped (and its files removed) when dropped.
struct Postgres {
    ns: String,
    dir: std::path::PathBuf,
}

impl Postgres {
    fn start(ns: &str, addr: &str) -> Postgres {
        let dir = std::env::temp_dir().join(format!("fg-pg-{}-{ns}", std::process::id()));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres.sh");
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", ns, script, "start"])
            .arg(&dir)
            .args(["5432", addr])
            .output()
            .expect("run tests/scripts/postgres.sh");
        assert!(out.status.success(), "postgres.sh start: {}", String::from_utf8_lossy(&out.stderr));
        Postgres { ns: ns.to_string(), dir }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres.sh");
        let _ =
            std::process::Command::new("ip").args(["netns", "exec", &self.ns, script, "stop"]).arg(&self.dir).output();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(self.dir.with_extension("initdb.log"));
    }
}

/// Issue 17: the cluster changes while it serves. A `failgroup dev`
/// cluster of three servers under the recorded load; a fourth server is
/// added (`failgroup admin add-server`) and started with the config that
/// does not name it (it joins by its name, from the master's topology);
/// a third of the slots (s1's, key `fd` among them) move to it
/// (`move-slots`); then s2 is removed (`remove-server`: its slots, key
/// `fa`'s among them, go to the other members, and its process exits).
/// No client sees an error, the history is linearizable, no acknowledged
/// write is lost, and the master's status shows the new topology.
#[test]
fn a_server_added_given_slots_and_another_removed_under_load_loses_nothing() {
    let port = 24400;
    let mut cluster = Cluster::start(port, 3, 1);
    let config = cluster.dir.join("cluster.toml");
    let seed = failgroup::util::random_u64() % 1_000_000;
    let load = Workload::start(&cluster, seed, &["s1", "s2", "s3"], None);
    std::thread::sleep(Duration::from_secs(1));
    let admin = |args: &[&str]| {
        let out = failgroup_tests::failgroup_command()
            .args(["admin", args[0], "--config"])
            .arg(&config)
            .args(&args[1..])
            .output()
            .expect("failgroup admin");
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "failgroup admin {args:?}: {text}");
        eprintln!("admin {args:?}: {}", text.trim());
        text
    };
    let s4 = format!("127.0.0.1:{}", port + 10); // dev's standby master is on port + 4
                                                 // A library client that fetched the topology before the changes.
    let mut early = failgroup::Client::connect(&cluster.addr("s1")).expect("client");
    early.set(b"counter", b"before").expect("a write before the changes"); // slot 6680, s2's
    assert!(admin(&["add-server", "--group", "g1", "s4", &s4]).contains("topology version 1"));
    cluster.spawn_server("s4", &config, &s4, &[]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(admin(&["move-slots", "--to", "s4", "0-5460"]).contains("topology version 2"));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(admin(&["remove-server", "s2"]).contains("topology version 3"));
    // s2 hands its slots over and exits.
    let pid = cluster.servers.iter().find(|s| s.0 == "s2").map(|s| s.2).expect("s2");
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z")
    {
        assert!(Instant::now() < deadline, "the removed server s2 did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    // `counter` was s2's: the early client finds s2 gone, asks for the topology
    // again and goes on with version 3.
    assert_eq!(early.topology().version(), 0);
    assert_eq!(early.get(b"counter").expect("a read after"), Some(b"before".to_vec()));
    assert_eq!(early.topology().version(), 3);
    let (r, counter) = load.finish(&cluster);
    let stops = BTreeMap::from([("s2".to_string(), 1)]);
    assert_checks_hold(&format!("add, move, remove, seed {seed}"), &cluster, &r, counter, &stops);
    let status = failgroup::cli::dev::fetch_status(&cluster.master(), &Default::default()).expect("status");
    assert_eq!(status.topology_version, 3);
    let names: Vec<&str> = status.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["s1", "s3", "s4"], "s2 is out, s4 in");
    let s4 = status.servers.iter().find(|s| s.name == "s4").expect("s4");
    assert!(s4.serves.iter().any(|r| r.0 == 0 && r.1 >= 5460), "{s4:?}");
    // Once the moves are done, every slot's right is held by the server
    // that serves it (`failgroup status --json`: rights per server, the
    // slots pending).
    let deadline = Instant::now() + Duration::from_secs(10);
    let doc = loop {
        let out = failgroup_tests::failgroup_command()
            .args(["status", "--json", "--master", &cluster.master()])
            .output()
            .expect("failgroup status");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
        if doc["pending_slots"] == 0 || Instant::now() > deadline {
            break doc;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(doc["pending_slots"], 0, "{doc}");
    assert_eq!(doc["topology_version"], 3, "{doc}");
    let rights: u64 = doc["servers"].as_array().unwrap().iter().map(|s| s["rights"].as_u64().unwrap()).sum();
    assert_eq!(rights, 16384, "{doc}");
    let s4 = doc["servers"].as_array().unwrap().iter().find(|s| s["name"] == "s4").cloned().unwrap();
    assert!(s4["rights"].as_u64().unwrap() >= 5461, "{s4}");
    // s4 holds the rights of what it was given, and serves it.
    let mut r = Resp::connect(&format!("127.0.0.1:{}", port + 10));
    let field = |r: &mut Resp, f: &str| failgroup_tests::info_field(r, "failgroup", f).expect("an INFO field");
    assert_eq!(field(&mut r, "topology_version"), "3");
    let served: usize = field(&mut r, "slots_served").parse().expect("a count");
    assert!(served >= 5461, "s4 serves {served} slots");
    assert!(matches!(r.run("SET fd moved"), Reply::Simple(ref s) if s == "OK"));
    assert_eq!(r.run("GET fd"), failgroup_tests::bulk("moved"));
    // A master restarted from the same config continues from the topology
    // it persisted in the store.
    cluster.kill_master();
    cluster.start_master();
    let status = failgroup::cli::dev::fetch_status(&cluster.master(), &Default::default()).expect("status");
    assert_eq!(status.topology_version, 3);
    let names: Vec<&str> = status.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["s1", "s3", "s4"]);
    // `failgroup admin drain` finds s4, which the config does not name,
    // through the master; a removed server is refused.
    assert!(admin(&["drain", "s4"]).contains("s4 drained and exited"));
    let out = failgroup_tests::failgroup_command().args(["admin", "drain", "--config"]).arg(&config).arg("s2").output();
    let out = out.expect("failgroup admin drain");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("removed"));
}

/// Issue 17: standby masters. `failgroup dev` runs a standby beside the
/// acting master. Under the recorded load the acting master is killed
/// (`kill -9`): the standby takes the lease over (after a lease); then a
/// server is killed, and the standby, now acting, verifies and announces
/// it: its slots fail over. No client error, linearizable, no
/// acknowledged write lost; the standby's status says it acts and that the
/// killed server is offline.
#[test]
fn a_standby_master_takes_over_and_a_server_kill_still_fails_over() {
    let mut cluster = Cluster::start(24500, 3, 1);
    let (standby, _) = cluster.standby_masters.first().cloned().expect("dev starts a standby master");
    let status = |addr: &str| failgroup::cli::dev::fetch_status(addr, &Default::default()).expect("status");
    assert!(status(&cluster.master()).acting);
    assert!(!status(&standby).acting, "the standby stands by");
    let seed = failgroup::util::random_u64() % 1_000_000;
    let load = Workload::start(&cluster, seed, &["s1", "s2", "s3"], None);
    std::thread::sleep(Duration::from_secs(1));
    cluster.kill_master();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !status(&standby).acting {
        assert!(Instant::now() < deadline, "the standby did not take over");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    cluster.kill9("s2");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = status(&standby);
        if s.servers.iter().any(|x| x.name == "s2" && !x.online) {
            break;
        }
        assert!(Instant::now() < deadline, "the standby did not mark s2 offline: {s:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let (r, counter) = load.finish(&cluster);
    let kills = BTreeMap::from([("s2".to_string(), 1)]);
    assert_checks_hold(&format!("standby takeover, seed {seed}"), &cluster, &r, counter, &kills);
    let s = status(&standby);
    assert!(s.acting && s.view_version.starts_with("v2."), "a higher incarnation: {s:?}");
    assert_eq!(s.servers.iter().filter(|x| x.name != "s2").map(|x| x.serves.len()).min().map(|n| n > 0), Some(true));
}
