//! INFO, in Redis's format (`# Section` then `field:value` lines), as a
//! pure function of a snapshot of the server's counters and of what the
//! core answers about its state.

use failgroup_model::{Mode, Version};
use std::fmt::Write;

/// The loop's counters.
#[derive(Default)]
pub(super) struct Stats {
    pub connections: u64,
    pub commands: u64,
    /// Keys GET and MGET found, and did not (Redis's keyspace_hits and
    /// keyspace_misses), counted by the server the client asked.
    pub hits: u64,
    pub misses: u64,
    /// Reads this server served from its cache, and from the store.
    pub cache_hits: u64,
    pub cache_misses: u64,
    /// Cached copies dropped under `maxmemory`.
    pub evicted: u64,
    pub forwarded: u64,
    /// Requests answered for a peer that forwarded them here (c15), and
    /// for library clients.
    pub for_peers: u64,
    pub for_library: u64,
    pub rejected_connections: u64,
    pub failovers: u64,
    pub rights_taken: u64,
    pub handed_back: u64,
}

/// Everything INFO reports, taken at one moment.
pub(super) struct Snapshot<'a> {
    pub name: &'a str,
    pub group: &'a str,
    pub mode: Mode,
    pub port: &'a str,
    pub uptime_s: u64,
    pub connected_clients: usize,
    /// RESP connections with a command in flight.
    pub blocked_clients: usize,
    pub maxclients: usize,
    pub stats: &'a Stats,
    /// Keys in the cache.
    pub keys: usize,
    pub view_version: Version,
    /// The topology's version at this server (issue 17).
    pub topology_version: u64,
    pub offline: Vec<&'a str>,
    pub slots_owned: usize,
    /// Slots this server answers for itself now (the core's `serving`).
    pub slots_served: usize,
    pub slots_served_for_others: usize,
    /// Requests waiting in the core.
    pub waiting: usize,
    /// The store's kind (`sqlite`, `postgres`).
    pub store: &'static str,
    pub store_commits: u64,
    pub store_commands: u64,
    /// Time in the store's transactions, seconds, all of them together.
    pub store_seconds: f64,
    /// Bytes allocated, and resident (`crate::mem`).
    pub used_memory: u64,
    pub rss: u64,
    pub maxmemory: u64,
    pub policy: failgroup_model::Policy,
    /// INFO commandstats, rendered (`slowlog.rs`).
    pub commandstats: String,
    /// INFO latencystats, rendered (`slowlog.rs`).
    pub latencystats: String,
    /// INFO errorstats, rendered (`slowlog.rs`).
    pub errorstats: String,
    /// Error replies sent (INFO stats' `total_error_replies`).
    pub error_replies: u64,
}

