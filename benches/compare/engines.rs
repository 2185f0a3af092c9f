//! One trait over every engine, and an adapter per engine.
//!
//! Every adapter is configured for the same meaning (see BENCHMARKS.md, "Configuration"):
//! writes are not fsynced except through [`Engine::put_sync`], each engine gets a 64 MiB
//! block or page cache, and redb and SQLite run one transaction per write (outside
//! [`Engine::put_batch`]).

use std::path::Path;

/// Errors of any engine, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Result of an engine operation.
pub type R<T> = Result<T, BoxError>;

/// Block or page cache given to every engine.
pub const CACHE_BYTES: usize = 64 << 20;

/// The operations the workloads need. `Sync` so that the multi-threaded workloads can share
/// one open database through `&dyn Engine`.
pub trait Engine: Send + Sync {
    /// Set `key` to `value`; no fsync.
    fn put(&self, key: &[u8], value: &[u8]) -> R<()>;
    /// Set `key` to `value` and make it durable (fsync) before returning.
    fn put_sync(&self, key: &[u8], value: &[u8]) -> R<()>;
    /// Remove `key`; no fsync.
    fn delete(&self, key: &[u8]) -> R<()>;
    /// Apply all the puts atomically, in one batch or transaction; no fsync.
    fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> R<()>;
    /// The length of the value of `key`, if present.
    fn get(&self, key: &[u8]) -> R<Option<usize>>;
    /// Seek to the first key at or after `key` and read up to `1 + nexts` entries; returns
    /// the number read.
    fn seek_next(&self, key: &[u8], nexts: usize) -> R<usize>;
    /// Read every entry in key order; returns (entries, key + value bytes).
    fn scan(&self) -> R<(u64, u64)>;
    /// Write what is buffered in memory (memtable, dirty pages) to the engine's files and
    /// make it durable.
    fn flush(&self) -> R<()>;
    /// Close, releasing files and locks (what the engine does at a clean shutdown).
    fn close(self: Box<Self>) -> R<()>;
}

/// The engines this build knows, in display order. Peers appear only when their cargo
/// feature is on.
pub fn compiled_engines() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut v = vec!["strata"];
    #[cfg(feature = "peers")]
    v.extend(["fjall", "redb", "sled", "sqlite"]);
    #[cfg(feature = "rocksdb")]
    v.push("rocksdb");
    v
}

/// Open the engine `name` in directory `dir`: a new, empty database when `fresh` (anything in
/// `dir` is removed first), else the existing one.
pub fn open(name: &str, dir: &Path, fresh: bool) -> R<Box<dyn Engine>> {
    if fresh {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
    }
    match name {
        "strata" => Ok(Box::new(strata_engine::StrataEngine::open(dir, fresh)?)),
        #[cfg(feature = "peers")]
        "fjall" => Ok(Box::new(fjall_engine::FjallEngine::open(dir)?)),
        #[cfg(feature = "peers")]
        "redb" => Ok(Box::new(redb_engine::RedbEngine::open(dir)?)),
        #[cfg(feature = "peers")]
        "sled" => Ok(Box::new(sled_engine::SledEngine::open(dir)?)),
        #[cfg(feature = "peers")]
        "sqlite" => Ok(Box::new(sqlite_engine::SqliteEngine::open(dir)?)),
        #[cfg(feature = "rocksdb")]
        "rocksdb" => Ok(Box::new(rocksdb_engine::RocksEngine::open(dir)?)),
        other => Err(format!(
            "engine {other} is not in this build (compiled: {}; peers need --features peers, \
             rocksdb --features rocksdb)",
            compiled_engines().join(",")
        )
        .into()),
    }
}

mod strata_engine {
    use super::{Engine, CACHE_BYTES, R};
    use std::path::Path;
    use strata::{Db, Durability, Options, WriteBatch, WriteOptions};

    pub struct StrataEngine {
        db: Db,
    }

    impl StrataEngine {
        pub fn open(dir: &Path, fresh: bool) -> R<Self> {
            let opts = Options::default()
                .with_durability(Durability::NoSync)
                .with_block_cache_capacity(CACHE_BYTES)
                .with_create_if_missing(fresh);
            Ok(StrataEngine {
                db: Db::open_with(dir, opts)?,
            })
        }
    }

