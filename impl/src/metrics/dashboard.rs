//! The master's dashboard (issue 18, item 5): a page on the master's
//! metrics address that shows who serves what (the master's view), and
//! each server's throughput and latency (from the servers' own `/metrics`,
//! read when the page is asked for). Plain HTML, refreshed by the browser
//! every 2 s; no script.
//!
//! The master's loop keeps the view: a page asks for it through [`Board`]
//! and the loop posts a fresh copy at its next metrics tick (a view costs
//! a store read of the rights, so none is made while no one looks).

use crate::net::wire::ClusterStatus;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the master's loop and the page share: the last view posted and
/// whether a page waits for a new one.
#[derive(Clone, Debug, Default)]
pub struct Board {
    view: Arc<Mutex<Option<(Instant, ClusterStatus)>>>,
    wanted: Arc<AtomicBool>,
}

impl Board {
    /// Whether a page waits for a view (cleared by asking).
    pub fn wanted(&self) -> bool {
        self.wanted.swap(false, Ordering::Relaxed)
    }

    /// The loop's fresh view.
    pub fn post(&self, status: ClusterStatus) {
        *self.view.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), status));
    }

    /// A view posted after now, waiting up to `wait`; else the last one,
    /// marked stale (`false`).
    fn fresh(&self, wait: Duration) -> Option<(ClusterStatus, bool)> {
        let asked = Instant::now();
        self.wanted.store(true, Ordering::Relaxed);
        loop {
            let last = self.view.lock().unwrap_or_else(|e| e.into_inner()).clone();
            match last {
                Some((at, s)) if at >= asked => return Some((s, true)),
                last if asked.elapsed() >= wait => return last.map(|(_, s)| (s, false)),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

/// What one scrape of a server's `/metrics` gave: the counters the page
/// turns into rates, and gauges shown as they are.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// Commands run (every command's calls).
    pub commands: f64,
    /// Command time: cumulative count at each bucket bound (every command
    /// together), the count and the sum in seconds.
    pub buckets: Vec<(f64, f64)>,
    pub timed: f64,
    pub seconds: f64,
    pub hits: f64,
    pub misses: f64,
    pub forwarded: f64,
    /// Requests answered for peers, and for library clients.
    pub for_peers: f64,
    pub library: f64,
    pub clients: f64,
    pub keys: f64,
    pub memory: f64,
}

impl Sample {
    /// Reads the families the page shows from OpenMetrics text (the
    /// servers' own, as `crate::metrics::text` writes it).
    pub fn parse(text: &str) -> Sample {
        let mut s = Sample::default();
        let mut buckets: BTreeMap<u64, f64> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let Ok(v) = value.parse::<f64>() else { continue };
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            match name {
                "failgroup_commands_total" => s.commands += v,
                "failgroup_command_duration_seconds_count" => s.timed += v,
                "failgroup_command_duration_seconds_sum" => s.seconds += v,
                "failgroup_command_duration_seconds_bucket" => {
                    let le = labels.split("le=\"").nth(1).and_then(|r| r.split('"').next());
                    if let Some(le) = le.and_then(|le| le.parse::<f64>().ok()) {
                        *buckets.entry(le.to_bits()).or_default() += v;
                    }
                }
                "failgroup_keyspace_hits_total" => s.hits = v,
                "failgroup_keyspace_misses_total" => s.misses = v,
                "failgroup_requests_forwarded_total" => s.forwarded = v,
                "failgroup_requests_served_total" if labels.contains("from=\"peer\"") => s.for_peers = v,
                "failgroup_requests_served_total" if labels.contains("from=\"library\"") => s.library = v,
                "failgroup_connected_clients" => s.clients = v,
                "failgroup_cached_keys" => s.keys = v,
                "failgroup_used_memory_bytes" => s.memory = v,
                _ => {}
            }
        }
        // The bits of positive bounds (and +Inf) order as the bounds do.
        s.buckets = buckets.into_iter().map(|(le, n)| (f64::from_bits(le), n)).collect();
        s
    }
}

/// A server's line of the page, over the time between two samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rates {
    /// Commands of RESP and library clients.
    pub ops: f64,
    /// Requests answered for peers.
    pub for_peers: f64,
    /// Mean command time, seconds (None: no command in the interval).
    pub mean: Option<f64>,
    /// The bucket bound 99% of the interval's commands took at most.
    pub p99: Option<f64>,
    /// Reads that found their key, of all reads (None: no read).
    pub hit_ratio: Option<f64>,
    pub forwards: f64,
}

