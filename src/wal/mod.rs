//! The record log: a file of checksummed records, appended one at a time.
//!
//! Two users share it. The write-ahead log appends one record per write batch, so an
//! acknowledged write survives a crash before its memtable is flushed; the manifest appends one
//! record per version edit. The byte format is in [`format`](mod@format); [`LogWriter`]
//! appends, and [`read_log`] reads a whole log back under a [`TailPolicy`]:
//!
//! - the last write-ahead log segment: `DamagedTailOk`, since a crash may tear or zero-fill its
//!   tail;
//! - older write-ahead log segments: `Strict`, which is right only if a segment is synced before
//!   the next one is created;
//! - the manifest: `DamagedTailOk` too: each edit is synced before it takes effect, but a crash
//!   during the append may leave its record torn or zero-filled, not only cut short.
//!
//! Damage anywhere but at the tail is `Corruption`: Strata never skips over damaged records to
//! reach later ones, because the later records may depend on the lost ones.
//!
//! Deliberately left out: reading a log while it is written (recovery reads whole files),
//! appending to an existing log ([`LogWriter`] starts a new file), and record fragmentation.

pub mod format;
pub mod reader;
pub mod writer;

pub use reader::{read_log, read_log_file, LogContents, Record, TailDamage, TailPolicy};
pub use writer::LogWriter;