    impl Engine for StrataEngine {
        fn put(&self, key: &[u8], value: &[u8]) -> R<()> {
            Ok(self.db.put(key, value)?)
        }
        fn put_sync(&self, key: &[u8], value: &[u8]) -> R<()> {
            let mut b = WriteBatch::new();
            b.put(key, value);
            Ok(self.db.write_opt(b, WriteOptions::sync())?)
        }
        fn delete(&self, key: &[u8]) -> R<()> {
            Ok(self.db.delete(key)?)
        }
        fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> R<()> {
            let mut b = WriteBatch::new();
            for (k, v) in pairs {
                b.put(k, v);
            }
            Ok(self.db.write(b)?)
        }
        fn get(&self, key: &[u8]) -> R<Option<usize>> {
            Ok(self.db.get(key)?.map(|v| v.len()))
        }
        fn seek_next(&self, key: &[u8], nexts: usize) -> R<usize> {
            let mut n = 0;
            for item in self.db.range(key..).take(nexts + 1) {
                let (k, v) = item?;
                std::hint::black_box((k.len(), v.len()));
                n += 1;
            }
            Ok(n)
        }
        fn scan(&self) -> R<(u64, u64)> {
            let (mut n, mut bytes) = (0u64, 0u64);
            for item in self.db.iter() {
                let (k, v) = item?;
                n += 1;
                bytes += (k.len() + v.len()) as u64;
            }
            Ok((n, bytes))
        }
        fn flush(&self) -> R<()> {
            Ok(self.db.flush()?)
        }
        fn close(self: Box<Self>) -> R<()> {
            Ok(self.db.close()?)
        }
    }
}

#[cfg(feature = "peers")]
mod fjall_engine {
    use super::{Engine, CACHE_BYTES, R};
    use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
    use std::path::Path;

    pub struct FjallEngine {
        db: Database,
        ks: Keyspace,
    }

    impl FjallEngine {
        pub fn open(dir: &Path) -> R<Self> {
            let db = Database::builder(dir)
                .cache_size(CACHE_BYTES as u64)
                .open()?;
            let ks = db.keyspace("bench", KeyspaceCreateOptions::default)?;
            Ok(FjallEngine { db, ks })
        }
    }

    impl Engine for FjallEngine {
        fn put(&self, key: &[u8], value: &[u8]) -> R<()> {
            Ok(self.ks.insert(key, value)?)
        }
        fn put_sync(&self, key: &[u8], value: &[u8]) -> R<()> {
            self.ks.insert(key, value)?;
            // fdatasync of the journal, as Strata's and RocksDB's sync writes.
            Ok(self.db.persist(PersistMode::SyncData)?)
        }
        fn delete(&self, key: &[u8]) -> R<()> {
            Ok(self.ks.remove(key)?)
        }
        fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> R<()> {
            let mut b = self.db.batch();
            for (k, v) in pairs {
                b.insert(&self.ks, *k, *v);
            }
            Ok(b.commit()?)
        }
        fn get(&self, key: &[u8]) -> R<Option<usize>> {
            Ok(self.ks.get(key)?.map(|v| v.len()))
        }
        fn seek_next(&self, key: &[u8], nexts: usize) -> R<usize> {
            let mut n = 0;
            for g in self.ks.range(key..).take(nexts + 1) {
                let (k, v) = g.into_inner()?;
                std::hint::black_box((k.len(), v.len()));
                n += 1;
            }
            Ok(n)
        }
        fn scan(&self) -> R<(u64, u64)> {
            let (mut n, mut bytes) = (0u64, 0u64);
            for g in self.ks.iter() {
                let (k, v) = g.into_inner()?;
                n += 1;
                bytes += (k.len() + v.len()) as u64;
            }
            Ok((n, bytes))
        }
        fn flush(&self) -> R<()> {
            self.ks.rotate_memtable_and_wait()?;
            Ok(self.db.persist(PersistMode::SyncAll)?)
        }
        fn close(self: Box<Self>) -> R<()> {
            self.db.persist(PersistMode::SyncAll)?;
            let FjallEngine { db, ks } = *self;
            drop(ks);
            drop(db);
            Ok(())
        }
    }
}

#[cfg(feature = "peers")]
mod redb_engine {
    use super::{Engine, CACHE_BYTES, R};
    use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
    use std::path::Path;

    const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

    pub struct RedbEngine {
        db: Database,
    }

