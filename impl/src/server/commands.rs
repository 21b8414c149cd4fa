//! RESP commands: parsed into the core's operations (data commands) or
//! answered by the runtime (connection and server commands), and results
//! encoded the way Redis answers them, errors included.

use crate::resp::reply;
use failgroup_model::{Op, OpResult, SetCond, SetOpts, Topology};

/// How the results of a data command's operations become one reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Get,
    Set,
    /// DEL: the number of keys removed.
    Del,
    /// EXISTS: the number of keys present.
    Exists,
    MGet,
    MSet,
    Int,
    /// TTL (seconds) or PTTL (milliseconds).
    Ttl {
        seconds: bool,
    },
}

/// A command answered by the runtime itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Local {
    Ping(Option<Vec<u8>>),
    Echo(Vec<u8>),
    Info(Option<String>),
    Auth(Vec<u8>),
    Select,
    Quit,
    Hello,
    ClientSetName(Vec<u8>),
    ClientGetName,
    ClientId,
    Ok,
    CommandList,
    CommandCount,
    ConfigGet(Vec<u8>),
    DbSize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Data { kind: Kind, ops: Vec<Op> },
    Local(Local),
}

fn arity(name: &str) -> String {
    format!("ERR wrong number of arguments for '{name}' command")
}

const SYNTAX: &str = "ERR syntax error";
const NOT_INT: &str = "ERR value is not an integer or out of range";

fn int(arg: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(arg).ok().and_then(|s| s.parse().ok()).ok_or_else(|| NOT_INT.to_string())
}

fn upper(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_uppercase()
}

/// The command's name as Redis spells it in errors.
pub fn name_of(args: &[Vec<u8>]) -> String {
    args.first().map(|a| String::from_utf8_lossy(a).to_ascii_lowercase()).unwrap_or_default()
}

/// Parses a command. `Err` carries the whole error reply text.
pub fn parse(args: &[Vec<u8>], topology: &Topology) -> Result<Command, String> {
    let name = name_of(args);
    let n = args.len();
    let need = |ok: bool| if ok { Ok(()) } else { Err(arity(&name)) };
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
                return Err(format!("ERR invalid expire time in '{name}' command"));
            }
            let ms = if name == "setex" { t.checked_mul(1000).ok_or_else(|| NOT_INT.to_string())? } else { t };
            let opts = SetOpts { ttl_ms: Some(ms as u64), cond: SetCond::Always };
            data(Kind::Set, vec![Op::SetWith(key(1), key(3), opts)])
        }
        "del" | "unlink" => {
            need(n >= 2)?;
            data(Kind::Del, args[1..].iter().map(|k| Op::Del(k.clone())).collect())
        }
        "exists" => {
            need(n >= 2)?;
            data(Kind::Exists, args[1..].iter().map(|k| Op::Get(k.clone())).collect())
        }
        "mget" => {
            need(n >= 2)?;
            data(Kind::MGet, args[1..].iter().map(|k| Op::Get(k.clone())).collect())
        }
        "mset" => {
            need(n >= 3 && n % 2 == 1)?;
            // Redis Cluster refuses a multi-key write across slots.
            let slot = topology.slot(&args[1]);
            if args[1..].chunks(2).any(|kv| topology.slot(&kv[0]) != slot) {
                return Err("CROSSSLOT Keys in request don't hash to the same slot".into());
            }
            data(Kind::MSet, args[1..].chunks(2).map(|kv| Op::Set(kv[0].clone(), kv[1].clone())).collect())
        }
        "incr" | "decr" => {
            need(n == 2)?;
            data(Kind::Int, vec![Op::Incr(key(1), if name == "incr" { 1 } else { -1 })])
        }
        "incrby" | "decrby" => {
            need(n == 3)?;
            let d = int(&args[2])?;
            let d = if name == "incrby" { d } else { d.checked_neg().ok_or_else(|| NOT_INT.to_string())? };
            data(Kind::Int, vec![Op::Incr(key(1), d)])
        }
        "expire" | "pexpire" => {
            need(n == 3)?;
            let t = int(&args[2])?;
            let ms = if name == "expire" { t.checked_mul(1000) } else { Some(t) };
            let ms = ms.ok_or_else(|| format!("ERR invalid expire time in '{name}' command"))?;
            data(Kind::Int, vec![Op::Expire(key(1), ms)])
        }
        "ttl" | "pttl" => {
            need(n == 2)?;
            data(Kind::Ttl { seconds: name == "ttl" }, vec![Op::Ttl(key(1))])
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
            need(n == 2 || n == 3)?;
            Ok(Command::Local(Local::Auth(args[n - 1].clone())))
        }
        "select" => {
            need(n == 2)?;
            match int(&args[1])? {
                0 => Ok(Command::Local(Local::Select)),
                _ => Err("ERR DB index is out of range".into()),
            }
        }
        "quit" => Ok(Command::Local(Local::Quit)),
        "hello" => match args.get(1).map(|a| int(a)) {
            None | Some(Ok(2)) => Ok(Command::Local(Local::Hello)),
            Some(Ok(_)) => Err("NOPROTO unsupported protocol version".into()),
            Some(Err(_)) => Err("ERR Protocol version is not an integer or out of range".into()),
        },
        "client" => {
            need(n >= 2)?;
            match upper(&args[1]).as_str() {
                "SETNAME" if n == 3 => Ok(Command::Local(Local::ClientSetName(key(2)))),
                "GETNAME" if n == 2 => Ok(Command::Local(Local::ClientGetName)),
                "ID" if n == 2 => Ok(Command::Local(Local::ClientId)),
                "SETINFO" if n == 4 => Ok(Command::Local(Local::Ok)),
                "SETNAME" | "GETNAME" | "ID" | "SETINFO" => Err(format!(
                    "ERR wrong number of arguments for 'client|{}' command",
                    upper(&args[1]).to_lowercase()
                )),
                sub => Err(format!("ERR unknown subcommand '{sub}'. Try CLIENT HELP.")),
            }
        }
        "command" => match args.get(1).map(|a| upper(a)).as_deref() {
            None | Some("DOCS") | Some("INFO") => Ok(Command::Local(Local::CommandList)),
            Some("COUNT") => Ok(Command::Local(Local::CommandCount)),
            Some(sub) => Err(format!("ERR unknown subcommand '{sub}'. Try COMMAND HELP.")),
        },
        "config" => {
            need(n >= 2)?;
            match upper(&args[1]).as_str() {
                "GET" if n == 3 => Ok(Command::Local(Local::ConfigGet(args[2].to_ascii_lowercase()))),
                "GET" => Err("ERR wrong number of arguments for 'config|get' command".into()),
                sub => Err(format!("ERR unknown subcommand '{sub}'. Try CONFIG HELP.")),
            }
        }
        "dbsize" => {
            need(n == 1)?;
            Ok(Command::Local(Local::DbSize))
        }
        _ => {
            let shown: String =
                args[1..].iter().take(8).map(|a| format!("'{}' ", String::from_utf8_lossy(a))).collect();
            Err(format!(
                "ERR unknown command '{}', with args beginning with: {shown}",
                String::from_utf8_lossy(args.first().map(Vec::as_slice).unwrap_or_default())
            ))
        }
    }
}

