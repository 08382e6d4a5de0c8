//! The database file: opening, the versioned schema, and running blocking calls off the
//! async runtime.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use crate::activity::Activity;

/// The schema this build writes. A database with a higher `user_version` was written by a
/// newer socratic and is refused.
pub const SCHEMA_VERSION: i64 = 4;

/// Marks a SQLite file as a socratic database (`PRAGMA application_id`, "Socr").
pub const APPLICATION_ID: i64 = 0x536f_6372;

/// The first schema. A new database is created with it and then migrated, so every
/// migration runs on every new database too.
const SCHEMA_V1: &str = "
CREATE TABLE items (
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    version INTEGER NOT NULL,
    index_keys TEXT NOT NULL,
    attributes TEXT NOT NULL,
    PRIMARY KEY (pk, sk)
) WITHOUT ROWID;
CREATE TABLE index_entries (
    idx TEXT NOT NULL,
    ipk TEXT NOT NULL,
    isk TEXT NOT NULL,
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    PRIMARY KEY (idx, ipk, isk, pk, sk)
) WITHOUT ROWID;
CREATE INDEX index_entries_by_item ON index_entries (pk, sk);
CREATE TABLE messages (
    -- Not AUTOINCREMENT: a reused number is still the highest, and receipts carry a ULID.
    seq INTEGER PRIMARY KEY,
    queue TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    visible_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    receipt TEXT
);
CREATE INDEX messages_by_visibility ON messages (queue, visible_at, seq);
CREATE TABLE calls (
    seq INTEGER PRIMARY KEY,
    scope TEXT,
    model TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    worst_usd REAL NOT NULL,
    cost_usd REAL,
    finished_at INTEGER
);
CREATE INDEX calls_by_scope ON calls (scope);
";

