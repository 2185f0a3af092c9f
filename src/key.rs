//! Internal keys: a user key tagged with a sequence number and a kind.
//!
//! Encoded form (in SSTable blocks and index entries):
//!
//! ```text
//! internal_key := user_key trailer
//! trailer      := fixed64 little-endian (sequence << 8 | kind)
//! ```
//!
//! Ordering: by user key ascending (bytewise), then by trailer *descending*, so that for one
//! user key the newest version comes first. A reader at snapshot `s` seeks to
//! `(key, s << 8 | KIND_SEEK)` and takes the first entry of that user key.
//!
//! Invariants: sequence numbers are below 2^56 and strictly increase with every write;
//! sequence 0 is never assigned to a write.

use std::cmp::Ordering;

/// A sequence number: the position of a write in the commit order.
pub type SeqNo = u64;

/// The largest sequence number that fits in a trailer.
pub const MAX_SEQ: SeqNo = (1 << 56) - 1;

/// What an entry says about its user key. Written to disk: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ValueKind {
    /// The key was deleted.
    Deletion = 0,
    /// The key holds a value.
    Value = 1,
    /// A range tombstone: the key is the range's start, the value its end (WAL only; see
    /// `range_del`).
    RangeDeletion = 2,
}

/// Larger than every stored kind: a seek with this kind lands before all entries of
/// `(key, seq)` whatever their kind.
pub const KIND_SEEK: u8 = 0xff;

impl ValueKind {
    pub fn from_u8(b: u8) -> Option<ValueKind> {
        match b {
            0 => Some(ValueKind::Deletion),
            1 => Some(ValueKind::Value),
            2 => Some(ValueKind::RangeDeletion),
            _ => None,
        }
    }
}

/// Length of the trailer appended to a user key.
pub const TRAILER_LEN: usize = 8;

pub fn pack_trailer(seq: SeqNo, kind: u8) -> u64 {
    debug_assert!(seq <= MAX_SEQ);
    (seq << 8) | u64::from(kind)
}

/// Append the encoded internal key.
pub fn encode_internal_key(dst: &mut Vec<u8>, user_key: &[u8], seq: SeqNo, kind: u8) {
    dst.extend_from_slice(user_key);
    dst.extend_from_slice(&pack_trailer(seq, kind).to_le_bytes());
}

/// An encoded internal key for `(user_key, seq, kind)`.
pub fn internal_key(user_key: &[u8], seq: SeqNo, kind: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(user_key.len() + TRAILER_LEN);
    encode_internal_key(&mut v, user_key, seq, kind);
    v
}

/// A decoded view of an encoded internal key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    pub user_key: &'a [u8],
    pub seq: SeqNo,
    pub kind: ValueKind,
}

/// Split an encoded internal key; `None` if it is too short or its kind is unknown.
pub fn parse_internal_key(ikey: &[u8]) -> Option<ParsedKey<'_>> {
    let split = ikey.len().checked_sub(TRAILER_LEN)?;
    let (user_key, trailer) = ikey.split_at(split);
    let trailer = u64::from_le_bytes(trailer.try_into().ok()?);
    let kind = ValueKind::from_u8((trailer & 0xff) as u8)?;
    Some(ParsedKey {
        user_key,
        seq: trailer >> 8,
        kind,
    })
}

/// The user key part of an encoded internal key (the whole slice if it is malformed).
pub fn user_key(ikey: &[u8]) -> &[u8] {
    &ikey[..ikey.len().saturating_sub(TRAILER_LEN)]
}

fn trailer(ikey: &[u8]) -> u64 {
    let n = ikey.len();
    if n < TRAILER_LEN {
        return 0;
    }
    let mut t = [0u8; 8];
    t.copy_from_slice(&ikey[n - TRAILER_LEN..]);
    u64::from_le_bytes(t)
}

/// Compare two encoded internal keys: user key ascending, then trailer descending.
pub fn compare_internal(a: &[u8], b: &[u8]) -> Ordering {
    user_key(a)
        .cmp(user_key(b))
        .then_with(|| trailer(b).cmp(&trailer(a)))
}

/// The first 8 bytes of `user_key`, zero-padded, as a big-endian number. If
/// `key_prefix(a) < key_prefix(b)` then `a < b` (bytewise): a difference in the first 8 bytes
/// orders the keys, and a difference in the padding means one key is a proper prefix of the
/// other (the shorter one is smaller).
pub fn key_prefix(user_key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = user_key.len().min(8);
    bytes[..n].copy_from_slice(&user_key[..n]);
    u64::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_versions_of_a_key_sort_first() {
        let old = internal_key(b"k", 5, ValueKind::Value as u8);
        let new = internal_key(b"k", 9, ValueKind::Deletion as u8);
        assert_eq!(compare_internal(&new, &old), Ordering::Less);
        let seek = internal_key(b"k", 9, KIND_SEEK);
        assert_eq!(compare_internal(&seek, &new), Ordering::Less);
    }

    #[test]
    fn user_key_order_wins_over_trailers_even_for_prefixes() {
        let a = internal_key(b"a", 1, 1);
        let ab = internal_key(b"ab", 100, 1);
        assert_eq!(compare_internal(&a, &ab), Ordering::Less);
    }

    #[test]
    fn parse_rejects_short_keys_and_unknown_kinds() {
        assert!(parse_internal_key(b"short").is_none());
        assert!(parse_internal_key(&internal_key(b"k", 1, 7)).is_none());
        let encoded = internal_key(b"key", 42, 1);
        let p = parse_internal_key(&encoded).unwrap();
        assert_eq!(
            (p.user_key, p.seq, p.kind),
            (&b"key"[..], 42, ValueKind::Value)
        );
    }
}
