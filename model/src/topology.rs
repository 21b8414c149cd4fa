//! Static topology: slots, owners, failover groups and the failover-server
//! choice (c1, c2, c4, c8, c11). Read-only for the core.

use crate::types::{ErrorKind, Op, ServerId, Slot};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Slots of a Redis Cluster keyspace.
pub const SLOTS: u16 = 16384;

/// CRC16/XMODEM, the checksum Redis Cluster hashes keys with.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The part of a key that is hashed: the content of the first `{...}` if it
/// is non-empty, else the whole key (as Redis Cluster does).
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// Slot of a key among `slot_count` slots (16384 gives Redis Cluster's slot).
pub fn key_slot(key: &[u8], slot_count: u16) -> Slot {
    Slot((crc16(hash_tag(key)) & (SLOTS - 1)) % slot_count.max(1))
}

/// A server as written in a cluster config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// Unique name, e.g. "s1".
    pub name: String,
    /// Address its clients and peers connect to, e.g. "127.0.0.1:7101".
    pub addr: String,
}

/// A failover group as written in a cluster config (c1, c4, c8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSpec {
    pub name: String,
    pub members: Vec<String>,
}

/// Slots given to one server: inclusive ranges `[first, last]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotSpec {
    pub server: String,
    pub ranges: Vec<[u16; 2]>,
}

fn default_slot_count() -> u16 {
    SLOTS
}

/// The cluster as configured. [`ClusterSpec::validate`] turns it into a
/// [`Topology`] or says which field is wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub servers: Vec<ServerSpec>,
    pub groups: Vec<GroupSpec>,
    /// Explicit slot ownership; empty means an even split in server order.
    #[serde(default)]
    pub slots: Vec<SlotSpec>,
    /// 16384 (Redis Cluster); smaller only for models and tests.
    #[serde(default = "default_slot_count")]
    pub slot_count: u16,
}

/// A validation error that names the offending field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError { field: field.into(), message: message.into() })
}

/// Server names, addresses, groups and slot owners, validated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Topology {
    names: Vec<String>,
    addrs: Vec<String>,
    group_of: Vec<usize>,
    groups: Vec<(String, Vec<ServerId>)>,
    owners: Vec<ServerId>,
}

impl ClusterSpec {
    /// A cluster of `servers` servers named s1.. on consecutive loopback
    /// ports from `base_port`, split round-robin into `groups` groups.
    pub fn local(servers: u16, groups: u16, base_port: u16, slot_count: u16) -> ClusterSpec {
        let groups = groups.clamp(1, servers.max(1));
        ClusterSpec {
            servers: (0..servers)
                .map(|i| ServerSpec {
                    name: format!("s{}", i + 1),
                    addr: format!("127.0.0.1:{}", base_port as u32 + i as u32),
                })
                .collect(),
            groups: (0..groups)
                .map(|g| GroupSpec {
                    name: format!("g{}", g + 1),
                    members: (0..servers).filter(|i| i % groups == g).map(|i| format!("s{}", i + 1)).collect(),
                })
                .collect(),
            slots: Vec::new(),
            slot_count,
        }
    }

    pub fn validate(&self) -> Result<Topology, ConfigError> {
        if self.servers.is_empty() {
            return err("servers", "at least one server is required");
        }
        if self.servers.len() > u16::MAX as usize {
            return err("servers", "too many servers");
        }
        if self.slot_count == 0 || self.slot_count > SLOTS {
            return err("slot_count", format!("must be in 1..={SLOTS}"));
        }
        let mut index = BTreeMap::new();
        let mut addrs = BTreeSet::new();
        for (i, s) in self.servers.iter().enumerate() {
            let field = format!("servers[{i}]");
            if s.name.trim().is_empty() {
                return err(format!("{field}.name"), "must not be empty");
            }
            if index.insert(s.name.clone(), ServerId(i as u16)).is_some() {
                return err(format!("{field}.name"), format!("duplicate server name {:?}", s.name));
            }
            if s.addr.trim().is_empty() {
                return err(format!("{field}.addr"), "must not be empty");
            }
            if !addrs.insert(s.addr.clone()) {
                return err(format!("{field}.addr"), format!("duplicate address {:?}", s.addr));
            }
        }
        let mut group_of = vec![usize::MAX; self.servers.len()];
        let mut groups = Vec::new();
        let mut group_names = BTreeSet::new();
        for (g, spec) in self.groups.iter().enumerate() {
            let field = format!("groups[{g}]");
            if !group_names.insert(spec.name.clone()) || spec.name.trim().is_empty() {
                return err(format!("{field}.name"), format!("empty or duplicate group name {:?}", spec.name));
            }
            if spec.members.is_empty() {
                return err(format!("{field}.members"), "a group needs at least one member");
            }
            let mut members = Vec::new();
            for m in &spec.members {
                let Some(&id) = index.get(m) else {
                    return err(format!("{field}.members"), format!("unknown server {m:?}"));
                };
                if group_of[id.0 as usize] != usize::MAX {
                    return err(format!("{field}.members"), format!("server {m:?} is in two groups"));
                }
                group_of[id.0 as usize] = g;
                members.push(id);
            }
            groups.push((spec.name.clone(), members));
        }
        if let Some(i) = group_of.iter().position(|&g| g == usize::MAX) {
            return err("groups", format!("server {:?} is in no group", self.servers[i].name));
        }
        let owners = self.owners(&index)?;
        Ok(Topology {
            names: self.servers.iter().map(|s| s.name.clone()).collect(),
            addrs: self.servers.iter().map(|s| s.addr.clone()).collect(),
            group_of,
            groups,
            owners,
        })
    }

