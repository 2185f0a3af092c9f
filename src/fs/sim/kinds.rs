//! What [`SimFs`](super::SimFs) counts, how it crashes, and how a fault is chosen.

use std::fmt;

/// The kinds of operation [`SimFs`](super::SimFs) counts and can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpKind {
    /// [`FileSystem::create_dir_all`](crate::fs::FileSystem::create_dir_all).
    CreateDir,
    /// [`FileSystem::create`](crate::fs::FileSystem::create).
    Create,
    /// [`FileSystem::open`](crate::fs::FileSystem::open) (also the first half of `read_all`).
    Open,
    /// [`RandomAccessFile::read_at`](crate::fs::RandomAccessFile::read_at).
    Read,
    /// [`WritableFile::append`](crate::fs::WritableFile::append) (into the handle's buffer).
    Append,
    /// A hand-over of bytes to the OS (`write(2)`): `flush` or `sync` of a non-empty buffer, or
    /// an append too large to buffer.
    Write,
    /// [`WritableFile::sync`](crate::fs::WritableFile::sync) (`fdatasync`).
    Sync,
    /// [`FileSystem::sync_dir`](crate::fs::FileSystem::sync_dir).
    SyncDir,
    /// [`WritableFile::preallocate`](crate::fs::WritableFile::preallocate).
    Preallocate,
    /// [`FileSystem::rename`](crate::fs::FileSystem::rename).
    Rename,
    /// [`FileSystem::remove_file`](crate::fs::FileSystem::remove_file).
    Remove,
    /// [`FileSystem::list_dir`](crate::fs::FileSystem::list_dir).
    List,
    /// [`FileSystem::try_lock`](crate::fs::FileSystem::try_lock).
    Lock,
}

impl OpKind {
    /// Every kind, in a fixed order.
    pub const ALL: [OpKind; 13] = [
        OpKind::CreateDir,
        OpKind::Create,
        OpKind::Open,
        OpKind::Read,
        OpKind::Append,
        OpKind::Write,
        OpKind::Sync,
        OpKind::SyncDir,
        OpKind::Preallocate,
        OpKind::Rename,
        OpKind::Remove,
        OpKind::List,
        OpKind::Lock,
    ];

    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// A short lowercase name, as in traces and error messages.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::CreateDir => "create_dir",
            OpKind::Create => "create",
            OpKind::Open => "open",
            OpKind::Read => "read",
            OpKind::Append => "append",
            OpKind::Write => "write",
            OpKind::Sync => "sync",
            OpKind::SyncDir => "sync_dir",
            OpKind::Preallocate => "preallocate",
            OpKind::Rename => "rename",
            OpKind::Remove => "remove",
            OpKind::List => "list",
            OpKind::Lock => "lock",
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a simulated crash keeps of the state that was not made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CrashMode {
    /// Power loss, worst case: every unsynced byte is lost and every directory operation not
    /// followed by `sync_dir` is undone.
    DropUnsynced,
    /// Power loss, partial: each file keeps a random prefix of its unsynced bytes, and each
    /// directory a random prefix (in order) of its unsynced operations.
    KeepRandomPrefix,
    /// A write torn by the power cut: everything handed to the OS survives, directory
    /// operations included, except the last write, of which a random proper prefix survives.
    /// If the disk died during a write (a [`Fault::dead`]), that in-flight write is the one
    /// torn: a non-empty proper prefix of it lands.
    TearLastWrite,
    /// Process crash: everything handed to the OS survives; bytes still buffered in file
    /// handles are lost.
    KeepAll,
    /// Power loss after a file's new size reached the disk but not all of its data (ext4
    /// delayed allocation, XFS): each file keeps a random length of its unsynced bytes, of
    /// which a random tail reads back as zeros; each directory keeps a random prefix of its
    /// unsynced operations.
    ZeroFilledTail,
    /// Power loss with unsynced pages written back out of order: each file keeps a random
    /// length of its unsynced bytes, and each 4 KiB page of them (aligned in the file)
    /// independently survives or reads back as zeros, so a lost write can be followed by a
    /// kept one; each directory keeps a random prefix of its unsynced operations.
    ReorderedPages,
}

impl CrashMode {
    /// Every mode, in a fixed order.
    pub const ALL: [CrashMode; 6] = [
        CrashMode::DropUnsynced,
        CrashMode::KeepRandomPrefix,
        CrashMode::TearLastWrite,
        CrashMode::KeepAll,
        CrashMode::ZeroFilledTail,
        CrashMode::ReorderedPages,
    ];

    /// True for a process crash, which loses nothing handed to the OS; the others are power
    /// losses.
    pub fn keeps_everything_handed_to_the_os(self) -> bool {
        self == CrashMode::KeepAll
    }
}

/// An injected failure: the `nth` operation (0-based, counted since the file system was made
/// or forked) of `kind`, or of any kind if `kind` is `None`, fails with an `io::Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The kind of operation counted; `None` counts every operation.
    pub kind: Option<OpKind>,
    /// Which one fails, 0-based.
    pub nth: u64,
    /// Whether every later operation (of any kind) fails too: a dead disk.
    pub dead: bool,
}

impl Fault {
    /// Fail the `nth` operation of `kind` (of any kind if `None`), once.
    pub fn nth(kind: Option<OpKind>, nth: u64) -> Fault {
        Fault {
            kind,
            nth,
            dead: false,
        }
    }

    /// Fail the `nth` operation of `kind` (of any kind if `None`) and every operation after
    /// it: the disk dies, as at the instant of a crash.
    pub fn dead(kind: Option<OpKind>, nth: u64) -> Fault {
        Fault {
            kind,
            nth,
            dead: true,
        }
    }
}