    impl RedbEngine {
        pub fn open(dir: &Path) -> R<Self> {
            let db = Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create(dir.join("data.redb"))?;
            let tx = db.begin_write()?;
            tx.open_table(TABLE)?;
            tx.commit()?;
            Ok(RedbEngine { db })
        }

        fn write(
            &self,
            durability: Durability,
            f: impl FnOnce(&mut redb::Table<&[u8], &[u8]>) -> R<()>,
        ) -> R<()> {
            let mut tx = self.db.begin_write()?;
            tx.set_durability(durability)?;
            {
                let mut t = tx.open_table(TABLE)?;
                f(&mut t)?;
            }
            tx.commit()?;
            Ok(())
        }
    }

    impl Engine for RedbEngine {
        fn put(&self, key: &[u8], value: &[u8]) -> R<()> {
            self.write(Durability::None, |t| {
                t.insert(key, value)?;
                Ok(())
            })
        }
        fn put_sync(&self, key: &[u8], value: &[u8]) -> R<()> {
            self.write(Durability::Immediate, |t| {
                t.insert(key, value)?;
                Ok(())
            })
        }
        fn delete(&self, key: &[u8]) -> R<()> {
            self.write(Durability::None, |t| {
                t.remove(key)?;
                Ok(())
            })
        }
        fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> R<()> {
            self.write(Durability::None, |t| {
                for (k, v) in pairs {
                    t.insert(*k, *v)?;
                }
                Ok(())
            })
        }
        fn get(&self, key: &[u8]) -> R<Option<usize>> {
            let rx = self.db.begin_read()?;
            let t = rx.open_table(TABLE)?;
            Ok(t.get(key)?.map(|g| g.value().len()))
        }
        fn seek_next(&self, key: &[u8], nexts: usize) -> R<usize> {
            let rx = self.db.begin_read()?;
            let t = rx.open_table(TABLE)?;
            let mut n = 0;
            for item in t.range(key..)?.take(nexts + 1) {
                let (k, v) = item?;
                std::hint::black_box((k.value().len(), v.value().len()));
                n += 1;
            }
            Ok(n)
        }
        fn scan(&self) -> R<(u64, u64)> {
            let rx = self.db.begin_read()?;
            let t = rx.open_table(TABLE)?;
            let (mut n, mut bytes) = (0u64, 0u64);
            for item in t.iter()? {
                let (k, v) = item?;
                n += 1;
                bytes += (k.value().len() + v.value().len()) as u64;
            }
            Ok((n, bytes))
        }
        fn flush(&self) -> R<()> {
            // An empty durable commit makes every earlier non-durable commit durable.
            self.write(Durability::Immediate, |_| Ok(()))
        }
        fn close(self: Box<Self>) -> R<()> {
            self.flush()?;
            drop(self);
            Ok(())
        }
    }
}

#[cfg(feature = "peers")]
mod sled_engine {
    use super::{Engine, CACHE_BYTES, R};
    use std::path::Path;

    pub struct SledEngine {
        db: sled::Db,
    }

    impl SledEngine {
        pub fn open(dir: &Path) -> R<Self> {
            let db = sled::Config::new()
                .path(dir)
                .cache_capacity(CACHE_BYTES as u64)
                .open()?;
            Ok(SledEngine { db })
        }
    }

    impl Engine for SledEngine {
        fn put(&self, key: &[u8], value: &[u8]) -> R<()> {
            self.db.insert(key, value)?;
            Ok(())
        }
        fn put_sync(&self, key: &[u8], value: &[u8]) -> R<()> {
            self.db.insert(key, value)?;
            self.db.flush()?;
            Ok(())
        }
        fn delete(&self, key: &[u8]) -> R<()> {
            self.db.remove(key)?;
            Ok(())
        }
        fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> R<()> {
            let mut b = sled::Batch::default();
            for (k, v) in pairs {
                b.insert(*k, *v);
            }
            Ok(self.db.apply_batch(b)?)
        }
        fn get(&self, key: &[u8]) -> R<Option<usize>> {
            Ok(self.db.get(key)?.map(|v| v.len()))
        }
        fn seek_next(&self, key: &[u8], nexts: usize) -> R<usize> {
            let mut n = 0;
            for item in self.db.range(key..).take(nexts + 1) {
                let (k, v) = item?;
                std::hint::black_box((k.len(), v.len()));
                n += 1;
            }
            Ok(n)
        }
        fn scan(&self) -> R<(u64, u64)> {
            let (mut n, mut bytes) = (0u64, 0u64);
            for item in self.db.iter() {
                let (k, v) = item?;
                n += 1;
                bytes += (k.len() + v.len()) as u64;
            }
            Ok((n, bytes))
        }
        fn flush(&self) -> R<()> {
            self.db.flush()?;
            Ok(())
        }
        fn close(self: Box<Self>) -> R<()> {
            self.db.flush()?;
            drop(self);
            Ok(())
        }
    }
}

