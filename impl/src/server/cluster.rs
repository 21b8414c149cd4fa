//! The Redis Cluster topology commands (CLUSTER SLOTS, SHARDS, NODES, INFO,
//! MYID): what this server's view says of who serves each slot, in Redis
//! Cluster's replies, so a cluster client routes a key straight to the
//! server that serves it. A pure function of the topology and of the core's
//! answer per slot; a client with an older map costs a hop (c15), never an
//! error or a stale read.

use crate::resp::{reply, Proto};
use failgroup_model::bytes::{fnv1a, FNV_OFFSET};
use failgroup_model::{ServerId, Slot, Topology, SLOTS};
use std::fmt::Write;

/// The cluster as one server sees it now.
pub(super) struct ClusterView<'a> {
    pub topology: &'a Topology,
    pub me: ServerId,
    /// Who serves each of Redis Cluster's 16384 slots in this server's view
    /// (the core's target for the topology's slot it falls in), its owner
    /// when no member of its group is online.
    pub serving: Vec<ServerId>,
    /// The owner of each of the 16384 slots.
    pub owners: Vec<ServerId>,
    /// Whether each server is online in this server's view.
    pub online: Vec<bool>,
    /// Addresses to give instead of the topology's, by server name (to a
    /// client on a TLS address: each server's TLS address; a server
    /// without one is given with its plain address).
    pub addrs: Option<&'a std::collections::BTreeMap<String, String>>,
}

/// A run of consecutive slots served by one server.
struct Range {
    first: u16,
    last: u16,
    server: ServerId,
    owner: ServerId,
}

/// A server's node id: 40 hex digits derived from its name, the same on
/// every server and across restarts, as Redis Cluster's ids are stable.
pub(super) fn node_id(name: &str) -> String {
    let mut id = String::with_capacity(40);
    let mut h = FNV_OFFSET;
    for round in 0u8..3 {
        h = fnv1a(fnv1a(h, name.as_bytes()), &[round]);
        let _ = write!(id, "{h:016x}");
    }
    id.truncate(40);
    id
}

/// A server's address as host and port.
fn host_port(addr: &str) -> (&str, i64) {
    match addr.rsplit_once(':') {
        Some((host, port)) => (host.trim_start_matches('[').trim_end_matches(']'), port.parse().unwrap_or(0)),
        None => (addr, 0),
    }
}

