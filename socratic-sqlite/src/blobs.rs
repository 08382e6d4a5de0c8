//! [`SqliteBlobStore`]: blobs in the database, their repeated parts stored once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use socratic_core::blob::{
    BlobError, BlobKey, BlobMeta, BlobPage, BlobPutMode, BlobStore, ListOptions,
};
use socratic_core::store::Cursor;

use crate::db::Database;
use crate::parts::{self, Hash, Part};

/// The page size of a listing when the caller sets none.
const DEFAULT_LIST_PAGE: usize = 1000;

/// Parts at least this long are deflated.
const DEFLATE_FROM: usize = 256;

/// The [`BlobStore`] port in the database (tables `blobs` and `parts`): each body is split
/// into content-addressed parts, so a system prompt, a rubric or a turn's text that a hundred
/// raw artifacts and cached answers repeat is stored once (docs/storage.md). What `get`
/// answers is byte for byte what was put. Writes commit with the store's and the queues'.
#[derive(Clone)]
pub struct SqliteBlobStore {
    db: Database,
    /// Hashes of large objects and arrays seen once: the second time, one becomes a part.
    seen: Arc<Mutex<HashSet<Hash>>>,
}

/// How many hashes of large containers are remembered before the memory is cleared.
const SEEN_LIMIT: usize = 20_000;

impl std::fmt::Debug for SqliteBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBlobStore")
            .field("db", &self.db)
            .finish()
    }
}

impl Database {
    /// The blob store in this database.
    pub fn blobs(&self) -> SqliteBlobStore {
        SqliteBlobStore {
            db: self.clone(),
            seen: Arc::default(),
        }
    }
}

fn sql_error(db: &Database, e: &rusqlite::Error) -> BlobError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => BlobError::Throttled {
            message: db.describe(e),
        },
        _ => BlobError::Unavailable {
            message: db.describe(e),
        },
    }
}

