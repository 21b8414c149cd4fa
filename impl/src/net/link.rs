//! A blocking node-protocol link, for the client library and tools.

use super::socket::resolve;
use super::tls::{connect_node, ClientTls, TlsStream};
use super::wire::{decode, encode, Msg, Peer, MAX_FRAME, PREAMBLE};
use std::io::{self, Read, Write};

/// A blocking connection, for the client library and tools.
pub struct NodeLink {
    stream: Stream,
    buf: Vec<u8>,
}

/// Plain text, or TLS (`tls.nodes`).
enum Stream {
    Plain(std::net::TcpStream),
    Tls(TlsStream),
}

impl Stream {
    fn socket(&self) -> &std::net::TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => t.socket(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(t) => t.flush(),
        }
    }
}

impl NodeLink {
    /// Connects, sends the preamble and hello, and waits for the welcome.
    pub fn open(addr: &str, from: Peer, secret: Option<&str>, timeout: std::time::Duration) -> io::Result<NodeLink> {
        NodeLink::open_with(addr, from, secret, timeout, None)
    }

    /// [`NodeLink::open`], over TLS when given (`tls.nodes`): the node's
    /// certificate is checked for the host of `addr`; a TLS failure is a
    /// `PermissionDenied` error naming it.
    pub fn open_with(
        addr: &str,
        from: Peer,
        secret: Option<&str>,
        timeout: std::time::Duration,
        tls: Option<&ClientTls>,
    ) -> io::Result<NodeLink> {
        let sock = resolve(addr)?;
        let socket = std::net::TcpStream::connect_timeout(&sock, timeout)?;
        socket.set_nodelay(true)?;
        socket.set_read_timeout(Some(timeout))?;
        socket.set_write_timeout(Some(timeout))?;
        let stream = match tls {
            None => Stream::Plain(socket),
            Some(t) => {
                let tls = connect_node(socket, t, super::socket::host_of(addr))
                    .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e.to_string()))?;
                Stream::Tls(tls)
            }
        };
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
        self.stream.write_all(&encode(msg))?;
        self.stream.flush()
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
        self.stream.socket().set_read_timeout(Some(t.max(std::time::Duration::from_millis(1))))
    }
}
