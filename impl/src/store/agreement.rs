//! For tests: the commands every database must answer exactly as the
//! model-checked `MemStore` does.

use super::tables::Identity;
use failgroup_model::{Epoch, Holder, Mode, ReqId, ServerId, Slot, StoreOp, StoreReply, Time};

/// Commands whose replies every database must give exactly as `MemStore`
/// does: fencing, at-most-once retries, versions, rights taken only after a
/// watched stamp, a second process of one name (`from`, command, time).
pub fn agreement_script() -> Vec<(Holder, StoreOp, Time)> {
    use failgroup_model::{
        ClientId, DbRead, Deadline, ExpireCond, Guard, HashRead, HashWrite, Inspect, KeysWrite, Op, SetCond, SetOpts,
        Stamp, Update, Write,
    };
    let req = |seq| ReqId { client: ClientId(u64::MAX - 1), seq };
    let k = || b"k".to_vec();
    let (k2, k3, k4) = (|| b"k2".to_vec(), || b"k3".to_vec(), || b"k4".to_vec());
    let k2_slot = failgroup_model::key_slot(b"k2", failgroup_model::SLOTS).0;
    let atomic = |seq, ops| StoreOp::Atomic { slot: Slot(1), fence: Some(Epoch(3)), req: req(seq), ops };
    let w =
        |seq, epoch, write| StoreOp::Write { slot: Slot(1), fence: Some(Epoch(epoch)), req: req(seq), key: k(), write };
    let f = |b: &[u8]| b.to_vec();
    let hash = |h| Write::Update(Update::Hash(h));
    let acquire = |stamp: Option<(u64, u64)>| StoreOp::Acquire {
        slots: vec![(Slot(1), stamp.map(|(e, r)| Stamp { epoch: Epoch(e), renewals: r }))],
        lease: 100,
    };
    let many = |slots: &[u16]| StoreOp::Acquire { slots: slots.iter().map(|s| (Slot(*s), None)).collect(), lease: 100 };
    let renew =
        |slots: &[u16]| StoreOp::Renew { rights: slots.iter().map(|s| (Slot(*s), Epoch(1))).collect(), lease: 100 };
    // Server 0 twice (two processes of one name), and server 1.
    let (a, twin, b) = (
        Holder { server: ServerId(0), incarnation: 7 },
        Holder { server: ServerId(0), incarnation: 8 },
        Holder { server: ServerId(1), incarnation: 9 },
    );
    let ops = vec![
        (a, acquire(None)),
        (b, acquire(None)),
        (a, w(1, 1, Write::Set(b"5".to_vec()))),
        (a, w(2, 1, Write::Incr(2))),
        (a, w(2, 1, Write::Incr(2))),
        (b, w(3, 1, Write::Del)),
        (a, w(5, 1, Write::SetWith(b"x".to_vec(), SetOpts { ttl_ms: None, cond: SetCond::IfAbsent }))),
        (a, w(6, 1, Write::SetWith(b"t".to_vec(), SetOpts { ttl_ms: Some(3), cond: SetCond::Always }))),
        (a, StoreOp::Ttl { key: k() }),
        (a, StoreOp::Read { key: k() }),
        (a, StoreOp::Read { key: k() }),
        (a, StoreOp::Read { key: k() }),
        (a, StoreOp::Renew { rights: vec![(Slot(1), Epoch(1)), (Slot(2), Epoch(1))], lease: 100 }),
        (twin, acquire(None)),
        (twin, acquire(Some((1, 0)))),
        (twin, acquire(Some((1, 1)))),
        (twin, StoreOp::Renew { rights: vec![(Slot(1), Epoch(2))], lease: 100 }),
        (a, w(4, 1, Write::Set(b"x".to_vec()))),
        (a, StoreOp::Renew { rights: vec![(Slot(1), Epoch(1))], lease: 100 }),
        (twin, StoreOp::Release { rights: vec![(Slot(1), Epoch(2))] }),
        (b, acquire(None)),
        (b, w(7, 3, Write::Del)),
        (a, StoreOp::Write { slot: Slot(1), fence: None, req: req(8), key: k(), write: Write::Del }),
        // A release by a process that does not hold the right changes nothing.
        (a, StoreOp::Release { rights: vec![(Slot(1), Epoch(3))] }),
        (a, acquire(None)),
        // Expiry at its boundary (one command per millisecond from here):
        // set with 2 ms to live, an INCR keeps the expiry, then the key is
        // gone exactly when its time is up.
        (b, w(9, 3, Write::SetWith(b"1".to_vec(), SetOpts { ttl_ms: Some(2), cond: SetCond::Always }))),
        (b, w(10, 3, Write::Incr(1))),
        (b, StoreOp::Ttl { key: k() }),
        (b, StoreOp::Read { key: k() }),
        (b, w(11, 3, Write::Expire(5))),
        (b, w(12, 3, Write::Set(b"v".to_vec()))),
        (b, w(13, 3, Write::Expire(2))),
        (b, StoreOp::Ttl { key: k() }),
        (b, StoreOp::Read { key: k() }),
        (b, w(14, 3, Write::SetWith(b"w".to_vec(), SetOpts { ttl_ms: None, cond: SetCond::IfPresent }))),
        (b, w(15, 3, Write::Set(b"v".to_vec()))),
        (b, w(16, 3, Write::Expire(0))),
        (b, StoreOp::Read { key: k() }),
        // The commands frameworks send, transactions, whole-database reads.
        (b, w(17, 3, Write::Update(Update::Append(b"ab".to_vec())))),
        (
            b,
            w(
                18,
                3,
                Write::Update(Update::Set {
                    value: b"n".to_vec(),
                    cond: SetCond::Always,
                    expiry: Some(Deadline::In(50)),
                    keep_ttl: false,
                    get: true,
                }),
            ),
        ),
        (b, w(19, 3, Write::Update(Update::Expire(Deadline::In(10), ExpireCond::Later)))),
        (b, w(20, 3, Write::Update(Update::IncrFloat(b"1.5".to_vec())))),
        (b, StoreOp::Inspect { key: k(), what: Inspect::ExpireTime { ms: true } }),
        (b, StoreOp::Inspect { key: k(), what: Inspect::GetRange(0, -2) }),
        (
            b,
            atomic(
                21,
                vec![Op::Set(k2(), b"1".to_vec()), Op::Incr(k2(), 4), Op::Get(k2()), Op::Update(k(), Update::GetDel)],
            ),
        ),
        // The same transaction again: applied once, answered alike.
        (
            b,
            atomic(
                21,
                vec![Op::Set(k2(), b"1".to_vec()), Op::Incr(k2(), 4), Op::Get(k2()), Op::Update(k(), Update::GetDel)],
            ),
        ),
        (a, atomic(22, vec![Op::Set(k2(), b"x".to_vec())])),
        (b, atomic(23, vec![Op::Incr(k2(), 1), Op::Set(k3(), b"3".to_vec())])),
        (b, StoreOp::Db(DbRead::Scan { after: 0, count: 1, pattern: None, type_name: None })),
        (b, StoreOp::Db(DbRead::Scan { after: 0, count: 10, pattern: Some(b"k?".to_vec()), type_name: None })),
        // Hashes: kept as one row of their own type, WRONGTYPE across types.
        (b, w(24, 3, hash(HashWrite::Set(vec![(f(b"a"), f(b"1")), (f(b"b"), f(b"2")), (f(b"a"), f(b"3"))])))),
        (b, w(25, 3, hash(HashWrite::IncrBy(f(b"b"), 40)))),
        (b, w(26, 3, hash(HashWrite::IncrByFloat(f(b"c"), f(b"0.5"))))),
        (b, w(27, 3, hash(HashWrite::SetNx(f(b"a"), f(b"9"))))),
        (b, StoreOp::Read { key: k() }),
        (b, w(28, 3, Write::Incr(1))),
        (b, StoreOp::Inspect { key: k(), what: Inspect::Hash(HashRead::GetAll) }),
        (b, StoreOp::Inspect { key: k(), what: Inspect::Type }),
        (b, StoreOp::Inspect { key: k(), what: Inspect::Strlen }),
        (b, StoreOp::Inspect { key: k(), what: Inspect::Hash(HashRead::MGet(vec![f(b"b"), f(b"z")])) }),
        (b, StoreOp::Db(DbRead::Scan { after: 0, count: 10, pattern: None, type_name: Some("hash".into()) })),
        (b, atomic(29, vec![Op::Update(k(), Update::Hash(HashWrite::Del(vec![f(b"a"), f(b"c")]))), Op::Get(k())])),
        (b, StoreOp::Inspect { key: k2(), what: Inspect::Hash(HashRead::Len) }),
        (b, w(30, 3, hash(HashWrite::Del(vec![f(b"b")])))),
        (b, StoreOp::Inspect { key: k(), what: Inspect::Exists }),
        // Keys of a slot in one step (MSETNX, RENAME, COPY) and a WATCH guard.
        (b, atomic(31, vec![Op::Keys(KeysWrite::SetIfNone(vec![(k(), f(b"a")), (k3(), f(b"b"))]))])),
        (b, atomic(32, vec![Op::Keys(KeysWrite::SetIfNone(vec![(k(), f(b"a")), (k4(), f(b"b"))]))])),
        (b, w(33, 3, Write::Expire(500))),
        (b, atomic(34, vec![Op::Keys(KeysWrite::Move { from: k(), to: k4(), copy: false, replace: true })])),
        (b, atomic(35, vec![Op::Keys(KeysWrite::Move { from: k4(), to: k(), copy: true, replace: false })])),
        (b, atomic(36, vec![Op::Keys(KeysWrite::Move { from: k3(), to: k(), copy: false, replace: false })])),
        (b, StoreOp::Ttl { key: k() }),
        (b, atomic(37, vec![Op::Guard(k(), Guard::Version(0)), Op::Set(k(), f(b"z"))])),
        (b, atomic(38, vec![Op::Guard(f(b"k5"), Guard::Version(0)), Op::Del(k4()), Op::Del(k())])),
        (b, StoreOp::Db(DbRead::Size)),
        (b, StoreOp::Db(DbRead::InSlot { slot: k2_slot, count: 10, count_only: false })),
        (b, StoreOp::Db(DbRead::InSlot { slot: k2_slot, count: 0, count_only: true })),
        // Renewals counted per holder: a right left out of a renewal keeps
        // its stamp while the others' move on; asked for again, it moves;
        // a released one keeps its stamp.
        (a, many(&[100, 101, 102])),
        (b, many(&[100, 101, 102])),
        (a, renew(&[100, 101, 102])),
        (b, many(&[100, 101, 102])),
        (a, renew(&[100])),
        (b, many(&[100, 101, 102])),
        (a, renew(&[100, 102])),
        (b, many(&[100, 101, 102])),
        (a, StoreOp::Release { rights: vec![(Slot(100), Epoch(1)), (Slot(101), Epoch(1))] }),
        (a, renew(&[102])),
        (b, many(&[100, 101, 102])),
        // The twin holds nothing since b took slot 1 (a store may forget
        // its count): a new grant's stamp counts from the grant all the same.
        (twin, many(&[103])),
        (twin, StoreOp::Renew { rights: vec![(Slot(103), Epoch(1))], lease: 100 }),
        (b, many(&[103])),
        // A release naming a right twice freezes it once.
        (a, StoreOp::Release { rights: vec![(Slot(102), Epoch(1)), (Slot(102), Epoch(1))] }),
        (a, renew(&[102])),
        (b, many(&[102])),
    ];
    ops.into_iter().enumerate().map(|(i, (s, op))| (s, op, Time(1000 + i as u64))).collect()
}

