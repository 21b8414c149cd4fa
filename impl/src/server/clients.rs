//! CLIENT LIST and CLIENT INFO: one line per RESP connection, in Redis's
//! format, a pure function of what the loop knows of the connection.

use std::fmt::Write;

/// What CLIENT LIST says of one connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct ClientRow {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub name: String,
    pub age_s: u64,
    pub idle_s: u64,
    /// Commands queued in a transaction (MULTI), if one is open.
    pub multi: Option<usize>,
    pub qbuf: usize,
    pub obl: usize,
    /// The last command, as Redis names it (`get`, `client|list`).
    pub cmd: String,
    pub resp: i64,
    /// The user logged in.
    pub user: String,
}

impl ClientRow {
    /// The row as Redis 7.0 writes it (fields this server has no
    /// counterpart for are 0), without the line break.
    pub fn line(&self) -> String {
        let mut o = String::new();
        let flags = if self.multi.is_some() { "x" } else { "N" };
        let multi = self.multi.map_or(-1, |n| n as i64);
        let events = if self.obl > 0 { "rw" } else { "r" };
        let _ = write!(
            o,
            "id={} addr={} laddr={} fd=0 name={} age={} idle={} flags={flags} db=0 sub=0 psub=0 ssub=0 \
             multi={multi} qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl={} oll=0 omem=0 \
             tot-mem=0 events={events} cmd={} user={} redir=-1 resp={}",
            self.id,
            self.addr,
            self.laddr,
            self.name,
            self.age_s,
            self.idle_s,
            self.qbuf,
            self.obl,
            self.cmd,
            self.user,
            self.resp
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_reads_as_redis_writes_it() {
        let row = ClientRow {
            id: 7,
            addr: "127.0.0.1:5000".into(),
            laddr: "127.0.0.1:7101".into(),
            name: "app".into(),
            multi: Some(2),
            cmd: "client|list".into(),
            resp: 3,
            user: "default".into(),
            ..ClientRow::default()
        };
        let line = row.line();
        assert!(line.starts_with("id=7 addr=127.0.0.1:5000 laddr=127.0.0.1:7101 fd=0 name=app age=0 idle=0 flags=x"));
        assert!(line.contains(" multi=2 ") && line.ends_with(" cmd=client|list user=default redir=-1 resp=3"));
    }
}
