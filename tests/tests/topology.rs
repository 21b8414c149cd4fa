//! Slots, config validation and the failover-server choice (c1, c2, c4, c8, c11).

use failgroup_model::topology::{crc16, hash_tag, GroupSpec, ServerSpec, SlotSpec};
use failgroup_model::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

#[test]
fn slots_match_redis_cluster() {
    assert_eq!(crc16(b"123456789"), 0x31C3); // CRC16/XMODEM check value
                                             // Values from `redis-cli CLUSTER KEYSLOT`.
    assert_eq!(key_slot(b"foo", SLOTS), Slot(12182));
    assert_eq!(key_slot(b"bar", SLOTS), Slot(5061));
    assert_eq!(key_slot(b"hello", SLOTS), Slot(866));
    assert_eq!(key_slot(b"", SLOTS), Slot(0));
    assert_eq!(key_slot(b"{user1000}.following", SLOTS), key_slot(b"{user1000}.followers", SLOTS));
    assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}"); // empty tag: whole key
    assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
    assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
    assert_eq!(hash_tag(b"foo{bar"), b"foo{bar");
}

fn spec3() -> ClusterSpec {
    ClusterSpec::local(3, 1, 7101, SLOTS)
}

fn invalid(spec: ClusterSpec) -> ConfigError {
    spec.validate().expect_err("config should be rejected")
}

#[test]
fn config_validation_names_the_field() {
    let t = spec3().validate().unwrap();
    assert_eq!(t.server_count(), 3);
    assert_eq!((0..3).map(|i| t.owned_slots(ServerId(i)).count()).sum::<usize>(), SLOTS as usize);

    let mut s = spec3();
    s.groups[0].members.push("nope".into());
    let e = invalid(s);
    assert_eq!(e.field, "groups[0].members");
    assert!(e.message.contains("unknown server \"nope\""), "{e}");

    let mut s = ClusterSpec::local(4, 2, 7101, SLOTS);
    s.groups[1].members.push("s1".into());
    assert!(invalid(s).message.contains("two groups"));

    let mut s = spec3();
    s.groups[0].members.pop();
    assert!(invalid(s).message.contains("in no group"));

    let mut s = spec3();
    s.servers[2].addr = s.servers[0].addr.clone();
    assert_eq!(invalid(s).field, "servers[2].addr");

    let mut s = spec3();
    s.servers[1].name = "s1".into();
    s.groups[0].members = vec!["s1".into(), "s3".into()];
    assert_eq!(invalid(s).field, "servers[1].name");

    let mut s = spec3();
    s.slots = vec![SlotSpec { server: "s1".into(), ranges: vec![[0, 16000]] }];
    assert!(invalid(s).message.contains("slot 16001 is unassigned"));

    let mut s = spec3();
    s.slots = vec![
        SlotSpec { server: "s1".into(), ranges: vec![[0, 9000]] },
        SlotSpec { server: "s2".into(), ranges: vec![[9000, 16383]] },
    ];
    assert!(invalid(s).message.contains("slot 9000 already given"));

    let mut s = spec3();
    s.slots = vec![SlotSpec { server: "s1".into(), ranges: vec![[10, 20000]] }];
    assert_eq!(invalid(s).field, "slots[0].ranges");

    let mut s = spec3();
    s.slots = vec![SlotSpec { server: "zz".into(), ranges: vec![[0, 16383]] }];
    assert_eq!(invalid(s).field, "slots[0].server");

    let mut s = spec3();
    s.servers.clear();
    assert_eq!(invalid(s).field, "servers");

    let mut s = spec3();
    s.groups.push(GroupSpec { name: "g1".into(), members: vec![] });
    assert_eq!(invalid(s).field, "groups[1].name");

    let mut s = spec3();
    s.slot_count = 0;
    assert_eq!(invalid(s).field, "slot_count");

    let mut s = spec3();
    s.servers.push(ServerSpec { name: " ".into(), addr: "x".into(), removed: false });
    assert_eq!(invalid(s).field, "servers[3].name");
}

#[test]
fn explicit_slot_ranges_are_honoured() {
    let mut s = spec3();
    s.slots = vec![
        SlotSpec { server: "s3".into(), ranges: vec![[0, 99], [200, 16383]] },
        SlotSpec { server: "s1".into(), ranges: vec![[100, 199]] },
    ];
    let t = s.validate().unwrap();
    assert_eq!(t.owner(Slot(150)), ServerId(0));
    assert_eq!(t.owner(Slot(0)), ServerId(2));
    assert_eq!(t.owned_slots(ServerId(1)).count(), 0);
}

fn topology(servers: u16, groups: u16) -> Topology {
    ClusterSpec::local(servers, groups, 7101, SLOTS).validate().unwrap()
}

