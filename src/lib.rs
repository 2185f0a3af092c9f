//! Strata: an embedded LSM key-value storage engine.
//!
//! ```no_run
//! use strata::{Db, WriteBatch};
//!
//! # fn main() -> strata::Result<()> {
//! let db = Db::open("my-data")?;
//! db.put("user:1", "alice")?;
//! let mut batch = WriteBatch::new();
//! batch.put("user:2", "bob").delete("user:1");
//! db.write(batch)?; // atomic
//! for item in db.prefix("user:") {
//!     let (key, value) = item?;
//!     println!("{key:?} = {value:?}");
//! }
//! db.close()?;
//! # Ok(())
//! # }
//! ```
//!
//! The modules follow the architecture (see DESIGN.md): [`wal`] and [`manifest`] share the
//! record log; [`memtable`], [`sstable`] and [`version`] hold the data; [`iter`] merges them;
//! [`db`] ties the write path, flush and recovery together; [`fs`] is the file-system layer.

pub mod batch;
pub mod buffer_pool;
pub mod cache;
pub mod coding;
pub mod compaction;
pub(crate) mod cpu;
pub mod db;
pub mod error;
pub mod filenames;
pub mod fs;
pub mod iter;
pub mod key;
pub mod manifest;
pub mod memtable;
pub mod options;
pub mod range_del;
pub mod sstable;
pub mod table_cache;
pub mod version;
pub mod wal;

pub use batch::WriteBatch;
pub use db::{Db, DbStats, Snapshot};
pub use error::{Error, Result};
pub use iter::DbIter;
pub use options::{Durability, Options, WriteOptions};
pub use sstable::Compression;
