//! Prometheus/OpenMetrics text of a node on an HTTP port of its own (issue
//! 18). The event loop counts as it carries out what the core decides and
//! copies its counts into a shared [`Published`] a few times a second; a
//! plain thread answers `GET /metrics` by encoding that copy with
//! `prometheus-client` (no async runtime, nothing shared with the loop but
//! one mutex taken for a copy). The master's address also serves its
//! [`dashboard`].

pub mod dashboard;
pub mod page;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Upper bounds of latency buckets, seconds (100 us to 2.5 s).
pub const SECONDS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// Upper bounds of batch-size buckets, commands.
pub const SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0];

/// A histogram as the loop keeps it: a count per bucket (the last one past
/// every bound), the number and the sum of what it observed.
#[derive(Clone, Debug, PartialEq)]
pub struct Hist {
    bounds: &'static [f64],
    counts: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

impl Hist {
    pub fn new(bounds: &'static [f64]) -> Hist {
        Hist { bounds, counts: vec![0; bounds.len() + 1], count: 0, sum: 0.0 }
    }

    pub fn observe(&mut self, v: f64) {
        let i = self.bounds.iter().position(|b| v <= *b).unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.count += 1;
        self.sum += v;
    }

    /// `(upper bound, count in that bucket alone)`, `+Inf` last.
    fn buckets(&self) -> Vec<(f64, u64)> {
        self.bounds.iter().copied().chain([f64::INFINITY]).zip(self.counts.iter().copied()).collect()
    }
}

/// One metric: its name (without `_total`, the unit's suffix added), help,
/// and value; a labelled family has one value per label value.
#[derive(Clone, Debug)]
pub enum Metric {
    Counter(u64),
    Gauge(i64),
    Histogram(Hist),
    Counters(&'static str, Vec<(String, u64)>),
    Histograms(&'static str, Vec<(String, Hist)>),
}

/// What a scrape shows: the loop's last copy.
#[derive(Clone, Debug, Default)]
pub struct Published {
    pub metrics: Vec<(&'static str, &'static str, Option<Unit>, Metric)>,
}

#[derive(Debug)]
struct Exporter(Arc<Mutex<Published>>);

impl Collector for Exporter {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let p = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for (name, help, unit, m) in &p.metrics {
            match m {
                Metric::Counter(v) => {
                    let c = ConstCounter::new(*v);
                    c.encode(enc.encode_descriptor(name, help, unit.as_ref(), c.metric_type())?)?;
                }
                Metric::Gauge(v) => {
                    let g = ConstGauge::new(*v);
                    g.encode(enc.encode_descriptor(name, help, unit.as_ref(), g.metric_type())?)?;
                }
                Metric::Histogram(h) => {
                    let mut e = enc.encode_descriptor(name, help, unit.as_ref(), MetricType::Histogram)?;
                    e.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets(), None)?;
                }
                Metric::Counters(label, values) => {
                    let mut e = enc.encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
                    for (value, n) in values {
                        let labels = [(*label, value.as_str())];
                        ConstCounter::new(*n).encode(e.encode_family(&labels)?)?;
                    }
                }
                Metric::Histograms(label, values) => {
                    let mut e = enc.encode_descriptor(name, help, unit.as_ref(), MetricType::Histogram)?;
                    for (value, h) in values {
                        let labels = [(*label, value.as_str())];
                        e.encode_family(&labels)?.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets(), None)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The OpenMetrics text of `p`.
pub fn text(p: &Arc<Mutex<Published>>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exporter(p.clone())));
    let mut out = String::new();
    // Writing to a String does not fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// Serves `GET /metrics` on `addr` from a thread of its own, and the
/// dashboard's pages when given one; returns the address bound (a port 0
/// gets one from the system).
pub fn serve(
    addr: &str,
    p: Arc<Mutex<Published>>,
    mut board: Option<dashboard::Dashboard>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        for mut s in listener.incoming().flatten() {
            let _ = answer(&mut s, &p, board.as_mut());
        }
    })?;
    Ok(bound)
}

/// One request, then the connection closes: a scraper's GET of `/metrics`
/// (200 with the text), the dashboard's pages, anything else 404 or 405; a
/// request that does not arrive whole within 2 s or 8 KiB is dropped.
fn answer(
    s: &mut TcpStream,
    p: &Arc<Mutex<Published>>,
    board: Option<&mut dashboard::Dashboard>,
) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = s.read(&mut buf)?;
        if n == 0 || req.len() + n > 8192 {
            return Ok(());
        }
        req.extend_from_slice(&buf[..n]);
    }
    let line = req.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    let page = match (method, board) {
        (b"GET", Some(b)) => b.route(&String::from_utf8_lossy(path)),
        _ => None,
    };
    let (status, kind, body) = match (method, path, page) {
        (b"GET", b"/metrics", _) => ("200 OK", "application/openmetrics-text; version=1.0.0; charset=utf-8", text(p)),
        (b"GET", _, Some((kind, body))) => ("200 OK", kind, body),
        (b"GET", _, None) => ("404 Not Found", "text/plain", "not found: the metrics are at /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", "text/plain", "only GET\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_count_into_their_buckets() {
        let mut h = Hist::new(SECONDS);
        for v in [0.00005, 0.0001, 0.003, 9.0] {
            h.observe(v);
        }
        let b = h.buckets();
        assert_eq!(b[0], (0.0001, 2));
        assert_eq!(b[5], (0.005, 1));
        assert_eq!(*b.last().unwrap(), (f64::INFINITY, 1));
        assert_eq!(h.count, 4);
    }

    #[test]
    fn text_is_openmetrics_with_units_families_and_eof() {
        let mut h = Hist::new(SECONDS);
        h.observe(0.002);
        let p = Published {
            metrics: vec![
                ("failgroup_connections_received", "Connections accepted.", None, Metric::Counter(3)),
                ("failgroup_rights_held", "Serving rights held.", None, Metric::Gauge(7)),
                ("failgroup_commands", "Commands.", None, Metric::Counters("command", vec![("get".into(), 5)])),
                (
                    "failgroup_command_duration",
                    "Time.",
                    Some(Unit::Seconds),
                    Metric::Histograms("command", vec![("get".into(), h)]),
                ),
            ],
        };
        let t = text(&Arc::new(Mutex::new(p)));
        for line in [
            "# TYPE failgroup_connections_received counter\n",
            "failgroup_connections_received_total 3\n",
            "failgroup_rights_held 7\n",
            "failgroup_commands_total{command=\"get\"} 5\n",
            "# UNIT failgroup_command_duration_seconds seconds\n",
            "failgroup_command_duration_seconds_bucket{le=\"0.0025\",command=\"get\"} 1\n",
            "failgroup_command_duration_seconds_count{command=\"get\"} 1\n",
            "# EOF\n",
        ] {
            assert!(t.contains(line), "{line:?} in\n{t}");
        }
    }

    #[test]
    fn answers_get_metrics_and_refuses_the_rest() {
        let p = Arc::new(Mutex::new(Published { metrics: vec![("failgroup_up", "Up.", None, Metric::Gauge(1))] }));
        let addr = serve("127.0.0.1:0", p, None).unwrap();
        let ask = |req: &str| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let ok = ask("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.contains("application/openmetrics-text"), "{ok}");
        assert!(ok.ends_with("failgroup_up 1\n# EOF\n"), "{ok}");
        assert!(ask("GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(ask("POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    }
}
