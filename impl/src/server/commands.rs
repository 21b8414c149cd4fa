//! RESP commands: parsed into the core's operations (data commands) or
//! answered by the runtime (connection and server commands), and results
//! encoded the way Redis answers them, errors included.

use crate::resp::{reply, Proto};
use failgroup_model::{
    DbRead, Deadline, ExpireCond, HashRead, HashWrite, Inspect, KeysWrite, Op, OpResult, SetCond, SetOpts, Topology,
    Update,
};
use std::fmt;

/// How the results of a data command's operations become one reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Get,
    Set,
    /// DEL: the number of keys removed.
    Del,
    /// EXISTS, TOUCH: the number of keys present.
    Exists,
    MGet,
    MSet,
    Int,
    /// TTL (seconds) or PTTL (milliseconds).
    Ttl {
        seconds: bool,
    },
    /// A status reply (TYPE).
    Status,
    /// SCAN: the next cursor and the keys.
    Scan,
    /// KEYS: the keys.
    Keys,
    /// HMGET, HKEYS, HVALS: an array of values.
    Values,
    /// HGETALL: a map in RESP3, fields and values in turn in RESP2.
    Pairs,
    /// HSCAN: cursor 0 and fields and values in turn.
    HScan,
    /// WATCH: OK once the keys' versions are read.
    Watch,
    /// UNWATCH queued in a transaction: OK.
    Unwatch,
    /// FLUSHDB's page of the database's keys.
    FlushScan,
    /// FLUSHDB's deletion of a page's keys; then the page after
    /// `next` (0: done).
    FlushDel {
        next: u64,
    },
}

/// A command answered by the runtime itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Local {
    Ping(Option<Vec<u8>>),
    Echo(Vec<u8>),
    Info(Option<String>),
    /// AUTH [user] password.
    Auth {
        user: Option<Vec<u8>>,
        pass: Vec<u8>,
    },
    /// ACL WHOAMI, ACL LIST, ACL USERS.
    Acl(AclCmd),
    Select,
    Quit,
    /// HELLO [protover [AUTH user pass] [SETNAME name]].
    Hello {
        proto: Option<Proto>,
        auth: Option<(Vec<u8>, Vec<u8>)>,
        setname: Option<Vec<u8>>,
    },
    Cluster(ClusterCmd),
    Unwatch,
    /// FLUSHDB, FLUSHALL (ASYNC or SYNC: both answer once every key is
    /// deleted).
    Flush,
    ClientSetName(Vec<u8>),
    ClientGetName,
    ClientId,
    ClientInfo,
    ClientList(ClientFilter),
    ClientKill(KillFilter),
    Ok,
    Multi,
    Exec,
    Discard,
    /// COMMAND, COMMAND INFO [names]: Redis's own entries.
    CommandInfo(Option<Vec<Vec<u8>>>),
    CommandDocs(Option<Vec<Vec<u8>>>),
    CommandList,
    CommandCount,
    ConfigGet(Vec<u8>),
    /// CONFIG SET's parameters (lower case) and values, in order.
    ConfigSet(Vec<(Vec<u8>, Vec<u8>)>),
    Slowlog(SlowlogCmd),
}

/// A SLOWLOG subcommand; `Get(None)`: every entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowlogCmd {
    Get(Option<usize>),
    Len,
    Reset,
    Help,
}

/// The ACL subcommands served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AclCmd {
    WhoAmI,
    List,
    Users,
}

/// Which clients CLIENT LIST shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientFilter {
    /// TYPE: `Some(true)` for normal clients (all of them), `Some(false)`
    /// for a kind this server has none of.
    pub kind: Option<bool>,
    pub ids: Option<Vec<u64>>,
}

/// Which connections CLIENT KILL closes: those every given field matches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KillFilter {
    pub id: Option<u64>,
    pub addr: Option<String>,
    pub laddr: Option<String>,
    pub user: Option<String>,
    pub normal: Option<bool>,
    pub skip_me: bool,
    /// `CLIENT KILL ip:port`: answers OK or an error, not a count.
    pub old_form: bool,
}

/// A CLUSTER subcommand (`cluster.rs` answers them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterCmd {
    Slots,
    Shards,
    Nodes,
    MyId,
    Info,
    KeySlot(Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Data { kind: Kind, ops: Vec<Op> },
    Local(Local),
}