/// The identity of `holder` in the agreement script's cluster.
pub fn test_identity(holder: Holder) -> Identity {
    Identity::new(holder, vec!["s0".into(), "s1".into()], Mode::Linearizable)
}

/// Runs the agreement script through `run` (a database) and through the
/// model-checked `MemStore`, and compares every reply.
pub fn check_agreement(mut run: impl FnMut(&Identity, StoreOp, Time) -> StoreReply) {
    use failgroup_model::{MemStore, Store};
    let mut mem = MemStore::new(Mode::Linearizable, None);
    let mut versions = Versions::default();
    for (i, (from, op, now)) in agreement_script().into_iter().enumerate() {
        let got = run(&test_identity(from), op.clone(), now);
        let want = mem.execute(from, op.clone(), now);
        assert_eq!(got, versions.map(&want, &got), "command {i}: {op:?}");
    }
}

/// Versions from a sequence skip numbers (a batch draws as many as it
/// has writes, and not every write writes): replies must agree up to an
/// order-keeping renaming of versions, which this builds as it goes.
#[derive(Default)]
struct Versions(std::collections::BTreeMap<u64, u64>);

impl Versions {
    /// `want` with its versions renamed to `got`'s, after checking that
    /// the renaming stays one-to-one and keeps the order.
    fn map(&mut self, want: &StoreReply, got: &StoreReply) -> StoreReply {
        let mut r = want.clone();
        let mut theirs = got.clone();
        let (mine, others) = (versions(&mut r), versions(&mut theirs));
        if mine.len() != others.len() {
            return want.clone();
        }
        for (w, g) in mine.into_iter().zip(others) {
            let (wv, gv) = (*w, *g);
            if wv != 0 && gv != 0 {
                let before = self.0.range(..wv).next_back().map(|(_, g)| *g);
                let after = self.0.range(wv + 1..).next().map(|(_, g)| *g);
                assert!(before.is_none_or(|b| b < gv) && after.is_none_or(|a| a > gv), "version order: {wv} -> {gv}");
                assert_eq!(*self.0.entry(wv).or_insert(gv), gv, "version {wv} renamed twice");
            }
            *w = if wv == 0 { 0 } else { gv };
        }
        r
    }
}