impl Rates {
    pub fn between(a: &Sample, b: &Sample, seconds: f64) -> Rates {
        let per_s = |x: f64, y: f64| if seconds > 0.0 { ((y - x) / seconds).max(0.0) } else { 0.0 };
        let timed = b.timed - a.timed;
        let reads = (b.hits - a.hits) + (b.misses - a.misses);
        let p99 = (timed > 0.0)
            .then(|| {
                let before = |le: f64| a.buckets.iter().find(|x| x.0 == le).map_or(0.0, |x| x.1);
                b.buckets.iter().find(|(le, n)| n - before(*le) >= 0.99 * timed).map(|x| x.0)
            })
            .flatten();
        Rates {
            ops: per_s(a.commands + a.library, b.commands + b.library),
            for_peers: per_s(a.for_peers, b.for_peers),
            mean: (timed > 0.0).then(|| (b.seconds - a.seconds) / timed),
            p99,
            hit_ratio: (reads > 0.0).then(|| (b.hits - a.hits) / reads),
            forwards: per_s(a.forwarded, b.forwarded),
        }
    }
}

/// The page's side: the board, where each server's metrics are, and the
/// samples of the last page (the rates are taken since then).
#[derive(Debug)]
pub struct Dashboard {
    board: Board,
    metrics: BTreeMap<String, String>,
    last: HashMap<String, (Instant, Sample)>,
}

/// A server's sample and when it was taken, or why there is none.
type Scraped = Result<(Instant, Sample), String>;

/// A previous sample older than this is not used for rates: two are taken
/// half a second apart instead.
const STALE: Duration = Duration::from_secs(10);

impl Dashboard {
    /// `metrics`: each server's metrics address, by name.
    pub fn new(board: Board, metrics: BTreeMap<String, String>) -> Dashboard {
        Dashboard { board, metrics, last: HashMap::new() }
    }

    /// The routes it adds to the metrics address: `/` (the page) and
    /// `/status.json` (the view, as `failgroup status --json`).
    pub fn route(&mut self, path: &str) -> Option<(&'static str, String)> {
        match path {
            "/" => Some(("text/html; charset=utf-8", self.page())),
            "/status.json" => {
                let body = match self.board.fresh(Duration::from_millis(1500)) {
                    Some((s, _)) => serde_json::to_string_pretty(&s).expect("a status encodes"),
                    None => "null".into(),
                };
                Some(("application/json", body))
            }
            _ => None,
        }
    }

    fn page(&mut self) -> String {
        let view = self.board.fresh(Duration::from_millis(1500));
        let names: Vec<String> = match &view {
            Some((s, _)) => s.servers.iter().map(|s| s.name.clone()).collect(),
            None => self.metrics.keys().cloned().collect(),
        };
        let mut now = self.sample_all(&names);
        let need_two =
            now.iter().any(|(n, r)| r.is_ok() && self.last.get(n).is_none_or(|(at, _)| at.elapsed() > STALE));
        if need_two {
            for (n, r) in &now {
                if let Ok(s) = r {
                    self.last.insert(n.clone(), s.clone());
                }
            }
            std::thread::sleep(Duration::from_millis(500));
            now = self.sample_all(&names);
        }
        let mut rows = BTreeMap::new();
        for (name, r) in now {
            let row = match r {
                Ok((at, s)) => {
                    let rates = self
                        .last
                        .get(&name)
                        .map(|(t0, s0)| Rates::between(s0, &s, at.duration_since(*t0).as_secs_f64()));
                    self.last.insert(name.clone(), (at, s.clone()));
                    Ok((rates.unwrap_or_default(), s))
                }
                Err(e) => Err(e),
            };
            rows.insert(name, row);
        }
        super::page::render(view.as_ref().map(|(s, fresh)| (s, *fresh)), &rows)
    }

    /// Every named server's metrics, scraped at once (a server without a
    /// metrics address, or not answering within 500 ms, gets why).
    fn sample_all(&self, names: &[String]) -> Vec<(String, Scraped)> {
        std::thread::scope(|scope| {
            let jobs: Vec<_> = names
                .iter()
                .map(|n| {
                    let addr = self.metrics.get(n).cloned();
                    (
                        n.clone(),
                        scope.spawn(move || match addr {
                            None => Err("no metrics address".to_string()),
                            Some(a) => {
                                scrape(&a, Duration::from_millis(500)).map(|t| (Instant::now(), Sample::parse(&t)))
                            }
                        }),
                    )
                })
                .collect();
            jobs.into_iter().map(|(n, j)| (n, j.join().unwrap_or_else(|_| Err("scrape failed".to_string())))).collect()
        })
    }
}

