//! What commands cost (issue 18): INFO's `commandstats` section (Redis's
//! `cmdstat_<name>` lines) and the slow log (`SLOWLOG GET/LEN/RESET/HELP`,
//! `slowlog-log-slower-than`, `slowlog-max-len`), in Redis's formats.
//!
//! A command's time runs from its decoding to its reply being ready: for a
//! data command it includes forwarding and the store, which is what a
//! cache's user waits for (Redis counts the command's execution alone).

use super::commands::SlowlogCmd;
use crate::metrics::Hist;
use crate::resp::reply;
use std::collections::{BTreeMap, VecDeque};

/// Arguments an entry keeps (Redis's SLOWLOG_ENTRY_MAX_ARGC), and bytes of
/// each (SLOWLOG_ENTRY_MAX_STRING).
const MAX_ARGC: usize = 32;
const MAX_STRING: usize = 128;

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Answered (an error reply of the command itself is `Failed`).
    Done,
    Failed,
    /// Refused before it ran (arity, syntax, NOPERM, OOM): not timed, not
    /// logged, as Redis's `rejected_calls`.
    Rejected,
}

#[derive(Clone, Debug)]
struct Counts {
    calls: u64,
    usec: u64,
    rejected: u64,
    failed: u64,
    /// The metrics' latency histogram (seconds).
    time: Hist,
    /// INFO latencystats' histogram: nanoseconds, 1 ns to 1 s, two
    /// significant figures, as Redis keeps it.
    latency: hdrhistogram::Histogram<u64>,
}

impl Default for Counts {
    fn default() -> Counts {
        let latency = hdrhistogram::Histogram::new_with_bounds(1, 1_000_000_000, 2).expect("valid bounds");
        Counts { calls: 0, usec: 0, rejected: 0, failed: 0, time: Hist::new(crate::metrics::SECONDS), latency }
    }
}

/// A command's counts as the metrics show them.
pub(super) struct CommandCounts<'a> {
    pub name: &'a str,
    pub calls: u64,
    pub failed: u64,
    pub rejected: u64,
    pub time: &'a Hist,
}

/// A slow log entry.
#[derive(Clone, Debug)]
struct Entry {
    id: u64,
    unix_s: u64,
    usec: u64,
    args: Vec<Vec<u8>>,
    peer: String,
    name: Vec<u8>,
}

/// A data command's start, kept with it while in flight.
#[derive(Debug)]
pub(super) struct Started {
    pub at: std::time::Instant,
    /// As Redis names it in `cmdstat_`: `get`, `client|list`.
    pub name: String,
    pub args: Vec<Vec<u8>>,
}

/// Per-command counts and the slow log of one server.
#[derive(Debug)]
pub(super) struct Costs {
    by_name: BTreeMap<String, Counts>,
    /// Error replies by their code (the first word: `ERR`, `WRONGTYPE`),
    /// INFO's `errorstats`.
    errors: BTreeMap<String, u64>,
    /// Replies of data commands made (`reply_made`): a command that made
    /// one while it ran had its reply counted there.
    pub made: u64,
    slow: VecDeque<Entry>,
    next_id: u64,
    /// Microseconds from which a command is logged; negative: none is.
    pub slower_than: i64,
    pub max_len: usize,
}

impl Default for Costs {
    /// Redis's defaults: 10 ms, 128 entries.
    fn default() -> Costs {
        Costs {
            by_name: BTreeMap::new(),
            errors: BTreeMap::new(),
            made: 0,
            slow: VecDeque::new(),
            next_id: 0,
            slower_than: 10_000,
            max_len: 128,
        }
    }
}

impl Costs {
    /// With the config's `slowlog_log_slower_than` and `slowlog_max_len`.
    pub fn new(limits: &crate::config::Limits) -> Costs {
        Costs { slower_than: limits.slowlog_log_slower_than, max_len: limits.slowlog_max_len, ..Costs::default() }
    }

    /// Counts a command that ended; returns whether the slow log wants it
    /// ([`Costs::log`]).
    pub fn record(&mut self, name: &str, outcome: Outcome, usec: u64) -> bool {
        let c = match self.by_name.get_mut(name) {
            Some(c) => c,
            None => self.by_name.entry(name.to_string()).or_default(),
        };
        match outcome {
            Outcome::Rejected => {
                c.rejected += 1;
                return false;
            }
            Outcome::Failed => c.failed += 1,
            Outcome::Done => {}
        }
        c.calls += 1;
        c.usec += usec;
        c.time.observe(usec as f64 / 1e6);
        c.latency.saturating_record(usec.max(1).saturating_mul(1000));
        self.slower_than >= 0 && usec as i64 >= self.slower_than
    }

