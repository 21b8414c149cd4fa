//! Bytes kept inline when short: a cached key or value of up to
//! [`INLINE`] bytes needs no allocation of its own (Redis, likewise, keeps a
//! short string in one allocation with its object). The cache holds every
//! key of a server's slots, so a heap block per short key and value was a
//! third of its memory per key.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// FNV-1a's starting value.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a of `bytes` continued from `h` ([`FNV_OFFSET`] to start):
/// deterministic, so equal states hash and order alike on every node.
pub fn fnv1a(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, b| (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// A 64-bit finalizer (MurmurHash3's fmix64): every bit of `h` moves every
/// bit of the result. FNV-1a of keys that differ only in their last bytes
/// differ mostly in low bits; mixed, their order is spread over the whole
/// range, so a random point of it samples a random key.
pub fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The longest bytes kept inline.
pub const INLINE: usize = 22;

/// Bytes, inline up to [`INLINE`] of them, else boxed. Given bytes have one
/// form only, and every comparison is of the bytes.
#[derive(Clone)]
pub enum SmallBytes {
    Inline { len: u8, data: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl SmallBytes {
    pub fn new(bytes: &[u8]) -> SmallBytes {
        if bytes.len() <= INLINE {
            let mut data = [0; INLINE];
            data[..bytes.len()].copy_from_slice(bytes);
            SmallBytes::Inline { len: bytes.len() as u8, data }
        } else {
            SmallBytes::Heap(bytes.into())
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        match self {
            SmallBytes::Inline { len, data } => &data[..*len as usize],
            SmallBytes::Heap(b) => b,
        }
    }
}

impl From<Vec<u8>> for SmallBytes {
    fn from(v: Vec<u8>) -> SmallBytes {
        if v.len() <= INLINE {
            SmallBytes::new(&v)
        } else {
            SmallBytes::Heap(v.into_boxed_slice())
        }
    }
}

impl std::ops::Deref for SmallBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for SmallBytes {
    fn eq(&self, other: &SmallBytes) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for SmallBytes {}

impl PartialOrd for SmallBytes {
    fn partial_cmp(&self, other: &SmallBytes) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SmallBytes {
    fn cmp(&self, other: &SmallBytes) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl Hash for SmallBytes {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.as_slice().hash(h)
    }
}

impl fmt::Debug for SmallBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_slice().fmt(f)
    }
}

impl Serialize for SmallBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

impl<'de> Deserialize<'de> for SmallBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SmallBytes, D::Error> {
        Vec::<u8>::deserialize(d).map(SmallBytes::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_form_per_bytes_and_no_bigger_than_a_box_and_a_length() {
        assert_eq!(std::mem::size_of::<SmallBytes>(), 24);
        assert_eq!(std::mem::size_of::<Option<SmallBytes>>(), 24);
        for len in [0, 1, INLINE - 1, INLINE, INLINE + 1, 100] {
            let bytes: Vec<u8> = (0..len as u8).collect();
            let (a, b) = (SmallBytes::new(&bytes), SmallBytes::from(bytes.clone()));
            assert_eq!(a.as_slice(), &bytes[..]);
            assert_eq!(b.as_slice(), &bytes[..]);
            assert_eq!(matches!(a, SmallBytes::Inline { .. }), len <= INLINE);
            assert_eq!(matches!(b, SmallBytes::Inline { .. }), len <= INLINE);
            assert_eq!(a, b);
        }
        assert!(SmallBytes::new(b"ab") < SmallBytes::new(b"b"));
        assert!(SmallBytes::new(&[1; 30]) > SmallBytes::new(&[1; 3]));
    }
}
