//! TLS for RESP clients (issue 18): rustls on ring, no OpenSSL. A
//! connection accepted on a server's TLS address carries a [`TlsSession`];
//! `Connection` passes its socket's bytes through it, so the loop sees
//! plain RESP as on any other connection. Built without the `tls` feature
//! (the macOS check, which has no C compiler for ring), a config that asks
//! for TLS is refused.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
#[cfg(feature = "tls")]
use std::sync::Arc;

/// `[tls]`: RESP over TLS on each server's TLS address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The servers' certificate chain (PEM), relative to the config file.
    pub cert_file: String,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// CAs whose certificates clients present (PEM); without it no client
    /// certificate is asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// With `ca_file`: whether a client must present a certificate (`yes`),
    /// may (`optional`) or is not asked (`no`), as Redis's
    /// `tls-auth-clients`.
    #[serde(default)]
    pub auth_clients: TlsAuthClients,
    /// Each server's TLS address, by name (`[tls.servers] s1 =
    /// "127.0.0.1:7201"`); a server without one speaks only plain RESP.
    #[serde(default)]
    pub servers: BTreeMap<String, String>,
    /// Node links over mutual TLS: servers and masters dial each other with
    /// TLS, present `cert_file` and check the peer's against `ca_file`; a
    /// node hello claiming a server or the master without a certificate of
    /// that CA is refused (it replaces the address check where no `secret`
    /// is set), and so is any hello in plain text (library clients and
    /// tools connect over TLS too). Needs `ca_file`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nodes: bool,
}

/// `tls.auth_clients`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsAuthClients {
    #[default]
    Yes,
    No,
    Optional,
}

/// Why the TLS settings could not be used.
#[derive(Debug)]
pub struct TlsError(pub String);

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

#[cfg(feature = "tls")]
mod imp {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::io::{self, Read, Write};

    /// What a server's TLS listener hands each connection.
    #[derive(Clone)]
    pub struct Acceptor(Arc<rustls::ServerConfig>);

