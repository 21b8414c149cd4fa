//! Renewals counted per holder (one record written however many rights it
//! holds) keep the meaning of renewals counted per right: a right's stamp
//! changes exactly when its holder renewed that right, so a taker waiting
//! on a stamp takes a right its holder stopped renewing and never one it
//! renews (the rule of `store::may_take`, c6).
//!
//! The reference below is the per-right rule: every right asked for in a
//! renewal counts one renewal of its own. Random commands of three holders
//! over four slots go to both; after each, every slot's stamp must have
//! moved in `MemStore` exactly when it moved in the reference, and every
//! grant and every kept or lost right must be the same.

use failgroup_model::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

const SLOTS_IN_TEST: u16 = 4;

fn holder(i: u8) -> Holder {
    Holder { server: ServerId(i as u16 % 2), incarnation: i as u64 }
}

#[derive(Clone, Debug)]
enum Cmd {
    /// Holder i asks for slots; `waited`: with the stamp it sees now (as a
    /// taker that watched it unchanged for a lease), else with none.
    Acquire(u8, Vec<u16>, bool),
    /// Holder i renews these slots at the epochs it believes (the current
    /// one, or one older: a right it lost).
    Renew(u8, Vec<(u16, bool)>),
    Release(u8, Vec<u16>),
}

fn cmd() -> impl Strategy<Value = Cmd> {
    let slots = || proptest::collection::vec(0..SLOTS_IN_TEST, 0..4);
    prop_oneof![
        2 => (0u8..3, slots(), any::<bool>()).prop_map(|(h, s, w)| Cmd::Acquire(h, s, w)),
        4 => (0u8..3, proptest::collection::vec((0..SLOTS_IN_TEST, any::<bool>()), 0..4))
            .prop_map(|(h, r)| Cmd::Renew(h, r)),
        1 => (0u8..3, slots()).prop_map(|(h, s)| Cmd::Release(h, s)),
    ]
}

/// The per-right rule: a record per slot counting its own renewals.
#[derive(Default)]
struct PerRight(BTreeMap<u16, RightRecord>);

impl PerRight {
    fn stamp(&self, slot: u16) -> Option<Stamp> {
        self.0.get(&slot).map(RightRecord::stamp)
    }

    fn execute(&mut self, from: Holder, op: &StoreOp) -> StoreReply {
        match op {
            StoreOp::Acquire { slots, .. } => {
                let (mut granted, mut held) = (Vec::new(), Vec::new());
                for (slot, observed) in slots {
                    let r = self.0.get(&slot.0);
                    if may_take(r.map(|r| (r.holder, r.stamp(), r.released)), from, *observed) {
                        let epoch = Epoch(r.map_or(0, |r| r.epoch.0) + 1);
                        granted.push((*slot, epoch));
                    } else {
                        let r = r.expect("a right refused has a record");
                        held.push((*slot, r.holder.server, r.stamp()));
                    }
                }
                for (slot, epoch) in &granted {
                    let record = RightRecord {
                        holder: from,
                        epoch: *epoch,
                        renewals: 0,
                        released: false,
                        frozen: false,
                        renewed_at: Time::ZERO,
                    };
                    self.0.insert(slot.0, record);
                }
                StoreReply::Acquired { granted, held }
            }
            StoreOp::Renew { rights, .. } => {
                let (kept, lost): (Vec<_>, Vec<_>) =
                    rights.iter().copied().partition(|(s, e)| self.0.get(&s.0).is_some_and(|r| r.held_by(from, *e)));
                for (slot, _) in &kept {
                    self.0.get_mut(&slot.0).expect("kept").renewals += 1;
                }
                StoreReply::Renewed { kept, lost }
            }
            StoreOp::Release { rights } => {
                for (slot, epoch) in rights {
                    if let Some(r) = self.0.get_mut(&slot.0).filter(|r| r.held_by(from, *epoch)) {
                        r.released = true;
                    }
                }
                StoreReply::Released
            }
            _ => unreachable!("rights commands only"),
        }
    }
}

fn stamps(mem: &mut MemStore) -> Vec<Option<Stamp>> {
    let slots: Vec<Slot> = (0..SLOTS_IN_TEST).map(Slot).collect();
    mem.rights(&slots).unwrap().into_iter().map(|r| r.map(|r| r.stamp())).collect()
}