/// The body of `GET /metrics` at `addr`, within `limit` for each step.
pub fn scrape(addr: &str, limit: Duration) -> Result<String, String> {
    let why = |e: std::io::Error| format!("{addr}: {e}");
    let at: SocketAddr = addr.to_socket_addrs().map_err(why)?.next().ok_or_else(|| format!("{addr}: no address"))?;
    let mut s = TcpStream::connect_timeout(&at, limit).map_err(why)?;
    s.set_read_timeout(Some(limit)).map_err(why)?;
    s.set_write_timeout(Some(limit)).map_err(why)?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: failgroup\r\nConnection: close\r\n\r\n").map_err(why)?;
    let mut out = Vec::new();
    s.take(64 << 20).read_to_end(&mut out).map_err(why)?;
    let out = String::from_utf8_lossy(&out);
    match out.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        Some((head, _)) => Err(format!("{addr}: {}", head.lines().next().unwrap_or_default())),
        None => Err(format!("{addr}: not an HTTP reply")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const TEXT: &str = "# TYPE failgroup_commands counter\n\
        failgroup_commands_total{command=\"get\"} 30\n\
        failgroup_commands_total{command=\"set\"} 10\n\
        failgroup_command_duration_seconds_bucket{le=\"0.001\",command=\"get\"} 29\n\
        failgroup_command_duration_seconds_bucket{le=\"0.01\",command=\"get\"} 30\n\
        failgroup_command_duration_seconds_bucket{le=\"+Inf\",command=\"get\"} 30\n\
        failgroup_command_duration_seconds_count{command=\"get\"} 30\n\
        failgroup_command_duration_seconds_sum{command=\"get\"} 0.03\n\
        failgroup_command_duration_seconds_bucket{le=\"0.001\",command=\"set\"} 5\n\
        failgroup_command_duration_seconds_bucket{le=\"0.01\",command=\"set\"} 10\n\
        failgroup_command_duration_seconds_bucket{le=\"+Inf\",command=\"set\"} 10\n\
        failgroup_command_duration_seconds_count{command=\"set\"} 10\n\
        failgroup_command_duration_seconds_sum{command=\"set\"} 0.05\n\
        failgroup_keyspace_hits_total 20\n\
        failgroup_keyspace_misses_total 10\n\
        failgroup_connected_clients 4\n\
        failgroup_requests_served_total{from=\"peer\"} 7\n\
        failgroup_requests_served_total{from=\"library\"} 2\n\
        # EOF\n";

    #[test]
    fn a_sample_sums_every_commands_series() {
        let s = Sample::parse(TEXT);
        assert_eq!(s.commands, 40.0);
        assert_eq!(s.timed, 40.0);
        assert!((s.seconds - 0.08).abs() < 1e-9);
        assert_eq!(s.buckets, vec![(0.001, 34.0), (0.01, 40.0), (f64::INFINITY, 40.0)]);
        assert_eq!((s.hits, s.misses, s.clients), (20.0, 10.0, 4.0));
        assert_eq!((s.for_peers, s.library), (7.0, 2.0));
    }

    #[test]
    fn rates_are_taken_over_the_interval_alone() {
        let a = Sample::parse(TEXT);
        // 100 more commands in 2 s, all of them within 1 ms.
        let mut b = a.clone();
        b.commands += 90.0;
        b.library += 10.0;
        b.for_peers += 20.0;
        b.timed += 100.0;
        b.seconds += 0.05;
        for x in &mut b.buckets {
            x.1 += 100.0;
        }
        b.hits += 30.0;
        b.misses += 10.0;
        let r = Rates::between(&a, &b, 2.0);
        assert_eq!((r.ops, r.for_peers), (50.0, 10.0));
        assert_eq!(r.p99, Some(0.001), "the interval's commands alone, not the slower earlier ones");
        assert!((r.mean.unwrap() - 0.0005).abs() < 1e-12);
        assert_eq!(r.hit_ratio, Some(0.75));
        let idle = Rates::between(&b, &b, 2.0);
        assert_eq!((idle.ops, idle.mean, idle.p99, idle.hit_ratio), (0.0, None, None, None));
    }

    #[test]
    fn a_board_gives_the_view_posted_after_asking() {
        let board = Board::default();
        assert_eq!(board.fresh(Duration::from_millis(50)), None, "nothing posted yet");
        assert!(board.wanted(), "asking leaves a wish for the loop");
        assert!(!board.wanted(), "taken once");
        let loop_side = board.clone();
        let poster = std::thread::spawn(move || {
            while !loop_side.wanted() {
                std::thread::sleep(Duration::from_millis(5));
            }
            loop_side.post(status("fresh"));
        });
        let (s, fresh) = board.fresh(Duration::from_secs(5)).expect("posted");
        poster.join().unwrap();
        assert!(fresh);
        assert_eq!(s.mode, "fresh");
        // No loop answers now: the last view, marked stale.
        assert_eq!(board.fresh(Duration::from_millis(50)).map(|(s, f)| (s.mode, f)), Some(("fresh".into(), false)));
    }

    pub(crate) fn status(mode: &str) -> ClusterStatus {
        ClusterStatus {
            mode: mode.into(),
            view_version: "1".into(),
            servers: Vec::new(),
            topology_version: 0,
            pending_slots: None,
            acting: true,
        }
    }
}
