//! A blocking node-protocol link, for the client library and tools.

use super::socket::resolve;
use super::wire::{decode, encode, Msg, Peer, MAX_FRAME, PREAMBLE};
use std::io::{self, Read, Write};

/// A blocking connection, for the client library and tools.
pub struct NodeLink {
    stream: std::net::TcpStream,
    buf: Vec<u8>,
}

impl NodeLink {
    /// Connects, sends the preamble and hello, and waits for the welcome.
    pub fn open(addr: &str, from: Peer, secret: Option<&str>, timeout: std::time::Duration) -> io::Result<NodeLink> {
        let sock = resolve(addr)?;
        let stream = std::net::TcpStream::connect_timeout(&sock, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut conn = NodeLink { stream, buf: Vec::new() };
        conn.stream.write_all(&PREAMBLE)?;
        conn.send(&Msg::Hello { from, secret: secret.map(str::to_string) })?;
        match conn.recv()? {
            Msg::Welcome => Ok(conn),
            Msg::Refused(why) => Err(io::Error::new(io::ErrorKind::PermissionDenied, why)),
            other => Err(io::Error::new(io::ErrorKind::InvalidData, format!("expected a welcome, got {other:?}"))),
        }
    }

    pub fn send(&mut self, msg: &Msg) -> io::Result<()> {
        self.stream.write_all(&encode(msg))
    }

    /// Waits for one message (bounded by the read timeout).
    pub fn recv(&mut self) -> io::Result<Msg> {
        loop {
            match decode(&self.buf, MAX_FRAME) {
                Ok(Some((msg, used))) => {
                    self.buf.drain(..used);
                    return Ok(msg);
                }
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub fn set_read_timeout(&self, t: std::time::Duration) -> io::Result<()> {
        self.stream.set_read_timeout(Some(t.max(std::time::Duration::from_millis(1))))
    }
}
