//! The dashboard's HTML: the master's view (who serves what, as a slot map
//! and a table) beside each server's rates. Plain HTML and inline SVG,
//! reloaded by the browser every 2 s.

use super::dashboard::{Rates, Sample};
use crate::net::wire::ClusterStatus;
use std::collections::BTreeMap;
use std::fmt::Write;

/// A server's rates and gauges, or why they are missing.
pub type Row = Result<(Rates, Sample), String>;

/// Colours of the servers, in the view's order (then again).
const COLOURS: &[&str] =
    &["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

/// The page. `view`: the master's view and whether it is fresh.
pub fn render(view: Option<(&ClusterStatus, bool)>, rows: &BTreeMap<String, Row>) -> String {
    let mut o = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"2\"><title>failgroup</title><style>\
         body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
         h1{font-size:1.3em;margin:0 0 .3em}.note{color:#666}\
         table{border-collapse:collapse;margin-top:1em}\
         th,td{padding:.3em .7em;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}\
         th:nth-child(-n+4),td:nth-child(-n+4){text-align:left}\
         .offline{color:#b00;font-weight:bold}.swatch{display:inline-block;width:.9em;height:.9em;margin-right:.4em;vertical-align:-.1em}\
         </style></head><body>\n",
    );
    let Some((s, fresh)) = view else {
        o.push_str("<h1>failgroup</h1><p class=\"warn\">The master has posted no view yet.</p></body></html>\n");
        return o;
    };
    let role = if s.acting { "acting master" } else { "standby master (its view is not kept)" };
    let _ = write!(
        o,
        "<h1>failgroup: {} servers, mode {}</h1><p class=\"note\" id=\"summary\">{role}, view {}, topology version {}",
        s.servers.len(),
        esc(&s.mode),
        esc(&s.view_version),
        s.topology_version
    );
    match s.pending_slots {
        Some(0) => o.push_str(", every slot's right held by its server"),
        Some(n) => {
            let _ = write!(o, ", {n} slots not yet held by their server (moving or failing over)");
        }
        None => {}
    }
    if !fresh {
        o.push_str(". <b>The master did not post a new view in time: this one is old.</b>");
    }
    o.push_str("</p>\n");
    slot_map(&mut o, s);
    o.push_str(
        "<table id=\"servers\"><tr><th>server</th><th>address</th><th>group</th><th>state</th><th>slots</th>\
         <th>rights</th><th>commands/s</th><th>for peers/s</th><th>mean</th><th>p99 &le;</th><th>hits</th><th>forwards/s</th>\
         <th>clients</th><th>keys</th><th>memory</th><th>failovers</th></tr>\n",
    );
    for (i, srv) in s.servers.iter().enumerate() {
        let slots: u32 = srv.serves.iter().map(|(a, b)| u32::from(b - a) + 1).sum();
        let state = if srv.online { "online" } else { "offline" };
        let _ = write!(
            o,
            "<tr id=\"{name}\"><td><span class=\"swatch\" style=\"background:{colour}\"></span>{name}</td>\
             <td>{addr}</td><td>{group}</td><td class=\"{state}\">{state}</td><td>{slots}</td><td>{rights}</td>",
            name = esc(&srv.name),
            colour = COLOURS[i % COLOURS.len()],
            addr = esc(&srv.addr),
            group = esc(&srv.group),
            rights = srv.rights.map_or("-".into(), |n| n.to_string()),
        );
        match rows.get(&srv.name) {
            Some(Ok((r, g))) => {
                let _ = write!(
                    o,
                    "<td class=\"ops\">{:.0}</td><td class=\"for-peers\">{:.0}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td>",
                    r.ops,
                    r.for_peers,
                    r.mean.map_or("-".into(), duration),
                    r.p99.map_or("-".into(), duration),
                    r.hit_ratio.map_or("-".into(), |h| format!("{:.0}%", h * 100.0)),
                    r.forwards,
                    g.clients,
                    g.keys,
                    bytes(g.memory),
                );
            }
            Some(Err(why)) => {
                let _ = write!(o, "<td colspan=\"9\" class=\"note\">metrics: {}</td>", esc(why));
            }
            None => o.push_str("<td colspan=\"9\" class=\"note\">metrics: not read</td>"),
        }
        let _ = writeln!(o, "<td>{}</td></tr>", srv.failovers);
    }
    o.push_str(
        "</table>\n<p class=\"note\">Who serves what is the master's view; rates and latency are each server's \
         own metrics over the time since the last reload (p99: the latency bucket bound 99% of commands \
         stayed within). JSON: <a href=\"/status.json\">/status.json</a>, \
         metrics: <a href=\"/metrics\">/metrics</a>.</p>\n</body></html>\n",
    );
    o
}

/// The slots as a bar, each range in the colour of its server; slots no
/// server serves stay grey.
fn slot_map(o: &mut String, s: &ClusterStatus) {
    let total =
        s.servers.iter().flat_map(|v| v.serves.iter().map(|r| u32::from(r.1) + 1)).max().unwrap_or(0).max(16384);
    let (w, h) = (960.0, 28.0);
    let _ = write!(
        o,
        "<svg id=\"slots\" width=\"{w}\" height=\"{}\" role=\"img\" aria-label=\"slots by server\">\
         <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#ddd\"/>",
        h + 16.0
    );
    for (i, srv) in s.servers.iter().enumerate() {
        for (a, b) in &srv.serves {
            let x = f64::from(*a) * w / f64::from(total);
            let width = (f64::from(u32::from(b - a) + 1) * w / f64::from(total)).max(1.0);
            let _ = write!(
                o,
                "<rect x=\"{x:.2}\" y=\"0\" width=\"{width:.2}\" height=\"{h}\" fill=\"{}\"><title>{} serves {a}-{b}</title></rect>",
                COLOURS[i % COLOURS.len()],
                esc(&srv.name)
            );
        }
    }
    let _ = writeln!(
        o,
        "<text x=\"0\" y=\"{y}\" font-size=\"11\">slot 0</text>\
         <text x=\"{w}\" y=\"{y}\" font-size=\"11\" text-anchor=\"end\">{}</text></svg>",
        total - 1,
        y = h + 13.0
    );
}

fn duration(s: f64) -> String {
    match s {
        s if s >= 1.0 => format!("{s:.2} s"),
        s if s >= 0.001 => format!("{:.2} ms", s * 1e3),
        s => format!("{:.0} &micro;s", s * 1e6),
    }
}

fn bytes(b: f64) -> String {
    match b {
        b if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        b if b >= 1e3 => format!("{:.0} kB", b / 1e3),
        b => format!("{b:.0} B"),
    }
}

/// HTML text of `s`.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::wire::ServerStatus;

    fn server(name: &str, online: bool, serves: Vec<(u16, u16)>) -> ServerStatus {
        ServerStatus {
            name: name.into(),
            addr: "127.0.0.1:1".into(),
            group: "g<1>".into(),
            online,
            serves,
            failovers: u64::from(!online),
            rights: Some(3),
        }
    }

    #[test]
    fn the_page_shows_each_server_its_slots_and_rates() {
        let mut s = super::super::dashboard::tests::status("linearizable");
        s.servers = vec![server("s1", true, vec![(0, 8191), (12288, 16383)]), server("s2", false, vec![])];
        s.servers.push(server("s3", true, vec![(8192, 12287)]));
        let rates = Rates {
            ops: 1234.4,
            for_peers: 99.6,
            mean: Some(0.00042),
            p99: Some(0.0025),
            hit_ratio: Some(0.5),
            forwards: 2.0,
        };
        let mut rows = BTreeMap::new();
        rows.insert(
            "s1".to_string(),
            Ok((rates, Sample { clients: 3.0, keys: 10.0, memory: 2.5e6, ..Sample::default() })),
        );
        rows.insert("s2".to_string(), Err("127.0.0.1:9: Connection refused".to_string()));
        let page = render(Some((&s, true)), &rows);
        assert!(page.contains("<td class=\"ops\">1234</td><td class=\"for-peers\">100</td><td>420 &micro;s</td><td>2.50 ms</td><td>50%</td>"), "{page}");
        assert!(page.contains("<td>12288</td>"), "s1's slot count: {page}");
        assert!(page.contains("<td class=\"offline\">offline</td>"));
        assert!(page.contains("metrics: 127.0.0.1:9: Connection refused"));
        assert!(page.contains("metrics: not read"), "s3 has no row");
        assert!(page.contains("g&lt;1&gt;"), "names are escaped");
        assert_eq!(page.matches("<rect").count(), 1 + 3, "the grey bar and three ranges");
        assert!(!page.contains("is old"));
        assert!(render(Some((&s, false)), &rows).contains("this one is old"));
        assert!(render(None, &rows).contains("no view yet"));
    }
}
