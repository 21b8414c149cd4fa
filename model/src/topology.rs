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
    /// Taken out of the cluster (`failgroup admin remove-server`): in no
    /// group, owning no slot; its name and identity are not reused but by
    /// adding it again.
    #[serde(default)]
    pub removed: bool,
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
    /// The topology's version: 0 as configured, one more with each change
    /// the master makes ([`Topology::change`]).
    #[serde(default)]
    pub version: u64,
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

/// Server names, addresses, groups and slot owners, validated, with the
/// version the master gave them. Travels as its [`ClusterSpec`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "ClusterSpec", into = "ClusterSpec")]
pub struct Topology {
    version: u64,
    names: Vec<String>,
    addrs: Vec<String>,
    removed: Vec<bool>,
    group_of: Vec<usize>,
    groups: Vec<(String, Vec<ServerId>)>,
    owners: Vec<ServerId>,
}

impl TryFrom<ClusterSpec> for Topology {
    type Error = ConfigError;
    fn try_from(spec: ClusterSpec) -> Result<Topology, ConfigError> {
        spec.validate()
    }
}

impl From<Topology> for ClusterSpec {
    fn from(t: Topology) -> ClusterSpec {
        t.spec()
    }
}

/// A change of the topology an operator asks the master for (issue 17):
/// each makes a new version ([`Topology::change`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TopologyChange {
    /// A server joins `group` (created if new) owning no slot yet; a
    /// removed server's name brings it back under its old identity.
    AddServer { name: String, addr: String, group: String },
    /// A server leaves: its slots go to the other members of its group,
    /// evenly; it is then in no group and owns nothing.
    RemoveServer { name: String },
    /// The inclusive slot ranges move to server `to`.
    MoveSlots { ranges: Vec<[u16; 2]>, to: String },
    /// Within each group, slots spread evenly over its members, moving as
    /// few as it can.
    Rebalance,
}