/// Why a command is refused before it runs; its `Display` is the error
/// reply Redis gives (`ERR ...`, `CROSSSLOT ...`, `NOPROTO ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// The command (as Redis names it, e.g. `get`, `client|setname`) got
    /// the wrong number of arguments.
    Arity(String),
    Syntax,
    NotInteger,
    /// An expire time of zero, negative or too large, for this command.
    InvalidExpire(String),
    /// Keys of one command in different slots.
    CrossSlot,
    /// A command's own error, as Redis writes it.
    Reply(&'static str),
    /// The user logged in may not run this command (a read-only user's
    /// write).
    NoPerm(String),
    /// An option Redis does not know for this command.
    UnsupportedOption(String),
    /// SELECT of a database other than 0, as Redis Cluster refuses it.
    SelectInCluster,
    /// A CLIENT TYPE Redis does not know.
    UnknownClientType(String),
    /// A HELLO option it does not know.
    HelloOption(String),
    NoProto,
    ProtocolVersion,
    /// `sub` is not a subcommand of `command` (upper case, as in `Try CLIENT HELP`).
    UnknownSubcommand {
        command: &'static str,
        sub: String,
    },
    /// A known subcommand with arguments it does not take.
    SubcommandSyntax {
        command: &'static str,
        sub: String,
    },
    /// A command this server does not know, with the first of its arguments.
    UnknownCommand {
        name: String,
        args: Vec<String>,
    },
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::Arity(name) => write!(f, "ERR wrong number of arguments for '{name}' command"),
            CommandError::Syntax => f.write_str("ERR syntax error"),
            CommandError::NotInteger => f.write_str("ERR value is not an integer or out of range"),
            CommandError::InvalidExpire(name) => write!(f, "ERR invalid expire time in '{name}' command"),
            CommandError::CrossSlot => f.write_str("CROSSSLOT Keys in request don't hash to the same slot"),
            CommandError::Reply(m) => f.write_str(m),
            CommandError::UnsupportedOption(o) => write!(f, "ERR Unsupported option {o}"),
            CommandError::SelectInCluster => f.write_str("ERR SELECT is not allowed in cluster mode"),
            CommandError::HelloOption(o) => write!(f, "ERR Syntax error in HELLO option '{o}'"),
            CommandError::UnknownClientType(t) => write!(f, "ERR Unknown client type '{t}'"),
            CommandError::NoProto => f.write_str("NOPROTO unsupported protocol version"),
            CommandError::ProtocolVersion => f.write_str("ERR Protocol version is not an integer or out of range"),
            CommandError::NoPerm(name) => write!(f, "NOPERM this user has no permissions to run the '{name}' command"),
            CommandError::UnknownSubcommand { command, sub } => {
                write!(f, "ERR unknown subcommand '{sub}'. Try {command} HELP.")
            }
            CommandError::SubcommandSyntax { command, sub } => {
                write!(f, "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try {command} HELP.")
            }
            CommandError::UnknownCommand { name, args } => {
                write!(f, "ERR unknown command '{name}', with args beginning with: ")?;
                args.iter().try_for_each(|a| write!(f, "'{a}' "))
            }
        }
    }
}

impl std::error::Error for CommandError {}

fn int(arg: &[u8]) -> Result<i64, CommandError> {
    std::str::from_utf8(arg).ok().and_then(|s| s.parse().ok()).ok_or(CommandError::NotInteger)
}

fn upper(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_uppercase()
}

/// The command's name as Redis spells it in errors.
pub fn name_of(args: &[Vec<u8>]) -> String {
    args.first().map(|a| String::from_utf8_lossy(a).to_ascii_lowercase()).unwrap_or_default()
}

