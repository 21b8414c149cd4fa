//! The commands a server answers itself (PING, ECHO, AUTH, HELLO, CLIENT,
//! CONFIG GET, DBSIZE, INFO, QUIT...): a pure function of the command, the
//! connection's session and a context, testable without sockets.

use super::clients::ClientRow;
use super::cluster::ClusterView;
use super::command_table::{Entry, TABLE};
use super::commands::{ClusterCmd, Local};
use super::session::{Multi, Session};
use crate::config::{CacheConfig, Limits};
use crate::net::wire::secret_matches;
use crate::resp::{reply, Proto};

/// The Redis version whose replies and command set failgroup follows:
/// HELLO and INFO report it, and the differential tests compare with it.
pub const REDIS_VERSION: &str = "7.0.15";

/// What a local command may read beyond its session.
pub(super) struct Context<'a> {
    pub requirepass: Option<&'a str>,
    pub limits: &'a Limits,
    pub cache: &'a CacheConfig,
    /// INFO's text, if the command is INFO.
    pub info: Option<String>,
    /// The cluster as this server sees it, if the command is CLUSTER.
    pub cluster: Option<ClusterView<'a>>,
    /// This server's RESP connections, if the command is CLIENT LIST or
    /// INFO (the caller's is the one of its session's id).
    pub clients: Vec<ClientRow>,
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Whether `user` with `pass` logs in: the one user, `default`, with the
/// configured password (any password when none is configured, as Redis's
/// `nopass` default user).
fn logs_in(ctx: &Context, user: &[u8], pass: &[u8]) -> bool {
    user == b"default"
        && match ctx.requirepass {
            None => true,
            Some(p) => secret_matches(Some(p), std::str::from_utf8(pass).ok()),
        }
}

/// The table's entry of a command, by its name in any case.
fn entry(name: &[u8]) -> Option<&'static Entry> {
    TABLE.iter().find(|(n, ..)| n.as_bytes().eq_ignore_ascii_case(name))
}

