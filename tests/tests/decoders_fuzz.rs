//! Bounded fuzzing on stable Rust, in every test run: arbitrary and mutated
//! bytes into the RESP decoder and the node-protocol decoder, and arbitrary
//! input sequences into the core's server and master. None may panic, loop
//! or claim more bytes than it was given. (`fuzz/` holds the same targets
//! for cargo-fuzz, for longer runs.)

use failgroup::net::wire;
use failgroup::resp::{self, DecodeLimits};
use failgroup_model::*;
use proptest::prelude::*;
use std::sync::Arc;

fn small_limits() -> DecodeLimits {
    DecodeLimits { max_bulk: 64, max_args: 16, max_inline: 128 }
}

/// Valid commands, then bytes flipped, cut or inserted.
fn mutated_command() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 1..5),
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        any::<usize>(),
    )
        .prop_map(|(args, flips, cut)| {
            let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let mut out = Vec::new();
            resp::encode_command(&mut out, &refs);
            for (at, b) in flips {
                let i = at % out.len();
                out[i] = b;
            }
            out.truncate(cut % (out.len() + 1));
            out
        })
}

/// Decodes commands until the buffer is used up, an error, or a need for more.
fn drain(mut buf: &[u8], limits: &DecodeLimits) {
    let (mut steps, total) = (0, buf.len());
    loop {
        steps += 1;
        assert!(steps <= total + 2, "the decoder makes progress");
        match resp::decode(buf, limits) {
            Ok(Some((_, used))) => {
                assert!(used > 0 && used <= buf.len(), "used {used} of {}", buf.len());
                buf = &buf[used..];
            }
            Ok(None) | Err(_) => return,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn resp_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        drain(&bytes, &small_limits());
        drain(&bytes, &DecodeLimits::default());
    }

    #[test]
    fn resp_decoder_survives_mutated_commands(bytes in mutated_command()) {
        drain(&bytes, &small_limits());
        let _ = resp::decode_reply(&bytes);
    }

    #[test]
    fn resp_commands_round_trip(args in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6)) {
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let mut out = Vec::new();
        resp::encode_command(&mut out, &refs);
        prop_assert_eq!(resp::decode(&out, &DecodeLimits::default()), Ok(Some((args, out.len()))));
    }

    #[test]
    fn node_frame_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200), max in 0usize..300) {
        if let Ok(Some((_, used))) = wire::decode(&bytes, max) {
            prop_assert!(used <= bytes.len() && used >= 4);
        }
    }
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let key = prop::sample::select(vec![b"a".to_vec(), b"b".to_vec(), b"{a}c".to_vec()]);
    prop_oneof![
        key.clone().prop_map(Op::Get),
        (key.clone(), any::<u8>()).prop_map(|(k, v)| Op::Set(k, vec![v])),
        key.clone().prop_map(Op::Del),
        (key.clone(), any::<i64>()).prop_map(|(k, d)| Op::Incr(k, d)),
        key.prop_map(Op::Ttl),
    ]
}