    /// Counts a command that ended, and logs it if slow enough and
    /// `loggable`: its arguments, the client's `ip:port` (asked only then)
    /// and name.
    pub fn ended(
        &mut self,
        name: &str,
        outcome: Outcome,
        usec: u64,
        args: &[Vec<u8>],
        loggable: bool,
        client: impl FnOnce() -> (String, Vec<u8>),
    ) {
        if self.record(name, outcome, usec) && loggable {
            let (peer, client_name) = client();
            self.log(usec, args, peer, &client_name);
        }
    }

    /// Logs a slow command: its arguments, the client's `ip:port` and name.
    pub fn log(&mut self, usec: u64, args: &[Vec<u8>], peer: String, name: &[u8]) {
        let unix_s =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        let entry = Entry { id: self.next_id, unix_s, usec, args: trimmed(args), peer, name: name.to_vec() };
        self.next_id += 1;
        self.slow.push_front(entry);
        self.slow.truncate(self.max_len);
    }

    /// Every command's counts, by name.
    pub fn each(&self) -> impl Iterator<Item = CommandCounts<'_>> {
        self.by_name.iter().map(|(name, c)| CommandCounts {
            name,
            calls: c.calls,
            failed: c.failed,
            rejected: c.rejected,
            time: &c.time,
        })
    }

    /// `slowlog-max-len` set: the oldest entries beyond it go at once.
    pub fn set_max_len(&mut self, n: usize) {
        self.max_len = n;
        self.slow.truncate(n);
    }

    /// Counts a reply if it is an error (`reply` starts at its first
    /// byte), by its code, as Redis's `errorstat_<code>`.
    pub fn reply_sent(&mut self, reply: &[u8]) {
        let Some(rest) = reply.strip_prefix(b"-") else { return };
        let end = rest.iter().position(|b| *b == b' ' || *b == b'\r').unwrap_or(rest.len());
        let code = String::from_utf8_lossy(&rest[..end]);
        match self.errors.get_mut(code.as_ref()) {
            Some(n) => *n += 1,
            None => {
                self.errors.insert(code.into_owned(), 1);
            }
        }
    }

    /// A data command's reply made (counted if an error; EXEC's array,
    /// each error in it, as Redis counts the queued commands' errors).
    pub fn reply_made(&mut self, reply: &[u8]) {
        self.made += 1;
        if reply.first() != Some(&b'*') {
            return self.reply_sent(reply);
        }
        // An array (MGET's, EXEC's) is decoded only if an error may be in it.
        if !reply.windows(3).any(|w| w == b"\r\n-") {
            return;
        }
        fn each_error(r: &crate::resp::Reply, out: &mut Vec<String>) {
            match r {
                crate::resp::Reply::Error(e) => out.push(e.clone()),
                crate::resp::Reply::Array(Some(rs)) => rs.iter().for_each(|r| each_error(r, out)),
                _ => {}
            }
        }
        let mut errors = Vec::new();
        if let Ok(Some((r, _))) = crate::resp::decode_reply(reply) {
            each_error(&r, &mut errors);
        }
        for e in errors {
            self.reply_sent(format!("-{e}\r\n").as_bytes());
        }
    }

    /// Error replies by code, for the metrics.
    pub fn errors(&self) -> Vec<(String, u64)> {
        self.errors.iter().map(|(c, n)| (c.clone(), *n)).collect()
    }

    /// Error replies in all (INFO stats' `total_error_replies`).
    pub fn error_replies(&self) -> u64 {
        self.errors.values().sum()
    }

    /// INFO `errorstats`.
    pub fn errorstats(&self) -> String {
        let mut o = String::from("# Errorstats\r\n");
        for (code, n) in &self.errors {
            o.push_str(&format!("errorstat_{code}:count={n}\r\n"));
        }
        o.push_str("\r\n");
        o
    }

    /// INFO `latencystats`: each command's p50, p99 and p99.9 in
    /// microseconds, as Redis's `latency_percentiles_usec_<name>` lines
    /// (its default `latency-tracking-info-percentiles`).
    pub fn latencystats(&self) -> String {
        let mut o = String::from("# Latencystats\r\n");
        for (name, c) in self.by_name.iter().filter(|(_, c)| !c.latency.is_empty()) {
            let at = |q: f64| c.latency.value_at_quantile(q) as f64 / 1000.0;
            o.push_str(&format!(
                "latency_percentiles_usec_{name}:p50={:.3},p99={:.3},p99.9={:.3}\r\n",
                at(0.5),
                at(0.99),
                at(0.999)
            ));
        }
        o.push_str("\r\n");
        o
    }

    /// INFO `commandstats`.
    pub fn info(&self) -> String {
        let mut o = String::from("# Commandstats\r\n");
        for (name, c) in &self.by_name {
            let per_call = if c.calls == 0 { 0.0 } else { c.usec as f64 / c.calls as f64 };
            o.push_str(&format!(
                "cmdstat_{name}:calls={},usec={},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}\r\n",
                c.calls, c.usec, c.rejected, c.failed
            ));
        }
        o.push_str("\r\n");
        o
    }

    pub fn answer(&mut self, cmd: SlowlogCmd, out: &mut Vec<u8>) {
        match cmd {
            SlowlogCmd::Len => reply::int(out, self.slow.len() as i64),
            SlowlogCmd::Reset => {
                self.slow.clear();
                reply::ok(out);
            }
            SlowlogCmd::Help => {
                reply::array(out, HELP.len() + 3);
                reply::simple(out, "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:");
                for line in HELP {
                    reply::simple(out, line);
                }
                reply::simple(out, "HELP");
                reply::simple(out, "    Prints this help.");
            }
            SlowlogCmd::Get(count) => {
                let n = count.map_or(self.slow.len(), |c| c.min(self.slow.len()));
                reply::array(out, n);
                for e in self.slow.iter().take(n) {
                    reply::array(out, 6);
                    reply::int(out, e.id as i64);
                    reply::int(out, e.unix_s as i64);
                    reply::int(out, e.usec as i64);
                    reply::array(out, e.args.len());
                    for a in &e.args {
                        reply::bulk(out, a);
                    }
                    reply::bulk(out, e.peer.as_bytes());
                    reply::bulk(out, &e.name);
                }
            }
        }
    }
}

