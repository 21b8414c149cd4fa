//! A server's metrics (issue 18): what its loop has counted, copied for the
//! metrics thread (`crate::metrics`) a few times a second.

use super::node::ServerNode;
use crate::metrics::{Metric, Published};
use prometheus_client::registry::Unit;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl ServerNode {
    /// Copies the counts into what `GET /metrics` shows.
    pub(super) fn publish(&mut self) {
        self.published_at = Instant::now();
        // Forwards never answered (a peer gone) are forgotten after a while.
        self.forwards.retain(|_, sent| sent.elapsed() < std::time::Duration::from_secs(60));
        let st = &self.stats;
        let now = self.clock.now();
        let served = self.st.rights.keys().filter(|s| self.core.serving(&self.st, **s, now)).count();
        let commits = self.store_stats.commits.load(Ordering::Relaxed);
        let store_commands = self.store_stats.commands.load(Ordering::Relaxed);
        let (commit_time, batch_size) =
            self.store_stats.batches.lock().map(|b| b.clone()).unwrap_or_else(|e| e.into_inner().clone());
        let (mut calls, mut failed, mut rejected, mut time) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for c in self.costs.each() {
            calls.push((c.name.to_string(), c.calls));
            failed.push((c.name.to_string(), c.failed));
            rejected.push((c.name.to_string(), c.rejected));
            time.push((c.name.to_string(), c.time.clone()));
        }
        let topo = self.core.topo(&self.st);
        let view_version = topo.servers().map(|s| self.st.view().version_of(s).counter).max().unwrap_or_default();
        let counter = |v: u64| Metric::Counter(v);
        let gauge = |v: usize| Metric::Gauge(v as i64);
        let metrics = vec![
            (
                "failgroup_commands",
                "Commands run, by name (Redis's, `client|list` for a subcommand).",
                None,
                Metric::Counters("command", calls),
            ),
            (
                "failgroup_command_errors",
                "Commands answered with an error, by name.",
                None,
                Metric::Counters("command", failed),
            ),
            (
                "failgroup_error_replies",
                "Error replies sent, by code (the first word: ERR, WRONGTYPE, NOPERM), as INFO errorstats.",
                None,
                Metric::Counters("code", self.costs.errors()),
            ),
            (
                "failgroup_commands_rejected",
                "Commands refused before they ran (arity, syntax, NOPERM, OOM), by name.",
                None,
                Metric::Counters("command", rejected),
            ),
            (
                "failgroup_command_duration",
                "Time from a command's decoding to its reply, forwarding and the store included.",
                Some(Unit::Seconds),
                Metric::Histograms("command", time),
            ),
            ("failgroup_connections_received", "Client connections accepted.", None, counter(st.connections)),
            (
                "failgroup_connections_rejected",
                "Client connections refused over maxclients.",
                None,
                counter(st.rejected_connections),
            ),
            ("failgroup_connected_clients", "Client connections open.", None, gauge(self.sessions.len())),
            ("failgroup_keyspace_hits", "Keys GET and MGET found (Redis's keyspace_hits).", None, counter(st.hits)),
            ("failgroup_keyspace_misses", "Keys GET and MGET did not find.", None, counter(st.misses)),
            ("failgroup_cache_hits", "Reads this server served from its cache.", None, counter(st.cache_hits)),
            ("failgroup_cache_misses", "Reads this server served from the store.", None, counter(st.cache_misses)),
            ("failgroup_cache_evictions", "Cached copies dropped under maxmemory.", None, counter(st.evicted)),
            ("failgroup_cached_keys", "Keys in the cache.", None, gauge(self.st.cached_keys())),
            (
                "failgroup_requests_forwarded",
                "Requests passed to the server that serves their slot.",
                None,
                counter(st.forwarded),
            ),
            (
                "failgroup_requests_served",
                "Requests answered for a peer that forwarded them (c15) or for a library client, by whose.",
                None,
                Metric::Counters("from", vec![("peer".into(), st.for_peers), ("library".into(), st.for_library)]),
            ),
            (
                "failgroup_requests_waiting",
                "Requests waiting in the core (at the store, forwarded, or for a right).",
                None,
                gauge(self.st.waiting()),
            ),
            (
                "failgroup_rights_held",
                "Serving rights held (slots this server may serve).",
                None,
                gauge(self.st.rights.len()),
            ),
            ("failgroup_slots_served", "Slots this server serves now (rights trusted).", None, gauge(served)),
            ("failgroup_rights_taken", "Serving rights gained.", None, counter(st.rights_taken)),
            (
                "failgroup_slots_handed_back",
                "Slots handed to another server (hand-backs, drains, moves).",
                None,
                counter(st.handed_back),
            ),
            (
                "failgroup_failovers",
                "Master notices of a server going offline this server applied.",
                None,
                counter(st.failovers),
            ),
            ("failgroup_store_commits", "Store transactions (each a batch of commands).", None, counter(commits)),
            ("failgroup_store_commands", "Store commands run.", None, counter(store_commands)),
            (
                "failgroup_forward_duration",
                "Time from forwarding a request to a peer to its reply.",
                Some(Unit::Seconds),
                Metric::Histogram(self.forward_time.clone()),
            ),
            (
                "failgroup_store_commit_duration",
                "Time of each store transaction (a batch of commands), commit included.",
                Some(Unit::Seconds),
                Metric::Histogram(commit_time),
            ),
            (
                "failgroup_store_batch_commands",
                "Commands in each store transaction (group commit).",
                None,
                Metric::Histogram(batch_size),
            ),
            (
                "failgroup_view_version",
                "The counter of the newest master notice this server applied.",
                None,
                Metric::Gauge(view_version as i64),
            ),
            (
                "failgroup_topology_version",
                "The topology's version at this server.",
                None,
                Metric::Gauge(self.core.topo(&self.st).version() as i64),
            ),
            (
                "failgroup_used_memory",
                "Bytes allocated (INFO used_memory).",
                Some(Unit::Bytes),
                Metric::Gauge(crate::mem::used() as i64),
            ),
        ];
        *self.published.lock().unwrap_or_else(|e| e.into_inner()) = Published { metrics };
    }
}
