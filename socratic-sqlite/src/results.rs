//! A results directory held by one process: `socratic.lock`, `socratic.db`, and the stage
//! queues inside it.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use socratic_core::assembly::{self, Assembly};
use socratic_core::queue::QueueError;
use socratic_core::store::Store;

use crate::db::{Database, OpenError};
use crate::queue::{SqliteQueue, SqliteQueueConfig};

/// The database file in a results directory.
pub const DATABASE_FILE: &str = "socratic.db";

/// The lock file in a results directory; it holds the pid of the process that has it.
pub const LOCK_FILE: &str = "socratic.lock";

/// Deliveries of a stage message before it is dead-lettered.
pub const MAX_ATTEMPTS: u32 = 5;

/// How long a received stage message stays hidden before it is delivered again.
pub const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a results directory could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResultsError {
    /// Another process holds the directory.
    #[error(
        "results directory {dir} is in use by another socratic process{}; wait for it to finish, or use another results directory",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    InUse {
        /// The directory.
        dir: PathBuf,
        /// The holder's pid, as it wrote it.
        pid: Option<u32>,
    },
    /// The directory holds no database yet.
    #[error("{} holds no socratic database: run a benchmark there first", dir.display())]
    Missing {
        /// The directory.
        dir: PathBuf,
    },
    /// A file could not be created, read or locked.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The database could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// The three stage queues of a pipeline, each with its own dead-letter queue.
#[derive(Debug, Clone)]
pub struct StageQueues {
    /// Dialogue jobs.
    pub dialogue: SqliteQueue,
    /// Judge jobs.
    pub judge: SqliteQueue,
    /// `run-judged` events.
    pub events: SqliteQueue,
}

impl StageQueues {
    /// The stage queues of `db`.
    pub fn new(db: &Database) -> Self {
        let queue = |name: &str| {
            let config = SqliteQueueConfig {
                visibility_timeout: VISIBILITY_TIMEOUT,
                max_attempts: Some(MAX_ATTEMPTS),
                dead_letter: Some(format!("{name}-dead")),
            };
            SqliteQueue::new(db, name, config)
        };
        Self {
            dialogue: queue("dialogue"),
            judge: queue("judge"),
            events: queue("events"),
        }
    }

    fn all(&self) -> [&SqliteQueue; 3] {
        [&self.dialogue, &self.judge, &self.events]
    }

    /// Every dead-lettered message body.
    pub async fn dead_letters(&self) -> Result<Vec<String>, QueueError> {
        let mut bodies = Vec::new();
        for queue in self.all() {
            if let Some(dead) = queue.dead_letter() {
                bodies.extend(dead.bodies().await?);
            }
        }
        Ok(bodies)
    }
}

/// A results directory that this process holds alone until it is dropped.
///
/// The lock is an advisory file lock, which the operating system releases when the process
/// ends however it ends, so a killed benchmark never leaves a stale lock behind.
#[derive(Debug)]
pub struct ResultsDir {
    dir: PathBuf,
    database: Database,
    queues: StageQueues,
    _lock: File,
}

impl Drop for ResultsDir {
    fn drop(&mut self) {
        // The holder leaves the database whole in its file, the log truncated: a benchmark's
        // log otherwise stays megabytes long after it ends.
        if let Err(message) = self.database.checkpoint() {
            tracing::debug!(%message, "the log was not truncated");
        }
    }
}

impl ResultsDir {
    /// Creates the directory if needed, takes its lock (or fails with
    /// [`ResultsError::InUse`]), and opens or creates its database.
    pub fn acquire(dir: impl AsRef<Path>) -> Result<Self, ResultsError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| ResultsError::Io {
            path: dir.clone(),
            source,
        })?;
        let lock_path = dir.join(LOCK_FILE);
        let io = |source| ResultsError::Io {
            path: lock_path.clone(),
            source,
        };
        let mut lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&lock_path)
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                return Err(ResultsError::InUse { dir, pid });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        lock.set_len(0).map_err(io)?;
        write!(lock, "{}", std::process::id()).map_err(io)?;
        let database = Database::open(dir.join(DATABASE_FILE))?;
        let queues = StageQueues::new(&database);
        Ok(Self {
            dir,
            database,
            queues,
            _lock: lock,
        })
    }

    /// Opens the database of a results directory for reading, without its lock: `list`,
    /// `show` and `compare` work while a benchmark runs there.
    pub fn read(dir: impl AsRef<Path>) -> Result<Database, ResultsError> {
        let path = dir.as_ref().join(DATABASE_FILE);
        if !path.is_file() {
            return Err(ResultsError::Missing {
                dir: dir.as_ref().to_path_buf(),
            });
        }
        Ok(Database::open(path)?)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Its database.
    pub fn database(&self) -> &Database {
        &self.database
    }

    /// Its stage queues.
    pub fn queues(&self) -> &StageQueues {
        &self.queues
    }
}

/// The pipeline of a results directory: its store and stage queues.
#[async_trait]
impl Assembly for ResultsDir {
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.database.store())
    }

    fn stage_queues(&self) -> assembly::StageQueues {
        assembly::StageQueues {
            dialogue: Arc::new(self.queues.dialogue.clone()),
            judge: Arc::new(self.queues.judge.clone()),
            events: Arc::new(self.queues.events.clone()),
        }
    }

    /// Safe because this process holds the directory: whoever received them is gone.
    async fn recover(&self) -> Result<usize, QueueError> {
        let mut released = 0;
        for queue in self.queues.all() {
            released += queue.release_in_flight().await?;
        }
        Ok(released)
    }

    async fn dead_letters(&self) -> Result<Vec<String>, QueueError> {
        self.queues.dead_letters().await
    }
}
