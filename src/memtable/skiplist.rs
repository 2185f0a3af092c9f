//! An arena-backed skiplist of internal keys: one writer at a time, lock-free readers (the
//! design of LevelDB's skiplist and of RocksDB's `InlineSkipList` without concurrent inserts).
//!
//! Each node is one allocation in an arena: a small header, its tower of links, the encoded
//! internal key (user key + 8-byte trailer, see `key.rs`) and the value. A search compares the
//! target with the key bytes stored right after the tower, so it touches one or two cache lines
//! per node and never follows a second pointer; an insert is a bump allocation. Writes are
//! already serialized by the group-commit leader, so inserts need no CAS loops.
//!
//! Each link holds, beside the successor pointer, a *hint* about the successor's user key: the
//! length `c` of the prefix it shares with the user key of the link's own node (the longest
//! common prefix, capped at 255) and the successor's next 7 bytes after it. A search keeps `m`,
//! the length of the prefix the target shares with the node it stands on. Since the node is
//! below the target and below the successor: `m < c` means the target differs from the node
//! before the successor does, so the successor is below the target; `m > c` means it is above;
//! `m == c` leaves the 7 bytes to compare. Only a tie loads the successor's key. So a search
//! decides to go down a level without loading the successor at all (that load was a cache miss
//! per level, the largest cost of an insert into a big memtable), whatever prefix the keys
//! share: zero-padded decimal ids, or any long common prefix, cost no more than random keys.
//! (An earlier version kept the successor's first 8 bytes, which decided nothing for keys such
//! as `0000000000123456`.)
//!
//! The writer keeps a *splice*: the node before the last insert's position on each level. An
//! insert whose key falls between one of its lowest levels' node and that node's successor
//! starts its search there, so ascending inserts (bulk loads, auto-increment ids, sorted
//! batches) start on level 0 and load no node.
//!
//! Invariants (what makes the `unsafe` blocks sound):
//! - Nodes live in arena blocks owned by the list and freed only when the list is dropped; a
//!   reader holding `&SkipList` may follow any node pointer it loaded from the list.
//! - A node's header, key, value and whole tower are written before the node is published by a
//!   `Release` store into a predecessor's tower; readers load towers with `Acquire`, so a node
//!   they reach is complete. After publication only tower slots change, and each change only
//!   links in a newer node between a node and its old successor.
//! - Inserts (the arena, the height generator, the links, the splice) are serialized by
//!   `writer`. The splice's node on each level is the head or a node linked on that level,
//!   and its successor there is the first node on that level after the last insert.
//! - Every node pointer stored in a tower is null or points to a node of this list.
//! - A link's hint is [`NO_SUCCESSOR`] while its pointer is null, else the hint of the node it
//!   points to relative to the link's node, stored after the pointer (both `Release`). A
//!   reader loads the hint first, so the pointer it then loads is that node or a later insert
//!   between the two, which is smaller: a hint saying the successor is below the target is
//!   true of the node loaded, and one saying above may be stale, which only sends the reader
//!   down early (still correct: every level-0 node is reached from any node before it). For
//!   the writer, links are never stale.
//! - `m` is always exact for the node a search stands on (or capped at 255 with it): after a
//!   move decided by `m < c` the target differs from every key between the old node and the
//!   hinted successor at `m` too; after any other move `m` is recomputed from the key of the
//!   node reached (whose tower the search loads anyway).

use std::alloc::Layout;
use std::cmp::Ordering as CmpOrdering;
use std::mem::size_of;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::key::TRAILER_LEN;

