//! Iterators over internal keys, and their merge into the user-facing view.
//!
//! Every source (memtable, SSTable, block) exposes an [`InternalIterator`]: a cursor over
//! `(encoded internal key, value)` pairs in [`compare_internal`](crate::key::compare_internal)
//! order. Cursors are positioned by a seek and then moved with `next` or `prev`.

use bytes::Bytes;

use crate::error::Result;

/// A cursor over `(internal key, value)` pairs in internal-key order.
///
/// After any method returns `Err`, the cursor is invalid. `key` and `value` may only be called
/// while `valid()` is true.
pub trait InternalIterator: Send {
    fn valid(&self) -> bool;
    /// Position at the first entry.
    fn seek_to_first(&mut self) -> Result<()>;
    /// Position at the last entry.
    fn seek_to_last(&mut self) -> Result<()>;
    /// Position at the first entry whose key is `>= target` (an encoded internal key).
    fn seek(&mut self, target: &[u8]) -> Result<()>;
    /// Position at the last entry whose key is `<= target` (an encoded internal key).
    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()>;
    fn next(&mut self) -> Result<()>;
    fn prev(&mut self) -> Result<()>;
    /// The current encoded internal key.
    fn key(&self) -> &[u8];
    /// The current value (a cheap reference-counted slice).
    fn value(&self) -> Bytes;
}

pub mod db_iter;
pub mod merge;

pub use db_iter::DbIter;
