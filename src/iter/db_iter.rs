//! `DbIter`: the user-facing iterator over a range of user keys at one sequence number.
//!
//! It merges every source of a pinned [`SuperVersion`], hides entries
//! newer than its sequence number, shows only the newest visible version of each user key, and
//! hides deleted keys. It is double-ended: the front and the back are two independent merging
//! cursors that stop when they meet.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use crate::db::SuperVersion;
use crate::error::Result;
use crate::iter::merge::MergingIterator;
use crate::key::{internal_key, parse_internal_key, SeqNo, ValueKind, KIND_SEEK, MAX_SEQ};
use crate::range_del::FragmentedRangeDels;

/// Iterator over `(key, value)` pairs in key order; `.rev()` walks backwards.
///
/// It reads a consistent view: the sequence number at creation (or the snapshot's), with every
/// memtable and table it needs pinned until it is dropped.
pub struct DbIter {
    sv: Arc<SuperVersion>,
    seq: SeqNo,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    front: Option<MergingIterator>,
    back: Option<MergingIterator>,
    /// Last user key the front cursor passed (emitted or hidden).
    front_key: Option<Vec<u8>>,
    /// Last user key the back cursor passed.
    back_key: Option<Vec<u8>>,
    /// Range tombstones visible at `seq`.
    range_dels: FragmentedRangeDels,
    done: bool,
}

impl DbIter {
    pub(crate) fn new(
        sv: Arc<SuperVersion>,
        seq: SeqNo,
        lower: Bound<Vec<u8>>,
        upper: Bound<Vec<u8>>,
    ) -> Self {
        let empty = match (&lower, &upper) {
            (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
                a > b
                    || (a == b
                        && !(matches!(lower, Bound::Included(_))
                            && matches!(upper, Bound::Included(_))))
            }
            _ => false,
        };
        let range_dels = sv.fragmented_range_dels(seq);
        DbIter {
            range_dels,
            sv,
            seq,
            lower,
            upper,
            front: None,
            back: None,
            front_key: None,
            back_key: None,
            done: empty,
        }
    }

    fn below_upper(upper: &Bound<Vec<u8>>, user_key: &[u8]) -> bool {
        match upper {
            Bound::Included(u) => user_key <= u.as_slice(),
            Bound::Excluded(u) => user_key < u.as_slice(),
            Bound::Unbounded => true,
        }
    }

    fn above_lower(&self, user_key: &[u8]) -> bool {
        match &self.lower {
            Bound::Included(l) => user_key >= l.as_slice(),
            Bound::Excluded(l) => user_key > l.as_slice(),
            Bound::Unbounded => true,
        }
    }

    fn step_front(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        if self.front.is_none() {
            let mut m = MergingIterator::new(self.sv.iterators());
            match &self.lower {
                Bound::Included(k) => m.seek(&internal_key(k, MAX_SEQ, KIND_SEEK))?,
                // (k, seq 0, kind 0) is the last possible entry of k.
                Bound::Excluded(k) => m.seek(&internal_key(k, 0, 0))?,
                Bound::Unbounded => m.seek_to_first()?,
            }
            self.front = Some(m);
        }
        let Some(m) = self.front.as_mut() else {
            return Ok(None);
        };
        while m.valid() {
            let Some(p) = parse_internal_key(m.key()) else {
                return Err(crate::Error::corruption(
                    "<iterator>",
                    0,
                    "malformed internal key",
                ));
            };
            if p.seq > self.seq || self.front_key.as_deref() == Some(p.user_key) {
                // Too new for this view, or an older version of a key already passed.
                m.step()?;
                continue;
            }
            let kind = p.kind;
            let deleted_by_range = self.range_dels.max_covering(p.user_key) > p.seq;
            if !Self::below_upper(&self.upper, p.user_key) {
                return Ok(None);
            }
            if self.back_key.as_deref().is_some_and(|b| p.user_key >= b) {
                return Ok(None);
            }
            let emit = kind == ValueKind::Value && !deleted_by_range;
            let item = emit.then(|| (Bytes::copy_from_slice(p.user_key), m.value()));
            // Remember the key in a reused buffer: older versions of it follow.
            let front_key = self.front_key.get_or_insert_with(Vec::new);
            front_key.clear();
            front_key.extend_from_slice(p.user_key);
            m.step()?;
            if item.is_some() {
                return Ok(item);
            }
        }
        Ok(None)
    }

    fn step_back(&mut self) -> Result<Option<(Bytes, Bytes)>> {
        if self.back.is_none() {
            let mut m = MergingIterator::new(self.sv.iterators());
            match &self.upper {
                Bound::Included(k) => m.seek_for_prev(&internal_key(k, 0, 0))?,
                Bound::Excluded(k) => m.seek_for_prev(&internal_key(k, MAX_SEQ, KIND_SEEK))?,
                Bound::Unbounded => m.seek_to_last()?,
            }
            self.back = Some(m);
        }
        loop {
            let Some(m) = self.back.as_mut() else {
                return Ok(None);
            };
            if !m.valid() {
                return Ok(None);
            }
            // Backwards, the versions of one user key arrive oldest first: walk them all and
            // keep the newest one visible at `seq`.
            let user_key = match parse_internal_key(m.key()) {
                Some(p) => p.user_key.to_vec(),
                None => {
                    return Err(crate::Error::corruption(
                        "<iterator>",
                        0,
                        "malformed internal key",
                    ))
                }
            };
            let mut visible: Option<(ValueKind, SeqNo, Bytes)> = None;
            while m.valid() {
                let Some(p) = parse_internal_key(m.key()) else {
                    return Err(crate::Error::corruption(
                        "<iterator>",
                        0,
                        "malformed internal key",
                    ));
                };
                if p.user_key != user_key.as_slice() {
                    break;
                }
                if p.seq <= self.seq {
                    visible = Some((p.kind, p.seq, m.value()));
                }
                m.step()?;
            }
            if !self.above_lower(&user_key) {
                return Ok(None);
            }
            if let Some(f) = &self.front_key {
                if user_key <= *f {
                    return Ok(None);
                }
            }
            let Some((kind, seq, value)) = visible else {
                continue;
            };
            self.back_key = Some(user_key.clone());
            if kind == ValueKind::Value && self.range_dels.max_covering(&user_key) <= seq {
                return Ok(Some((Bytes::from(user_key), value)));
            }
        }
    }
}

/// A key and its value, as the iterator yields them.
type Entry = (Bytes, Bytes);

impl DbIter {
    /// One step from either end; the iterator ends for good at its end or at an error.
    fn advance(&mut self, step: fn(&mut DbIter) -> Result<Option<Entry>>) -> Option<Result<Entry>> {
        if self.done {
            return None;
        }
        let item = step(self).transpose();
        self.done = !matches!(item, Some(Ok(_)));
        item
    }
}

impl Iterator for DbIter {
    type Item = Result<(Bytes, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.advance(DbIter::step_front)
    }
}

impl DoubleEndedIterator for DbIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.advance(DbIter::step_back)
    }
}

/// The smallest key greater than every key starting with `prefix` (`None` if there is none,
/// i.e. the prefix is all 0xff).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