proptest! {
    /// Deterministic, an online member of the owner's group, never the owner.
    #[test]
    fn failover_choice_is_an_online_group_peer(servers in 2u16..10, groups in 1u16..4, down in proptest::collection::btree_set(0u16..10, 0..5), slot in 0u16..SLOTS) {
        let t = topology(servers, groups);
        let online = |s: ServerId| !down.contains(&s.0);
        let slot = Slot(slot);
        let owner = t.owner(slot);
        let f = t.failover_server(slot, online);
        prop_assert_eq!(f, t.failover_server(slot, online)); // deterministic
        match f {
            Some(f) => {
                prop_assert_ne!(f, owner);
                prop_assert!(online(f));
                prop_assert!(t.group(owner).contains(&f));
            }
            None => prop_assert!(t.group(owner).iter().all(|&m| m == owner || !online(m))),
        }
    }

    /// A second failure moves only the slots the second server served.
    #[test]
    fn failover_choice_is_stable(servers in 3u16..10, first in 0u16..10, second in 0u16..10) {
        let (first, second) = (ServerId(first % servers), ServerId(second % servers));
        prop_assume!(first != second);
        let t = topology(servers, 1);
        let one = |s: ServerId| s != first;
        let two = |s: ServerId| s != first && s != second;
        for slot in (0..SLOTS).map(Slot) {
            let before = t.serving_server(slot, one);
            let after = t.serving_server(slot, two);
            if before != Some(second) {
                prop_assert_eq!(before, after, "{} moved though {} did not serve it", slot, second);
            } else {
                prop_assert_ne!(after, Some(second));
            }
        }
    }
}

/// One dead server's slots spread over all survivors: each gets its even
/// share within 20% for groups of 2 to 8 (rendezvous hashing: the spread is
/// statistical; the test prints the worst deviation, 16.9% at 8 servers).
#[test]
fn failover_choice_is_balanced() {
    let mut worst: f64 = 0.0;
    for servers in 2u16..=8 {
        let t = topology(servers, 1);
        for dead in t.servers() {
            let slots: Vec<Slot> = t.owned_slots(dead).collect();
            let mut counts = vec![0usize; servers as usize];
            for &slot in &slots {
                counts[t.failover_server(slot, |s| s != dead).unwrap().0 as usize] += 1;
            }
            let even = slots.len() as f64 / (servers - 1) as f64;
            let survivors: BTreeSet<usize> = (0..servers as usize).filter(|&i| i != dead.0 as usize).collect();
            for i in survivors {
                let share = counts[i] as f64 / even;
                worst = worst.max((share - 1.0).abs());
                assert!(
                    (0.8..=1.2).contains(&share),
                    "{servers} servers, {dead} dead: s{i} got {} of {even:.0}",
                    counts[i]
                );
            }
        }
    }
    println!("worst deviation from the even share: {:.1}%", worst * 100.0);
}

// Issue 17: topology changes, each a new version.

fn add(t: &Topology, name: &str, addr: &str, group: &str) -> Result<Topology, ConfigError> {
    t.change(&TopologyChange::AddServer { name: name.into(), addr: addr.into(), group: group.into() })
}

#[test]
fn a_server_added_owns_nothing_until_slots_move_to_it() {
    let t = topology(3, 1);
    assert_eq!(t.version(), 0);
    let t1 = add(&t, "s4", "127.0.0.1:7104", "g1").unwrap();
    assert_eq!(t1.version(), 1);
    let s4 = t1.id_of("s4").unwrap();
    assert_eq!(s4, ServerId(3));
    assert_eq!(t1.owned_slots(s4).count(), 0);
    assert!(t1.group(ServerId(0)).contains(&s4));
    assert_eq!((0..SLOTS).map(Slot).filter(|s| t.owner(*s) != t1.owner(*s)).count(), 0, "no slot moved");
    // In a new group of its own.
    let t2 = add(&t, "s4", "127.0.0.1:7104", "g2").unwrap();
    assert_eq!(t2.group(s4), &[s4]);
    assert_eq!(t2.group_name(s4), "g2");
    // Refused: a name or an address already in the cluster, an empty name.
    assert!(add(&t, "s2", "127.0.0.1:7199", "g1").unwrap_err().message.contains("already in the cluster"));
    assert_eq!(add(&t, "s4", "127.0.0.1:7102", "g1").unwrap_err().field, "servers[3].addr");
    assert!(add(&t, "", "127.0.0.1:7104", "g1").is_err());
}