/// Parses a command; `Err` is the error reply.
pub fn parse(args: &[Vec<u8>], topology: &Topology) -> Result<Command, CommandError> {
    let name = name_of(args);
    let n = args.len();
    let need = |ok: bool| if ok { Ok(()) } else { Err(CommandError::Arity(name.clone())) };
    let data = |kind, ops| Ok(Command::Data { kind, ops });
    let key = |i: usize| args[i].clone();
    match name.as_str() {
        "get" => {
            need(n == 2)?;
            data(Kind::Get, vec![Op::Get(key(1))])
        }
        "set" => {
            need(n >= 3)?;
            set(args, &name)
        }
        "setnx" => {
            need(n == 3)?;
            let opts = SetOpts { ttl_ms: None, cond: SetCond::IfAbsent };
            data(Kind::Int, vec![Op::SetWith(key(1), key(2), opts)])
        }
        "setex" | "psetex" => {
            need(n == 4)?;
            let t = int(&args[2])?;
            if t <= 0 {
                return Err(CommandError::InvalidExpire(name.to_string()));
            }
            let ms = if name == "setex" { t.checked_mul(1000).ok_or(CommandError::NotInteger)? } else { t };
            let opts = SetOpts { ttl_ms: Some(ms as u64), cond: SetCond::Always };
            data(Kind::Set, vec![Op::SetWith(key(1), key(3), opts)])
        }
        "del" | "unlink" => {
            need(n >= 2)?;
            data(Kind::Del, keys(topology, &args[1..], Op::Del))
        }
        "exists" => {
            need(n >= 2)?;
            data(Kind::Exists, keys(topology, &args[1..], |k| Op::Inspect(k, Inspect::Exists)))
        }
        "mget" => {
            need(n >= 2)?;
            data(Kind::MGet, keys(topology, &args[1..], Op::Get))
        }
        "mset" => {
            need(n >= 3 && n % 2 == 1)?;
            // Redis Cluster refuses a multi-key write across slots.
            let slot = topology.slot(&args[1]);
            if args[1..].chunks(2).any(|kv| topology.slot(&kv[0]) != slot) {
                return Err(CommandError::CrossSlot);
            }
            let sets: Vec<Op> = args[1..].chunks(2).map(|kv| Op::Set(kv[0].clone(), kv[1].clone())).collect();
            data(Kind::MSet, vec![atomic(sets)])
        }
        "incr" | "decr" => {
            need(n == 2)?;
            data(Kind::Int, vec![Op::Incr(key(1), if name == "incr" { 1 } else { -1 })])
        }
        "incrby" | "decrby" => {
            need(n == 3)?;
            let d = int(&args[2])?;
            let d = if name == "incrby" { d } else { d.checked_neg().ok_or(CommandError::NotInteger)? };
            data(Kind::Int, vec![Op::Incr(key(1), d)])
        }
        "expire" | "pexpire" | "expireat" | "pexpireat" => {
            need(n >= 3)?;
            let t = int(&args[2])?;
            let ms = if name.starts_with('p') { Some(t) } else { t.checked_mul(1000) };
            let ms = ms.ok_or_else(|| CommandError::InvalidExpire(name.clone()))?;
            let cond = expire_cond(&args[3..])?;
            if name.ends_with("at") {
                data(Kind::Int, vec![Op::Update(key(1), Update::Expire(Deadline::At(ms), cond))])
            } else if cond == ExpireCond::Always {
                data(Kind::Int, vec![Op::Expire(key(1), ms)])
            } else {
                data(Kind::Int, vec![Op::Update(key(1), Update::Expire(Deadline::In(ms), cond))])
            }
        }
        "ttl" | "pttl" => {
            need(n == 2)?;
            data(Kind::Ttl { seconds: name == "ttl" }, vec![Op::Ttl(key(1))])
        }
        "getdel" => {
            need(n == 2)?;
            data(Kind::Get, vec![Op::Update(key(1), Update::GetDel)])
        }
        "getex" => {
            need(n >= 2)?;
            let change = match expiry_options(&args[2..], &name, true)? {
                (None, false) => None,
                (None, true) => Some(None),
                (Some(d), _) => Some(Some(d)),
            };
            data(Kind::Get, vec![Op::Update(key(1), Update::GetEx(change))])
        }
        "append" => {
            need(n == 3)?;
            data(Kind::Int, vec![Op::Update(key(1), Update::Append(key(2)))])
        }
        "setrange" => {
            need(n == 4)?;
            let at = int(&args[2])?;
            if at < 0 {
                return Err(CommandError::Reply("ERR offset is out of range"));
            }
            if at as u64 + args[3].len() as u64 > failgroup_model::MAX_STRING && !args[3].is_empty() {
                return Err(CommandError::Reply("ERR string exceeds maximum allowed size (proto-max-bulk-len)"));
            }
            data(Kind::Int, vec![Op::Update(key(1), Update::SetRange(at as u64, key(3)))])
        }
        "incrbyfloat" => {
            need(n == 3)?;
            if failgroup_model::parse_float(&args[2]).is_none() {
                return Err(CommandError::Reply("ERR value is not a valid float"));
            }
            data(Kind::Get, vec![Op::Update(key(1), Update::IncrFloat(key(2)))])
        }
        "persist" => {
            need(n == 2)?;
            data(Kind::Int, vec![Op::Update(key(1), Update::Persist)])
        }
        "strlen" => {
            need(n == 2)?;
            data(Kind::Int, vec![Op::Inspect(key(1), Inspect::Strlen)])
        }
        "getrange" => {
            need(n == 4)?;
            data(Kind::Get, vec![Op::Inspect(key(1), Inspect::GetRange(int(&args[2])?, int(&args[3])?))])
        }
        "type" => {
            need(n == 2)?;
            data(Kind::Status, vec![Op::Inspect(key(1), Inspect::Type)])
        }
        "expiretime" | "pexpiretime" => {
            need(n == 2)?;
            data(Kind::Int, vec![Op::Inspect(key(1), Inspect::ExpireTime { ms: name == "pexpiretime" })])
        }
        "msetnx" => {
            need(n >= 3 && n % 2 == 1)?;
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = args[1..].chunks(2).map(|kv| (kv[0].clone(), kv[1].clone())).collect();
            one_slot(topology, pairs.iter().map(|(k, _)| k))?;
            data(Kind::Int, vec![Op::Keys(KeysWrite::SetIfNone(pairs))])
        }
        "rename" | "renamenx" => {
            need(n == 3)?;
            one_slot(topology, &args[1..3])?;
            let (replace, kind) = if name == "rename" { (true, Kind::MSet) } else { (false, Kind::Int) };
            data(kind, vec![Op::Keys(KeysWrite::Move { from: key(1), to: key(2), copy: false, replace })])
        }
        "copy" => {
            need(n >= 3)?;
            one_slot(topology, &args[1..3])?;
            let replace = copy_options(&args[3..])?;
            if args[1] == args[2] {
                return Err(CommandError::Reply("ERR source and destination objects are the same"));
            }
            data(Kind::Int, vec![Op::Keys(KeysWrite::Move { from: key(1), to: key(2), copy: true, replace })])
        }
        "watch" => {
            need(n >= 2)?;
            one_slot(topology, &args[1..])?;
            let reads = args[1..].iter().map(|k| Op::Inspect(k.clone(), Inspect::Version)).collect();
            data(Kind::Watch, vec![atomic(reads)])
        }
        "unwatch" => {
            need(n == 1)?;
            Ok(Command::Local(Local::Unwatch))
        }
        "hset" | "hmset" => {
            need(n >= 4 && n.is_multiple_of(2))?;
            let pairs = args[2..].chunks(2).map(|fv| (fv[0].clone(), fv[1].clone())).collect();
            let kind = if name == "hset" { Kind::Int } else { Kind::MSet };
            data(kind, vec![Op::Update(key(1), Update::Hash(HashWrite::Set(pairs)))])
        }
        "hsetnx" => {
            need(n == 4)?;
            data(Kind::Int, vec![Op::Update(key(1), Update::Hash(HashWrite::SetNx(key(2), key(3))))])
        }
        "hdel" => {
            need(n >= 3)?;
            data(Kind::Int, vec![Op::Update(key(1), Update::Hash(HashWrite::Del(args[2..].to_vec())))])
        }
        "hincrby" => {
            need(n == 4)?;
            let by = int(&args[3])?;
            data(Kind::Int, vec![Op::Update(key(1), Update::Hash(HashWrite::IncrBy(key(2), by)))])
        }
        "hincrbyfloat" => {
            need(n == 4)?;
            // Checked before the key's type, as Redis checks it.
            match failgroup_model::parse_float(&args[3]) {
                None => return Err(CommandError::Reply("ERR value is not a valid float")),
                Some(f) if !f.is_finite() => return Err(CommandError::Reply("ERR value is NaN or Infinity")),
                Some(_) => {}
            }
            data(Kind::Get, vec![Op::Update(key(1), Update::Hash(HashWrite::IncrByFloat(key(2), key(3))))])
        }
        "hget" | "hexists" | "hstrlen" => {
            need(n == 3)?;
            let (kind, read) = match name.as_str() {
                "hget" => (Kind::Get, HashRead::Get(key(2))),
                "hexists" => (Kind::Int, HashRead::Exists(key(2))),
                _ => (Kind::Int, HashRead::StrLen(key(2))),
            };
            data(kind, vec![Op::Inspect(key(1), Inspect::Hash(read))])
        }
        "hmget" => {
            need(n >= 3)?;
            data(Kind::Values, vec![Op::Inspect(key(1), Inspect::Hash(HashRead::MGet(args[2..].to_vec())))])
        }
        "hgetall" | "hkeys" | "hvals" | "hlen" => {
            need(n == 2)?;
            let (kind, read) = match name.as_str() {
                "hgetall" => (Kind::Pairs, HashRead::GetAll),
                "hkeys" => (Kind::Values, HashRead::Keys),
                "hvals" => (Kind::Values, HashRead::Vals),
                _ => (Kind::Int, HashRead::Len),
            };
            data(kind, vec![Op::Inspect(key(1), Inspect::Hash(read))])
        }
        "hscan" => {
            need(n >= 3)?;
            data(Kind::HScan, vec![Op::Inspect(key(1), Inspect::Hash(HashRead::Scan(hscan(args)?)))])
        }
        "touch" => {
            need(n >= 2)?;
            data(Kind::Exists, keys(topology, &args[1..], |k| Op::Inspect(k, Inspect::Exists)))
        }
        "multi" => {
            need(n == 1)?;
            Ok(Command::Local(Local::Multi))
        }
        "exec" => {
            need(n == 1)?;
            Ok(Command::Local(Local::Exec))
        }
        "discard" => {
            need(n == 1)?;
            Ok(Command::Local(Local::Discard))
        }
        "ping" => {
            need(n <= 2)?;
            Ok(Command::Local(Local::Ping(args.get(1).cloned())))
        }
        "echo" => {
            need(n == 2)?;
            Ok(Command::Local(Local::Echo(key(1))))
        }
        "info" => Ok(Command::Local(Local::Info(args.get(1).map(|a| String::from_utf8_lossy(a).to_lowercase())))),
        "auth" => {
            need(n >= 2)?;
            match n {
                2 => Ok(Command::Local(Local::Auth { user: None, pass: key(1) })),
                3 => Ok(Command::Local(Local::Auth { user: Some(key(1)), pass: key(2) })),
                _ => Err(CommandError::Syntax),
            }
        }
        "slowlog" => {
            need(n >= 2)?;
            let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
            let cmd = match (sub.as_str(), n) {
                ("get", 2) => SlowlogCmd::Get(Some(10)),
                ("get", 3) => match std::str::from_utf8(&args[2]).ok().and_then(|c| c.parse::<i64>().ok()) {
                    Some(-1) => SlowlogCmd::Get(None),
                    Some(c) if c >= 0 => SlowlogCmd::Get(Some(c as usize)),
                    Some(_) => return Err(CommandError::Reply("ERR count should be greater than or equal to -1")),
                    None => return Err(CommandError::Reply("ERR count should be greater than or equal to -1")),
                },
                ("len", 2) => SlowlogCmd::Len,
                ("reset", 2) => SlowlogCmd::Reset,
                ("help", 2) => SlowlogCmd::Help,
                // GET's arity lets a fourth argument through to the command.
                ("get", _) => {
                    let sub = String::from_utf8_lossy(&args[1]).into_owned();
                    return Err(CommandError::SubcommandSyntax { command: "SLOWLOG", sub });
                }
                ("len" | "reset" | "help", _) => return Err(CommandError::Arity(format!("slowlog|{sub}"))),
                _ => {
                    let sub = String::from_utf8_lossy(&args[1]).into_owned();
                    return Err(CommandError::UnknownSubcommand { command: "SLOWLOG", sub });
                }
            };
            Ok(Command::Local(Local::Slowlog(cmd)))
        }
        "acl" => {
            need(n >= 2)?;
            let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
            let cmd = match sub.as_str() {
                "whoami" => AclCmd::WhoAmI,
                "list" => AclCmd::List,
                "users" => AclCmd::Users,
                _ => {
                    let sub = String::from_utf8_lossy(&args[1]).into_owned();
                    return Err(CommandError::UnknownSubcommand { command: "ACL", sub });
                }
            };
            if n != 2 {
                return Err(CommandError::Arity(format!("acl|{sub}")));
            }
            Ok(Command::Local(Local::Acl(cmd)))
        }
        "select" => {
            need(n == 2)?;
            match int(&args[1])? {
                0 => Ok(Command::Local(Local::Select)),
                _ => Err(CommandError::SelectInCluster),
            }
        }
        "quit" => Ok(Command::Local(Local::Quit)),
        "hello" => hello(args),
        "readonly" | "readwrite" | "asking" => {
            need(n == 1)?;
            Ok(Command::Local(Local::Ok))
        }
        "cluster" => {
            need(n >= 2)?;
            let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
            let arity = |ok: bool| if ok { Ok(()) } else { Err(CommandError::Arity(format!("cluster|{sub}"))) };
            let cmd = match sub.as_str() {
                "slots" | "shards" | "nodes" | "myid" | "info" => {
                    arity(n == 2)?;
                    match sub.as_str() {
                        "slots" => ClusterCmd::Slots,
                        "shards" => ClusterCmd::Shards,
                        "nodes" => ClusterCmd::Nodes,
                        "myid" => ClusterCmd::MyId,
                        _ => ClusterCmd::Info,
                    }
                }
                "keyslot" => {
                    arity(n == 3)?;
                    ClusterCmd::KeySlot(key(2))
                }
                // Keys in a slot: the database's, read by the store.
                "countkeysinslot" => {
                    arity(n == 3)?;
                    let slot = int(&args[2])?;
                    if !(0..failgroup_model::SLOTS as i64).contains(&slot) {
                        return Err(CommandError::Reply("ERR Invalid slot"));
                    }
                    let read = DbRead::InSlot { slot: slot as u16, count: 0, count_only: true };
                    return data(Kind::Int, vec![Op::Db(read)]);
                }
                "getkeysinslot" => {
                    arity(n == 4)?;
                    let (slot, count) = (int(&args[2])?, int(&args[3])?);
                    if !(0..failgroup_model::SLOTS as i64).contains(&slot) || count < 0 {
                        return Err(CommandError::Reply("ERR Invalid slot or number of keys"));
                    }
                    let read = DbRead::InSlot { slot: slot as u16, count: count as u64, count_only: false };
                    return data(Kind::Keys, vec![Op::Db(read)]);
                }
                _ => return Err(unknown_sub("CLUSTER", &args[1])),
            };
            Ok(Command::Local(Local::Cluster(cmd)))
        }
        "client" => {
            need(n >= 2)?;
            match upper(&args[1]).as_str() {
                "SETNAME" if n == 3 => Ok(Command::Local(Local::ClientSetName(key(2)))),
                "GETNAME" if n == 2 => Ok(Command::Local(Local::ClientGetName)),
                "ID" if n == 2 => Ok(Command::Local(Local::ClientId)),
                "SETINFO" if n == 4 => Ok(Command::Local(Local::Ok)),
                "INFO" if n == 2 => Ok(Command::Local(Local::ClientInfo)),
                "LIST" => client_list(&args[2..]),
                "KILL" if n >= 3 => client_kill(&args[2..]),
                // Nothing is evicted yet and no key's access time is kept:
                // the flags change nothing. (NO-TOUCH is Redis 7.2's.)
                "NO-EVICT" | "NO-TOUCH" if n == 3 => match upper(&args[2]).as_str() {
                    "ON" | "OFF" => Ok(Command::Local(Local::Ok)),
                    _ => Err(CommandError::Syntax),
                },
                "SETNAME" | "GETNAME" | "ID" | "SETINFO" | "INFO" | "KILL" | "NO-EVICT" | "NO-TOUCH" => {
                    Err(CommandError::Arity(format!("client|{}", upper(&args[1]).to_lowercase())))
                }
                _ => Err(unknown_sub("CLIENT", &args[1])),
            }
        }
        "command" => match args.get(1).map(|a| upper(a)).as_deref() {
            None => Ok(Command::Local(Local::CommandInfo(None))),
            Some("INFO") => Ok(Command::Local(Local::CommandInfo((n > 2).then(|| args[2..].to_vec())))),
            Some("DOCS") => Ok(Command::Local(Local::CommandDocs((n > 2).then(|| args[2..].to_vec())))),
            Some("LIST") if n == 2 => Ok(Command::Local(Local::CommandList)),
            Some("COUNT") if n == 2 => Ok(Command::Local(Local::CommandCount)),
            Some(sub @ ("LIST" | "COUNT")) => Err(CommandError::Arity(format!("command|{}", sub.to_lowercase()))),
            Some(_) => Err(unknown_sub("COMMAND", &args[1])),
        },
        "config" => {
            need(n >= 2)?;
            match upper(&args[1]).as_str() {
                "GET" if n == 3 => Ok(Command::Local(Local::ConfigGet(args[2].to_ascii_lowercase()))),
                "GET" => Err(CommandError::Arity("config|get".into())),
                "SET" if n >= 4 && n.is_multiple_of(2) => Ok(Command::Local(Local::ConfigSet(
                    args[2..].chunks(2).map(|p| (p[0].to_ascii_lowercase(), p[1].clone())).collect(),
                ))),
                // An odd number of arguments after SET: Redis 7.0 answers
                // a syntax error.
                "SET" if n >= 4 => Err(CommandError::Syntax),
                "SET" => Err(CommandError::Arity("config|set".into())),
                _ => Err(unknown_sub("CONFIG", &args[1])),
            }
        }
        "flushdb" | "flushall" => match args.get(1).map(|a| upper(a)).as_deref() {
            None | Some("SYNC" | "ASYNC") if n <= 2 => Ok(Command::Local(Local::Flush)),
            _ => Err(CommandError::Syntax),
        },
        "dbsize" => {
            need(n == 1)?;
            data(Kind::Int, vec![Op::Db(DbRead::Size)])
        }
        "keys" => {
            need(n == 2)?;
            let all = DbRead::Scan { after: 0, count: u64::MAX, pattern: Some(key(1)), type_name: None };
            data(Kind::Keys, vec![Op::Db(all)])
        }
        "scan" => {
            need(n >= 2)?;
            data(Kind::Scan, vec![Op::Db(scan(args)?)])
        }
        _ => Err(CommandError::UnknownCommand {
            name: String::from_utf8_lossy(args.first().map(Vec::as_slice).unwrap_or_default()).into_owned(),
            args: args[1..].iter().take(8).map(|a| String::from_utf8_lossy(a).into_owned()).collect(),
        }),
    }
}

