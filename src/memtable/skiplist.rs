//! An arena-backed skiplist of internal keys: one writer at a time, lock-free readers (the
//! design of LevelDB's skiplist and of RocksDB's `InlineSkipList` without concurrent inserts).
//!
//! Each node is one allocation in an arena: a small header, its tower of links, the encoded
//! internal key (user key + 8-byte trailer, see `key.rs`) and the value. A search compares the
//! target with the key bytes stored right after the tower, so it touches one or two cache lines
//! per node and never follows a second pointer; an insert is a bump allocation. Writes are
//! already serialized by the group-commit leader, so inserts need no CAS loops.
//!
//! Each link holds, beside the successor pointer, the first 8 bytes of the successor's user key
//! ([`key_prefix`]). Where the prefixes differ (almost always, for keys that are not sequential)
//! a search decides to go down a level without loading the successor at all: that comparison
//! was a cache miss per level, the largest cost of an insert into a big memtable.
//!
//! Invariants (what makes the `unsafe` blocks sound):
//! - Nodes live in arena blocks owned by the list and freed only when the list is dropped; a
//!   reader holding `&SkipList` may follow any node pointer it loaded from the list.
//! - A node's header, key, value and whole tower are written before the node is published by a
//!   `Release` store into a predecessor's tower; readers load towers with `Acquire`, so a node
//!   they reach is complete. After publication only tower slots change, and each change only
//!   links in a newer node between a node and its old successor.
//! - Inserts (the arena, the height generator, the links) are serialized by `writer`.
//! - Every node pointer stored in a tower is null or points to a node of this list.
//! - A link's prefix is `u64::MAX` while its pointer is null, else the prefix of the node it
//!   points to, stored after the pointer (both `Release`). A reader loads the prefix first, so
//!   the pointer it then loads is that node or a later insert between the two, which is
//!   smaller: a prefix below the target's proves the successor below the target. A prefix
//!   above it may be stale for a reader, which then goes down early (still correct, as every
//!   level-0 node is reached from any node before it). For the writer, links are never stale.

use std::alloc::Layout;
use std::cmp::Ordering as CmpOrdering;
use std::mem::size_of;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::key::{key_prefix, TRAILER_LEN};

const MAX_HEIGHT: usize = 12;
/// One node in `BRANCHING` reaches up a level.
const BRANCHING: u32 = 4;
/// Arena block sizes: the first block is small (many memtables stay small: tests, idle
/// databases), each next one doubles up to the maximum. An entry larger than a quarter of the
/// maximum gets a block of its own.
const FIRST_BLOCK_BYTES: usize = 16 << 10;
const BLOCK_BYTES: usize = 1 << 20;

/// Node header; the tower (`height` x [`Link`]), the key and the value follow it.
#[repr(C)]
struct Node {
    key_len: u32,
    value_len: u32,
    height: u32,
    _pad: u32,
}

/// One level of a tower: the successor and its user key's [`key_prefix`] (see the module
/// invariants).
#[repr(C)]
struct Link {
    next: AtomicPtr<Node>,
    prefix: AtomicU64,
}

/// A link's prefix while it has no successor: never below a target's, so never followed blindly.
const NO_PREFIX: u64 = u64::MAX;

const HEADER: usize = size_of::<Node>();
const SLOT: usize = size_of::<Link>();

impl Node {
    /// The `level`-th link of the tower.
    ///
    /// # Safety
    /// `node` points to a node of a live list and `level < height`.
    unsafe fn link(node: *const Node, level: usize) -> &'static Link {
        debug_assert!(level < (*node).height as usize);
        &*((node as *const u8).add(HEADER + level * SLOT) as *const Link)
    }

    /// The `level`-th successor pointer.
    ///
    /// # Safety
    /// As for [`Node::link`].
    unsafe fn next(node: *const Node, level: usize) -> &'static AtomicPtr<Node> {
        &Node::link(node, level).next
    }

    /// # Safety
    /// `node` points to a published node (or the head) of a live list.
    unsafe fn key<'a>(node: *const Node) -> &'a [u8] {
        let n = &*node;
        let start = (node as *const u8).add(HEADER + n.height as usize * SLOT);
        std::slice::from_raw_parts(start, n.key_len as usize)
    }

    /// # Safety
    /// As for [`Node::key`].
    unsafe fn value<'a>(node: *const Node) -> &'a [u8] {
        let n = &*node;
        let start = (node as *const u8).add(HEADER + n.height as usize * SLOT + n.key_len as usize);
        std::slice::from_raw_parts(start, n.value_len as usize)
    }
}