#[test]
fn slots_move_by_ranges_to_a_present_server() {
    let t = add(&topology(3, 1), "s4", "127.0.0.1:7104", "g1").unwrap();
    let to = |name: &str, ranges: Vec<[u16; 2]>| TopologyChange::MoveSlots { ranges, to: name.into() };
    let t2 = t.change(&to("s4", vec![[0, 99], [16000, 16383]])).unwrap();
    assert_eq!(t2.version(), 2);
    let s4 = t2.id_of("s4").unwrap();
    assert_eq!(t2.owned_slots(s4).count(), 100 + 384);
    assert!((100..16000).all(|s| t2.owner(Slot(s)) == t.owner(Slot(s))), "nothing else moved");
    assert_eq!(t.change(&to("s4", vec![[5, 3]])).unwrap_err().field, "ranges");
    assert_eq!(t.change(&to("s4", vec![[0, SLOTS]])).unwrap_err().field, "ranges");
    assert!(t.change(&to("s9", vec![[0, 1]])).unwrap_err().message.contains("no server \"s9\""));
}

#[test]
fn a_removed_server_gives_its_slots_to_its_group_and_keeps_its_identity() {
    let t = topology(3, 1);
    let t1 = t.change(&TopologyChange::RemoveServer { name: "s2".into() }).unwrap();
    let s2 = ServerId(1);
    assert!(t1.is_removed(s2));
    assert_eq!(t1.servers().collect::<Vec<_>>(), [ServerId(0), ServerId(2)]);
    assert_eq!(t1.owned_slots(s2).count(), 0);
    let (a, b) = (t1.owned_slots(ServerId(0)).count(), t1.owned_slots(ServerId(2)).count());
    assert_eq!(a + b, SLOTS as usize);
    let given = |s: ServerId| t.owned_slots(s2).filter(|x| t1.owner(*x) == s).count() as i64;
    assert!((given(ServerId(0)) - given(ServerId(2))).abs() <= 1, "spread evenly");
    assert_eq!(t1.group(s2), &[] as &[ServerId]);
    // Removed twice, or the last member holding slots: refused.
    assert!(t1.change(&TopologyChange::RemoveServer { name: "s2".into() }).is_err());
    let solo = topology(2, 2);
    let e = solo.change(&TopologyChange::RemoveServer { name: "s1".into() }).unwrap_err();
    assert!(e.message.contains("last member of group"), "{e}");
    // Its name brings it back under the same identity, owning nothing; its
    // address may meanwhile be another server's.
    let t2 = add(&t1, "s5", "127.0.0.1:7102", "g1").unwrap();
    let t3 = add(&t2, "s2", "127.0.0.1:7120", "g1").unwrap();
    assert_eq!(t3.id_of("s2"), Some(s2));
    assert!(!t3.is_removed(s2));
    assert_eq!(t3.addr(s2), "127.0.0.1:7120");
    assert_eq!(t3.owned_slots(s2).count(), 0);
}

#[test]
fn rebalance_spreads_each_group_evenly_moving_as_few_slots_as_it_can() {
    let t = add(&topology(3, 1), "s4", "127.0.0.1:7104", "g1").unwrap();
    let t2 = t.change(&TopologyChange::Rebalance).unwrap();
    for s in t2.servers() {
        assert_eq!(t2.owned_slots(s).count(), SLOTS as usize / 4, "{s}");
    }
    let moved = (0..SLOTS).map(Slot).filter(|s| t.owner(*s) != t2.owner(*s)).count();
    assert_eq!(moved, SLOTS as usize / 4, "only the new server's share moved");
    // Groups keep their slots.
    let g = topology(4, 2);
    let g2 = g.change(&TopologyChange::Rebalance).unwrap();
    assert!((0..SLOTS).map(Slot).all(|s| g.group_name(g.owner(s)) == g2.group_name(g2.owner(s))));
    assert_eq!(g2.change(&TopologyChange::Rebalance).unwrap().version(), 2, "a version even with nothing to move");
}

proptest! {
    /// Any sequence of changes: each accepted one is one version later,
    /// every slot is owned by a server in the cluster, and the topology
    /// travels as its config unchanged.
    #[test]
    fn changes_keep_the_topology_valid(steps in proptest::collection::vec((0u8..4, 0u16..6, 0u16..SLOTS, 0u16..2000), 1..12)) {
        let mut t = topology(3, 2);
        for (kind, who, first, len) in steps {
            let name = format!("s{}", who + 1);
            let change = match kind {
                0 => TopologyChange::AddServer { name, addr: format!("127.0.0.1:{}", 7101 + who), group: format!("g{}", who % 3 + 1) },
                1 => TopologyChange::RemoveServer { name },
                2 => TopologyChange::MoveSlots { ranges: vec![[first, first.saturating_add(len).min(SLOTS - 1)]], to: name },
                _ => TopologyChange::Rebalance,
            };
            match t.change(&change) {
                Ok(next) => {
                    prop_assert_eq!(next.version(), t.version() + 1);
                    prop_assert!((0..SLOTS).all(|s| !next.is_removed(next.owner(Slot(s)))));
                    let back = next.spec().validate().unwrap();
                    prop_assert_eq!(&back, &next);
                    t = next;
                }
                Err(e) => prop_assert!(!e.message.is_empty()),
            }
        }
    }
}