impl fmt::Display for TopologyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopologyChange::AddServer { name, addr, group } => write!(f, "add {name} ({addr}) to group {group}"),
            TopologyChange::RemoveServer { name } => write!(f, "remove {name}"),
            TopologyChange::MoveSlots { ranges, to } => {
                let r: Vec<String> = ranges.iter().map(|[a, b]| format!("{a}-{b}")).collect();
                write!(f, "move slots {} to {to}", r.join(","))
            }
            TopologyChange::Rebalance => write!(f, "rebalance"),
        }
    }
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
                    removed: false,
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
            version: 0,
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
            // A removed server's address may be a new server's.
            if !s.removed && !addrs.insert(s.addr.clone()) {
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
        for (i, s) in self.servers.iter().enumerate() {
            match (group_of[i] == usize::MAX, s.removed) {
                (true, false) => return err("groups", format!("server {:?} is in no group", s.name)),
                (false, true) => {
                    return err("groups", format!("server {:?} is removed but in a group", s.name));
                }
                _ => {}
            }
        }
        if self.servers.iter().all(|s| s.removed) {
            return err("servers", "at least one server must not be removed");
        }
        let owners = self.owners(&index)?;
        if let Some(s) = owners.iter().find(|o| self.servers[o.0 as usize].removed) {
            return err("slots", format!("server {:?} is removed but owns slots", self.servers[s.0 as usize].name));
        }
        Ok(Topology {
            version: self.version,
            names: self.servers.iter().map(|s| s.name.clone()).collect(),
            addrs: self.servers.iter().map(|s| s.addr.clone()).collect(),
            removed: self.servers.iter().map(|s| s.removed).collect(),
            group_of,
            groups,
            owners,
        })
    }

    fn owners(&self, index: &BTreeMap<String, ServerId>) -> Result<Vec<ServerId>, ConfigError> {
        let n = self.slot_count as usize;
        if self.slots.is_empty() {
            let present: Vec<ServerId> =
                (0..self.servers.len()).filter(|&i| !self.servers[i].removed).map(|i| ServerId(i as u16)).collect();
            let k = present.len();
            return Ok((0..n).map(|s| present[s * k / n]).collect());
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
    /// The version: 0 as configured, one more with each change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Every identity ever given, removed servers included: identities are
    /// indexes, never reused.
    pub fn server_count(&self) -> usize {
        self.names.len()
    }

    /// Whether `s` was removed from the cluster (or is not in it at all).
    pub fn is_removed(&self, s: ServerId) -> bool {
        self.removed.get(s.0 as usize).copied().unwrap_or(true)
    }

    /// The topology as a config says it: explicit slot ranges, the version.
    pub fn spec(&self) -> ClusterSpec {
        let mut slots: Vec<SlotSpec> = Vec::new();
        for (i, &o) in self.owners.iter().enumerate() {
            let i = i as u16;
            let name = &self.names[o.0 as usize];
            match slots.iter_mut().find(|s| &s.server == name) {
                Some(s) => match s.ranges.last_mut() {
                    Some(r) if r[1] + 1 == i => r[1] = i,
                    _ => s.ranges.push([i, i]),
                },
                None => slots.push(SlotSpec { server: name.clone(), ranges: vec![[i, i]] }),
            }
        }
        ClusterSpec {
            servers: (0..self.names.len())
                .map(|i| ServerSpec {
                    name: self.names[i].clone(),
                    addr: self.addrs[i].clone(),
                    removed: self.removed[i],
                })
                .collect(),
            groups: self
                .groups
                .iter()
                .filter(|(_, m)| !m.is_empty())
                .map(|(name, m)| GroupSpec {
                    name: name.clone(),
                    members: m.iter().map(|s| self.names[s.0 as usize].clone()).collect(),
                })
                .collect(),
            slots,
            slot_count: self.slot_count(),
            version: self.version,
        }
    }

    /// The topology after `change`, one version later, or why it cannot be.
    pub fn change(&self, change: &TopologyChange) -> Result<Topology, ConfigError> {
        let mut spec = self.spec();
        let known = |name: &str| {
            self.id_of(name).filter(|s| !self.is_removed(*s)).ok_or_else(|| ConfigError {
                field: "server".into(),
                message: format!("no server {name:?} in the cluster"),
            })
        };
        match change {
            TopologyChange::AddServer { name, addr, group } => {
                if let Some(s) = self.id_of(name) {
                    if !self.is_removed(s) {
                        return err("name", format!("server {name:?} is already in the cluster"));
                    }
                    let old = &mut spec.servers[s.0 as usize];
                    old.removed = false;
                    old.addr = addr.clone();
                } else {
                    spec.servers.push(ServerSpec { name: name.clone(), addr: addr.clone(), removed: false });
                }
                match spec.groups.iter_mut().find(|g| &g.name == group) {
                    Some(g) => g.members.push(name.clone()),
                    None => spec.groups.push(GroupSpec { name: group.clone(), members: vec![name.clone()] }),
                }
            }
            TopologyChange::RemoveServer { name } => {
                let s = known(name)?;
                let others: Vec<ServerId> = self.group(s).iter().copied().filter(|&m| m != s).collect();
                let mine: Vec<Slot> = self.owned_slots(s).collect();
                if others.is_empty() && !mine.is_empty() {
                    return err(
                        "server",
                        format!("{name:?} is the last member of group {:?}: move its slots first", self.group_name(s)),
                    );
                }
                let mut owners = self.owners.clone();
                for (i, slot) in mine.iter().enumerate() {
                    owners[slot.0 as usize] = others[i % others.len()];
                }
                spec.slots = self.with_owners(owners).spec().slots;
                spec.servers[s.0 as usize].removed = true;
                for g in &mut spec.groups {
                    g.members.retain(|m| m != name);
                }
                spec.groups.retain(|g| !g.members.is_empty());
            }
            TopologyChange::MoveSlots { ranges, to } => {
                let to = known(to)?;
                let mut owners = self.owners.clone();
                for [first, last] in ranges {
                    if first > last || *last >= self.slot_count() {
                        return err(
                            "ranges",
                            format!("bad range {first}-{last} (slots are 0-{})", self.slot_count() - 1),
                        );
                    }
                    for s in *first..=*last {
                        owners[s as usize] = to;
                    }
                }
                spec.slots = self.with_owners(owners).spec().slots;
            }
            TopologyChange::Rebalance => {
                let mut owners = self.owners.clone();
                for (_, members) in &self.groups {
                    if members.is_empty() {
                        continue;
                    }
                    let slots: Vec<usize> = (0..owners.len()).filter(|&i| members.contains(&owners[i])).collect();
                    let (n, k) = (slots.len(), members.len());
                    // Member j is to own n/k slots, the first n%k one more.
                    let share = |j: usize| n / k + usize::from(j < n % k);
                    let mut count: Vec<usize> =
                        members.iter().map(|m| slots.iter().filter(|&&i| owners[i] == *m).count()).collect();
                    for &i in &slots {
                        let from = members.iter().position(|m| *m == owners[i]).expect("a member's slot");
                        if count[from] > share(from) {
                            if let Some(to) = (0..k).find(|&j| count[j] < share(j)) {
                                owners[i] = members[to];
                                count[from] -= 1;
                                count[to] += 1;
                            }
                        }
                    }
                }
                spec.slots = self.with_owners(owners).spec().slots;
            }
        }
        spec.version = self.version + 1;
        spec.validate()
    }

    fn with_owners(&self, owners: Vec<ServerId>) -> Topology {
        Topology { owners, ..self.clone() }
    }

    pub fn slot_count(&self) -> u16 {
        self.owners.len() as u16
    }

    /// The servers in the cluster (not removed).
    pub fn servers(&self) -> impl Iterator<Item = ServerId> + '_ {
        (0..self.names.len()).filter(|&i| !self.removed[i]).map(|i| ServerId(i as u16))
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

    /// All members of `s`'s failover group, `s` included (c1, c4); none
    /// for a removed server.
    pub fn group(&self, s: ServerId) -> &[ServerId] {
        self.groups.get(self.group_of[s.0 as usize]).map(|g| &g.1[..]).unwrap_or(&[])
    }

    /// The name of `s`'s group ("" for a removed server).
    pub fn group_name(&self, s: ServerId) -> &str {
        self.groups.get(self.group_of[s.0 as usize]).map(|g| &g.0[..]).unwrap_or("")
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