/// Migrations, in order: entry `i` takes a database from version `i + 1` to `i + 2`.
const MIGRATIONS: &[&str] = &[
    // 2: items in a rowid table with a unique key. Items of a few kilobytes (turns,
    // judgments) overflowed the pages of the clustered WITHOUT ROWID table, and every new
    // item went to a random page; now new items fill the table's last page.
    "
CREATE TABLE items_v2 (
    pk TEXT NOT NULL,
    sk TEXT NOT NULL,
    version INTEGER NOT NULL,
    index_keys TEXT NOT NULL,
    attributes TEXT NOT NULL
);
INSERT INTO items_v2 (pk, sk, version, index_keys, attributes)
    SELECT pk, sk, version, index_keys, attributes FROM items ORDER BY pk, sk;
DROP TABLE items;
ALTER TABLE items_v2 RENAME TO items;
CREATE UNIQUE INDEX items_by_key ON items (pk, sk);
",
    // 3: blobs in the database, their repeated parts stored once: raw artifacts and cached
    // answers were a file each, mostly repeating each other, four kilobytes of disk apiece.
    // A rowid table, so that new blobs fill its last page (keys arrive in random order).
    // Items keep their entity compressed in `data` (older items: among their attributes).
    "
CREATE TABLE blobs (
    key TEXT NOT NULL,
    size INTEGER NOT NULL,
    skeleton BLOB NOT NULL
);
CREATE UNIQUE INDEX blobs_by_key ON blobs (key);
ALTER TABLE items ADD COLUMN data BLOB;
CREATE TABLE parts (
    hash BLOB PRIMARY KEY,
    kind INTEGER NOT NULL,
    bytes BLOB NOT NULL
) WITHOUT ROWID;
",
    // 4: batches submitted to providers' batch interfaces, with their requests, so that a
    // benchmark started again collects them instead of paying for them twice.
    "
CREATE TABLE batches (
    local_id TEXT PRIMARY KEY,
    scope TEXT,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    provider_id TEXT,
    state TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX batches_by_model ON batches (model, state);
CREATE TABLE batch_requests (
    local_id TEXT NOT NULL,
    custom_id TEXT NOT NULL,
    -- The request as JSON, compressed (codec.rs): a round can hold thousands.
    request BLOB NOT NULL,
    PRIMARY KEY (local_id, custom_id)
) WITHOUT ROWID;
",
];

const _: () = assert!(MIGRATIONS.len() as i64 + 1 == SCHEMA_VERSION);

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another process holds the write lock for longer than the busy timeout.
    #[error(
        "database {path} is locked: another process is writing to it (waited {waited:?}); stop that process or use another results directory"
    )]
    Locked {
        /// The file.
        path: PathBuf,
        /// How long the open waited for the lock.
        waited: Duration,
    },
    /// The file is not a SQLite database, or is damaged.
    #[error(
        "database {path} is corrupt or not a SQLite database ({message}); move it aside to start afresh"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// SQLite's message.
        message: String,
    },
    /// A SQLite database of some other program.
    #[error("database {path} is not a socratic database (application id {found:#x})")]
    Foreign {
        /// The file.
        path: PathBuf,
        /// Its application id.
        found: i64,
    },
    /// Written by a newer socratic whose schema this build does not know.
    #[error(
        "database {path} has schema version {found}, newer than version {supported} that this socratic supports; upgrade socratic to open it"
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// The file's schema version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// Any other failure to open, e.g. a missing directory or no permission.
    #[error("cannot open database {path}: {message}")]
    Other {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// How to open a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// How long a write waits for another process's lock before failing.
    pub busy_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Work for the database thread: run in its group's transaction, answered after the commit.
trait Task: Send {
    /// Does the work.
    fn run(&mut self, connection: &mut Connection);
    /// Sends the outcome back to the caller, once the group's commit is known, with the task
    /// itself: what the caller allocated is freed on the caller's thread. (Memory one thread
    /// allocates and another frees makes the two wait for each other's allocator locks.)
    fn answer(self: Box<Self>, committed: Result<(), String>);
}

type Job = Box<dyn Task>;

/// One call: its input, its work, and then its result.
struct Call<I, R, F> {
    input: I,
    work: Option<F>,
    result: Option<R>,
    reply: Option<Answer<I, R, F>>,
}

type Answer<I, R, F> = tokio::sync::oneshot::Sender<(Result<(), String>, Box<Call<I, R, F>>)>;

impl<I, R, F> Task for Call<I, R, F>
where
    I: Send,
    R: Send,
    F: FnOnce(&mut Connection, &I) -> R + Send,
{
    fn run(&mut self, connection: &mut Connection) {
        if let Some(work) = self.work.take() {
            self.result = Some(work(connection, &self.input));
        }
    }

    fn answer(mut self: Box<Self>, committed: Result<(), String>) {
        if let Some(reply) = self.reply.take() {
            let _ = reply.send((committed, self));
        }
    }
}

/// The most jobs committed together.
const MAX_GROUP: usize = 256;

struct Inner {
    path: PathBuf,
    /// The database thread's inbox; the thread ends when the last clone is dropped.
    jobs: Sender<Job>,
    /// Per queue, what this process knows of its activity.
    activity: Mutex<HashMap<String, Arc<Activity>>>,
}

/// One SQLite database file in WAL mode, shared by a [`SqliteStore`](crate::SqliteStore) and any
/// number of [`SqliteQueue`](crate::SqliteQueue)s. Cloning shares the connection.
///
/// Every call runs on the database's own thread, in arrival order, so the async runtime never
/// waits on the disk and concurrent callers never contend for a lock. Calls that arrive
/// together are committed together (group commit): each runs in a savepoint of one
/// transaction, and none is answered before that transaction is committed.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Opens (creating if missing) the database at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(path, OpenOptions::default())
    }

    /// Opens (creating if missing) the database at `path`, checks its schema version, and
    /// creates the schema in a new file.
    pub fn open_with(path: impl AsRef<Path>, options: OpenOptions) -> Result<Self, OpenError> {
        let path = path.as_ref().to_path_buf();
        let classify = |e: rusqlite::Error| classify(&path, options.busy_timeout, &e);
        let mut writer = connect(&path, options).map_err(classify)?;
        // WAL lets readers, here and in other processes (list, show, report), read while a
        // benchmark writes; NORMAL sync is durable against a killed process, which is what
        // resume needs.
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(classify)?;
        // Less frequent checkpoints: a benchmark writes many small transactions, most of them
        // to pages it wrote a moment before.
        writer
            .pragma_update(None, "wal_autocheckpoint", 8_000)
            .map_err(classify)?;
        migrate(&mut writer, &path).map_err(|e| match e {
            Migration::Sqlite(e) => classify(e),
            Migration::Refused(e) => e,
        })?;
        let (jobs, inbox) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite".to_owned())
            .spawn(move || {
                while let Ok(first) = inbox.recv() {
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match inbox.try_recv() {
                            Ok(job) => group.push(job),
                            Err(_) => break,
                        }
                    }
                    serve_group(&mut writer, group);
                }
            })
            .map_err(|e| OpenError::Other {
                path: path.clone(),
                message: format!("cannot start the database thread: {e}"),
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                jobs,
                activity: Mutex::default(),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Copies every page of the write-ahead log into the database file and truncates the log
    /// to nothing, on a connection of its own: what a process holding the database does as it
    /// ends, so that the file alone is the whole database (a copied or archived results
    /// directory needs no `-wal` beside it). Waits up to the busy timeout for readers.
    pub fn checkpoint(&self) -> Result<(), String> {
        let fail = |e: rusqlite::Error| format!("{}: checkpoint: {e}", self.inner.path.display());
        let connection = connect(&self.inner.path, OpenOptions::default()).map_err(fail)?;
        let (busy, _, _): (i64, i64, i64) = connection
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .map_err(fail)?;
        if busy != 0 {
            return Err(format!(
                "{}: checkpoint: a reader kept the log in use",
                self.inner.path.display()
            ));
        }
        Ok(())
    }

    /// Runs `f` with the connection on the database thread, and answers once what it wrote
    /// is committed. `f` must use savepoints, not transactions: it runs inside the group's.
    pub(crate) async fn call<R, F>(&self, f: F) -> Result<R, String>
    where
        F: FnOnce(&mut Connection) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.call_with((), move |connection, ()| f(connection))
            .await
    }

    /// [`call`](Self::call) with `f`'s input passed separately: `input` comes back with the
    /// answer and is freed on the caller's thread.
    pub(crate) async fn call_with<I, R, F>(&self, input: I, f: F) -> Result<R, String>
    where
        I: Send + 'static,
        F: FnOnce(&mut Connection, &I) -> R + Send + 'static,
        R: Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let call = Call {
            input,
            work: Some(f),
            result: None,
            reply: Some(reply),
        };
        self.inner.jobs.send(Box::new(call)).map_err(|_| {
            format!(
                "{}: the database thread has stopped",
                self.inner.path.display()
            )
        })?;
        let failed = || format!("{}: a database call failed", self.inner.path.display());
        let (committed, call) = answer.await.map_err(|_| failed())?;
        committed?;
        call.result.ok_or_else(failed)
    }

    /// What this process knows of queue `name`.
    pub(crate) fn activity(&self, name: &str) -> Arc<Activity> {
        let mut activity = self
            .inner
            .activity
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(activity.entry(name.to_owned()).or_default())
    }

    /// Describes a SQLite error with the file's path, for store and queue errors.
    pub(crate) fn describe(&self, error: &rusqlite::Error) -> String {
        format!("{}: {error}", self.inner.path.display())
    }
}