const HELP: &[&str] = &[
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
];

/// The arguments as Redis keeps them: at most 32 (the last then says how
/// many more there were), each at most 128 bytes (then how many more); a
/// password (AUTH's, HELLO's AUTH) as `(redacted)`.
fn trimmed(args: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let keep = if args.len() > MAX_ARGC { MAX_ARGC - 1 } else { args.len() };
    let secret = |i: usize| match args.first() {
        Some(c) if c.eq_ignore_ascii_case(b"auth") => i > 0,
        Some(c) if c.eq_ignore_ascii_case(b"hello") => {
            args.iter().position(|a| a.eq_ignore_ascii_case(b"auth")).is_some_and(|at| i == at + 1 || i == at + 2)
        }
        _ => false,
    };
    let mut out: Vec<Vec<u8>> = args[..keep]
        .iter()
        .enumerate()
        .map(|(i, a)| match a.len() > MAX_STRING {
            _ if secret(i) => b"(redacted)".to_vec(),
            true => {
                let mut t = a[..MAX_STRING].to_vec();
                t.extend_from_slice(format!("... ({} more bytes)", a.len() - MAX_STRING).as_bytes());
                t
            }
            false => a.clone(),
        })
        .collect();
    if args.len() > MAX_ARGC {
        out.push(format!("... ({} more arguments)", args.len() - keep).into_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(c: &mut Costs, name: &str, outcome: Outcome, usec: u64, args: &[Vec<u8>]) {
        if c.record(name, outcome, usec) {
            c.log(usec, args, "127.0.0.1:5000".into(), b"app");
        }
    }

    #[test]
    fn counts_calls_time_failures_and_refusals_per_command() {
        let mut c = Costs::default();
        let args = [b"get".to_vec(), b"k".to_vec()];
        ended(&mut c, "get", Outcome::Done, 3, &args);
        ended(&mut c, "get", Outcome::Done, 4, &args);
        ended(&mut c, "set", Outcome::Failed, 10, &args);
        ended(&mut c, "set", Outcome::Rejected, 0, &args);
        let info = c.info();
        assert!(info.starts_with("# Commandstats\r\n"));
        assert!(info.contains("cmdstat_get:calls=2,usec=7,usec_per_call=3.50,rejected_calls=0,failed_calls=0\r\n"));
        assert!(info.contains("cmdstat_set:calls=1,usec=10,usec_per_call=10.00,rejected_calls=1,failed_calls=1\r\n"));
    }

    #[test]
    fn logs_what_is_slow_enough_newest_first_within_its_length() {
        let mut c = Costs { slower_than: 100, max_len: 2, ..Costs::default() };
        let args = [b"set".to_vec(), b"k".to_vec(), b"v".to_vec()];
        for usec in [99, 100, 150, 200] {
            ended(&mut c, "set", Outcome::Done, usec, &args);
        }
        ended(&mut c, "set", Outcome::Rejected, 1_000, &args);
        let mut out = Vec::new();
        c.answer(SlowlogCmd::Len, &mut out);
        assert_eq!(out, b":2\r\n");
        out.clear();
        c.answer(SlowlogCmd::Get(Some(1)), &mut out);
        let text = String::from_utf8_lossy(&out);
        // The newest (id 2, 200 us) alone.
        assert!(text.starts_with("*1\r\n*6\r\n:2\r\n:"), "{text}");
        assert!(
            text.contains(":200\r\n*3\r\n$3\r\nset\r\n$1\r\nk\r\n$1\r\nv\r\n$14\r\n127.0.0.1:5000\r\n$3\r\napp\r\n")
        );
        c.set_max_len(1);
        c.slower_than = -1;
        ended(&mut c, "set", Outcome::Done, 1_000_000, &args);
        out.clear();
        c.answer(SlowlogCmd::Get(None), &mut out);
        assert!(out.starts_with(b"*1\r\n"), "shortened to one, nothing logged when off");
        out.clear();
        c.answer(SlowlogCmd::Reset, &mut out);
        assert_eq!(out, b"+OK\r\n");
        out.clear();
        c.answer(SlowlogCmd::Len, &mut out);
        assert_eq!(out, b":0\r\n");
    }

    #[test]
    fn long_arguments_and_many_are_cut_as_redis_cuts_them() {
        let many: Vec<Vec<u8>> = (0..40).map(|i| format!("a{i}").into_bytes()).collect();
        let t = trimmed(&many);
        assert_eq!(t.len(), 32);
        assert_eq!(t[31], b"... (9 more arguments)");
        let long = vec![vec![b'x'; 200]];
        let t = trimmed(&long);
        assert_eq!(t[0].len(), 128 + "... (72 more bytes)".len());
        assert!(t[0].ends_with(b"x... (72 more bytes)"));
        let auth = [b"AUTH".to_vec(), b"app".to_vec(), b"secret".to_vec()];
        assert_eq!(trimmed(&auth), [b"AUTH".to_vec(), b"(redacted)".to_vec(), b"(redacted)".to_vec()]);
        let hello: Vec<Vec<u8>> = ["HELLO", "3", "AUTH", "app", "secret", "SETNAME", "n"].map(|a| a.into()).to_vec();
        let t = trimmed(&hello);
        assert_eq!(t[3], b"(redacted)");
        assert_eq!(t[4], b"(redacted)");
        assert_eq!(t[6], b"n");
    }

    /// latencystats: percentiles of what was recorded, in microseconds
    /// to two significant figures; refused commands leave no line.
    #[test]
    fn latencystats_give_each_commands_percentiles() {
        let mut c = Costs::default();
        for _ in 0..998 {
            c.record("get", Outcome::Done, 10);
        }
        c.record("get", Outcome::Done, 5000);
        c.record("get", Outcome::Failed, 5000);
        c.record("set", Outcome::Rejected, 0);
        let info = c.latencystats();
        let line = info.lines().find(|l| l.starts_with("latency_percentiles_usec_get:")).expect(&info);
        let values: Vec<f64> = line.split(['=', ',']).filter_map(|v| v.parse().ok()).collect();
        let [p50, p99, p999] = values[..] else { panic!("{line}") };
        assert!((10.0..10.1).contains(&p50) && (10.0..10.1).contains(&p99), "{line}");
        assert!((4950.0..5050.0).contains(&p999), "the two slow ones make p99.9: {line}");
        assert!(!info.contains("_set:"), "a refused command has no latency: {info}");
    }
}