/// A client name may not hold spaces, newlines or other special characters.
fn valid_name(n: &[u8]) -> bool {
    n.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

const BAD_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

/// Writes the reply to `l` into `out`; whether the connection closes after it.
pub(super) fn answer(l: Local, s: &mut Session, ctx: &Context, out: &mut Vec<u8>) -> bool {
    let p = s.proto;
    match l {
        Local::Ping(None) => reply::simple(out, "PONG"),
        Local::Ping(Some(m)) | Local::Echo(m) => reply::bulk(out, &m),
        Local::Info(_) => reply::verbatim(out, ctx.info.clone().unwrap_or_default().as_bytes(), p),
        Local::Auth(pass) => match ctx.requirepass {
            None => reply::error(
                out,
                "ERR AUTH <password> called without any password configured for the default user. \
                 Are you sure your configuration is correct?",
            ),
            Some(p) if secret_matches(Some(p), std::str::from_utf8(&pass).ok()) => {
                s.authed = true;
                reply::ok(out);
            }
            Some(_) => reply::error(out, WRONGPASS),
        },
        Local::Select | Local::Ok => reply::ok(out),
        Local::Multi if s.multi.is_some() => reply::error(out, "ERR MULTI calls can not be nested"),
        Local::Multi => {
            s.multi = Some(Multi::default());
            reply::ok(out);
        }
        Local::Discard => match s.multi.take() {
            None => reply::error(out, "ERR DISCARD without MULTI"),
            Some(_) => {
                s.watched.clear();
                reply::ok(out)
            }
        },
        // An EXEC with commands queued or keys watched is the pipeline's
        // (one atomic operation through the core); here the others.
        Local::Exec => match s.multi.take() {
            None => reply::error(out, "ERR EXEC without MULTI"),
            Some(m) => {
                s.watched.clear();
                if m.dirty {
                    reply::error(out, "EXECABORT Transaction discarded because of previous errors.")
                } else {
                    // Nothing but UNWATCH queued: OK for each.
                    reply::array(out, m.cmds.len());
                    m.cmds.iter().for_each(|_| reply::ok(out));
                }
            }
        },
        Local::Unwatch => {
            s.watched.clear();
            reply::ok(out);
        }
        Local::Quit => {
            reply::ok(out);
            return true;
        }
        Local::Hello { proto, auth, setname } => {
            if let Some((user, pass)) = auth {
                if !logs_in(ctx, &user, &pass) {
                    reply::error(out, WRONGPASS);
                    return false;
                }
                s.authed = true;
            }
            if !s.authed {
                reply::error(
                    out,
                    "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
                     HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
                     select the RESP protocol version at the same time",
                );
                return false;
            }
            if let Some(n) = setname {
                if !valid_name(&n) {
                    reply::error(out, BAD_NAME);
                    return false;
                }
                s.name = (!n.is_empty()).then_some(n);
            }
            if let Some(proto) = proto {
                s.proto = proto;
            }
            let p = s.proto;
            reply::map(out, 7, p);
            for (k, v) in [("server", "redis"), ("version", REDIS_VERSION)] {
                reply::bulk(out, k.as_bytes());
                reply::bulk(out, v.as_bytes());
            }
            reply::bulk(out, b"proto");
            reply::int(out, p.number());
            reply::bulk(out, b"id");
            reply::int(out, s.id as i64);
            for (k, v) in [("mode", "cluster"), ("role", "master")] {
                reply::bulk(out, k.as_bytes());
                reply::bulk(out, v.as_bytes());
            }
            reply::bulk(out, b"modules");
            reply::array(out, 0);
        }
        Local::Cluster(cmd) => {
            let Some(view) = &ctx.cluster else {
                reply::error(out, "ERR This instance has cluster support disabled");
                return false;
            };
            match cmd {
                ClusterCmd::Slots => view.slots(out, p),
                ClusterCmd::Shards => view.shards(out, p),
                ClusterCmd::Nodes => reply::verbatim(out, view.nodes().as_bytes(), p),
                ClusterCmd::Info => reply::verbatim(out, view.info().as_bytes(), p),
                ClusterCmd::MyId => reply::bulk(out, view.my_id().as_bytes()),
                ClusterCmd::KeySlot(key) => {
                    reply::int(out, failgroup_model::key_slot(&key, failgroup_model::SLOTS).0 as i64)
                }
            }
        }
        Local::ClientSetName(n) if !valid_name(&n) => reply::error(out, BAD_NAME),
        Local::ClientSetName(n) => {
            s.name = (!n.is_empty()).then_some(n);
            reply::ok(out);
        }
        Local::ClientGetName => reply::value(out, s.name.as_deref(), p),
        Local::ClientInfo => {
            let mine = ctx.clients.iter().find(|c| c.id == s.id).map(|c| c.line() + "\n").unwrap_or_default();
            reply::verbatim(out, mine.as_bytes(), p);
        }
        Local::ClientList(filter) => {
            let text: String = ctx
                .clients
                .iter()
                .filter(|c| filter.kind != Some(false) && filter.ids.as_ref().is_none_or(|ids| ids.contains(&c.id)))
                .map(|c| c.line() + "\n")
                .collect();
            reply::verbatim(out, text.as_bytes(), p);
        }
        // Carried out by the pipeline, which sees every connection.
        Local::ClientKill(_) => reply::error(out, "ERR CLIENT KILL is carried out by the server loop"),
        Local::Flush => reply::error(out, "ERR FLUSHDB is carried out by the server loop"),
        Local::ConfigSet(_) => reply::error(out, "ERR CONFIG SET is carried out by the server loop"),
        Local::ClientId => reply::int(out, s.id as i64),
        Local::CommandInfo(names) => {
            let proto = (p == Proto::Resp3) as usize;
            match names {
                None => {
                    reply::array(out, TABLE.len());
                    TABLE.iter().for_each(|(_, info, _)| out.extend_from_slice(info[proto]));
                }
                Some(names) => {
                    reply::array(out, names.len());
                    for n in names {
                        match entry(&n) {
                            Some((_, info, _)) => out.extend_from_slice(info[proto]),
                            None => reply::null(out, p),
                        }
                    }
                }
            }
        }
        Local::CommandDocs(names) => {
            let proto = (p == Proto::Resp3) as usize;
            let found: Vec<_> = match names {
                None => TABLE.iter().collect(),
                Some(names) => names.iter().filter_map(|n| entry(n)).collect(),
            };
            // Each entry holds the command's name, then its docs.
            reply::map(out, found.len(), p);
            found.iter().for_each(|(_, _, docs)| out.extend_from_slice(docs[proto]));
        }
        Local::CommandList => {
            reply::array(out, TABLE.len());
            TABLE.iter().for_each(|(name, ..)| reply::bulk(out, name.as_bytes()));
        }
        Local::CommandCount => reply::int(out, TABLE.len() as i64),
        Local::ConfigGet(param) => {
            let limits = ctx.limits;
            let cache = ctx.cache;
            let known: [(&str, String); 11] = [
                ("maxclients", limits.maxclients.to_string()),
                ("requirepass", ctx.requirepass.unwrap_or_default().to_string()),
                ("loglevel", crate::util::log_level().to_string()),
                ("maxmemory", cache.maxmemory.0.to_string()),
                ("maxmemory-policy", cache.maxmemory_policy.to_string()),
                ("maxmemory-samples", cache.maxmemory_samples.to_string()),
                ("proto-max-bulk-len", limits.max_bulk.to_string()),
                ("timeout", limits.idle_timeout.to_string()),
                ("save", String::new()),
                ("appendonly", "no".into()),
                ("databases", "1".into()),
            ];
            let hits: Vec<&(&str, String)> =
                known.iter().filter(|(k, _)| failgroup_model::glob::matches(&param, k.as_bytes(), true)).collect();
            reply::map(out, hits.len(), p);
            for (k, v) in hits {
                reply::bulk(out, k.as_bytes());
                reply::bulk(out, v.as_bytes());
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::{decode_reply, Reply};
    use failgroup_model::ClientId;

    fn session() -> Session {
        Session {
            client: ClientId(1),
            seq: 0,
            authed: false,
            name: None,
            id: 7,
            proto: Proto::Resp2,
            multi: None,
            watched: Vec::new(),
            last_cmd: String::new(),
            inflight: Default::default(),
            next_cmd: 0,
            stalled: None,
            starved: false,
            barriers: 0,
        }
    }

    fn run(l: Local, s: &mut Session, requirepass: Option<&str>) -> (Reply, bool) {
        let (limits, cache) = (Limits::default(), CacheConfig::default());
        let ctx = Context {
            requirepass,
            limits: &limits,
            cache: &cache,
            info: Some("# Server\r\n".into()),
            cluster: None,
            clients: Vec::new(),
        };
        let mut out = Vec::new();
        let close = answer(l, s, &ctx, &mut out);
        let (reply, used) = decode_reply(&out).expect("a reply").expect("a whole reply");
        assert_eq!(used, out.len(), "one reply");
        (reply, close)
    }

    /// Every command the parser serves has Redis's COMMAND entry, and the
    /// table names no command it does not serve.
    #[test]
    fn the_command_table_is_the_commands_served() {
        use super::super::commands::{parse, CommandError};
        let topo = failgroup_model::ClusterSpec::local(3, 1, 7101, 16384).validate().unwrap();
        for (name, ..) in TABLE {
            let known = !matches!(parse(&[name.as_bytes().to_vec()], &topo), Err(CommandError::UnknownCommand { .. }));
            assert!(known, "{name} is in the table but not served");
        }
        for name in ["get", "hset", "lpush", "getdel", "multi", "cluster", "scan"] {
            let served = !matches!(parse(&[name.as_bytes().to_vec()], &topo), Err(CommandError::UnknownCommand { .. }));
            assert_eq!(served, entry(name.as_bytes()).is_some(), "{name}: served and in the table alike");
        }
        let mut s = session();
        assert_eq!(run(Local::CommandCount, &mut s, None).0, Reply::Int(TABLE.len() as i64));
        let Reply::Array(Some(infos)) =
            run(Local::CommandInfo(Some(vec![b"GET".to_vec(), b"nosuch".to_vec()])), &mut s, None).0
        else {
            panic!("an array")
        };
        assert!(matches!(&infos[0], Reply::Array(Some(e)) if e[0] == Reply::Bulk(Some(b"get".to_vec()))));
        assert_eq!(infos[1], Reply::Bulk(None), "nil, as Redis answers an unknown name");
    }

    #[test]
    fn auth_ping_dbsize_quit_without_sockets() {
        let mut s = session();
        let (r, _) = run(Local::Auth(b"nope".to_vec()), &mut s, Some("pw"));
        assert_eq!(r, Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into()));
        assert!(!s.authed);
        assert_eq!(run(Local::Auth(b"pw".to_vec()), &mut s, Some("pw")).0, Reply::Simple("OK".into()));
        assert!(s.authed);
        assert!(
            matches!(run(Local::Auth(b"pw".to_vec()), &mut s, None).0, Reply::Error(e) if e.starts_with("ERR AUTH"))
        );
        assert_eq!(run(Local::Ping(None), &mut s, None).0, Reply::Simple("PONG".into()));
        assert_eq!(run(Local::ClientId, &mut s, None).0, Reply::Int(7));
        assert_eq!(run(Local::Info(None), &mut s, None).0, Reply::Bulk(Some(b"# Server\r\n".to_vec())));
        assert_eq!(run(Local::Quit, &mut s, None), (Reply::Simple("OK".into()), true));
    }

    #[test]
    fn config_get_answers_matching_pairs() {
        let mut s = session();
        let Reply::Array(Some(pairs)) = run(Local::ConfigGet(b"max*".to_vec()), &mut s, None).0 else {
            panic!("an array")
        };
        let names: Vec<&Reply> = pairs.iter().step_by(2).collect();
        let bulk = |s: &str| Reply::Bulk(Some(s.as_bytes().to_vec()));
        let want = ["maxclients", "maxmemory", "maxmemory-policy", "maxmemory-samples"].map(bulk);
        assert_eq!(names, want.iter().collect::<Vec<_>>());
        assert_eq!(pairs[5], bulk("noeviction"));
    }
}
