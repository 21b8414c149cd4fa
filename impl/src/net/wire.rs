//! The node protocol: what servers, the master and library clients say to
//! each other over TCP. A connection opens with a 4-byte preamble (a zero
//! byte, which no RESP request starts with, then "FG" and the protocol
//! version), then carries frames: a 4-byte big-endian length and a postcard
//! encoding of one [`Msg`]. The first frame is a [`Msg::Hello`]; frames over
//! the size limit close the connection.

use failgroup_model::{
    ClientId, ClusterSpec, Forwarded, MasterMsg, OpResult, ProtocolConfig, Report, ServerId, TopologyChange,
};
use serde::{Deserialize, Serialize};

/// 2: requests and replies between servers carry the forwarder's incarnation.
pub const VERSION: u8 = 2;
pub const PREAMBLE: [u8; 4] = [0, b'F', b'G', VERSION];
/// Largest frame accepted by default (a value of a few megabytes plus room).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Who opens a node connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Peer {
    Server(ServerId),
    Master,
    Client(ClientId),
    /// `failgroup status` and other tools: may only ask.
    Admin,
}

/// What a client needs to route: the cluster, its protocol settings, and
/// where the master listens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub cluster: ClusterSpec,
    pub protocol: ProtocolConfig,
    pub master: String,
}

/// One server as the master sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    pub name: String,
    pub addr: String,
    pub group: String,
    pub online: bool,
    /// Slot ranges this server serves in the master's view.
    pub serves: Vec<(u16, u16)>,
    /// How many times the master marked it offline.
    pub failovers: u64,
    /// Serving rights it holds in the store (`linearizable` mode; None
    /// when the store could not be read).
    pub rights: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub mode: String,
    pub view_version: String,
    pub servers: Vec<ServerStatus>,
    /// The topology's version (0 as configured, one more per change).
    pub topology_version: u64,
    /// Slots whose right the server the master's view gives them to does
    /// not hold yet: moves and failovers in progress (`linearizable` mode;
    /// None when the store could not be read).
    pub pending_slots: Option<u32>,
    /// Whether the master asked holds the lease (else it stands by).
    pub acting: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    Hello {
        from: Peer,
        secret: Option<String>,
    },
    Welcome,
    Refused(String),
    /// A request: forwarded by a server (c15) as operation `op` of its run
    /// `incarnation`, or sent by a library client (then `op` is the
    /// client's sequence number and `incarnation` 0).
    Forward {
        op: u64,
        incarnation: u64,
        fwd: Forwarded,
    },
    /// The answer to `Forward` with the same `op` and `incarnation`.
    ForwardReply {
        op: u64,
        incarnation: u64,
        result: OpResult,
    },
    /// From the master to a server (probe, notices, view).
    Master(MasterMsg),
    /// To the master (from servers and clients), and probe answers.
    Report(Report),
    InfoRequest,
    Info(Box<ClusterInfo>),
    StatusRequest,
    Status(Box<ClusterStatus>),
    /// From `failgroup admin drain` to a server: leave gracefully, as on
    /// SIGTERM. Answered with `Draining`.
    Drain,
    Draining,
    /// From `failgroup admin add-server` and the like to the master: change
    /// the topology. Answered with `Changed`: the new version, or why not.
    Change(TopologyChange),
    Changed(Result<u64, String>),
}

/// The frame of `msg`, length prefix included.
pub fn encode(msg: &Msg) -> Vec<u8> {
    let mut frame = Vec::new();
    encode_into(msg, &mut frame);
    frame
}

/// Appends `msg`'s frame to `out` (a connection's output: no buffer of
/// its own per message).
pub fn encode_into(msg: &Msg, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut body = postcard::to_extend(msg, std::mem::take(out)).expect("encoding to a Vec cannot fail");
    let len = (body.len() - start - 4) as u32;
    body[start..start + 4].copy_from_slice(&len.to_be_bytes());
    *out = body;
}

/// Decodes one frame from the front of `buf`: `Ok(None)` needs more bytes.
pub fn decode(buf: &[u8], max: usize) -> Result<Option<(Msg, usize)>, String> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > max {
        return Err(format!("frame of {len} bytes over the limit of {max}"));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let msg = postcard::from_bytes(&buf[4..4 + len]).map_err(|e| format!("undecodable frame: {e}"))?;
    Ok(Some((msg, 4 + len)))
}

/// Compares secrets without an early exit on the first difference.
pub fn secret_matches(expected: Option<&str>, given: Option<&str>) -> bool {
    match (expected, given) {
        (None, _) => true,
        (Some(e), Some(g)) => {
            e.len() == g.len() && e.bytes().zip(g.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
        }
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_respect_the_limit() {
        let msg = Msg::Hello { from: Peer::Server(ServerId(3)), secret: Some("s".into()) };
        let frame = encode(&msg);
        assert_eq!(decode(&frame[..frame.len() - 1], MAX_FRAME), Ok(None));
        assert_eq!(decode(&frame, MAX_FRAME), Ok(Some((msg, frame.len()))));
        assert!(decode(&frame, 2).is_err());
        assert!(decode(&[0, 0, 0, 2, 0xff, 0xff], MAX_FRAME).is_err());
    }

    #[test]
    fn secrets_must_match_when_configured() {
        assert!(secret_matches(None, None));
        assert!(secret_matches(Some("abc"), Some("abc")));
        assert!(!secret_matches(Some("abc"), Some("abd")));
        assert!(!secret_matches(Some("abc"), None));
    }
}
