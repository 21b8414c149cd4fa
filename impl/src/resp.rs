//! RESP, the Redis protocol: an incremental request decoder (arrays of bulk
//! strings, and inline commands as `redis-cli` and telnet send them) and
//! reply encoders for RESP2 and RESP3 (the version a connection chose with
//! HELLO). The decoder never trusts a declared length: each is
//! checked against the limits before anything is allocated.

/// The Redis version failgroup answers as (its replies follow it).
pub const REDIS_VERSION: &str = "7.0.15";

use std::fmt;

/// DecodeLimits on what one request may declare.
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    /// Largest bulk string (Redis' `proto-max-bulk-len`).
    pub max_bulk: usize,
    /// Most arguments in one command.
    pub max_args: usize,
    /// Longest inline command line.
    pub max_inline: usize,
}

impl Default for DecodeLimits {
    fn default() -> DecodeLimits {
        DecodeLimits { max_bulk: 512 * 1024 * 1024, max_args: 1024 * 1024, max_inline: 64 * 1024 }
    }
}

/// A request that cannot be decoded; the connection is answered with the
/// error and closed, as Redis does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ERR Protocol error: {}", self.0)
    }
}

fn perr<T>(msg: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(msg.into()))
}

/// A decoded command and the bytes it took, `None` if more are needed.
pub type Decoded = Result<Option<(Vec<Vec<u8>>, usize)>, ProtocolError>;

/// The position of the first CRLF at or after `from`.
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?.windows(2).position(|w| w == b"\r\n").map(|p| from + p)
}

/// A decimal length in `buf[from..end]`, as Redis reads it.
fn number(buf: &[u8], from: usize, end: usize) -> Option<i64> {
    std::str::from_utf8(&buf[from..end]).ok()?.parse().ok()
}

/// Decodes one command from the front of `buf`. `Ok(None)`: more bytes are
/// needed. `Ok(Some((args, used)))`: a command and the bytes it took; an
/// empty `args` is a blank inline line, to be skipped.
pub fn decode(buf: &[u8], limits: &DecodeLimits) -> Decoded {
    let Some(&first) = buf.first() else { return Ok(None) };
    if first != b'*' {
        return decode_inline(buf, limits);
    }
    let Some(end) = line_end(buf, 1) else {
        return if buf.len() > limits.max_inline { perr("too big mbulk count string") } else { Ok(None) };
    };
    let count = match number(buf, 1, end) {
        Some(n) if n as u64 <= limits.max_args as u64 || n <= 0 => n,
        Some(_) | None => return perr("invalid multibulk length"),
    };
    let mut pos = end + 2;
    let mut args = Vec::with_capacity(count.clamp(0, 64) as usize);
    for _ in 0..count.max(0) {
        match buf.get(pos) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(&b) => return perr(format!("expected '$', got '{}'", b as char)),
        }
        let Some(end) = line_end(buf, pos + 1) else {
            return if buf.len() - pos > 32 { perr("invalid bulk length") } else { Ok(None) };
        };
        let len = match number(buf, pos + 1, end) {
            Some(n) if n >= 0 && n as u64 <= limits.max_bulk as u64 => n as usize,
            _ => return perr("invalid bulk length"),
        };
        let start = end + 2;
        if buf.len() < start + len + 2 {
            return Ok(None);
        }
        if &buf[start + len..start + len + 2] != b"\r\n" {
            return perr("bulk string not terminated by CRLF");
        }
        args.push(buf[start..start + len].to_vec());
        pos = start + len + 2;
    }
    Ok(Some((args, pos)))
}