/// Enough for 2^20 entries at full speed (a 64 MiB memtable of small entries); taller lists
/// still work, with longer runs on the top level.
const MAX_HEIGHT: usize = 20;
/// One node in `BRANCHING` reaches up a level. 2, not LevelDB's 4: with link hints a search
/// loads a node only when it moves forward to it, and it moves forward about `BRANCHING - 1`
/// times per level over log_BRANCHING(n) levels, so 2 loads a third fewer nodes than 4 (about
/// 19 against 28 at 500,000 entries), for 16 bytes more tower per entry on average. Measured
/// (`cargo bench --bench engine -- memtable`, 500,000 random 16-byte keys): insert 3.17 ->
/// 1.46 µs, get 2.35 -> 1.88 µs.
const BRANCHING: u32 = 2;
/// How many levels of the splice an insert tries, from the bottom, before it searches from the
/// top. An insert just after the previous one (ascending keys: a bulk load, auto-increment
/// ids, a batch sorted by key) starts on level 0 and loads no node; a random insert pays at
/// most this many comparisons with nodes the previous search left in the cache.
const SPLICE_LEVELS: usize = 4;
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

/// One level of a tower: the successor and a [`hint`] about its key (see the module docs).
#[repr(C)]
struct Link {
    next: AtomicPtr<Node>,
    hint: AtomicU64,
}

/// A link's hint while it has no successor. A reader may load it together with the pointer
/// of the node just linked in; it then goes down (see [`successor`]).
const NO_SUCCESSOR: u64 = u64::MAX;

/// The longest common prefix a hint records; longer ones are recorded as this.
const MAX_SHARED: usize = 255;

/// The 7 bytes of `key` from `at`, zero-padded, in the low 56 bits (big-endian).
#[inline]
fn seven_bytes(key: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    let rest = key.get(at..).unwrap_or_default();
    let n = rest.len().min(7);
    bytes[1..1 + n].copy_from_slice(&rest[..n]);
    u64::from_be_bytes(bytes)
}

/// Length of the common prefix of `a` and `b`, capped at [`MAX_SHARED`].
#[inline]
fn shared_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len()).min(MAX_SHARED);
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_be_bytes(a[i..i + 8].try_into().unwrap_or_default());
        let y = u64::from_be_bytes(b[i..i + 8].try_into().unwrap_or_default());
        if x != y {
            return i + (x ^ y).leading_zeros() as usize / 8;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// The hint of a link to a node with user key `successor` from a node whose user key shares
/// `shared` bytes with it (`shared` already capped at [`MAX_SHARED`]).
#[inline]
fn hint(shared: usize, successor: &[u8]) -> u64 {
    ((shared as u64) << 56) | seven_bytes(successor, shared)
}

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
    /// The splice: the node before the last insert's position on each level (the head where
    /// there is none). Only the writer changes links, so each node's successor on its level
    /// is still the node after that position: an insert whose key falls between the two starts
    /// its search there (see [`SkipList::splice_start`]).
    splice: [*const Node; MAX_HEIGHT],
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
}