/// A zeroed, page-aligned block of the arena: an anonymous memory map of its own, so its
/// pages are fresh zero pages from the kernel, touched only as the arena fills them, and go
/// back to the kernel when the memtable is dropped. (From the heap, `alloc_zeroed`, glibc
/// served most blocks from its heap once freed blocks raised its mmap threshold, and kept
/// them: the benchmark's process grew by 40 MiB over memtables long flushed.)
///
/// Huge pages were tried (2 MiB blocks aligned and advised with `MADV_HUGEPAGE`): cached
/// memtable gets got 20% faster, but each fault then zeroes, and may compact memory for, a
/// whole 2 MiB page on the writer's thread, and fillbatch lost 35% (3.59M to 2.33M puts/s).
struct ArenaBlock {
    /// The start of `_map`, taken from `as_mut_ptr` (the arena writes through it); a mapping
    /// does not move when the handle does.
    ptr: NonNull<u8>,
    /// Unmapped on drop.
    _map: memmap2::MmapMut,
}

impl ArenaBlock {
    fn new(size: usize) -> ArenaBlock {
        let size = size.max(8);
        // Invariant: the size is bounded by the key and value limits, far below isize::MAX,
        // and 8 is a power of two, so the layout (used only to report a failure) is valid.
        let out_of_memory = || -> ! {
            std::alloc::handle_alloc_error(
                Layout::from_size_align(size, 8).expect("a valid arena layout"),
            )
        };
        // A failed map is out of memory, reported as the global allocator would.
        let mut map = memmap2::MmapMut::map_anon(size).unwrap_or_else(|_| out_of_memory());
        let Some(ptr) = NonNull::new(map.as_mut_ptr()) else {
            out_of_memory()
        };
        ArenaBlock { ptr, _map: map }
    }
}

/// Bump allocator over zeroed blocks.
struct Arena {
    blocks: Vec<ArenaBlock>,
    /// Next free byte of the current block and the bytes left in it.
    cursor: *mut u8,
    left: usize,
    /// Size of the next regular block.
    next_block: usize,
    /// Bytes handed out (what the memtable is charged).
    used: usize,
}

// SAFETY: the raw cursor points into `blocks`, which the arena owns; it is only used under the
// list's writer lock.
unsafe impl Send for Arena {}

impl Arena {
    fn new() -> Arena {
        Arena {
            blocks: Vec::new(),
            cursor: ptr::null_mut(),
            left: 0,
            next_block: FIRST_BLOCK_BYTES,
            used: 0,
        }
    }

    /// `size` bytes, 8-byte aligned and zeroed.
    fn alloc(&mut self, size: usize) -> NonNull<u8> {
        let size = size.next_multiple_of(8);
        self.used += size;
        if size > self.left {
            if size > BLOCK_BYTES / 4 {
                // A block of its own, so the current block's rest is not wasted.
                let block = ArenaBlock::new(size);
                let p = block.ptr;
                self.blocks.push(block);
                return p;
            }
            let block_bytes = self.next_block.max(size);
            self.next_block = (self.next_block * 2).min(BLOCK_BYTES);
            let block = ArenaBlock::new(block_bytes);
            self.cursor = block.ptr.as_ptr();
            self.left = block_bytes;
            self.blocks.push(block);
        }
        let p = self.cursor;
        // SAFETY: size <= left, so the new cursor stays within (or one past) the block.
        self.cursor = unsafe { self.cursor.add(size) };
        self.left -= size;
        // Invariant: the cursor points into a block, never null.
        NonNull::new(p).expect("arena cursor is non-null")
    }
}

struct Writer {
    arena: Arena,
    rng: u32,
}

impl Writer {
    fn random_height(&mut self) -> usize {
        let mut h = 1;
        while h < MAX_HEIGHT {
            // xorshift32
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 17;
            self.rng ^= self.rng << 5;
            if !self.rng.is_multiple_of(BRANCHING) {
                break;
            }
            h += 1;
        }
        h
    }
}