#[cfg(feature = "peers")]
mod sqlite_engine {
    use super::{Engine, CACHE_BYTES, R};
    use parking_lot::Mutex;
    use rusqlite::{params, Connection, OptionalExtension};
    use std::path::{Path, PathBuf};

    /// SQLite connections are not `Sync`: each thread takes one from a pool (a thread that
    /// finds the pool empty opens another). Writes without fsync use `synchronous=OFF`
    /// connections, sync writes `synchronous=FULL` ones; both in WAL journal mode.
    pub struct SqliteEngine {
        path: PathBuf,
        pool: Mutex<Vec<Connection>>,
        sync_pool: Mutex<Vec<Connection>>,
    }

    fn connect(path: &Path, sync: bool) -> R<Connection> {
        let c = Connection::open(path)?;
        let mode: String = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(format!("sqlite refused WAL mode ({mode})").into());
        }
        c.pragma_update(None, "synchronous", if sync { "FULL" } else { "OFF" })?;
        // Negative: KiB.
        c.pragma_update(None, "cache_size", -((CACHE_BYTES / 1024) as i64))?;
        c.busy_timeout(std::time::Duration::from_secs(60))?;
        c.execute_batch(
            "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID",
        )?;
        Ok(c)
    }

    impl SqliteEngine {
        pub fn open(dir: &Path) -> R<Self> {
            let path = dir.join("data.sqlite");
            let first = connect(&path, false)?;
            Ok(SqliteEngine {
                path,
                pool: Mutex::new(vec![first]),
                sync_pool: Mutex::new(Vec::new()),
            })
        }

        fn with<T>(&self, sync: bool, f: impl FnOnce(&Connection) -> R<T>) -> R<T> {
            let pool = if sync { &self.sync_pool } else { &self.pool };
            let conn = pool.lock().pop();
            let conn = match conn {
                Some(c) => c,
                None => connect(&self.path, sync)?,
            };
            let out = f(&conn);
            pool.lock().push(conn);
            out
        }
    }

    const PUT: &str = "INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)";

    impl Engine for SqliteEngine {
        fn put(&self, key: &[u8], value: &[u8]) -> R<()> {
            self.with(false, |c| {
                c.prepare_cached(PUT)?.execute(params![key, value])?;
                Ok(())
            })
        }
        fn put_sync(&self, key: &[u8], value: &[u8]) -> R<()> {
            self.with(true, |c| {
                c.prepare_cached(PUT)?.execute(params![key, value])?;
                Ok(())
            })
        }
        fn delete(&self, key: &[u8]) -> R<()> {
            self.with(false, |c| {
                c.prepare_cached("DELETE FROM kv WHERE k = ?1")?
                    .execute(params![key])?;
                Ok(())
            })
        }
        fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> R<()> {
            self.with(false, |c| {
                let tx = c.unchecked_transaction()?;
                {
                    let mut st = tx.prepare_cached(PUT)?;
                    for (k, v) in pairs {
                        st.execute(params![k, v])?;
                    }
                }
                tx.commit()?;
                Ok(())
            })
        }
        fn get(&self, key: &[u8]) -> R<Option<usize>> {
            self.with(false, |c| {
                let mut st = c.prepare_cached("SELECT v FROM kv WHERE k = ?1")?;
                Ok(st
                    .query_row(params![key], |r| Ok(r.get_ref(0)?.as_blob()?.len()))
                    .optional()?)
            })
        }
        fn seek_next(&self, key: &[u8], nexts: usize) -> R<usize> {
            self.with(false, |c| {
                let mut st =
                    c.prepare_cached("SELECT k, v FROM kv WHERE k >= ?1 ORDER BY k LIMIT ?2")?;
                let mut rows = st.query(params![key, (nexts + 1) as i64])?;
                let mut n = 0;
                while let Some(r) = rows.next()? {
                    let k = r.get_ref(0)?.as_blob()?.len();
                    let v = r.get_ref(1)?.as_blob()?.len();
                    std::hint::black_box((k, v));
                    n += 1;
                }
                Ok(n)
            })
        }
        fn scan(&self) -> R<(u64, u64)> {
            self.with(false, |c| {
                let mut st = c.prepare_cached("SELECT k, v FROM kv ORDER BY k")?;
                let mut rows = st.query([])?;
                let (mut n, mut bytes) = (0u64, 0u64);
                while let Some(r) = rows.next()? {
                    n += 1;
                    bytes +=
                        (r.get_ref(0)?.as_blob()?.len() + r.get_ref(1)?.as_blob()?.len()) as u64;
                }
                Ok((n, bytes))
            })
        }
        fn flush(&self) -> R<()> {
            // Copy the WAL into the database file and fsync it.
            self.with(false, |c| {
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
                Ok(())
            })
        }
        fn close(self: Box<Self>) -> R<()> {
            let SqliteEngine {
                pool, sync_pool, ..
            } = *self;
            for c in sync_pool.into_inner().into_iter().chain(pool.into_inner()) {
                c.close().map_err(|(_, e)| e)?;
            }
            Ok(())
        }
    }
}