/// A SCAN-like command's cursor and options (`MATCH`, `COUNT`, and
/// `TYPE` where `with_type`), as Redis reads them.
struct ScanArgs {
    cursor: u64,
    count: u64,
    pattern: Option<Vec<u8>>,
    type_name: Option<String>,
}

fn scan_args(cursor: &[u8], opts: &[Vec<u8>], with_type: bool) -> Result<ScanArgs, CommandError> {
    // As Redis reads it (strtoul): a negative number wraps around.
    let cursor = std::str::from_utf8(cursor)
        .ok()
        .and_then(|s| s.parse::<u64>().ok().or_else(|| s.parse::<i64>().ok().map(|n| n as u64)))
        .ok_or(CommandError::Reply("ERR invalid cursor"))?;
    let mut a = ScanArgs { cursor, count: 10, pattern: None, type_name: None };
    for pair in opts.chunks(2) {
        let [opt, value] = pair else { return Err(CommandError::Syntax) };
        match upper(opt).as_str() {
            "COUNT" => match int(value)? {
                n if n < 1 => return Err(CommandError::Syntax),
                n => a.count = n as u64,
            },
            "MATCH" => a.pattern = Some(value.clone()),
            "TYPE" if with_type => a.type_name = Some(String::from_utf8_lossy(value).into_owned()),
            _ => return Err(CommandError::Syntax),
        }
    }
    Ok(a)
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]: the cursor is the
/// version the scan has reached (0 to start).
fn scan(args: &[Vec<u8>]) -> Result<DbRead, CommandError> {
    let a = scan_args(&args[1], &args[2..], true)?;
    Ok(DbRead::Scan { after: a.cursor, count: a.count, pattern: a.pattern, type_name: a.type_name })
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]: the pattern. Every
/// field comes in the first page (cursor 0), as Redis answers for a small
/// hash; COUNT is checked, not needed.
fn hscan(args: &[Vec<u8>]) -> Result<Option<Vec<u8>>, CommandError> {
    Ok(scan_args(&args[2], &args[3..], false)?.pattern)
}

/// CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id ...]
fn client_list(opts: &[Vec<u8>]) -> Result<Command, CommandError> {
    let mut filter = ClientFilter::default();
    match opts.first().map(|o| upper(o)).as_deref() {
        None => {}
        Some("TYPE") if opts.len() == 2 => filter.kind = Some(client_type(&opts[1])?),
        Some("ID") if opts.len() >= 2 => {
            let ids: Result<Vec<u64>, _> = opts[1..]
                .iter()
                .map(|a| int(a).map(|n| n as u64).map_err(|_| CommandError::Reply("ERR Invalid client ID")))
                .collect();
            filter.ids = Some(ids?);
        }
        _ => return Err(CommandError::Syntax),
    }
    Ok(Command::Local(Local::ClientList(filter)))
}

/// A CLIENT TYPE: whether it names the one kind of client a server has.
fn client_type(t: &[u8]) -> Result<bool, CommandError> {
    match upper(t).as_str() {
        "NORMAL" => Ok(true),
        "MASTER" | "REPLICA" | "SLAVE" | "PUBSUB" => Ok(false),
        _ => Err(CommandError::UnknownClientType(String::from_utf8_lossy(t).into_owned())),
    }
}

/// CLIENT KILL ip:port, or CLIENT KILL with filters (ID, ADDR, LADDR,
/// USER, TYPE, SKIPME).
fn client_kill(opts: &[Vec<u8>]) -> Result<Command, CommandError> {
    if opts.len() == 1 {
        let addr = String::from_utf8_lossy(&opts[0]).into_owned();
        return Ok(Command::Local(Local::ClientKill(KillFilter {
            addr: Some(addr),
            old_form: true,
            ..KillFilter::default()
        })));
    }
    if !opts.len().is_multiple_of(2) {
        return Err(CommandError::Syntax);
    }
    let mut f = KillFilter { skip_me: true, ..KillFilter::default() };
    for pair in opts.chunks(2) {
        let value = String::from_utf8_lossy(&pair[1]).into_owned();
        match upper(&pair[0]).as_str() {
            "ID" => match int(&pair[1]) {
                Ok(n) if n > 0 => f.id = Some(n as u64),
                _ => return Err(CommandError::Reply("ERR client-id should be greater than 0")),
            },
            "ADDR" => f.addr = Some(value),
            "LADDR" => f.laddr = Some(value),
            "USER" => f.user = Some(value),
            "TYPE" => f.normal = Some(client_type(&pair[1])?),
            "SKIPME" => match upper(&pair[1]).as_str() {
                "YES" => f.skip_me = true,
                "NO" => f.skip_me = false,
                _ => return Err(CommandError::Syntax),
            },
            _ => return Err(CommandError::Syntax),
        }
    }
    Ok(Command::Local(Local::ClientKill(f)))
}