/// A connection to `path` with the settings every connection shares.
fn connect(path: &Path, options: OpenOptions) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(options.busy_timeout)?;
    connection.set_prepared_statement_cache_capacity(64);
    // Plans never depend on bound values (there are no statistics tables). Without this,
    // SQLite re-prepares a cached statement whenever a parameter its planner looked at (such
    // as a LIMIT) is bound again, which cost a fifth of the database thread's time.
    connection.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    // An 8 MB page cache and no memory map: a 10,000-run benchmark's database is hundreds
    // of megabytes, and mapped pages would count against the process's memory as it reads.
    connection.pragma_update(None, "cache_size", -8_000)?;
    connection.pragma_update(None, "mmap_size", 0)?;
    Ok(connection)
}

/// Runs a group of jobs in one transaction and answers each after the commit. If the
/// transaction cannot start (another process holds the write lock past the busy timeout),
/// each job runs on its own, its savepoint then being its transaction.
fn serve_group(connection: &mut Connection, group: Vec<Job>) {
    let grouped = run(connection, "BEGIN IMMEDIATE").is_ok();
    let mut done = Vec::with_capacity(group.len());
    for mut job in group {
        // A panicking job is dropped unanswered, so its caller sees an error; its savepoint
        // rolls back as it unwinds. The thread goes on serving.
        if std::panic::catch_unwind(AssertUnwindSafe(|| job.run(connection))).is_ok() {
            done.push(job);
        }
    }
    let committed = if grouped {
        run(connection, "COMMIT").map_err(|e| {
            let _ = run(connection, "ROLLBACK");
            format!("commit failed: {e}")
        })
    } else {
        Ok(())
    };
    for job in done {
        job.answer(committed.clone());
    }
}