impl SqliteBlobStore {
    async fn call<I: Send + 'static, R: Send + 'static>(
        &self,
        input: I,
        f: impl FnOnce(&mut Connection, &I) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, BlobError> {
        self.db
            .call_with(input, f)
            .await
            .map_err(|message| BlobError::Unavailable { message })?
            .map_err(|e| sql_error(&self.db, &e))
    }
}

/// How a part is stored (`parts.kind`): a string's bytes as they are, or deflated, or a
/// container's skeleton.
const TEXT: i64 = 0;
const TEXT_DEFLATED: i64 = 1;
const CONTAINER: i64 = 2;

/// A part as stored: its kind and bytes, a string deflated when that pays.
fn stored_part(part: Part) -> (i64, Vec<u8>) {
    match part {
        Part::Container(skeleton) => (CONTAINER, skeleton),
        Part::Text(bytes) if bytes.len() >= DEFLATE_FROM => {
            let deflated = parts::deflate(&bytes);
            if deflated.len() < bytes.len() {
                (TEXT_DEFLATED, deflated)
            } else {
                (TEXT, bytes)
            }
        }
        Part::Text(bytes) => (TEXT, bytes),
    }
}

/// A part as read back.
fn read_part(kind: i64, bytes: Vec<u8>) -> Option<Part> {
    match kind {
        TEXT => Some(Part::Text(bytes)),
        TEXT_DEFLATED => parts::inflate(&bytes).map(Part::Text),
        CONTAINER => Some(Part::Container(bytes)),
        _ => None,
    }
}

fn corrupt(key: &str) -> BlobError {
    BlobError::Unavailable {
        message: format!("blob {key} is damaged in the database (a part is missing or unreadable)"),
    }
}

#[async_trait]
impl BlobStore for SqliteBlobStore {
    async fn put(
        &self,
        key: &BlobKey,
        bytes: Vec<u8>,
        mode: BlobPutMode,
    ) -> Result<BlobMeta, BlobError> {
        let size = bytes.len() as u64;
        // The lock is taken per large container, not for the whole split: workers split and
        // compress their blobs side by side.
        let split = parts::split(&bytes, &mut |hash| {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if seen.len() >= SEEN_LIMIT {
                seen.clear();
            }
            !seen.insert(*hash)
        });
        let stored: Vec<(Hash, i64, Vec<u8>)> = split
            .parts
            .into_iter()
            .map(|(hash, part)| {
                let (kind, bytes) = stored_part(part);
                (hash, kind, bytes)
            })
            .collect();
        let input = (key.as_str().to_owned(), split.skeleton, stored);
        let created = self
            .call(input, move |conn, (key, skeleton, stored)| {
                if mode == BlobPutMode::Create
                    && conn
                        .prepare_cached("SELECT 1 FROM blobs WHERE key = ?1")?
                        .query_row([key], |_| Ok(()))
                        .optional()?
                        .is_some()
                {
                    return Ok(false);
                }
                let mut part = conn.prepare_cached(
                    "INSERT OR IGNORE INTO parts (hash, kind, bytes) VALUES (?1, ?2, ?3)",
                )?;
                for (hash, kind, bytes) in stored {
                    part.execute(params![hash.as_slice(), kind, bytes])?;
                }
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO blobs (key, size, skeleton) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    key,
                    i64::try_from(size).unwrap_or(i64::MAX),
                    skeleton
                ])?;
                Ok(true)
            })
            .await?;
        if !created {
            return Err(BlobError::AlreadyExists {
                key: key.as_str().to_owned(),
            });
        }
        Ok(BlobMeta {
            key: key.clone(),
            size,
        })
    }

    async fn get(&self, key: &BlobKey) -> Result<Vec<u8>, BlobError> {
        let name = key.as_str().to_owned();
        // The skeleton and every part it reaches, containers' parts included, in one call.
        let found: Option<(Vec<u8>, HashMap<Hash, (i64, Vec<u8>)>)> = self
            .call(name.clone(), |conn, key| {
                let Some(skeleton): Option<Vec<u8>> = conn
                    .prepare_cached("SELECT skeleton FROM blobs WHERE key = ?1")?
                    .query_row([key], |row| row.get(0))
                    .optional()?
                else {
                    return Ok(None);
                };
                let mut read =
                    conn.prepare_cached("SELECT kind, bytes FROM parts WHERE hash = ?1")?;
                let mut found = HashMap::new();
                let mut pending = parts::hashes(&skeleton).unwrap_or_default();
                while let Some(hash) = pending.pop() {
                    if found.contains_key(&hash) {
                        continue;
                    }
                    let Some((kind, bytes)) = read
                        .query_row([hash.as_slice()], |row| {
                            Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
                        })
                        .optional()?
                    else {
                        continue;
                    };
                    if kind == CONTAINER {
                        pending.extend(parts::hashes(&bytes).unwrap_or_default());
                    }
                    found.insert(hash, (kind, bytes));
                }
                Ok(Some((skeleton, found)))
            })
            .await?;
        let Some((skeleton, found)) = found else {
            return Err(BlobError::NotFound { key: name });
        };
        parts::join(&skeleton, &|hash| {
            let (kind, bytes) = found.get(hash)?;
            read_part(*kind, bytes.clone())
        })
        .ok_or_else(|| corrupt(&name))
    }

    async fn head(&self, key: &BlobKey) -> Result<BlobMeta, BlobError> {
        let size: Option<i64> = self
            .call(key.as_str().to_owned(), |conn, key| {
                conn.prepare_cached("SELECT size FROM blobs WHERE key = ?1")?
                    .query_row([key], |row| row.get(0))
                    .optional()
            })
            .await?;
        match size {
            Some(size) => Ok(BlobMeta {
                key: key.clone(),
                size: u64::try_from(size).unwrap_or(0),
            }),
            None => Err(BlobError::NotFound {
                key: key.as_str().to_owned(),
            }),
        }
    }

    async fn list(&self, options: &ListOptions) -> Result<BlobPage, BlobError> {
        let after = match &options.cursor {
            None => String::new(),
            Some(cursor) => cursor
                .0
                .strip_prefix("blob:")
                .map(str::to_owned)
                .ok_or_else(|| BlobError::InvalidRequest {
                    message: "cursor was not issued by this store".to_owned(),
                })?,
        };
        let limit = options.limit.unwrap_or(DEFAULT_LIST_PAGE).max(1);
        let input = (options.prefix.clone(), after, limit);
        let rows: Vec<(String, i64)> = self
            .call(input, |conn, (prefix, after, limit)| {
                let mut query = conn.prepare_cached(
                    "SELECT key, size FROM blobs WHERE key >= ?1 AND key > ?2 \
                     AND substr(key, 1, length(?1)) = ?1 ORDER BY key LIMIT ?3",
                )?;
                let rows = query
                    .query_map(
                        params![prefix, after, i64::try_from(*limit + 1).unwrap_or(i64::MAX)],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await?;
        let more = rows.len() > limit;
        let mut blobs = Vec::with_capacity(limit);
        for (key, size) in rows.into_iter().take(limit) {
            blobs.push(BlobMeta {
                key: BlobKey::new(key)?,
                size: u64::try_from(size).unwrap_or(0),
            });
        }
        let cursor = more
            .then(|| {
                blobs
                    .last()
                    .map(|b| Cursor(format!("blob:{}", b.key.as_str())))
            })
            .flatten();
        Ok(BlobPage { blobs, cursor })
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        // Parts stay: others may share them, and they cost little.
        self.call(key.as_str().to_owned(), |conn, key| {
            conn.prepare_cached("DELETE FROM blobs WHERE key = ?1")?
                .execute([key])
                .map(|_| ())
        })
        .await
    }
}