    impl std::fmt::Debug for Acceptor {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Acceptor")
        }
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn certs(dir: &Path, file: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join(file))
            .and_then(|i| i.collect())
            .map_err(|e| TlsError(format!("{what} {file}: {e}")))?;
        if certs.is_empty() {
            return Err(TlsError(format!("{what} {file}: no certificate in it")));
        }
        Ok(certs)
    }

    fn roots(dir: &Path, file: &str, what: &str) -> Result<Arc<rustls::RootCertStore>, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for c in certs(dir, file, what)? {
            roots.add(c).map_err(|e| TlsError(format!("{what} {file}: {e}")))?;
        }
        Ok(Arc::new(roots))
    }

    fn key(dir: &Path, file: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
        PrivateKeyDer::from_pem_file(dir.join(file)).map_err(|e| TlsError(format!("tls.key_file {file}: {e}")))
    }

    /// A library client's or a tool's TLS to nodes' addresses (`tls.nodes`):
    /// the node's certificate is checked against a CA for the host dialled;
    /// a certificate of its own is presented when given (nodes ask for one,
    /// and need one only of servers and masters).
    #[derive(Clone)]
    pub struct ClientTls(Arc<rustls::ClientConfig>);

    impl std::fmt::Debug for ClientTls {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("ClientTls")
        }
    }

    impl ClientTls {
        /// `ca_file`: the CAs of the nodes' certificates; `identity`: a
        /// certificate chain and its private key (PEM files), if any.
        pub fn new(ca_file: &Path, identity: Option<(&Path, &Path)>) -> Result<ClientTls, TlsError> {
            let here = Path::new("");
            let builder = rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError(format!("tls: {e}")))?
                .with_root_certificates(roots(here, &ca_file.to_string_lossy(), "CA file")?);
            let config = match identity {
                None => builder.with_no_client_auth(),
                Some((cert, key)) => {
                    let chain = certs(here, &cert.to_string_lossy(), "certificate file")?;
                    let key = PrivateKeyDer::from_pem_file(key)
                        .map_err(|e| TlsError(format!("key file {}: {e}", key.display())))?;
                    builder
                        .with_client_auth_cert(chain, key)
                        .map_err(|e| TlsError(format!("certificate file {}: {e}", cert.display())))?
                }
            };
            Ok(ClientTls(Arc::new(config)))
        }
    }

    /// Starts TLS as a node link's client on `sock` to `host` and finishes
    /// the handshake (a refused certificate is an error here).
    pub fn connect_node(sock: std::net::TcpStream, t: &ClientTls, host: &str) -> Result<TlsStream, TlsError> {
        handshake(t.0.clone(), sock, host)
    }

    fn handshake(
        config: Arc<rustls::ClientConfig>,
        sock: std::net::TcpStream,
        host: &str,
    ) -> Result<TlsStream, TlsError> {
        let name = ServerName::try_from(host.to_string()).map_err(|e| TlsError(format!("{host}: {e}")))?;
        let conn = rustls::ClientConnection::new(config, name).map_err(|e| TlsError(format!("tls: {e}")))?;
        let mut stream = rustls::StreamOwned::new(conn, sock);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).map_err(|e| TlsError(format!("TLS with {host}: {e}")))?;
        }
        Ok(TlsStream(Box::new(stream)))
    }

    fn server_config(tls: &TlsConfig, dir: &Path, auth: TlsAuthClients) -> Result<Acceptor, TlsError> {
        let (certs, key) = (certs(dir, &tls.cert_file, "tls.cert_file")?, key(dir, &tls.key_file)?);
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("tls: {e}")))?;
        let builder = match (&tls.ca_file, auth) {
            (_, TlsAuthClients::No) | (None, _) => builder.with_no_client_auth(),
            (Some(ca), auth) => {
                let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots(dir, ca, "tls.ca_file")?,
                    provider(),
                );
                let v = if auth == TlsAuthClients::Optional { v.allow_unauthenticated() } else { v };
                builder.with_client_cert_verifier(v.build().map_err(|e| TlsError(format!("tls.ca_file {ca}: {e}")))?)
            }
        };
        let config = builder
            .with_single_cert(certs, key)
            .map_err(|e| TlsError(format!("tls.key_file {}: {e}", tls.key_file)))?;
        Ok(Acceptor(Arc::new(config)))
    }

    /// The certificate chain, key and (for client certificates) CA the
    /// settings name, paths relative to `dir`, read and checked.
    pub fn acceptor(tls: &TlsConfig, dir: &Path) -> Result<Acceptor, TlsError> {
        server_config(tls, dir, tls.auth_clients)
    }

    /// The node links' TLS (`tls.nodes`): a node takes a TLS connection on
    /// its own address (a client certificate, when given, checked against
    /// `ca_file`: nodes must give one, RESP clients may), and dials others
    /// with its certificate, checking theirs against `ca_file` for the host
    /// it dials.
    #[derive(Clone)]
    pub struct NodeTls {
        acceptor: Acceptor,
        connector: Arc<rustls::ClientConfig>,
    }

    impl NodeTls {
        pub fn acceptor(&self) -> &Acceptor {
            &self.acceptor
        }

        /// Its client side, for a tool run with the node's config.
        pub fn client(&self) -> ClientTls {
            ClientTls(self.connector.clone())
        }
    }

    impl std::fmt::Debug for NodeTls {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("NodeTls")
        }
    }

    pub fn node_tls(tls: &TlsConfig, dir: &Path) -> Result<NodeTls, TlsError> {
        let ca = tls.ca_file.as_deref().ok_or_else(|| TlsError("tls.nodes: needs tls.ca_file".into()))?;
        let acceptor = server_config(tls, dir, TlsAuthClients::Optional)?;
        let connector = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("tls: {e}")))?
            .with_root_certificates(roots(dir, ca, "tls.ca_file")?)
            .with_client_auth_cert(certs(dir, &tls.cert_file, "tls.cert_file")?, key(dir, &tls.key_file)?)
            .map_err(|e| TlsError(format!("tls.key_file {}: {e}", tls.key_file)))?;
        Ok(NodeTls { acceptor, connector: Arc::new(connector) })
    }

    /// A blocking TLS client stream (the PostgreSQL store's connection, a
    /// library client's or a tool's node link).
    pub struct TlsStream(Box<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>);

    impl TlsStream {
        /// The socket under it (for its timeouts).
        pub fn socket(&self) -> &std::net::TcpStream {
            &self.0.sock
        }
    }

    impl Read for TlsStream {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.0.read(buf)
        }
    }

    impl Write for TlsStream {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.0.flush()
        }
    }

    /// The PostgreSQL connection's check where libpq's is weaker than a
    /// full one: no roots, any certificate (`sslmode=require`); or a chain
    /// to the roots whatever name it is for (`verify-ca`). The handshake's
    /// signatures are checked in both.
    #[derive(Debug)]
    struct Relaxed {
        chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
        provider: Arc<rustls::crypto::CryptoProvider>,
    }

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    impl ServerCertVerifier for Relaxed {
        fn verify_server_cert(
            &self,
            end: &CertificateDer<'_>,
            chain: &[CertificateDer<'_>],
            name: &ServerName<'_>,
            ocsp: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            use rustls::CertificateError::{NotValidForName, NotValidForNameContext};
            let Some(v) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
            match v.verify_server_cert(end, chain, name, ocsp, now) {
                Err(rustls::Error::InvalidCertificate(NotValidForName | NotValidForNameContext { .. })) => {
                    Ok(ServerCertVerified::assertion())
                }
                other => other,
            }
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider.signature_verification_algorithms.supported_schemes()
        }
    }

    /// Starts TLS as a client on `sock` to `host` and finishes the
    /// handshake (so a refused certificate is an error here).
    pub fn connect(sock: std::net::TcpStream, host: &str, check: &ServerCheck) -> Result<TlsStream, TlsError> {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("tls: {e}")))?;
        let chain = |ca: &Path| -> Result<_, TlsError> {
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots(Path::new(""), &ca.to_string_lossy(), "sslrootcert")?,
                provider(),
            )
            .build()
            .map_err(|e| TlsError(format!("sslrootcert {}: {e}", ca.display())))
        };
        let verifier: Arc<dyn ServerCertVerifier> = match check {
            ServerCheck::Nothing => Arc::new(Relaxed { chain: None, provider: provider() }),
            ServerCheck::Chain(ca) => Arc::new(Relaxed { chain: Some(chain(ca)?), provider: provider() }),
            ServerCheck::ChainAndName(ca) => chain(ca)?,
        };
        let config = builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth();
        handshake(Arc::new(config), sock, host)
    }

    /// One connection's TLS state.
    pub struct TlsSession(Box<rustls::Connection>);

    impl TlsSession {
        pub fn accept(a: &Acceptor) -> io::Result<TlsSession> {
            let c = rustls::ServerConnection::new(a.0.clone()).map_err(io::Error::other)?;
            Ok(TlsSession(Box::new(c.into())))
        }

        /// A node link to `host`, as a client.
        pub fn client(t: &NodeTls, host: &str) -> io::Result<TlsSession> {
            let name = ServerName::try_from(host.to_string()).map_err(io::Error::other)?;
            let c = rustls::ClientConnection::new(t.connector.clone(), name).map_err(io::Error::other)?;
            Ok(TlsSession(Box::new(c.into())))
        }

        /// Reads what the socket has, decrypts it into `plain`. `Ok(false)`
        /// on the peer's end of the stream; an error on bytes that are not
        /// TLS or fail it (the alert is queued for `write_to`).
        pub fn read_from(&mut self, sock: &mut impl Read, plain: &mut Vec<u8>) -> io::Result<bool> {
            loop {
                match self.0.read_tls(sock) {
                    Ok(0) => return Ok(false),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
                if !self.process(plain)? {
                    return Ok(false);
                }
            }
        }

        /// Takes bytes already read from the socket (a connection that
        /// turned out to speak TLS).
        pub fn feed(&mut self, mut bytes: &[u8], plain: &mut Vec<u8>) -> io::Result<bool> {
            while !bytes.is_empty() {
                self.0.read_tls(&mut bytes)?;
                if !self.process(plain)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }

        /// Decrypts what was read into `plain`; false once the peer closed.
        fn process(&mut self, plain: &mut Vec<u8>) -> io::Result<bool> {
            let state = self.0.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if state.plaintext_bytes_to_read() > 0 {
                let at = plain.len();
                plain.resize(at + state.plaintext_bytes_to_read(), 0);
                self.0.reader().read_exact(&mut plain[at..])?;
            }
            Ok(!state.peer_has_closed())
        }

        /// Whether the peer presented a certificate (checked in the
        /// handshake against the CA: one that failed ended it).
        pub fn peer_verified(&self) -> bool {
            self.0.peer_certificates().is_some_and(|c| !c.is_empty())
        }

        /// Encrypts what it can of `plain` (it takes some and says how
        /// much) and writes what is ready to the socket; `Ok(true)` while
        /// encrypted bytes are left to write.
        pub fn write_to(&mut self, plain: &[u8], sock: &mut impl Write) -> io::Result<(usize, bool)> {
            let taken = if plain.is_empty() { 0 } else { self.0.writer().write(plain)? };
            while self.0.wants_write() {
                match self.0.write_tls(sock) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((taken, true)),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok((taken, false))
        }

        /// Whether encrypted bytes wait to be written (a handshake's, an
        /// alert's).
        pub fn wants_write(&self) -> bool {
            self.0.wants_write()
        }

        /// Ends the session politely (close_notify; `write_to` sends it).
        pub fn close(&mut self) {
            self.0.send_close_notify();
        }
    }
}

#[cfg(not(feature = "tls"))]
mod imp {
    use super::*;
    use std::io::{self, Read, Write};

    /// Never made: a build without TLS refuses to connect with it.
    pub enum TlsStream {}

    impl Read for TlsStream {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            match *self {}
        }
    }

    impl Write for TlsStream {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            match *self {}
        }
        fn flush(&mut self) -> io::Result<()> {
            match *self {}
        }
    }

    impl TlsStream {
        pub fn socket(&self) -> &std::net::TcpStream {
            match *self {}
        }
    }

    pub fn connect(_: std::net::TcpStream, _: &str, _: &ServerCheck) -> Result<TlsStream, TlsError> {
        Err(TlsError("TLS: this build of failgroup has none (built without the `tls` feature)".into()))
    }

    /// Never made: a build without TLS has no TLS client.
    #[derive(Clone, Debug)]
    pub enum ClientTls {}

    impl ClientTls {
        pub fn new(_: &Path, _: Option<(&Path, &Path)>) -> Result<ClientTls, TlsError> {
            Err(TlsError("TLS: this build of failgroup has none (built without the `tls` feature)".into()))
        }
    }

    pub fn connect_node(_: std::net::TcpStream, t: &ClientTls, _: &str) -> Result<TlsStream, TlsError> {
        match *t {}
    }

    /// Never made: a build without TLS refuses a config asking for it.
    #[derive(Clone, Debug)]
    pub enum Acceptor {}

    pub fn acceptor(_: &TlsConfig, _: &Path) -> Result<Acceptor, TlsError> {
        Err(TlsError("tls: this build of failgroup has no TLS (built without the `tls` feature)".into()))
    }

    pub enum TlsSession {}

    /// Never made: a build without TLS refuses `tls.nodes`.
    #[derive(Clone, Debug)]
    pub enum NodeTls {}

    impl NodeTls {
        pub fn acceptor(&self) -> &Acceptor {
            match *self {}
        }
        pub fn client(&self) -> ClientTls {
            match *self {}
        }
    }

    pub fn node_tls(_: &TlsConfig, _: &Path) -> Result<NodeTls, TlsError> {
        Err(TlsError("tls: this build of failgroup has no TLS (built without the `tls` feature)".into()))
    }

    impl TlsSession {
        pub fn accept(a: &Acceptor) -> io::Result<TlsSession> {
            match *a {}
        }
        pub fn client(t: &NodeTls, _: &str) -> io::Result<TlsSession> {
            match *t {}
        }
        pub fn read_from(&mut self, _: &mut impl Read, _: &mut Vec<u8>) -> io::Result<bool> {
            match *self {}
        }
        pub fn feed(&mut self, _: &[u8], _: &mut Vec<u8>) -> io::Result<bool> {
            match *self {}
        }
        pub fn peer_verified(&self) -> bool {
            match *self {}
        }
        pub fn write_to(&mut self, _: &[u8], _: &mut impl Write) -> io::Result<(usize, bool)> {
            match *self {}
        }
        pub fn wants_write(&self) -> bool {
            match *self {}
        }
        pub fn close(&mut self) {
            match *self {}
        }
    }
}

/// What a TLS client checks of the server's certificate.
#[derive(Clone, Debug)]
pub enum ServerCheck {
    /// Nothing (the connection is encrypted, not authenticated).
    Nothing,
    /// A chain to the CAs in this file.
    Chain(std::path::PathBuf),
    /// A chain to them, for the host connected to.
    ChainAndName(std::path::PathBuf),
}

pub use imp::{acceptor, connect, connect_node, node_tls, Acceptor, ClientTls, NodeTls, TlsSession, TlsStream};