/// Every version a reply names, in order: a read's or write's, each key's
/// after an atomic operation, the cursor of a scan.
fn versions(r: &mut StoreReply) -> Vec<&mut u64> {
    use failgroup_model::OpResult;
    match r {
        StoreReply::Read { version, .. } | StoreReply::Written { version, .. } => vec![version],
        StoreReply::Atomic { keys, .. } => keys.iter_mut().map(|k| &mut k.version).collect(),
        StoreReply::Inspected(OpResult::Keys { next, .. }) => vec![next],
        _ => vec![],
    }
}

/// The topology the master records (issue 17): only a newer version is
/// taken, the newest is read back, and adopting the store for another
/// config drops them all.
pub fn check_topology_records(store: &mut dyn crate::store::BatchStore) {
    assert_eq!(store.load_topology().unwrap(), None);
    assert!(store.save_topology(1, b"one").unwrap());
    assert!(store.save_topology(3, b"three").unwrap());
    assert!(!store.save_topology(2, b"two").unwrap(), "older than the newest");
    assert!(!store.save_topology(3, b"again").unwrap(), "the same version");
    assert_eq!(store.load_topology().unwrap(), Some((3, b"three".to_vec())));
    let mark = crate::store::ClusterMark { mode: failgroup_model::Mode::Linearizable, topology: 7 };
    store.check_mark(&mark, true).unwrap();
    assert_eq!(store.load_topology().unwrap(), None);
}