impl<'a> ClusterView<'a> {
    /// Builds the view from the core's answer per topology slot.
    pub fn new(
        topology: &Topology,
        me: ServerId,
        online: Vec<bool>,
        serving: impl Fn(Slot) -> Option<ServerId>,
    ) -> ClusterView<'_> {
        let ours: Vec<(ServerId, ServerId)> = (0..topology.slot_count())
            .map(|s| {
                let owner = topology.owner(Slot(s));
                (serving(Slot(s)).unwrap_or(owner), owner)
            })
            .collect();
        let n = ours.len();
        let (serving, owners) = (0..SLOTS as usize).map(|r| ours[r % n]).unzip();
        ClusterView { topology, me, serving, owners, online, addrs: None }
    }

    /// Gives `addrs`' addresses instead of the topology's.
    pub fn with_addrs(self, addrs: Option<&'a std::collections::BTreeMap<String, String>>) -> ClusterView<'a> {
        ClusterView { addrs, ..self }
    }

    /// Server `s`'s address as host and port, as this view gives it.
    fn host_port(&self, s: ServerId) -> (&str, i64) {
        let name = self.topology.name(s);
        host_port(self.addrs.and_then(|a| a.get(name)).map_or(self.topology.addr(s), |a| a.as_str()))
    }

    fn ranges(&self) -> Vec<Range> {
        let mut out: Vec<Range> = Vec::new();
        for (i, &server) in self.serving.iter().enumerate() {
            let (slot, owner) = (i as u16, self.owners[i]);
            match out.last_mut() {
                Some(r) if r.server == server && r.owner == owner && r.last + 1 == slot => r.last = slot,
                _ => out.push(Range { first: slot, last: slot, server, owner }),
            }
        }
        out
    }

    /// The group's other members online in this view: the range's replicas.
    fn replicas(&self, r: &Range) -> Vec<ServerId> {
        let online = |s: &ServerId| self.online.get(s.0 as usize).copied().unwrap_or(false);
        self.topology.group(r.owner).iter().copied().filter(|s| *s != r.server && online(s)).collect()
    }

    fn node(&self, s: ServerId, out: &mut Vec<u8>, p: Proto) {
        let topo = self.topology;
        let (host, port) = self.host_port(s);
        reply::array(out, 4);
        reply::bulk(out, host.as_bytes());
        reply::int(out, port);
        reply::bulk(out, node_id(topo.name(s)).as_bytes());
        reply::map(out, 0, p);
    }

    /// CLUSTER SLOTS: each range, its serving server, then its replicas.
    pub fn slots(&self, out: &mut Vec<u8>, p: Proto) {
        let ranges = self.ranges();
        reply::array(out, ranges.len());
        for r in &ranges {
            let replicas = self.replicas(r);
            reply::array(out, 3 + replicas.len());
            reply::int(out, r.first as i64);
            reply::int(out, r.last as i64);
            self.node(r.server, out, p);
            for s in replicas {
                self.node(s, out, p);
            }
        }
    }

    /// CLUSTER SHARDS: one shard per serving server, with its ranges and
    /// the members of its groups.
    pub fn shards(&self, out: &mut Vec<u8>, p: Proto) {
        let topo = self.topology;
        let ranges = self.ranges();
        let servers: Vec<ServerId> = topo.servers().filter(|s| ranges.iter().any(|r| r.server == *s)).collect();
        reply::array(out, servers.len());
        for s in servers {
            let mine: Vec<&Range> = ranges.iter().filter(|r| r.server == s).collect();
            let mut members = vec![s];
            for r in &mine {
                for m in self.replicas(r) {
                    if !members.contains(&m) {
                        members.push(m);
                    }
                }
            }
            reply::map(out, 2, p);
            reply::bulk(out, b"slots");
            reply::array(out, mine.len() * 2);
            for r in &mine {
                reply::int(out, r.first as i64);
                reply::int(out, r.last as i64);
            }
            reply::bulk(out, b"nodes");
            reply::array(out, members.len());
            for m in members {
                let (host, port) = self.host_port(m);
                let role: &[u8] = if m == s { b"master" } else { b"replica" };
                reply::map(out, 7, p);
                reply::bulk(out, b"id");
                reply::bulk(out, node_id(topo.name(m)).as_bytes());
                reply::bulk(out, b"port");
                reply::int(out, port);
                reply::bulk(out, b"ip");
                reply::bulk(out, host.as_bytes());
                reply::bulk(out, b"endpoint");
                reply::bulk(out, host.as_bytes());
                reply::bulk(out, b"role");
                reply::bulk(out, role);
                reply::bulk(out, b"replication-offset");
                reply::int(out, 0);
                reply::bulk(out, b"health");
                reply::bulk(out, if self.is_online(m) { b"online" } else { b"fail" });
            }
        }
    }

    fn is_online(&self, s: ServerId) -> bool {
        s == self.me || self.online.get(s.0 as usize).copied().unwrap_or(false)
    }

    /// CLUSTER NODES: one line per server, its ranges served now.
    pub fn nodes(&self) -> String {
        let topo = self.topology;
        let ranges = self.ranges();
        let mut o = String::new();
        for s in topo.servers() {
            let (host, port) = self.host_port(s);
            let mut flags = if s == self.me { "myself,master".to_string() } else { "master".to_string() };
            if !self.is_online(s) {
                flags.push_str(",fail");
            }
            let link = if self.is_online(s) { "connected" } else { "disconnected" };
            let _ = write!(o, "{} {host}:{port}@{} {flags} - 0 0 0 {link}", node_id(topo.name(s)), port + 10000);
            for r in ranges.iter().filter(|r| r.server == s) {
                if r.first == r.last {
                    let _ = write!(o, " {}", r.first);
                } else {
                    let _ = write!(o, " {}-{}", r.first, r.last);
                }
            }
            o.push('\n');
        }
        o
    }

    /// CLUSTER INFO.
    pub fn info(&self) -> String {
        let topo = self.topology;
        let slots = self.serving.len();
        let unserved = self.serving.iter().filter(|s| !self.is_online(**s)).count();
        let state = if unserved == 0 { "ok" } else { "fail" };
        let size = self.ranges().iter().map(|r| r.server).collect::<std::collections::BTreeSet<_>>().len();
        format!(
            "cluster_state:{state}\r\ncluster_slots_assigned:{slots}\r\ncluster_slots_ok:{}\r\n\
             cluster_slots_pfail:0\r\ncluster_slots_fail:{unserved}\r\ncluster_known_nodes:{}\r\n\
             cluster_size:{size}\r\ncluster_current_epoch:0\r\ncluster_my_epoch:0\r\n\
             cluster_stats_messages_sent:0\r\ncluster_stats_messages_received:0\r\n\
             total_cluster_links_buffer_limit_exceeded:0\r\n",
            slots - unserved,
            topo.server_count(),
        )
    }

    pub fn my_id(&self) -> String {
        node_id(self.topology.name(self.me))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::{decode_reply, Reply};
    use failgroup_model::ClusterSpec;

    fn view(topo: &Topology, online: Vec<bool>) -> ClusterView<'_> {
        let up = online.clone();
        ClusterView::new(topo, ServerId(0), online, move |s| topo.serving_server(s, |x| up[x.0 as usize]))
    }

    fn decoded(out: &[u8]) -> Reply {
        let (r, used) = decode_reply(out).unwrap().unwrap();
        assert_eq!(used, out.len());
        r
    }

    #[test]
    fn node_ids_are_forty_hex_digits_and_distinct() {
        let (a, b) = (node_id("s1"), node_id("s2"));
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(a, node_id("s1"));
    }

    #[test]
    fn slots_name_the_failover_server_while_the_owner_is_offline() {
        let topo = ClusterSpec::local(3, 1, 7101, 16384).validate().unwrap();
        let all = view(&topo, vec![true; 3]);
        let mut out = Vec::new();
        all.slots(&mut out, Proto::Resp2);
        let Reply::Array(Some(ranges)) = decoded(&out) else { panic!("an array") };
        assert_eq!(ranges.len(), 3, "one range per owner");
        let covered: i64 = ranges
            .iter()
            .map(|r| match r {
                Reply::Array(Some(v)) => match (&v[0], &v[1]) {
                    (Reply::Int(a), Reply::Int(b)) => b - a + 1,
                    _ => panic!("bounds"),
                },
                _ => panic!("a range"),
            })
            .sum();
        assert_eq!(covered, 16384);
        // s2 offline: its slots are reported with the failover server.
        let down = view(&topo, vec![true, false, true]);
        assert!(down.owners.contains(&ServerId(1)));
        assert!(down.serving.iter().all(|s| *s != ServerId(1)));
        assert!(!down.nodes().contains(&format!("{} 127.0.0.1:7102@17102 master - 0 0 0 connected", node_id("s2"))));
        assert!(down.info().starts_with("cluster_state:ok"));
    }

    #[test]
    fn a_topology_of_fewer_slots_still_covers_redis_clusters_16384() {
        let topo = ClusterSpec::local(2, 1, 7101, 64).validate().unwrap();
        let v = view(&topo, vec![true; 2]);
        assert_eq!(v.serving.len(), 16384);
        for key in [&b"a"[..], b"foo", b"{user1}x"] {
            let redis_slot = failgroup_model::key_slot(key, SLOTS).0 as usize;
            assert_eq!(v.owners[redis_slot], topo.owner(topo.slot(key)), "{key:?}");
        }
    }

    #[test]
    fn resp3_shards_are_maps() {
        let topo = ClusterSpec::local(2, 1, 7101, 16384).validate().unwrap();
        let v = view(&topo, vec![true; 2]);
        let mut out = Vec::new();
        v.shards(&mut out, Proto::Resp3);
        let Reply::Array(Some(shards)) = decoded(&out) else { panic!("an array") };
        assert_eq!(shards.len(), 2);
        assert!(matches!(&shards[0], Reply::Map(m) if m.len() == 2));
    }
}
