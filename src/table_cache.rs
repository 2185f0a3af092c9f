//! The open-table cache: at most `Options::max_open_tables` tables are open at once.
//!
//! An open [`Table`] holds a file descriptor, its index block and its bloom filter in memory.
//! Every live table has a [`TableHandle`](crate::version::TableHandle) (its manifest entry);
//! the handle opens its table on first use and registers it here. When more tables are open
//! than allowed, a CLOCK sweep over the registered handles closes the ones not used since the
//! last sweep: the handle drops its `Arc<Table>`, so the file closes as soon as the iterators
//! still reading it are done, and the next use opens it again (re-checking it against the
//! manifest).
//!
//! Invariants:
//! - `open` counts handles whose slot holds a table; a handle's slot goes from empty to full
//!   only through [`TableCache::admit`] and from full to empty only through an eviction or the
//!   handle's drop ([`TableCache::closed`]), each under the handle's slot lock.
//! - The ring holds weak references: a dropped handle is never kept alive by the cache.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::version::TableHandle;

pub struct TableCache {
    capacity: usize,
    /// Handles with an open table, in CLOCK order.
    ring: Mutex<Ring>,
    open: AtomicUsize,
    opens: AtomicU64,
    evictions: AtomicU64,
}

struct Ring {
    handles: Vec<Weak<TableHandle>>,
    hand: usize,
}

/// Counters of the open-table cache, for [`Db::stats`](crate::Db::stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableCacheStats {
    pub open_tables: usize,
    pub capacity: usize,
    /// Table opens (the first of each table included).
    pub opens: u64,
    pub evictions: u64,
}

impl TableCache {
    /// A cache keeping at most `capacity` tables open (at least one).
    pub fn new(capacity: usize) -> Arc<TableCache> {
        Arc::new(TableCache {
            capacity: capacity.max(1),
            ring: Mutex::new(Ring {
                handles: Vec::new(),
                hand: 0,
            }),
            open: AtomicUsize::new(0),
            opens: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        })
    }

    pub fn stats(&self) -> TableCacheStats {
        TableCacheStats {
            open_tables: self.open.load(Ordering::Relaxed),
            capacity: self.capacity,
            opens: self.opens.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }

    /// `handle` just opened its table: count it, and close others while over capacity.
    /// Called without the handle's slot lock held.
    pub(crate) fn admit(&self, handle: &Arc<TableHandle>) {
        self.opens.fetch_add(1, Ordering::Relaxed);
        let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        let mut ring = self.ring.lock();
        ring.handles.push(Arc::downgrade(handle));
        if open <= self.capacity {
            return;
        }
        // Each step either drops a dead entry, clears a reference bit or closes a table; every
        // entry's bit is cleared at most once per sweep, so this ends within two rounds.
        let mut steps = 2 * ring.handles.len() + 1;
        while self.open.load(Ordering::Acquire) > self.capacity && steps > 0 {
            steps -= 1;
            if ring.handles.is_empty() {
                break;
            }
            if ring.hand >= ring.handles.len() {
                ring.hand = 0;
            }
            let hand = ring.hand;
            let Some(candidate) = ring.handles[hand].upgrade() else {
                ring.handles.swap_remove(hand);
                continue;
            };
            if Arc::ptr_eq(&candidate, handle) || candidate.take_reference() {
                // Just opened, or used since the last sweep: a second chance.
                ring.hand += 1;
                continue;
            }
            ring.handles.swap_remove(hand);
            if candidate.close_table() {
                self.open.fetch_sub(1, Ordering::AcqRel);
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A handle with an open table was dropped.
    pub(crate) fn closed(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for TableCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableCache")
            .field("stats", &self.stats())
            .finish()
    }
}