    fn owners(&self, index: &BTreeMap<String, ServerId>) -> Result<Vec<ServerId>, ConfigError> {
        let n = self.slot_count as usize;
        if self.slots.is_empty() {
            let k = self.servers.len();
            return Ok((0..n).map(|s| ServerId((s * k / n) as u16)).collect());
        }
        let mut owners: Vec<Option<ServerId>> = vec![None; n];
        for (i, spec) in self.slots.iter().enumerate() {
            let field = format!("slots[{i}]");
            let Some(&id) = index.get(&spec.server) else {
                return err(format!("{field}.server"), format!("unknown server {:?}", spec.server));
            };
            for [first, last] in &spec.ranges {
                if first > last || *last as usize >= n {
                    return err(format!("{field}.ranges"), format!("bad range {first}-{last} (slots are 0-{})", n - 1));
                }
                for s in *first..=*last {
                    if let Some(other) = owners[s as usize] {
                        return err(
                            format!("{field}.ranges"),
                            format!("slot {s} already given to {:?}", self.servers[other.0 as usize].name),
                        );
                    }
                    owners[s as usize] = Some(id);
                }
            }
        }
        match owners.iter().position(Option::is_none) {
            Some(s) => err("slots", format!("slot {s} is unassigned")),
            None => Ok(owners.into_iter().flatten().collect()),
        }
    }
}

/// Rendezvous weight of `server` for `slot`: a fixed pure hash, so every
/// node computes the same failover server from the same view.
fn weight(slot: Slot, server: ServerId) -> u64 {
    let mut z = ((slot.0 as u64) << 16 | server.0 as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Topology {
    pub fn server_count(&self) -> usize {
        self.names.len()
    }

    pub fn slot_count(&self) -> u16 {
        self.owners.len() as u16
    }

    pub fn servers(&self) -> impl Iterator<Item = ServerId> + '_ {
        (0..self.names.len()).map(|i| ServerId(i as u16))
    }

    pub fn name(&self, s: ServerId) -> &str {
        &self.names[s.0 as usize]
    }

    pub fn addr(&self, s: ServerId) -> &str {
        &self.addrs[s.0 as usize]
    }

    pub fn id_of(&self, name: &str) -> Option<ServerId> {
        self.names.iter().position(|n| n == name).map(|i| ServerId(i as u16))
    }

    /// The slot of a key (c11).
    pub fn slot(&self, key: &[u8]) -> Slot {
        key_slot(key, self.slot_count())
    }

    /// The server that usually processes a slot (c1, c11).
    /// Why an operation may not run as one atomic step, if it may not: an
    /// atomic operation that is empty, nested, or names keys of more than
    /// one slot (its store command is fenced by one slot's right).
    pub fn atomic_refusal(&self, op: &Op) -> Option<ErrorKind> {
        let refuse = |m: &str| Some(ErrorKind::Reply(m.into()));
        match op {
            Op::Atomic(ops) if ops.is_empty() => return refuse("ERR an atomic operation needs at least one command"),
            Op::Atomic(ops) if ops.iter().any(|o| matches!(o, Op::Atomic(_))) => {
                return refuse("ERR atomic operations do not nest")
            }
            Op::Atomic(_) | Op::Keys(_) => {}
            _ => return None,
        }
        // Whole-database reads name no key: the others share one slot.
        let keys = op.keys();
        let slot = self.slot(keys.first().copied().unwrap_or_default());
        if keys.iter().any(|k| self.slot(k) != slot) {
            return refuse("CROSSSLOT Keys in request don't hash to the same slot");
        }
        None
    }

    pub fn owner(&self, slot: Slot) -> ServerId {
        self.owners[slot.0 as usize]
    }

    /// All members of `s`'s failover group, `s` included (c1, c4).
    pub fn group(&self, s: ServerId) -> &[ServerId] {
        &self.groups[self.group_of[s.0 as usize]].1
    }

    pub fn group_name(&self, s: ServerId) -> &str {
        &self.groups[self.group_of[s.0 as usize]].0
    }

    /// Slots owned by `s`.
    pub fn owned_slots(&self, s: ServerId) -> impl Iterator<Item = Slot> + '_ {
        (0..self.owners.len()).filter(move |&i| self.owners[i] == s).map(|i| Slot(i as u16))
    }

    /// The failover server of `slot`: among the online members of its
    /// owner's group, never the owner, the one of highest rendezvous weight
    /// (c1, c10). One dead server's slots spread over all survivors, and a
    /// second failure moves only the slots the second server served.
    pub fn failover_server(&self, slot: Slot, online: impl Fn(ServerId) -> bool) -> Option<ServerId> {
        let owner = self.owner(slot);
        self.group(owner).iter().copied().filter(|&m| m != owner && online(m)).max_by_key(|&m| weight(slot, m))
    }

    /// Who should serve `slot` under a view: the owner if online, else its
    /// failover server (c1, c15).
    pub fn serving_server(&self, slot: Slot, online: impl Fn(ServerId) -> bool) -> Option<ServerId> {
        let owner = self.owner(slot);
        if online(owner) {
            Some(owner)
        } else {
            self.failover_server(slot, online)
        }
    }
}
