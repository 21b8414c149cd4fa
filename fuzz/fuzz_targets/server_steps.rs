//! The core's server transitions on arbitrary input sequences: every four
//! bytes become one input (kind, two arguments, time step).
#![no_main]
use failgroup_model::*;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let topo = Arc::new(ClusterSpec::local(3, 1, 7101, 16).validate().unwrap());
    let server = Server::new(ServerId(0), topo, ProtocolConfig::default());
    let (mut st, mut now, mut out) = (ServerState::default(), Time(0), Vec::new());
    for c in data.chunks_exact(4) {
        let (a, b) = (c[1] as u64 % 8, c[2]);
        now = now.plus(c[3] as u64);
        let key = vec![b'a' + (b % 3)];
        let input = match c[0] % 10 {
            0 => ServerInput::Start { incarnation: a },
            1 => ServerInput::Request {
                origin: Origin::Client(a),
                fwd: Forwarded { req: ReqId { client: ClientId(1), seq: a }, op: Op::Set(key, vec![b]), hops: b % 4 },
            },
            2 => ServerInput::Request {
                origin: Origin::Peer { server: ServerId(b as u16 % 4), incarnation: a % 2, op: a },
                fwd: Forwarded { req: ReqId { client: ClientId(2), seq: a }, op: Op::Get(key), hops: b % 4 },
            },
            3 => ServerInput::ForwardFailed { op: a },
            4 => ServerInput::ForwardReply {
                from: ServerId(b as u16 % 4),
                incarnation: a % 2,
                op: a,
                result: OpResult::Ok,
            },
            5 => ServerInput::Store {
                tag: StoreTag::Op(a),
                reply: StoreReply::Read { value: Some(vec![b]), version: b as u64, keep: if b % 2 == 0 { Keep::Not } else { Keep::For(b as u64) } },
            },
            6 => ServerInput::Store {
                tag: StoreTag::Acquire { sent: Time(now.0.saturating_sub(b as u64)), more: b % 2 == 0 },
                reply: StoreReply::Acquired {
                    granted: vec![(Slot(b as u16 % 16), Epoch(a))],
                    held: vec![(
                        Slot(a as u16 % 16),
                        ServerId(b as u16 % 4),
                        Stamp { epoch: Epoch(a), renewals: b as u64 },
                    )],
                },
            },
            7 => ServerInput::Store { tag: StoreTag::Op(a), reply: StoreReply::Fenced },
            8 => ServerInput::Master(MasterMsg::Notice {
                server: ServerId(b as u16 % 4),
                liveness: if a % 2 == 0 { Liveness::Offline } else { Liveness::Online },
                version: Version { incarnation: a, counter: b as u64 },
            }),
            _ => ServerInput::Timer(if b % 2 == 0 { ServerTimer::Retry } else { ServerTimer::Renew }),
        };
        server.step(&mut st, now, input, &mut out);
        out.clear();
    }
});