/// A search target: a user key and a trailer (seq << 8 | kind).
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub user_key: &'a [u8],
    pub trailer: u64,
    /// [`key_prefix`] of `user_key`.
    prefix: u64,
}

impl<'a> Target<'a> {
    pub fn new(user_key: &'a [u8], trailer: u64) -> Target<'a> {
        Target {
            user_key,
            trailer,
            prefix: key_prefix(user_key),
        }
    }

    /// Split an encoded internal key (any trailer, seek kinds included). A key shorter than a
    /// trailer is all user key with trailer 0.
    pub fn of(ikey: &'a [u8]) -> Target<'a> {
        match ikey.len().checked_sub(TRAILER_LEN) {
            Some(split) => {
                let mut t = [0u8; TRAILER_LEN];
                t.copy_from_slice(&ikey[split..]);
                Target {
                    user_key: &ikey[..split],
                    trailer: u64::from_le_bytes(t),
                    prefix: key_prefix(&ikey[..split]),
                }
            }
            None => Target {
                user_key: ikey,
                trailer: 0,
                prefix: key_prefix(ikey),
            },
        }
    }
}

/// Order of a stored internal key against a target: user key ascending, trailer descending.
fn compare(stored: &[u8], target: &Target<'_>) -> CmpOrdering {
    let split = stored.len() - TRAILER_LEN;
    stored[..split].cmp(target.user_key).then_with(|| {
        let mut t = [0u8; TRAILER_LEN];
        t.copy_from_slice(&stored[split..]);
        target.trailer.cmp(&u64::from_le_bytes(t))
    })
}

/// The successor of `x` on `level` and how it orders against `target` (`Greater` if there is
/// none). A reader may get `Greater` for a successor that is in fact smaller (a stale prefix,
/// see the module invariants), never `Less` for one that is not.
///
/// # Safety
/// `x` is the head or a published node of a live list, and `level` is below its height.
#[inline]
unsafe fn successor(
    x: *const Node,
    level: usize,
    target: &Target<'_>,
) -> (*const Node, CmpOrdering) {
    let link = Node::link(x, level);
    let hint = link.prefix.load(Ordering::Acquire);
    let next = link.next.load(Ordering::Acquire);
    if next.is_null() {
        return (next, CmpOrdering::Greater);
    }
    match hint.cmp(&target.prefix) {
        CmpOrdering::Equal => (next, compare(Node::key(next), target)),
        decided => (next, decided),
    }
}

/// A position in the list: a published node, or none.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Cursor(*const Node);

impl Default for Cursor {
    /// No position.
    fn default() -> Self {
        Cursor(ptr::null())
    }
}

// SAFETY: a cursor is only dereferenced through the list it came from (see `SkipList`'s
// methods), which outlives it by the caller's contract (the memtable iterator holds an Arc).
unsafe impl Send for Cursor {}
unsafe impl Sync for Cursor {}

impl Cursor {
    pub fn is_valid(self) -> bool {
        !self.0.is_null()
    }
}

pub struct SkipList {
    head: NonNull<Node>,
    /// Height of the tallest tower (1..=MAX_HEIGHT).
    height: AtomicUsize,
    len: AtomicUsize,
    /// Arena bytes used by nodes, for the memtable's size accounting.
    memory: AtomicUsize,
    writer: Mutex<Writer>,
}

// SAFETY: readers only follow published nodes (complete, never freed while the list lives);
// every mutation happens under `writer`.
unsafe impl Send for SkipList {}
unsafe impl Sync for SkipList {}

impl SkipList {
    pub fn new() -> SkipList {
        let mut arena = Arena::new();
        let head = arena.alloc(HEADER + MAX_HEIGHT * SLOT).cast::<Node>();
        // SAFETY: freshly allocated, zeroed, large enough and aligned for the header.
        unsafe {
            head.as_ptr().write(Node {
                key_len: 0,
                value_len: 0,
                height: MAX_HEIGHT as u32,
                _pad: 0,
            });
            for level in 0..MAX_HEIGHT {
                Node::link(head.as_ptr(), level)
                    .prefix
                    .store(NO_PREFIX, Ordering::Relaxed);
            }
        }
        SkipList {
            head,
            height: AtomicUsize::new(1),
            len: AtomicUsize::new(0),
            memory: AtomicUsize::new(arena.used),
            writer: Mutex::new(Writer {
                arena,
                rng: 0x2545_F491,
            }),
        }
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the arena used by nodes.
    pub fn memory(&self) -> usize {
        self.memory.load(Ordering::Relaxed)
    }

    fn head(&self) -> *const Node {
        self.head.as_ptr()
    }

    /// The first node at or after `target`, filling `prev` (if given) with the last node before
    /// it on each level.
    fn find_greater_or_equal(
        &self,
        target: &Target<'_>,
        mut prev: Option<&mut [*const Node; MAX_HEIGHT]>,
    ) -> *const Node {
        let mut x = self.head();
        let mut level = self.height.load(Ordering::Relaxed) - 1;
        loop {
            // SAFETY: x is the head or a published node; level < its height (towers above a
            // node's height are never visited: we only move right on the current level).
            let (next, ord) = unsafe { successor(x, level, target) };
            if ord == CmpOrdering::Less {
                x = next;
            } else {
                if let Some(p) = prev.as_deref_mut() {
                    p[level] = x;
                }
                if level == 0 {
                    return next;
                }
                level -= 1;
            }
        }
    }

    /// The last node before `target` (`inclusive`: at or before), or the head.
    fn find_less_than(&self, target: &Target<'_>, inclusive: bool) -> *const Node {
        let mut x = self.head();
        let mut level = self.height.load(Ordering::Relaxed) - 1;
        loop {
            // SAFETY: as in `find_greater_or_equal`.
            let (next, ord) = unsafe { successor(x, level, target) };
            let before = ord == CmpOrdering::Less || (inclusive && ord == CmpOrdering::Equal);
            if before {
                x = next;
            } else if level == 0 {
                return x;
            } else {
                level -= 1;
            }
        }
    }

    fn cursor(&self, node: *const Node) -> Cursor {
        if node == self.head() {
            Cursor(ptr::null())
        } else {
            Cursor(node)
        }
    }

    /// Insert `ikey` (an encoded internal key) with `value`. Each internal key is inserted at
    /// most once (every write has its own sequence number); a duplicate is still linked, after
    /// the existing entry.
    pub fn insert(&self, ikey: &[u8], value: &[u8]) {
        debug_assert!(ikey.len() >= TRAILER_LEN);
        let target = Target::of(ikey);
        let mut w = self.writer.lock();
        let mut prev = [self.head(); MAX_HEIGHT];
        self.find_greater_or_equal(&target, Some(&mut prev));
        let height = w.random_height();
        let current = self.height.load(Ordering::Relaxed);
        if height > current {
            // prev[current..height] are already the head. A reader that sees the new height
            // before the links finds null towers on the head there and simply goes down.
            self.height.store(height, Ordering::Relaxed);
        }
        let size = HEADER + height * SLOT + ikey.len() + value.len();
        let node = w.arena.alloc(size).cast::<Node>().as_ptr();
        self.memory.store(w.arena.used, Ordering::Relaxed);
        // SAFETY: the allocation is fresh, zeroed, 8-byte aligned and `size` bytes long: the
        // header, `height` slots, the key and the value fit exactly. Nobody else can see it
        // until the Release stores below.
        unsafe {
            node.write(Node {
                key_len: ikey.len() as u32,
                value_len: value.len() as u32,
                height: height as u32,
                _pad: 0,
            });
            let data = (node as *mut u8).add(HEADER + height * SLOT);
            ptr::copy_nonoverlapping(ikey.as_ptr(), data, ikey.len());
            ptr::copy_nonoverlapping(value.as_ptr(), data.add(ikey.len()), value.len());
            for (level, p) in prev.iter().enumerate().take(height) {
                let from = Node::link(*p, level);
                let to = Node::link(node, level);
                to.next
                    .store(from.next.load(Ordering::Relaxed), Ordering::Relaxed);
                to.prefix
                    .store(from.prefix.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            // Publish bottom-up: once linked on level 0 the node is in the list. The pointer
            // before the prefix (see the module invariants).
            for (level, p) in prev.iter().enumerate().take(height) {
                let link = Node::link(*p, level);
                link.next.store(node, Ordering::Release);
                link.prefix.store(target.prefix, Ordering::Release);
            }
        }
        self.len.fetch_add(1, Ordering::Relaxed);
    }

    /// The first entry at or after `target`.
    pub fn seek(&self, target: &Target<'_>) -> Cursor {
        self.cursor(self.find_greater_or_equal(target, None))
    }

    /// The last entry at or before `target`.
    pub fn seek_for_prev(&self, target: &Target<'_>) -> Cursor {
        self.cursor(self.find_less_than(target, true))
    }

    pub fn first(&self) -> Cursor {
        // SAFETY: the head's tower has MAX_HEIGHT slots.
        self.cursor(unsafe { Node::next(self.head(), 0) }.load(Ordering::Acquire))
    }

    pub fn last(&self) -> Cursor {
        let mut x = self.head();
        let mut level = self.height.load(Ordering::Relaxed) - 1;
        loop {
            // SAFETY: as in `find_greater_or_equal`.
            let next = unsafe { Node::next(x, level) }.load(Ordering::Acquire);
            if !next.is_null() {
                x = next;
            } else if level == 0 {
                return self.cursor(x);
            } else {
                level -= 1;
            }
        }
    }

    /// The entry after `c` (`c` must be valid and from this list).
    pub fn next(&self, c: Cursor) -> Cursor {
        debug_assert!(c.is_valid());
        // SAFETY: c is a published node of this list (the caller's contract).
        Cursor(unsafe { Node::next(c.0, 0) }.load(Ordering::Acquire))
    }

    /// The entry before `c` (`c` must be valid and from this list).
    pub fn prev(&self, c: Cursor) -> Cursor {
        let target = Target::of(self.key(c));
        self.cursor(self.find_less_than(&target, false))
    }

    /// The encoded internal key at `c` (`c` must be valid and from this list).
    pub fn key(&self, c: Cursor) -> &[u8] {
        debug_assert!(c.is_valid());
        // SAFETY: c is a published node of this list, which lives as long as `self`.
        unsafe { Node::key(c.0) }
    }

    /// The value at `c` (`c` must be valid and from this list).
    pub fn value(&self, c: Cursor) -> &[u8] {
        debug_assert!(c.is_valid());
        // SAFETY: as for `key`.
        unsafe { Node::value(c.0) }
    }
}

impl Default for SkipList {
    fn default() -> Self {
        SkipList::new()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;
    use crate::key::{compare_internal, internal_key};

    /// A key wrapper ordered like internal keys, for the model.
    #[derive(PartialEq, Eq, Clone, Debug)]
    struct Ik(Vec<u8>);
    impl Ord for Ik {
        fn cmp(&self, o: &Self) -> CmpOrdering {
            compare_internal(&self.0, &o.0)
        }
    }
    impl PartialOrd for Ik {
        fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
            Some(self.cmp(o))
        }
    }

    fn collect_forward(list: &SkipList) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        let mut c = list.first();
        while c.is_valid() {
            out.push((list.key(c).to_vec(), list.value(c).to_vec()));
            c = list.next(c);
        }
        out
    }

    fn collect_backward(list: &SkipList) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        let mut c = list.last();
        while c.is_valid() {
            out.push((list.key(c).to_vec(), list.value(c).to_vec()));
            c = list.prev(c);
        }
        out
    }

    proptest! {
        /// A smaller prefix means a smaller key: what lets a search go down without loading
        /// the successor.
        #[test]
        fn a_smaller_key_prefix_means_a_smaller_key(
            a in proptest::collection::vec(0u8..3, 0..11),
            b in proptest::collection::vec(0u8..3, 0..11),
        ) {
            if key_prefix(&a) < key_prefix(&b) {
                prop_assert!(a < b);
            }
            if a <= b {
                prop_assert!(key_prefix(&a) <= key_prefix(&b));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Order, both directions and both seeks agree with a BTreeMap under internal-key order.
        #[test]
        fn behaves_like_an_ordered_map(
            // Keys up to 12 bytes of a small alphabet with 0: many share their 8-byte prefix
            // (links then compare whole keys) or differ only in zero padding.
            entries in proptest::collection::vec(
                (proptest::collection::vec(0u8..4, 0..12), 0u64..50, 0u8..2,
                 proptest::collection::vec(any::<u8>(), 0..40)), 0..300),
            seeks in proptest::collection::vec(
                (proptest::collection::vec(0u8..4, 0..12), 0u64..60), 0..40),
        ) {
            let list = SkipList::new();
            let mut model = BTreeMap::new();
            for (uk, seq, kind, value) in entries {
                let ik = internal_key(&uk, seq, kind);
                if model.contains_key(&Ik(ik.clone())) {
                    continue; // each internal key once, as the engine guarantees
                }
                list.insert(&ik, &value);
                model.insert(Ik(ik), value);
            }
            let expected: Vec<(Vec<u8>, Vec<u8>)> =
                model.iter().map(|(k, v)| (k.0.clone(), v.clone())).collect();
            prop_assert_eq!(list.len(), expected.len());
            prop_assert_eq!(collect_forward(&list), expected.clone());
            let mut reversed = expected.clone();
            reversed.reverse();
            prop_assert_eq!(collect_backward(&list), reversed);
            for (uk, seq) in seeks {
                let t = internal_key(&uk, seq, crate::key::KIND_SEEK);
                let target = Target::of(&t);
                let ge = model.range(Ik(t.clone())..).next().map(|(k, _)| k.0.clone());
                let c = list.seek(&target);
                prop_assert_eq!(c.is_valid().then(|| list.key(c).to_vec()), ge);
                let le = model.range(..=Ik(t.clone())).next_back().map(|(k, _)| k.0.clone());
                let c = list.seek_for_prev(&target);
                prop_assert_eq!(c.is_valid().then(|| list.key(c).to_vec()), le);
            }
        }
    }

    #[test]
    fn large_values_get_their_own_blocks() {
        let list = SkipList::new();
        let big = vec![7u8; BLOCK_BYTES];
        list.insert(&internal_key(b"b", 1, 1), &big);
        list.insert(&internal_key(b"a", 2, 1), b"small");
        list.insert(&internal_key(b"c", 3, 1), &big[..BLOCK_BYTES / 2]);
        let all = collect_forward(&list);
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].1, b"small");
        assert_eq!(all[1].1, big);
        assert_eq!(all[2].1.len(), BLOCK_BYTES / 2);
        assert!(list.memory() >= BLOCK_BYTES + BLOCK_BYTES / 2);
    }

    /// Readers walking the list while one writer inserts always see a sorted list that holds
    /// at least every entry inserted before they started.
    #[test]
    fn readers_see_a_sorted_list_while_a_writer_inserts() {
        let list = Arc::new(SkipList::new());
        let inserted = Arc::new(AtomicUsize::new(0));
        let total = 20_000u64;
        let writer = {
            let list = Arc::clone(&list);
            let inserted = Arc::clone(&inserted);
            std::thread::spawn(move || {
                // A fixed permutation of 0..total (multiplying by an odd number mod 2^k).
                for i in 0..total {
                    let n = (i * 7919) % total;
                    list.insert(
                        &internal_key(format!("key{n:08}").as_bytes(), n + 1, 1),
                        &n.to_le_bytes(),
                    );
                    inserted.fetch_add(1, Ordering::Release);
                }
            })
        };
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let list = Arc::clone(&list);
                let inserted = Arc::clone(&inserted);
                std::thread::spawn(move || loop {
                    let before = inserted.load(Ordering::Acquire);
                    let mut seen = 0usize;
                    let mut last: Option<Vec<u8>> = None;
                    let mut c = list.first();
                    while c.is_valid() {
                        let k = list.key(c).to_vec();
                        if let Some(l) = &last {
                            assert_eq!(compare_internal(l, &k), CmpOrdering::Less);
                        }
                        let n: u64 = std::str::from_utf8(&k[3..11]).unwrap().parse().unwrap();
                        assert_eq!(list.value(c), n.to_le_bytes());
                        last = Some(k);
                        seen += 1;
                        c = list.next(c);
                    }
                    assert!(seen >= before, "saw {seen} entries, {before} were inserted");
                    if before as u64 == total {
                        return;
                    }
                })
            })
            .collect();
        writer.join().unwrap();
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(list.len(), total as usize);
    }
}