fn decode_inline(buf: &[u8], limits: &DecodeLimits) -> Decoded {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > limits.max_inline { perr("too big inline request") } else { Ok(None) };
    };
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    let mut args = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        match b {
            b' ' | b'\t' => {
                if let Some(a) = cur.take() {
                    args.push(a);
                }
            }
            b'"' | b'\'' if cur.is_none() => {
                // A quoted argument, with the escapes redis-cli understands.
                let mut a = Vec::new();
                i += 1;
                loop {
                    match line.get(i) {
                        None => return perr("unbalanced quotes in request"),
                        Some(&q) if q == b => break,
                        Some(b'\\') if b == b'"' && i + 1 < line.len() => {
                            i += 1;
                            a.push(match line[i] {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                c => c,
                            });
                        }
                        Some(&c) => a.push(c),
                    }
                    i += 1;
                }
                if line.get(i + 1).is_some_and(|c| !c.is_ascii_whitespace()) {
                    return perr("unbalanced quotes in request");
                }
                args.push(a);
            }
            _ => cur.get_or_insert_with(Vec::new).push(b),
        }
        i += 1;
    }
    if let Some(a) = cur {
        args.push(a);
    }
    if args.len() > limits.max_args {
        return perr("too many arguments in inline request");
    }
    Ok(Some((args, nl + 1)))
}

/// The protocol version a connection speaks (HELLO 2 or 3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Proto {
    #[default]
    Resp2,
    Resp3,
}

impl Proto {
    pub fn number(self) -> i64 {
        match self {
            Proto::Resp2 => 2,
            Proto::Resp3 => 3,
        }
    }
}

/// Reply encoders, appending to an output buffer. Those whose RESP3 type
/// differs take the connection's [`Proto`]: RESP2 answers the same data
/// in its older types (a map as a flat array, text as a bulk string), as
/// Redis does.
pub mod reply {
    use super::Proto;