/// Redis names an unknown subcommand as the client wrote it.
fn unknown_sub(command: &'static str, sub: &[u8]) -> CommandError {
    CommandError::UnknownSubcommand { command, sub: String::from_utf8_lossy(sub).into_owned() }
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]
fn hello(args: &[Vec<u8>]) -> Result<Command, CommandError> {
    let proto = match args.get(1).map(|a| int(a)) {
        None => None,
        Some(Ok(2)) => Some(Proto::Resp2),
        Some(Ok(3)) => Some(Proto::Resp3),
        Some(Ok(_)) => return Err(CommandError::NoProto),
        Some(Err(_)) => return Err(CommandError::ProtocolVersion),
    };
    let (mut auth, mut setname) = (None, None);
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        match upper(&args[i]).as_str() {
            "AUTH" if more >= 2 => {
                auth = Some((args[i + 1].clone(), args[i + 2].clone()));
                i += 2;
            }
            "SETNAME" if more >= 1 => {
                setname = Some(args[i + 1].clone());
                i += 1;
            }
            _ => return Err(CommandError::HelloOption(String::from_utf8_lossy(&args[i]).into_owned())),
        }
        i += 1;
    }
    Ok(Command::Local(Local::Hello { proto, auth, setname }))
}

/// One operation per key (`op` of each); keys all of one slot, more than
/// one, make one atomic operation (Redis Cluster's multi-key commands),
/// keys of several slots one operation each (each linearizable, the whole
/// not atomic, as a proxy splits them).
fn keys(topology: &Topology, keys: &[Vec<u8>], op: impl Fn(Vec<u8>) -> Op) -> Vec<Op> {
    let ops: Vec<Op> = keys.iter().map(|k| op(k.clone())).collect();
    let slot = topology.slot(&keys[0]);
    if ops.len() > 1 && keys.iter().all(|k| topology.slot(k) == slot) {
        vec![atomic(ops)]
    } else {
        ops
    }
}