impl<'a> Target<'a> {
    pub fn new(user_key: &'a [u8], trailer: u64) -> Target<'a> {
        Target { user_key, trailer }
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
                }
            }
            None => Target {
                user_key: ikey,
                trailer: 0,
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

/// The user key of a stored internal key.
#[inline]
fn user_key_of(ikey: &[u8]) -> &[u8] {
    &ikey[..ikey.len() - TRAILER_LEN]
}

/// The successor of `x` on `level`, how it orders against `target` (`Greater` if there is
/// none), and whether `m` (the prefix `target` shares with `x`, see the module docs) also holds
/// for the successor. A reader may get `Greater` for a successor that is in fact smaller (a
/// stale hint, see the module invariants), never `Less` for one that is not.
///
/// # Safety
/// `x` is the head or a published node of a live list, and `level` is below its height.
#[inline]
unsafe fn successor(
    x: *const Node,
    level: usize,
    target: &Target<'_>,
    m: usize,
) -> (*const Node, CmpOrdering, bool) {
    let link = Node::link(x, level);
    let hint = link.hint.load(Ordering::Acquire);
    let next = link.next.load(Ordering::Acquire);
    if next.is_null() || hint == NO_SUCCESSOR {
        // No successor, or one a reader sees with the hint the link had before it had one
        // (the pointer is published first): going down is always safe. Read as a hint,
        // `NO_SUCCESSOR` would claim a shared length of 255 and move the reader forward.
        return (next, CmpOrdering::Greater, false);
    }
    // `m` below the shared length decides `Less` by itself, and then holds for the successor.
    let keeps_m = m < (hint >> 56) as usize;
    match decide(hint, m, target.user_key) {
        Some(decided) => (next, decided, keeps_m),
        None => (next, compare(Node::key(next), target), false),
    }
}

/// How the successor a link's `hint` describes orders against a target whose user key shares
/// `m` bytes with the link's node (the node is below both): `Less` if the successor is below
/// the target, `Greater` if above, `None` if only the keys themselves can tell.
#[inline]
fn decide(hint: u64, m: usize, target_user_key: &[u8]) -> Option<CmpOrdering> {
    let shared = (hint >> 56) as usize;
    match m.cmp(&shared) {
        // The target leaves the node's prefix before the successor does: it is above both.
        CmpOrdering::Less => Some(CmpOrdering::Less),
        // The target follows the node past where the successor leaves it: it is below.
        CmpOrdering::Greater => Some(CmpOrdering::Greater),
        CmpOrdering::Equal => {
            match (hint & 0x00ff_ffff_ffff_ffff).cmp(&seven_bytes(target_user_key, shared)) {
                CmpOrdering::Equal => None,
                decided => Some(decided),
            }
        }
    }
}

/// `m` for `target` on node `x`, a published node just moved to.
///
/// # Safety
/// As for [`successor`].
#[inline]
unsafe fn shared_with(x: *const Node, target: &Target<'_>) -> usize {
    shared_prefix(user_key_of(Node::key(x)), target.user_key)
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
                    .hint
                    .store(NO_SUCCESSOR, Ordering::Relaxed);
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
                splice: [head.as_ptr() as *const Node; MAX_HEIGHT],
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
    /// it on each level and the prefix `target` shares with that node.
    fn find_greater_or_equal(
        &self,
        target: &Target<'_>,
        prev: Option<&mut [(*const Node, usize); MAX_HEIGHT]>,
    ) -> *const Node {
        // The head stands for an empty key below every other: it shares nothing.
        let top = self.height.load(Ordering::Relaxed) - 1;
        // SAFETY: the head's tower has MAX_HEIGHT slots, more than `top`.
        unsafe { self.descend(self.head(), 0, top, target, prev) }
    }

    /// `find_greater_or_equal` from node `x`, which is before `target` and shares `m` bytes
    /// with it, on `level`: fills `prev[..=level]`.
    ///
    /// # Safety
    /// `x` is the head or a published node of this list with `level` below its height, and
    /// `x` is before `target` (so every node of the result is reached from `x`).
    unsafe fn descend(
        &self,
        mut x: *const Node,
        mut m: usize,
        mut level: usize,
        target: &Target<'_>,
        mut prev: Option<&mut [(*const Node, usize); MAX_HEIGHT]>,
    ) -> *const Node {
        loop {
            // SAFETY: x is the head or a published node; level < its height (towers above a
            // node's height are never visited: we only move right on the current level).
            let (next, ord, keeps_m) = unsafe { successor(x, level, target, m) };
            if ord == CmpOrdering::Less {
                x = next;
                if !keeps_m {
                    // SAFETY: next is a published node of this list.
                    m = unsafe { shared_with(x, target) };
                }
            } else {
                if let Some(p) = prev.as_deref_mut() {
                    p[level] = (x, m);
                }
                if level == 0 {
                    return next;
                }
                level -= 1;
            }
        }
    }

    /// Where an insert of `target` can start its search: the lowest of the first
    /// [`SPLICE_LEVELS`] levels on which `target` falls between the splice's node and that
    /// node's successor, with the prefix `target` shares with the node; `None` if none does.
    /// Only the writer (holding `splice` through the writer lock) may call this.
    fn splice_start(
        &self,
        splice: &[*const Node; MAX_HEIGHT],
        target: &Target<'_>,
    ) -> Option<(*const Node, usize, usize)> {
        let height = self.height.load(Ordering::Relaxed);
        for (level, &node) in splice.iter().enumerate().take(SPLICE_LEVELS.min(height)) {
            let m = if node == self.head() {
                0
            } else {
                // SAFETY: the splice holds the head or published nodes of this list.
                if compare(unsafe { Node::key(node) }, target) != CmpOrdering::Less {
                    continue;
                }
                // SAFETY: as above.
                unsafe { shared_with(node, target) }
            };
            // SAFETY: the splice's node on `level` was linked on `level`, so its tower is
            // taller; for the writer hints are never stale, so `Greater` is exact.
            let (_, ord, _) = unsafe { successor(node, level, target, m) };
            if ord != CmpOrdering::Less {
                return Some((node, m, level));
            }
        }
        None
    }

    /// The last node before `target` (`inclusive`: at or before), or the head.
    fn find_less_than(&self, target: &Target<'_>, inclusive: bool) -> *const Node {
        let mut x = self.head();
        let mut m = 0;
        let mut level = self.height.load(Ordering::Relaxed) - 1;
        loop {
            // SAFETY: as in `find_greater_or_equal`.
            let (next, ord, keeps_m) = unsafe { successor(x, level, target, m) };
            let before = ord == CmpOrdering::Less || (inclusive && ord == CmpOrdering::Equal);
            if before {
                x = next;
                if !keeps_m {
                    // SAFETY: next is a published node of this list.
                    m = unsafe { shared_with(x, target) };
                }
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
        let mut prev = [(self.head(), 0usize); MAX_HEIGHT];
        let height = w.random_height();
        // The highest level whose `prev` entry the search filled.
        let searched_from = match self.splice_start(&w.splice, &target) {
            Some((node, m, level)) => {
                // SAFETY: `splice_start` checked that `node` is before `target` on `level`.
                unsafe { self.descend(node, m, level, &target, Some(&mut prev)) };
                // Above the start the splice still brackets `target`; the new node's tower
                // needs those levels' prefixes too.
                for l in level + 1..height {
                    let node = w.splice[l];
                    let m = if node == prev[l - 1].0 {
                        prev[l - 1].1
                    } else if node == self.head() {
                        0
                    } else {
                        // SAFETY: the splice holds the head or published nodes of this list.
                        unsafe { shared_with(node, &target) }
                    };
                    prev[l] = (node, m);
                }
                level
            }
            None => {
                self.find_greater_or_equal(&target, Some(&mut prev));
                self.height.load(Ordering::Relaxed) - 1
            }
        };
        let current = self.height.load(Ordering::Relaxed);
        if height > current {
            // prev[current..height] are already the head. A reader that sees the new height
            // before the links finds null towers on the head there and simply goes down.
            self.height.store(height, Ordering::Relaxed);
        }
        let size = HEADER + height * SLOT + ikey.len() + value.len();
        let node = w.arena.alloc(size).cast::<Node>().as_ptr();
        self.memory.store(w.arena.used, Ordering::Relaxed);
        let user_key = target.user_key;
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
            for (level, &(p, m)) in prev.iter().enumerate().take(height) {
                let from = Node::link(p, level);
                let to = Node::link(node, level);
                let successor = from.next.load(Ordering::Relaxed);
                let old_hint = from.hint.load(Ordering::Relaxed);
                let new_hint = if successor.is_null() {
                    NO_SUCCESSOR
                } else if m > (old_hint >> 56) as usize {
                    // The new key follows `p` past where the successor leaves it, so it leaves
                    // the new key at the same place, with the same bytes after.
                    old_hint
                } else {
                    let successor_key = user_key_of(Node::key(successor));
                    hint(shared_prefix(user_key, successor_key), successor_key)
                };
                to.next.store(successor, Ordering::Relaxed);
                to.hint.store(new_hint, Ordering::Relaxed);
            }
            // Publish bottom-up: once linked on level 0 the node is in the list. The pointer
            // before the hint (see the module invariants).
            for (level, &(p, m)) in prev.iter().enumerate().take(height) {
                let link = Node::link(p, level);
                link.next.store(node, Ordering::Release);
                link.hint.store(hint(m, user_key), Ordering::Release);
            }
        }
        // The splice now stands just after the new node: the node itself on its levels, its
        // predecessors above (unchanged above the levels the search filled).
        let updated = searched_from.max(height - 1) + 1;
        for (l, (slot, &(before, _))) in w.splice.iter_mut().zip(&prev).take(updated).enumerate() {
            *slot = if l < height {
                node as *const Node
            } else {
                before
            };
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
        /// A hint decides only what the keys themselves would: for a node `x` below its
        /// successor `y` and a target `t` above `x`, with `m` the prefix `t` shares with `x`.
        #[test]
        fn a_hint_decides_as_the_keys_would(
            mut keys in proptest::collection::vec(
                proptest::collection::vec(0u8..3, 0..12), 3),
        ) {
            keys.sort();
            let (x, y, t) = (&keys[0], &keys[1], &keys[2]);
            // Every order of y and t above x.
            for (y, t) in [(y, t), (t, y)] {
                if x >= y || x >= t {
                    continue;
                }
                let h = hint(shared_prefix(x, y), y);
                if let Some(decided) = decide(h, shared_prefix(x, t), t) {
                    prop_assert_eq!(decided, y.cmp(t), "x {:?} y {:?} t {:?}", x, y, t);
                }
            }
        }

        /// The head (an empty key below all) works the same with `m = 0`.
        #[test]
        fn a_hint_from_the_head_decides_as_the_keys_would(
            y in proptest::collection::vec(0u8..3, 0..12),
            t in proptest::collection::vec(0u8..3, 0..12),
        ) {
            if let Some(decided) = decide(hint(0, &y), 0, &t) {
                prop_assert_eq!(decided, y.cmp(&t));
            }
        }

        #[test]
        fn shared_prefix_is_the_common_prefix_capped(
            a in proptest::collection::vec(0u8..2, 0..300),
            b in proptest::collection::vec(0u8..2, 0..300),
        ) {
            let expected = a.iter().zip(&b).take_while(|(p, q)| p == q).count().min(MAX_SHARED);
            prop_assert_eq!(shared_prefix(&a, &b), expected);
        }
    }

    /// Every level is in strictly ascending internal-key order, every node on a level is also
    /// on the level below, and every hint is the one its link's nodes give.
    fn check_levels(list: &SkipList) -> Result<(), String> {
        let height = list.height.load(Ordering::Relaxed);
        let mut below: Vec<*const Node> = Vec::new();
        for level in 0..MAX_HEIGHT {
            let mut on_level = Vec::new();
            let mut x = list.head();
            loop {
                // SAFETY: x is the head or a node of the list; level < its height (the head
                // has MAX_HEIGHT slots, a node is reached on a level only through a link on it).
                let link = unsafe { Node::link(x, level) };
                let next = link.next.load(Ordering::Acquire);
                let h = link.hint.load(Ordering::Acquire);
                if next.is_null() {
                    if h != NO_SUCCESSOR {
                        return Err(format!("level {level}: a null link has hint {h:x}"));
                    }
                    break;
                }
                // SAFETY: as above.
                let (xk, nk) = unsafe {
                    let xk = if x == list.head() {
                        &[][..]
                    } else {
                        user_key_of(Node::key(x))
                    };
                    (xk, user_key_of(Node::key(next)))
                };
                if h != hint(shared_prefix(xk, nk), nk) {
                    return Err(format!("level {level}: stale hint after {xk:?}"));
                }
                if x != list.head() {
                    // SAFETY: as above.
                    let order = unsafe { compare(Node::key(x), &Target::of(Node::key(next))) };
                    if order != CmpOrdering::Less {
                        return Err(format!("level {level}: {xk:?} not below {nk:?}"));
                    }
                }
                on_level.push(next as *const Node);
                x = next;
            }
            if level >= height && !on_level.is_empty() {
                return Err(format!("level {level} above the height {height} has nodes"));
            }
            if level > 0 && on_level.iter().any(|n| !below.contains(n)) {
                return Err(format!("level {level} has a node missing below"));
            }
            below = on_level;
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Order, both directions and both seeks agree with a BTreeMap under internal-key order,
        /// and every level is well formed, whatever the insert order: as generated, or sorted in
        /// runs (ascending or descending, so that inserts follow the previous one and start
        /// from the splice).
        #[test]
        fn behaves_like_an_ordered_map(
            // Keys up to 12 bytes of a small alphabet with 0: many share their 8-byte prefix
            // (links then compare whole keys) or differ only in zero padding.
            mut entries in proptest::collection::vec(
                (proptest::collection::vec(0u8..4, 0..12), 0u64..50, 0u8..2,
                 proptest::collection::vec(any::<u8>(), 0..40)), 0..300),
            seeks in proptest::collection::vec(
                (proptest::collection::vec(0u8..4, 0..12), 0u64..60), 0..40),
            run in 1usize..64,
            order in 0u8..3,
        ) {
            for chunk in entries.chunks_mut(run) {
                match order {
                    1 => chunk.sort_by_key(|(uk, seq, _, _)| (uk.clone(), u64::MAX - seq)),
                    2 => chunk.sort_by_key(|(uk, seq, _, _)| (std::cmp::Reverse(uk.clone()), *seq)),
                    _ => {}
                }
            }
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
            prop_assert_eq!(check_levels(&list), Ok(()));
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

    /// A writer appending ascending keys links new nodes after links that had no successor;
    /// readers seeking the keys already inserted (around the tail) must still find them
    /// exactly (a reader that loads a link's old "no successor" hint with its new pointer once
    /// moved past its target).
    #[test]
    fn seeks_near_the_tail_are_exact_while_a_writer_appends() {
        let list = Arc::new(SkipList::new());
        let inserted = Arc::new(AtomicUsize::new(0));
        let total = 30_000u64;
        let key = |n: u64| internal_key(format!("k{n:08}").as_bytes(), n + 1, 1);
        let writer = {
            let list = Arc::clone(&list);
            let inserted = Arc::clone(&inserted);
            std::thread::spawn(move || {
                for n in 0..total {
                    list.insert(&key(n), b"v");
                    inserted.store(n as usize + 1, Ordering::Release);
                }
            })
        };
        let reader = {
            let list = Arc::clone(&list);
            let inserted = Arc::clone(&inserted);
            std::thread::spawn(move || loop {
                let done = inserted.load(Ordering::Acquire) as u64;
                for n in done.saturating_sub(8)..done {
                    let k = key(n);
                    let c = list.seek(&Target::of(&k));
                    assert!(c.is_valid() && list.key(c) == &k[..], "seek to k{n:08}");
                }
                if done == total {
                    return;
                }
            })
        };
        writer.join().unwrap();
        reader.join().unwrap();
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
                    // Searches (through the hints, which the writer is changing) find every
                    // entry inserted before they started, and both neighbours of it.
                    for i in (0..before as u64).step_by(97) {
                        let n = (i * 7919) % total;
                        let key = internal_key(format!("key{n:08}").as_bytes(), n + 1, 1);
                        let c = list.seek(&Target::of(&key));
                        assert!(c.is_valid(), "key{n:08} not found");
                        assert_eq!(list.key(c), &key[..], "seek to key{n:08}");
                        let c = list.seek_for_prev(&Target::of(&key));
                        assert_eq!(list.key(c), &key[..], "seek_for_prev to key{n:08}");
                    }
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
