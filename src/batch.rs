//! `WriteBatch`: a group of puts and deletes applied atomically, and its encoding.
//!
//! The encoding is also the payload of a write-ahead log record, so a batch is logged as
//! exactly one record and is recovered entirely or not at all.
//!
//! ```text
//! batch := sequence: fixed64 | count: fixed32 | op{count}
//! op    := kind: u8 | key_len: varint | key | [value_len: varint | value]   (no value for deletes)
//! kind  := 0 (delete) | 1 (put) | 2 (delete range: key = start, value = end, empty = unbounded)
//!                                      -- crate::key::ValueKind, written to disk
//! ```
//! `sequence` is the sequence number of the first op; op `i` gets `sequence + i`. It is zero
//! while the batch is being built and is filled in by the writer that commits it.

use std::path::Path;

use bytes::Bytes;

use crate::coding::{put_length_prefixed, Decoder};
use crate::error::{Error, Result};
use crate::key::{SeqNo, ValueKind};

/// Size of the batch header (sequence + count).
pub const HEADER_LEN: usize = 12;

/// A set of puts and deletes that commit atomically: after a crash either all or none of them
/// are visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBatch {
    rep: Vec<u8>,
    count: u32,
    max_key_len: usize,
    max_value_len: usize,
    has_empty_key: bool,
    has_bad_range: bool,
}

impl Default for WriteBatch {
    fn default() -> Self {
        Self::new()
    }
}

/// One operation of a decoded batch; slices share the batch's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOp {
    pub kind: ValueKind,
    pub key: Bytes,
    pub value: Bytes,
}

impl WriteBatch {
    pub fn new() -> Self {
        WriteBatch {
            rep: vec![0; HEADER_LEN],
            count: 0,
            max_key_len: 0,
            max_value_len: 0,
            has_empty_key: false,
            has_bad_range: false,
        }
    }