/// CROSSSLOT unless every key is in one slot, as Redis Cluster refuses a
/// command of several keys.
fn one_slot<'a>(topology: &Topology, keys: impl IntoIterator<Item = &'a Vec<u8>>) -> Result<(), CommandError> {
    let mut slots = keys.into_iter().map(|k| topology.slot(k));
    let first = slots.next();
    if slots.any(|s| Some(s) != first) {
        return Err(CommandError::CrossSlot);
    }
    Ok(())
}

/// COPY's options: REPLACE (returned), DB (0 only: Redis Cluster has one
/// database).
fn copy_options(opts: &[Vec<u8>]) -> Result<bool, CommandError> {
    let mut replace = false;
    let mut i = 0;
    while i < opts.len() {
        match upper(&opts[i]).as_str() {
            "REPLACE" => replace = true,
            "DB" if i + 1 < opts.len() => {
                let db = std::str::from_utf8(&opts[i + 1])
                    .ok()
                    .and_then(|s| s.parse::<i32>().ok())
                    .ok_or(CommandError::NotInteger)?;
                if !(0..16).contains(&db) {
                    return Err(CommandError::Reply("ERR DB index is out of range"));
                }
                if db != 0 {
                    return Err(CommandError::Reply("ERR Copying to another database is not allowed in cluster mode"));
                }
                i += 1;
            }
            _ => return Err(CommandError::Syntax),
        }
        i += 1;
    }
    Ok(replace)
}

fn atomic(mut ops: Vec<Op>) -> Op {
    if ops.len() == 1 {
        ops.pop().expect("one")
    } else {
        Op::Atomic(ops)
    }
}

/// EXPIRE's NX, XX, GT, LT, as Redis checks them.
fn expire_cond(opts: &[Vec<u8>]) -> Result<ExpireCond, CommandError> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for o in opts {
        match upper(o).as_str() {
            "NX" => nx = true,
            "XX" => xx = true,
            "GT" => gt = true,
            "LT" => lt = true,
            _ => return Err(CommandError::UnsupportedOption(String::from_utf8_lossy(o).into_owned())),
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CommandError::Reply("ERR NX and XX, GT or LT options at the same time are not compatible"));
    }
    if gt && lt {
        return Err(CommandError::Reply("ERR GT and LT options at the same time are not compatible"));
    }
    Ok(match (nx, xx, gt, lt) {
        (true, ..) => ExpireCond::NoTtl,
        (_, _, true, _) => ExpireCond::Later,
        (_, _, _, true) => ExpireCond::Earlier,
        (_, true, ..) => ExpireCond::HasTtl,
        _ => ExpireCond::Always,
    })
}

/// EX, PX, EXAT, PXAT (and PERSIST where `persist` may be given): the
/// deadline, and whether PERSIST was given.
fn expiry_options(opts: &[Vec<u8>], name: &str, persist: bool) -> Result<(Option<Deadline>, bool), CommandError> {
    let (mut deadline, mut persisted) = (None, false);
    let mut i = 0;
    while i < opts.len() {
        match upper(&opts[i]).as_str() {
            "PERSIST" if persist && deadline.is_none() && !persisted => persisted = true,
            unit @ ("EX" | "PX" | "EXAT" | "PXAT") if deadline.is_none() && !persisted && i + 1 < opts.len() => {
                i += 1;
                deadline = Some(expire_value(unit, &opts[i], name)?);
            }
            _ => return Err(CommandError::Syntax),
        }
        i += 1;
    }
    Ok((deadline, persisted))
}

/// The deadline of `EX n`, `PX n`, `EXAT n` or `PXAT n`.
fn expire_value(unit: &str, arg: &[u8], name: &str) -> Result<Deadline, CommandError> {
    let t = int(arg)?;
    let invalid = || CommandError::InvalidExpire(name.to_string());
    if t <= 0 {
        return Err(invalid());
    }
    let ms = if unit.starts_with('P') { t } else { t.checked_mul(1000).ok_or_else(invalid)? };
    Ok(if unit.ends_with("AT") { Deadline::At(ms) } else { Deadline::In(ms) })
}

/// SET key value [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ms|KEEPTTL]
fn set(args: &[Vec<u8>], name: &str) -> Result<Command, CommandError> {
    let mut cond = SetCond::Always;
    let (mut expiry, mut keep_ttl, mut get) = (None, false, false);
    let mut i = 3;
    while i < args.len() {
        match upper(&args[i]).as_str() {
            "NX" if cond != SetCond::IfPresent => cond = SetCond::IfAbsent,
            "XX" if cond != SetCond::IfAbsent => cond = SetCond::IfPresent,
            "GET" => get = true,
            "KEEPTTL" if expiry.is_none() => keep_ttl = true,
            unit @ ("EX" | "PX" | "EXAT" | "PXAT") if expiry.is_none() && !keep_ttl && i + 1 < args.len() => {
                i += 1;
                expiry = Some(expire_value(unit, &args[i], name)?);
            }
            _ => return Err(CommandError::Syntax),
        }
        i += 1;
    }
    let (k, v) = (args[1].clone(), args[2].clone());
    // The plain forms stay the core's SET and SET EX/PX/NX/XX.
    let op = match (expiry, get || keep_ttl) {
        (Some(Deadline::In(ms)), false) => Op::SetWith(k, v, SetOpts { ttl_ms: Some(ms as u64), cond }),
        (None, false) if cond == SetCond::Always => Op::Set(k, v),
        (None, false) => Op::SetWith(k, v, SetOpts { ttl_ms: None, cond }),
        _ => Op::Update(k, Update::Set { value: v, cond, expiry, keep_ttl, get }),
    };
    let kind = if get { Kind::Get } else { Kind::Set };
    Ok(Command::Data { kind, ops: vec![op] })
}