/// Runs a statement without parameters, prepared once per connection.
fn run(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([]).map(drop)
}

/// A savepoint: one call's writes, all or none, inside its group's transaction. Dropped
/// without [`Savepoint::release`] (an error or a panic), it rolls back.
pub(crate) struct Savepoint<'c> {
    connection: &'c Connection,
    released: bool,
}

impl<'c> Savepoint<'c> {
    /// Starts a savepoint.
    pub(crate) fn begin(connection: &'c Connection) -> rusqlite::Result<Self> {
        run(connection, "SAVEPOINT call")?;
        Ok(Self {
            connection,
            released: false,
        })
    }

    /// Keeps the savepoint's writes.
    pub(crate) fn release(mut self) -> rusqlite::Result<()> {
        self.released = true;
        run(self.connection, "RELEASE call")
    }
}

impl std::ops::Deref for Savepoint<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.connection
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if !self.released {
            let _ = run(self.connection, "ROLLBACK TO call");
            let _ = run(self.connection, "RELEASE call");
        }
    }
}

enum Migration {
    Sqlite(rusqlite::Error),
    Refused(OpenError),
}

impl From<rusqlite::Error> for Migration {
    fn from(e: rusqlite::Error) -> Self {
        Migration::Sqlite(e)
    }
}

fn migrate(connection: &mut Connection, path: &Path) -> Result<(), Migration> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let application: i64 = tx.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(Migration::Refused(OpenError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        }));
    }
    if version == 0 {
        let tables: i64 = tx.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )?;
        if tables > 0 || application != 0 {
            return Err(Migration::Refused(OpenError::Foreign {
                path: path.to_path_buf(),
                found: application,
            }));
        }
        tx.execute_batch(SCHEMA_V1)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    } else if application != APPLICATION_ID {
        return Err(Migration::Refused(OpenError::Foreign {
            path: path.to_path_buf(),
            found: application,
        }));
    }
    let from = usize::try_from(version.max(1) - 1).unwrap_or(0);
    for migration in MIGRATIONS.iter().skip(from) {
        tx.execute_batch(migration)?;
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(())
}

fn classify(path: &Path, waited: Duration, error: &rusqlite::Error) -> OpenError {
    let path = path.to_path_buf();
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            OpenError::Locked { path, waited }
        }
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => OpenError::Corrupt {
            path,
            message: error.to_string(),
        },
        _ => OpenError::Other {
            path,
            message: error.to_string(),
        },
    }
}

/// Milliseconds since the Unix epoch: queue visibility is wall-clock time, so it survives a
/// restart.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