    /// Set `key` to `value`.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Self {
        let (key, value) = (key.as_ref(), value.as_ref());
        self.note_key(key);
        self.max_value_len = self.max_value_len.max(value.len());
        self.rep.push(ValueKind::Value as u8);
        put_length_prefixed(&mut self.rep, key);
        put_length_prefixed(&mut self.rep, value);
        self
    }

    /// Remove `key` (a no-op if absent).
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> &mut Self {
        let key = key.as_ref();
        self.note_key(key);
        self.rep.push(ValueKind::Deletion as u8);
        put_length_prefixed(&mut self.rep, key);
        self
    }

    /// Remove every key in `[start, end)`, as one range tombstone. An empty range is an error
    /// when the batch is written.
    pub fn delete_range(&mut self, start: impl AsRef<[u8]>, end: impl AsRef<[u8]>) -> &mut Self {
        let (start, end) = (start.as_ref(), end.as_ref());
        self.has_bad_range |= end.is_empty() || start >= end;
        self.push_range(start, end)
    }

    /// Remove every key that starts with `prefix` (non-empty), as one range tombstone.
    pub fn delete_prefix(&mut self, prefix: impl AsRef<[u8]>) -> &mut Self {
        let prefix = prefix.as_ref();
        // An empty end means unbounded: the successor of an all-0xff prefix does not exist.
        let end = crate::iter::db_iter::prefix_successor(prefix).unwrap_or_default();
        self.push_range(prefix, &end)
    }

    fn push_range(&mut self, start: &[u8], end: &[u8]) -> &mut Self {
        self.note_key(start);
        self.max_key_len = self.max_key_len.max(end.len());
        self.rep.push(ValueKind::RangeDeletion as u8);
        put_length_prefixed(&mut self.rep, start);
        put_length_prefixed(&mut self.rep, end);
        self
    }

    fn note_key(&mut self, key: &[u8]) {
        self.count += 1;
        self.max_key_len = self.max_key_len.max(key.len());
        self.has_empty_key |= key.is_empty();
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Remove every operation.
    pub fn clear(&mut self) {
        *self = WriteBatch::new();
    }

    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        self.rep.len()
    }

    /// Check the batch against the key and value limits.
    pub(crate) fn validate(&self, max_key: usize, max_value: usize) -> Result<()> {
        if self.has_empty_key {
            return Err(Error::InvalidArgument("keys must not be empty".into()));
        }
        if self.has_bad_range {
            return Err(Error::InvalidArgument(
                "a range to delete must have start < end".into(),
            ));
        }
        if self.max_key_len > max_key {
            return Err(Error::InvalidArgument(format!(
                "a key of {} bytes exceeds the maximum of {max_key} bytes",
                self.max_key_len
            )));
        }
        if self.max_value_len > max_value {
            return Err(Error::InvalidArgument(format!(
                "a value of {} bytes exceeds the maximum of {max_value} bytes",
                self.max_value_len
            )));
        }
        Ok(())
    }

    /// Stamp the first sequence number and return the encoded payload.
    pub(crate) fn encode_with_sequence(&mut self, first_seq: SeqNo) -> &[u8] {
        self.rep[0..8].copy_from_slice(&first_seq.to_le_bytes());
        self.rep[8..12].copy_from_slice(&self.count.to_le_bytes());
        &self.rep
    }

    /// Call `f(seq, kind, key, value)` for each operation in order, numbering them from
    /// `first_seq` (a deletion's value is empty; a range deletion's key and value are its start
    /// and end). Reads the batch's own encoding, which this type only ever writes well formed;
    /// should it not be, the walk stops early and returns false.
    pub(crate) fn for_each_op(
        &self,
        first_seq: SeqNo,
        mut f: impl FnMut(SeqNo, ValueKind, &[u8], &[u8]),
    ) -> bool {
        let mut d = Decoder::new(self.rep.get(HEADER_LEN..).unwrap_or_default());
        for i in 0..u64::from(self.count) {
            let Some(kind) = d.u8().and_then(ValueKind::from_u8) else {
                return false;
            };
            let Some(key) = d.length_prefixed() else {
                return false;
            };
            let value = match kind {
                ValueKind::Deletion => &[][..],
                ValueKind::Value | ValueKind::RangeDeletion => match d.length_prefixed() {
                    Some(v) => v,
                    None => return false,
                },
            };
            f(first_seq + i, kind, key, value);
        }
        true
    }

    /// Decode a logged batch, checking every length; `path` and `offset` name the log record
    /// for the error message.
    pub fn decode(payload: Bytes, path: &Path, offset: u64) -> Result<DecodedBatch> {
        let bad = |reason: &str| Error::corruption(path, offset, format!("write batch: {reason}"));
        let mut d = Decoder::new(&payload);
        let first_seq = d.u64().ok_or_else(|| bad("header is truncated"))?;
        let count = d.u32().ok_or_else(|| bad("header is truncated"))?;
        let mut ops = Vec::with_capacity((count as usize).min(payload.len() / 2));
        for _ in 0..count {
            let kind = d
                .u8()
                .and_then(ValueKind::from_u8)
                .ok_or_else(|| bad("unknown op kind"))?;
            let key = d
                .length_prefixed()
                .ok_or_else(|| bad("key runs past the end"))?;
            let key = payload.slice_ref(key);
            let value = match kind {
                ValueKind::Value | ValueKind::RangeDeletion => {
                    let v = d
                        .length_prefixed()
                        .ok_or_else(|| bad("value runs past the end"))?;
                    payload.slice_ref(v)
                }
                ValueKind::Deletion => Bytes::new(),
            };
            ops.push(BatchOp { kind, key, value });
        }
        if !d.is_empty() {
            return Err(bad("trailing bytes after the last op"));
        }
        if count > 0
            && first_seq
                .checked_add(u64::from(count) - 1)
                .is_none_or(|last| last > crate::key::MAX_SEQ)
        {
            return Err(bad("sequence numbers out of range"));
        }
        Ok(DecodedBatch { first_seq, ops })
    }

    /// The operations of this (not yet committed) batch.
    pub fn ops(&self) -> Vec<BatchOp> {
        let mut rep = self.rep.clone();
        rep[8..12].copy_from_slice(&self.count.to_le_bytes());
        // Invariant: `rep` was built by put/delete, so it always decodes.
        let payload = Bytes::from(rep);
        WriteBatch::decode(payload, Path::new("<in-memory batch>"), 0)
            .map(|b| b.ops)
            .unwrap_or_default()
    }
}

/// A batch read back from the log.
#[derive(Debug)]
pub struct DecodedBatch {
    pub first_seq: SeqNo,
    pub ops: Vec<BatchOp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_round_trips_through_its_encoding() {
        let mut b = WriteBatch::new();
        b.put("k1", "v1").delete("k2").put("k3", "");
        let payload = Bytes::copy_from_slice(b.clone().encode_with_sequence(40));
        let d = WriteBatch::decode(payload, Path::new("x"), 0).unwrap();
        assert_eq!(d.first_seq, 40);
        assert_eq!(d.ops.len(), 3);
        assert_eq!(
            (d.ops[1].kind, &d.ops[1].key[..]),
            (ValueKind::Deletion, &b"k2"[..])
        );
        assert_eq!(&d.ops[2].value[..], b"");
        assert_eq!(b.ops(), d.ops);
    }

    #[test]
    fn every_truncation_of_a_batch_is_an_error_not_a_panic() {
        let mut b = WriteBatch::new();
        b.put("key", "value").delete("gone");
        let full = b.encode_with_sequence(1).to_vec();
        for cut in 0..full.len() {
            let r = WriteBatch::decode(Bytes::copy_from_slice(&full[..cut]), Path::new("x"), 0);
            assert!(r.unwrap_err().is_corruption(), "cut at {cut}");
        }
    }

    #[test]
    fn limits_are_checked() {
        let mut b = WriteBatch::new();
        b.put("", "v");
        assert!(matches!(b.validate(10, 10), Err(Error::InvalidArgument(_))));
        let mut b = WriteBatch::new();
        b.put("0123456789a", "v");
        assert!(b.validate(10, 10).is_err());
        assert!(b.validate(11, 10).is_ok());
    }
}