/// Encodes the reply of a data command from its operations' results.
pub fn encode(kind: Kind, results: &[OpResult], p: Proto, out: &mut Vec<u8>) {
    // The parts of an atomic operation count as the command's results.
    let flat: Vec<OpResult>;
    let results = if results.iter().any(|r| matches!(r, OpResult::Many(_))) {
        flat = results
            .iter()
            .flat_map(|r| match r {
                OpResult::Many(rs) => rs.clone(),
                r => vec![r.clone()],
            })
            .collect();
        &flat[..]
    } else {
        results
    };
    if let Some(OpResult::Err(e)) = results.iter().find(|r| matches!(r, OpResult::Err(_))) {
        return reply::error(out, &e.to_string());
    }
    let value = |r: &OpResult| match r {
        OpResult::Value(v) => v.clone(),
        _ => None,
    };
    match kind {
        Kind::Get => reply::value(out, value(&results[0]).as_deref(), p),
        Kind::Set => match results[0] {
            OpResult::NotSet => reply::null(out, p),
            _ => reply::ok(out),
        },
        Kind::MSet | Kind::Watch | Kind::Unwatch | Kind::FlushDel { .. } => reply::ok(out),
        Kind::FlushScan => reply::error(out, "ERR unexpected result"),
        Kind::Del => reply::int(out, results.iter().map(|r| matches!(r, OpResult::Deleted(1)) as i64).sum()),
        Kind::Exists => reply::int(out, results.iter().map(|r| matches!(r, OpResult::Int(1)) as i64).sum()),
        Kind::Scan | Kind::Keys => match &results[0] {
            OpResult::Keys { keys, next } => {
                if kind == Kind::Scan {
                    reply::array(out, 2);
                    reply::bulk(out, next.to_string().as_bytes());
                }
                reply::array(out, keys.len());
                keys.iter().for_each(|k| reply::bulk(out, k));
            }
            _ => reply::error(out, "ERR unexpected result"),
        },
        Kind::Status => match &results[0] {
            OpResult::Status(s) => reply::simple(out, s),
            _ => reply::error(out, "ERR unexpected result"),
        },
        Kind::MGet => {
            reply::array(out, results.len());
            for r in results {
                reply::value(out, value(r).as_deref(), p);
            }
        }
        Kind::Int => match results[0] {
            OpResult::Int(n) => reply::int(out, n),
            // SETNX answers 1 when it set the key, 0 when it did not.
            OpResult::Ok => reply::int(out, 1),
            OpResult::NotSet => reply::int(out, 0),
            _ => reply::error(out, "ERR unexpected result"),
        },
        Kind::Values => match &results[0] {
            OpResult::Values(vs) => {
                reply::array(out, vs.len());
                vs.iter().for_each(|v| reply::value(out, v.as_deref(), p));
            }
            _ => reply::error(out, "ERR unexpected result"),
        },
        Kind::Pairs | Kind::HScan => match &results[0] {
            OpResult::Pairs(ps) => {
                if kind == Kind::HScan {
                    reply::array(out, 2);
                    reply::bulk(out, b"0");
                    reply::array(out, ps.len() * 2);
                } else {
                    reply::map(out, ps.len(), p);
                }
                for (f, v) in ps {
                    reply::bulk(out, f);
                    reply::bulk(out, v);
                }
            }
            _ => reply::error(out, "ERR unexpected result"),
        },
        Kind::Ttl { seconds } => match results[0] {
            OpResult::Int(ms) if seconds && ms >= 0 => reply::int(out, (ms + 500) / 1000),
            OpResult::Int(ms) => reply::int(out, ms),
            _ => reply::error(out, "ERR unexpected result"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use failgroup_model::ClusterSpec;

    fn run(cmd: &str) -> Result<Command, CommandError> {
        let topo = ClusterSpec::local(3, 1, 7101, 16384).validate().unwrap();
        let args: Vec<Vec<u8>> = cmd.split(' ').map(|s| s.as_bytes().to_vec()).collect();
        parse(&args, &topo)
    }

    /// The error reply's text, as a client reads it.
    fn refused(cmd: &str) -> String {
        run(cmd).expect_err("refused").to_string()
    }

    #[test]
    fn errors_read_as_redis_writes_them() {
        assert_eq!(refused("get"), "ERR wrong number of arguments for 'get' command");
        assert_eq!(refused("SET k v NX XX"), "ERR syntax error");
        assert_eq!(refused("SET k v EX 0"), "ERR invalid expire time in 'set' command");
        assert_eq!(refused("incrby k x"), "ERR value is not an integer or out of range");
        assert_eq!(refused("mset a 1 b 2"), "CROSSSLOT Keys in request don't hash to the same slot");
        assert!(refused("LPUSH l a").starts_with("ERR unknown command 'LPUSH', with args beginning with: 'l' 'a' "));
        assert_eq!(refused("select 1"), "ERR SELECT is not allowed in cluster mode");
        assert_eq!(refused("client nosuch"), "ERR unknown subcommand 'nosuch'. Try CLIENT HELP.");
        assert_eq!(refused("hello 3 setname"), "ERR Syntax error in HELLO option 'setname'");
        assert_eq!(refused("hello x"), "ERR Protocol version is not an integer or out of range");
        assert_eq!(refused("hello 4"), "NOPROTO unsupported protocol version");
    }

    #[test]
    fn set_options_become_the_core_operation() {
        let opts = SetOpts { ttl_ms: Some(5000), cond: SetCond::IfAbsent };
        assert_eq!(
            run("set k v ex 5 nx"),
            Ok(Command::Data { kind: Kind::Set, ops: vec![Op::SetWith(b"k".to_vec(), b"v".to_vec(), opts)] })
        );
        assert_eq!(
            run("set k v"),
            Ok(Command::Data { kind: Kind::Set, ops: vec![Op::Set(b"k".to_vec(), b"v".to_vec())] })
        );
        assert!(matches!(run("mset {a}1 1 {a}2 2"), Ok(Command::Data { kind: Kind::MSet, .. })));
    }
}