/// SET key value [NX|XX] [EX seconds|PX milliseconds]
fn set(args: &[Vec<u8>], name: &str) -> Result<Command, String> {
    let mut opts = SetOpts::default();
    let mut i = 3;
    while i < args.len() {
        match upper(&args[i]).as_str() {
            "NX" if opts.cond != SetCond::IfPresent => opts.cond = SetCond::IfAbsent,
            "XX" if opts.cond != SetCond::IfAbsent => opts.cond = SetCond::IfPresent,
            unit @ ("EX" | "PX") if opts.ttl_ms.is_none() && i + 1 < args.len() => {
                i += 1;
                let t = int(&args[i])?;
                let ms = if unit == "EX" { t.checked_mul(1000) } else { Some(t) };
                match ms {
                    Some(ms) if ms > 0 => opts.ttl_ms = Some(ms as u64),
                    _ => return Err(format!("ERR invalid expire time in '{name}' command")),
                }
            }
            _ => return Err(SYNTAX.into()),
        }
        i += 1;
    }
    let op = if opts == SetOpts::default() {
        Op::Set(args[1].clone(), args[2].clone())
    } else {
        Op::SetWith(args[1].clone(), args[2].clone(), opts)
    };
    Ok(Command::Data { kind: Kind::Set, ops: vec![op] })
}

/// Encodes the reply of a data command from its operations' results.
pub fn encode(kind: Kind, results: &[OpResult], out: &mut Vec<u8>) {
    if let Some(OpResult::Err(e)) = results.iter().find(|r| matches!(r, OpResult::Err(_))) {
        return reply::error(out, &e.to_string());
    }
    let value = |r: &OpResult| match r {
        OpResult::Value(v) => v.clone(),
        _ => None,
    };
    match kind {
        Kind::Get => reply::bulk_or_nil(out, value(&results[0]).as_deref()),
        Kind::Set => match results[0] {
            OpResult::NotSet => reply::nil(out),
            _ => reply::ok(out),
        },
        Kind::MSet => reply::ok(out),
        Kind::Del => reply::int(out, results.iter().map(|r| matches!(r, OpResult::Deleted(1)) as i64).sum()),
        Kind::Exists => reply::int(out, results.iter().map(|r| value(r).is_some() as i64).sum()),
        Kind::MGet => {
            reply::array(out, results.len());
            for r in results {
                reply::bulk_or_nil(out, value(r).as_deref());
            }
        }
        Kind::Int => match results[0] {
            OpResult::Int(n) => reply::int(out, n),
            // SETNX answers 1 when it set the key, 0 when it did not.
            OpResult::Ok => reply::int(out, 1),
            OpResult::NotSet => reply::int(out, 0),
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

    fn run(cmd: &str) -> Result<Command, String> {
        let topo = ClusterSpec::local(3, 1, 7101, 16384).validate().unwrap();
        let args: Vec<Vec<u8>> = cmd.split(' ').map(|s| s.as_bytes().to_vec()).collect();
        parse(&args, &topo)
    }

    #[test]
    fn errors_read_as_redis_writes_them() {
        assert_eq!(run("get"), Err("ERR wrong number of arguments for 'get' command".into()));
        assert_eq!(run("SET k v NX XX"), Err(SYNTAX.into()));
        assert_eq!(run("SET k v EX 0"), Err("ERR invalid expire time in 'set' command".into()));
        assert_eq!(run("incrby k x"), Err(NOT_INT.into()));
        assert_eq!(run("mset a 1 b 2"), Err("CROSSSLOT Keys in request don't hash to the same slot".into()));
        assert!(run("LPUSH l a").unwrap_err().starts_with("ERR unknown command 'LPUSH'"));
        assert_eq!(run("select 1"), Err("ERR DB index is out of range".into()));
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