#[cfg(feature = "rocksdb")]
mod rocksdb_engine {
    use super::{Engine, CACHE_BYTES, R};
    use rocksdb::{
        BlockBasedOptions, Cache, DBCompressionType, Options, WriteBatch, WriteOptions, DB,
    };
    use std::path::Path;

    pub struct RocksEngine {
        db: DB,
        no_sync: WriteOptions,
        sync: WriteOptions,
    }

    impl RocksEngine {
        pub fn open(dir: &Path) -> R<Self> {
            let mut opts = Options::default();
            opts.create_if_missing(true);
            // Built without compression libraries (the values are incompressible anyway);
            // say so explicitly.
            opts.set_compression_type(DBCompressionType::None);
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&Cache::new_lru_cache(CACHE_BYTES));
            table.set_bloom_filter(10.0, false);
            opts.set_block_based_table_factory(&table);
            let db = DB::open(&opts, dir)?;
            let mut sync = WriteOptions::default();
            sync.set_sync(true);
            Ok(RocksEngine {
                db,
                no_sync: WriteOptions::default(),
                sync,
            })
        }
    }

    impl Engine for RocksEngine {
        fn put(&self, key: &[u8], value: &[u8]) -> R<()> {
            Ok(self.db.put_opt(key, value, &self.no_sync)?)
        }
        fn put_sync(&self, key: &[u8], value: &[u8]) -> R<()> {
            Ok(self.db.put_opt(key, value, &self.sync)?)
        }
        fn delete(&self, key: &[u8]) -> R<()> {
            Ok(self.db.delete_opt(key, &self.no_sync)?)
        }
        fn put_batch(&self, pairs: &[(&[u8], &[u8])]) -> R<()> {
            let mut b = WriteBatch::default();
            for (k, v) in pairs {
                b.put(k, v);
            }
            Ok(self.db.write_opt(b, &self.no_sync)?)
        }
        fn get(&self, key: &[u8]) -> R<Option<usize>> {
            Ok(self.db.get_pinned(key)?.map(|v| v.len()))
        }
        fn seek_next(&self, key: &[u8], nexts: usize) -> R<usize> {
            let mut it = self.db.raw_iterator();
            it.seek(key);
            let mut n = 0;
            while n <= nexts && it.valid() {
                std::hint::black_box((it.key().map(<[u8]>::len), it.value().map(<[u8]>::len)));
                n += 1;
                it.next();
            }
            it.status()?;
            Ok(n)
        }
        fn scan(&self) -> R<(u64, u64)> {
            let mut it = self.db.raw_iterator();
            it.seek_to_first();
            let (mut n, mut bytes) = (0u64, 0u64);
            while it.valid() {
                n += 1;
                bytes +=
                    (it.key().map_or(0, <[u8]>::len) + it.value().map_or(0, <[u8]>::len)) as u64;
                it.next();
            }
            it.status()?;
            Ok((n, bytes))
        }
        fn flush(&self) -> R<()> {
            Ok(self.db.flush()?)
        }
        fn close(self: Box<Self>) -> R<()> {
            self.db.flush_wal(true)?;
            drop(self);
            Ok(())
        }
    }
}