    pub fn simple(out: &mut Vec<u8>, s: &str) {
        out.push(b'+');
        out.extend_from_slice(s.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    pub fn ok(out: &mut Vec<u8>) {
        out.extend_from_slice(b"+OK\r\n");
    }

    /// An error; `msg` starts with its code (ERR, WRONGTYPE, ...). Line
    /// breaks in it would break the framing, so they become spaces.
    pub fn error(out: &mut Vec<u8>, msg: &str) {
        out.push(b'-');
        out.extend(msg.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
        out.extend_from_slice(b"\r\n");
    }

    pub fn int(out: &mut Vec<u8>, n: i64) {
        out.push(b':');
        out.extend_from_slice(n.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    pub fn bulk(out: &mut Vec<u8>, b: &[u8]) {
        out.push(b'$');
        out.extend_from_slice(b.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(b);
        out.extend_from_slice(b"\r\n");
    }

    pub fn nil(out: &mut Vec<u8>) {
        out.extend_from_slice(b"$-1\r\n");
    }

    pub fn array(out: &mut Vec<u8>, len: usize) {
        header(out, b'*', len);
    }

    fn header(out: &mut Vec<u8>, kind: u8, len: usize) {
        out.push(kind);
        out.extend_from_slice(len.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// A missing value: RESP3's null, RESP2's null bulk string.
    pub fn null(out: &mut Vec<u8>, p: Proto) {
        match p {
            Proto::Resp2 => nil(out),
            Proto::Resp3 => out.extend_from_slice(b"_\r\n"),
        }
    }

    /// An aborted EXEC: RESP3's null, RESP2's null array.
    pub fn null_array(out: &mut Vec<u8>, p: Proto) {
        match p {
            Proto::Resp2 => out.extend_from_slice(b"*-1\r\n"),
            Proto::Resp3 => out.extend_from_slice(b"_\r\n"),
        }
    }

    pub fn value(out: &mut Vec<u8>, b: Option<&[u8]>, p: Proto) {
        match b {
            Some(b) => bulk(out, b),
            None => null(out, p),
        }
    }

    /// A map of `pairs` entries (then `2 * pairs` items follow).
    pub fn map(out: &mut Vec<u8>, pairs: usize, p: Proto) {
        match p {
            Proto::Resp2 => array(out, pairs * 2),
            Proto::Resp3 => header(out, b'%', pairs),
        }
    }

    /// Text for people (INFO, CLUSTER NODES): RESP3's verbatim string.
    pub fn verbatim(out: &mut Vec<u8>, text: &[u8], p: Proto) {
        match p {
            Proto::Resp2 => bulk(out, text),
            Proto::Resp3 => {
                header(out, b'=', text.len() + 4);
                out.extend_from_slice(b"txt:");
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// A decoded reply, for clients and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
    /// RESP3: null, map, set, double (as written), boolean, verbatim text
    /// (without its format prefix), push.
    Null,
    Map(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Double(String),
    Bool(bool),
    Verbatim(Vec<u8>),
    Push(Vec<Reply>),
}

/// Decodes one reply from the front of `buf` (`Ok(None)`: need more bytes).
pub fn decode_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ProtocolError> {
    let Some(end) = line_end(buf, 1) else { return Ok(None) };
    let text = || String::from_utf8_lossy(&buf[1..end]).into_owned();
    let n = || number(buf, 1, end).ok_or_else(|| ProtocolError("bad number in reply".into()));
    match buf[0] {
        b'+' => Ok(Some((Reply::Simple(text()), end + 2))),
        b'-' => Ok(Some((Reply::Error(text()), end + 2))),
        b':' => Ok(Some((Reply::Int(n()?), end + 2))),
        b'$' => {
            let len = n()?;
            if len < 0 {
                return Ok(Some((Reply::Bulk(None), end + 2)));
            }
            let (start, len) = (end + 2, len as usize);
            if buf.len() < start + len + 2 {
                return Ok(None);
            }
            Ok(Some((Reply::Bulk(Some(buf[start..start + len].to_vec())), start + len + 2)))
        }
        b'=' => {
            let (start, len) = (end + 2, n()?.max(0) as usize);
            if buf.len() < start + len + 2 {
                return Ok(None);
            }
            let body = &buf[start..start + len];
            let text = body.get(4..).unwrap_or_default().to_vec();
            Ok(Some((Reply::Verbatim(text), start + len + 2)))
        }
        b'_' => Ok(Some((Reply::Null, end + 2))),
        b',' => Ok(Some((Reply::Double(text()), end + 2))),
        b'#' => Ok(Some((Reply::Bool(&buf[1..end] == b"t"), end + 2))),
        b'*' | b'~' | b'>' | b'%' => {
            let len = n()?;
            if len < 0 {
                return Ok(Some((Reply::Array(None), end + 2)));
            }
            let count = if buf[0] == b'%' { len * 2 } else { len };
            let mut pos = end + 2;
            let mut items = Vec::new();
            for _ in 0..count {
                match decode_reply(&buf[pos..])? {
                    Some((r, used)) => {
                        items.push(r);
                        pos += used;
                    }
                    None => return Ok(None),
                }
            }
            let reply = match buf[0] {
                b'~' => Reply::Set(items),
                b'>' => Reply::Push(items),
                b'%' => {
                    let mut it = items.into_iter();
                    let mut pairs = Vec::new();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    Reply::Map(pairs)
                }
                _ => Reply::Array(Some(items)),
            };
            Ok(Some((reply, pos)))
        }
        b => perr(format!("unknown reply type byte {b:#04x}")),
    }
}

/// Encodes a command as an array of bulk strings.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    reply::array(out, args.len());
    for a in args {
        reply::bulk(out, a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn decodes_arrays_incrementally() {
        let msg = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        for cut in 0..msg.len() {
            assert_eq!(decode(&msg[..cut], &DecodeLimits::default()), Ok(None), "cut at {cut}");
        }
        assert_eq!(decode(msg, &DecodeLimits::default()), Ok(Some((args(&["GET", "k"]), msg.len()))));
    }

    #[test]
    fn decodes_inline_commands_with_quotes() {
        let got = decode(b"set \"a b\" 'c'\r\nrest", &DecodeLimits::default()).unwrap().unwrap();
        assert_eq!(got, (args(&["set", "a b", "c"]), 15));
    }

    #[test]
    fn rejects_bad_lengths_before_allocating() {
        let l = DecodeLimits { max_bulk: 10, ..DecodeLimits::default() };
        assert!(decode(b"*1\r\n$11\r\n", &l).is_err());
        assert!(decode(b"*1\r\n$-5\r\n", &l).is_err());
        assert!(decode(b"*x\r\n", &l).is_err());
        assert!(decode(b"*99999999999\r\n", &l).is_err());
        assert!(decode(b"*1\r\n:1\r\n", &l).is_err());
        assert!(decode(b"*1\r\n$1\r\nab\r\n", &l).is_err());
    }
}