/// INFO `section` (all of them for none, `all`, `everything`, `default`).
pub(super) fn render(s: &Snapshot, section: Option<&str>) -> String {
    let want = |name: &str| matches!(section, None | Some("all" | "everything" | "default")) || section == Some(name);
    let mut o = String::new();
    if want("server") {
        let _ = write!(
            o,
            "# Server\r\nredis_version:{}\r\nfailgroup_version:{}\r\nredis_mode:cluster\r\n\
             os:{}\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\n\
             executable:{}\r\n\r\n",
            super::local::REDIS_VERSION,
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::process::id(),
            s.port,
            s.uptime_s,
            s.uptime_s / 86400,
            std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
        );
    }
    if want("clients") {
        let _ = write!(
            o,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\n\r\n",
            s.connected_clients, s.maxclients, s.blocked_clients,
        );
    }
    if want("memory") {
        use crate::mem::human;
        let frag = if s.used_memory > 0 { s.rss as f64 / s.used_memory as f64 } else { 0.0 };
        let _ = write!(
            o,
            "# Memory\r\nused_memory:{}\r\nused_memory_human:{}\r\nused_memory_rss:{}\r\n\
             used_memory_rss_human:{}\r\nmaxmemory:{}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\n\
             mem_fragmentation_ratio:{frag:.2}\r\n\r\n",
            s.used_memory,
            human(s.used_memory),
            s.rss,
            human(s.rss),
            s.maxmemory,
            human(s.maxmemory),
            s.policy,
        );
    }
    if want("persistence") {
        // Redis's `loading`, which clients and exporters read; then the
        // store, where every acknowledged write is (no RDB or AOF here).
        let avg_usec = if s.store_commits > 0 { s.store_seconds * 1e6 / s.store_commits as f64 } else { 0.0 };
        let avg_batch = if s.store_commits > 0 { s.store_commands as f64 / s.store_commits as f64 } else { 0.0 };
        let _ = write!(
            o,
            "# Persistence\r\nloading:0\r\nasync_loading:0\r\nstore:{}\r\nstore_commits:{}\r\n\
             store_commands:{}\r\nstore_commit_avg_usec:{avg_usec:.0}\r\nstore_batch_avg_commands:{avg_batch:.2}\r\n\r\n",
            s.store, s.store_commits, s.store_commands,
        );
    }
    if want("stats") {
        let st = s.stats;
        let _ = write!(
            o,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
             rejected_connections:{}\r\nevicted_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\n\
             total_error_replies:{}\r\n\r\n",
            st.connections, st.commands, st.rejected_connections, st.evicted, st.hits, st.misses, s.error_replies,
        );
    }
    // Not in the default sections, as in Redis.
    if matches!(section, Some("all" | "everything" | "commandstats")) {
        o.push_str(&s.commandstats);
    }
    if matches!(section, Some("all" | "everything" | "latencystats")) {
        o.push_str(&s.latencystats);
    }
    // In the default sections, as in Redis.
    if want("errorstats") {
        o.push_str(&s.errorstats);
    }
    if want("cluster") {
        o.push_str("# Cluster\r\ncluster_enabled:1\r\n\r\n");
    }
    if want("keyspace") {
        o.push_str("# Keyspace\r\n");
        if s.keys > 0 {
            let _ = write!(o, "db0:keys={},expires=0,avg_ttl=0\r\n", s.keys);
        }
        o.push_str("\r\n");
    }
    if want("failgroup") {
        let st = s.stats;
        let _ = write!(
            o,
            "# Failgroup\r\nserver_name:{}\r\ngroup:{}\r\nmode:{}\r\nview_version:{}\r\n\
             topology_version:{}\r\nservers_offline:{}\r\nslots_owned:{}\r\nslots_served:{}\r\nslots_served_for_others:{}\r\n\
             failovers_seen:{}\r\nrights_taken:{}\r\nslots_handed_back:{}\r\nrequests_forwarded:{}\r\n\
             requests_waiting:{}\r\nstore_commits:{}\r\nstore_commands:{}\r\ncache_hits:{}\r\n\
             cache_misses:{}\r\n\r\n",
            s.name,
            s.group,
            s.mode,
            s.view_version,
            s.topology_version,
            s.offline.join(","),
            s.slots_owned,
            s.slots_served,
            s.slots_served_for_others,
            st.failovers,
            st.rights_taken,
            st.handed_back,
            st.forwarded,
            s.waiting,
            s.store_commits,
            s.store_commands,
            st.cache_hits,
            st.cache_misses,
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_fields_from_a_snapshot() {
        let stats = Stats { hits: 5, misses: 2, evicted: 7, cache_hits: 9, ..Stats::default() };
        let snap = Snapshot {
            name: "s1",
            group: "g0",
            mode: Mode::Linearizable,
            port: "7101",
            uptime_s: 90_000,
            connected_clients: 2,
            blocked_clients: 1,
            maxclients: 100,
            stats: &stats,
            keys: 0,
            view_version: Version::default(),
            topology_version: 2,
            offline: vec!["s2", "s3"],
            slots_owned: 10,
            slots_served: 12,
            slots_served_for_others: 2,
            waiting: 0,
            store: "sqlite",
            store_commits: 2,
            store_commands: 5,
            store_seconds: 0.003,
            used_memory: 3 << 20,
            rss: 6 << 20,
            maxmemory: 100 << 20,
            policy: failgroup_model::Policy::AllKeysLru,
            commandstats: "# Commandstats\r\ncmdstat_get:calls=1\r\n\r\n".into(),
            latencystats: "# Latencystats\r\n\r\n".into(),
            errorstats: "# Errorstats\r\nerrorstat_ERR:count=1\r\n\r\n".into(),
            error_replies: 1,
        };
        let all = render(&snap, None);
        for line in [
            "keyspace_hits:5\r\n",
            "cluster_enabled:1\r\n",
            "redis_mode:cluster\r\n",
            "keyspace_misses:2\r\n",
            "uptime_in_days:1\r\n",
            "servers_offline:s2,s3\r\n",
            "used_memory:3145728\r\n",
            "used_memory_human:3.00M\r\n",
            "maxmemory:104857600\r\n",
            "maxmemory_human:100.00M\r\n",
            "maxmemory_policy:allkeys-lru\r\n",
            "mem_fragmentation_ratio:2.00\r\n",
            "evicted_keys:7\r\n",
            "cache_hits:9\r\n",
            "# Persistence\r\nloading:0\r\n",
            "store:sqlite\r\n",
            "store_commit_avg_usec:1500\r\n",
            "store_batch_avg_commands:2.50\r\n",
        ] {
            assert!(all.contains(line), "{line:?} in {all}");
        }
        assert!(!all.contains("db0:"), "no keyspace line without keys");
        assert!(!all.contains("# Commandstats"), "not a default section");
        assert!(render(&snap, Some("all")).contains("cmdstat_get:calls=1\r\n"));
        assert!(render(&snap, Some("commandstats")).starts_with("# Commandstats\r\n"));
        let stats_only = render(&snap, Some("stats"));
        assert!(stats_only.starts_with("# Stats\r\n") && !stats_only.contains("# Server"));
        let memory = all.find("# Memory").expect("memory");
        let persistence = all.find("# Persistence").expect("persistence");
        let stats = all.find("# Stats").expect("stats");
        assert!(memory < persistence && persistence < stats, "Redis's order of sections");
        assert_eq!(render(&snap, Some("nonesuch")), "");
    }
}