/// The same command for both stores: stamps seen by a taker are each
/// store's own; epochs are the same in both (checked as it goes).
fn ops_for(cmd: &Cmd, mem: &mut MemStore, reference: &PerRight) -> (Holder, StoreOp, StoreOp) {
    let epoch_now = |slot: u16| reference.0.get(&slot).map_or(Epoch(0), |r| r.epoch);
    match cmd {
        Cmd::Acquire(h, slots, waited) => {
            let seen = stamps(mem);
            let mine = slots.iter().map(|s| (Slot(*s), seen[*s as usize].filter(|_| *waited))).collect();
            let theirs = slots.iter().map(|s| (Slot(*s), reference.stamp(*s).filter(|_| *waited))).collect();
            (holder(*h), StoreOp::Acquire { slots: mine, lease: 10 }, StoreOp::Acquire { slots: theirs, lease: 10 })
        }
        Cmd::Renew(h, rights) => {
            let mut rights: Vec<(Slot, Epoch)> =
                rights.iter().map(|(s, old)| (Slot(*s), Epoch(epoch_now(*s).0.saturating_sub(*old as u64)))).collect();
            rights.sort();
            rights.dedup_by_key(|r| r.0);
            let op = StoreOp::Renew { rights, lease: 10 };
            (holder(*h), op.clone(), op)
        }
        Cmd::Release(h, slots) => {
            let op = StoreOp::Release { rights: slots.iter().map(|s| (Slot(*s), epoch_now(*s))).collect() };
            (holder(*h), op.clone(), op)
        }
    }
}

/// A reply with its stamps taken out (each store numbers renewals its way).
fn without_stamps(r: StoreReply) -> StoreReply {
    match r {
        StoreReply::Acquired { granted, held } => StoreReply::Acquired {
            granted,
            held: held.into_iter().map(|(s, server, st)| (s, server, Stamp { epoch: st.epoch, renewals: 0 })).collect(),
        },
        r => r,
    }
}

fn run(cmds: &[Cmd]) -> usize {
    let mut mem = MemStore::new(Mode::Linearizable, None);
    let mut reference = PerRight::default();
    let mut moved = 0;
    for (i, cmd) in cmds.iter().enumerate() {
        let before = (stamps(&mut mem), (0..SLOTS_IN_TEST).map(|s| reference.stamp(s)).collect::<Vec<_>>());
        let (from, mine, theirs) = ops_for(cmd, &mut mem, &reference);
        let got = mem.execute(from, mine, Time(i as u64));
        let want = reference.execute(from, &theirs);
        assert_eq!(without_stamps(got), without_stamps(want), "command {i}: {cmd:?}");
        let after = (stamps(&mut mem), (0..SLOTS_IN_TEST).map(|s| reference.stamp(s)).collect::<Vec<_>>());
        for s in 0..SLOTS_IN_TEST as usize {
            let mem_moved = before.0[s] != after.0[s];
            let ref_moved = before.1[s] != after.1[s];
            assert_eq!(mem_moved, ref_moved, "command {i}: {cmd:?}: slot {s}'s stamp moved in one store only");
            moved += mem_moved as usize;
        }
    }
    moved
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn stamps_move_exactly_when_the_right_is_renewed(cmds in proptest::collection::vec(cmd(), 1..40)) {
        run(&cmds);
    }
}

/// The case the per-holder count must get right: one of two rights left
/// out of a renewal keeps its stamp (a taker gets it a lease later) while
/// the other's moves on; asked for again, it moves again.
#[test]
fn a_right_left_out_of_a_renewal_keeps_its_stamp() {
    let a = holder(0);
    let both = vec![(Slot(0), Epoch(1)), (Slot(1), Epoch(1))];
    let cmds = [
        Cmd::Acquire(0, vec![0, 1], false),
        Cmd::Renew(0, vec![(0, false), (1, false)]),
        Cmd::Renew(0, vec![(0, false)]),
        Cmd::Renew(0, vec![(0, false), (1, false)]),
    ];
    // Every stamp movement the reference makes, the per-holder count makes.
    assert_eq!(run(&cmds), 2 + 2 + 1 + 2, "grants, then renewals of 2, 1 and 2 rights");
    let mut mem = MemStore::new(Mode::Linearizable, None);
    mem.execute(a, StoreOp::Acquire { slots: vec![(Slot(0), None), (Slot(1), None)], lease: 10 }, Time(0));
    mem.execute(a, StoreOp::Renew { rights: both.clone(), lease: 10 }, Time(1));
    let seen = stamps(&mut mem);
    mem.execute(a, StoreOp::Renew { rights: vec![(Slot(0), Epoch(1))], lease: 10 }, Time(2));
    let now = stamps(&mut mem);
    assert_ne!(now[0], seen[0], "the renewed right's stamp moves");
    assert_eq!(now[1], seen[1], "the right left out keeps its stamp");
    // A taker that watched slot 1's stamp gets it; slot 0's it does not.
    let b = holder(1);
    let taken =
        mem.execute(b, StoreOp::Acquire { slots: vec![(Slot(0), seen[0]), (Slot(1), seen[1])], lease: 10 }, Time(3));
    match taken {
        StoreReply::Acquired { granted, held } => {
            assert_eq!(granted, vec![(Slot(1), Epoch(2))]);
            assert_eq!(held.iter().map(|h| h.0).collect::<Vec<_>>(), vec![Slot(0)]);
        }
        other => panic!("{other:?}"),
    }
    // The holder renews both: slot 1 is lost, slot 0 kept.
    let r = mem.execute(a, StoreOp::Renew { rights: both, lease: 10 }, Time(4));
    assert_eq!(r, StoreReply::Renewed { kept: vec![(Slot(0), Epoch(1))], lost: vec![(Slot(1), Epoch(1))] });
}