fn server_input() -> impl Strategy<Value = ServerInput> {
    let slot = (0u16..16).prop_map(Slot);
    let epoch = (0u64..4).prop_map(Epoch);
    let server = (0u16..4).prop_map(ServerId); // 3 is not in the cluster
    let version = (0u64..3, 0u64..5).prop_map(|(incarnation, counter)| Version { incarnation, counter });
    let reply = prop_oneof![
        Just(StoreReply::Fenced),
        Just(StoreReply::Released),
        Just(StoreReply::Failed("x".into())),
        (any::<u64>(), prop_oneof![Just(Keep::Ever), Just(Keep::Not), any::<u64>().prop_map(Keep::For)])
            .prop_map(|(version, keep)| StoreReply::Read { value: Some(b"v".to_vec()), version, keep }),
        (
            prop::collection::vec((slot.clone(), epoch.clone()), 0..3),
            prop::collection::vec((slot, server.clone(), (0u64..4, 0u64..4)), 0..3)
        )
            .prop_map(|(granted, held)| {
                let held =
                    held.into_iter().map(|(s, h, (e, r))| (s, h, Stamp { epoch: Epoch(e), renewals: r })).collect();
                StoreReply::Acquired { granted, held }
            }),
    ];
    let tag = prop_oneof![
        (0u64..8).prop_map(StoreTag::Op),
        (0u64..100, any::<bool>()).prop_map(|(t, more)| StoreTag::Acquire { sent: Time(t), more }),
        (0u64..100).prop_map(|t| StoreTag::Renew { sent: Time(t) }),
        Just(StoreTag::Release),
    ];
    let liveness = prop_oneof![Just(Liveness::Online), Just(Liveness::Offline)];
    prop_oneof![
        (0u64..3).prop_map(|incarnation| ServerInput::Start { incarnation }),
        (op_strategy(), 0u8..4, 0u64..8).prop_map(|(op, hops, seq)| ServerInput::Request {
            origin: Origin::Client(seq),
            fwd: Forwarded { req: ReqId { client: ClientId(1), seq }, op, hops },
        }),
        (0u64..8).prop_map(|op| ServerInput::ForwardFailed { op }),
        (0u64..8, server.clone(), 0u64..3).prop_map(|(op, from, incarnation)| ServerInput::ForwardReply {
            from,
            incarnation,
            op,
            result: OpResult::Ok
        }),
        (tag, reply).prop_map(|(tag, reply)| ServerInput::Store { tag, reply }),
        (server.clone(), liveness, version.clone()).prop_map(|(server, liveness, version)| ServerInput::Master(
            MasterMsg::Notice { server, liveness, version }
        )),
        (server, version).prop_map(|(server, version)| ServerInput::Master(MasterMsg::Leaving { server, version })),
        Just(ServerInput::Timer(ServerTimer::Retry)),
        Just(ServerInput::Timer(ServerTimer::Renew)),
        (0u64..8).prop_map(|op| ServerInput::Timer(ServerTimer::ForwardTimeout(op))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Any sequence of inputs, however senseless (forged replies, notices
    /// about servers that do not exist, timers out of order), is absorbed.
    #[test]
    fn server_transitions_absorb_any_input(inputs in prop::collection::vec((server_input(), 0u64..50), 0..60)) {
        let topo = Arc::new(ClusterSpec::local(3, 1, 7101, 16).validate().unwrap());
        for mode in [Mode::Linearizable, Mode::Available] {
            let server = Server::new(ServerId(0), topo.clone(), ProtocolConfig { mode, ..ProtocolConfig::default() });
            let (mut st, mut now, mut out) = (ServerState::default(), Time(0), Vec::new());
            for (input, dt) in &inputs {
                now = now.plus(*dt);
                server.step(&mut st, now, input.clone(), &mut out);
                out.clear();
            }
        }
    }

    #[test]
    fn master_transitions_absorb_any_input(
        inputs in prop::collection::vec((0u8..7, 0u16..4, 0u64..6, 0u64..50), 0..60)
    ) {
        let topo = Arc::new(ClusterSpec::local(3, 1, 7101, 16).validate().unwrap());
        let master = Master::new(topo, ProtocolConfig::default());
        let (mut st, mut now, mut out) = (master.initial_state(), Time(0), Vec::new());
        for (kind, s, n, dt) in inputs {
            now = now.plus(dt);
            let server = ServerId(s);
            let input = match kind {
                0 => MasterInput::Start { incarnation: n, topology: None },
                1 => MasterInput::Report { from: Node::Server(server), report: Report::ProbeAck { nonce: n } },
                2 => MasterInput::Report { from: Node::Client(ClientId(n)), report: Report::MaybeOffline { server } },
                3 => MasterInput::Report { from: Node::Client(ClientId(n)), report: Report::BackOnline { server } },
                4 => MasterInput::Timer(MasterTimer::ProbeTimeout(server)),
                5 => MasterInput::Unreachable(server),
                _ => MasterInput::Timer(MasterTimer::Reprobe(server)),
            };
            master.step(&mut st, now, input, &mut out);
            out.clear();
        }
    }
}
