//! The batches a benchmark submitted to providers' batch interfaces: each with its requests,
//! written before it is submitted and updated as it goes, so that a process started again
//! collects them instead of paying for them twice.

use async_trait::async_trait;
use rusqlite::params;
use socratic_core::llm::{BatchError, BatchJournal, BatchRecord, BatchRequest, BatchState};

use crate::codec;
use crate::db::{Savepoint, now_ms};
use crate::ledger::CallLedger;

/// The batch records of a results database ([`BatchJournal`]), filed under the ledger's
/// scope (the manifest id). A collected batch's answered requests are also written to the
/// call ledger, so spend totals and a resumed benchmark's budget count them.
#[derive(Debug, Clone)]
pub struct BatchRecords {
    ledger: CallLedger,
}

fn state_name(state: BatchState) -> &'static str {
    state.as_str()
}

fn parse_state(name: &str) -> rusqlite::Result<BatchState> {
    Ok(match name {
        "submitting" => BatchState::Submitting,
        "submitted" => BatchState::Submitted,
        "collected" => BatchState::Collected,
        "abandoned" => BatchState::Abandoned,
        other => {
            return Err(rusqlite::Error::InvalidColumnType(
                0,
                format!("batch state {other:?}"),
                rusqlite::types::Type::Text,
            ));
        }
    })
}

fn journal(message: String) -> BatchError {
    BatchError::Journal(message)
}

/// Writes a record's row (and, the first time, its requests) in `tx`.
fn upsert(
    tx: &rusqlite::Connection,
    scope: Option<&str>,
    record: &BatchRecord,
) -> rusqlite::Result<()> {
    let now = now_ms();
    let inserted = tx.execute(
        "INSERT INTO batches (local_id, scope, model, provider, provider_id, state, status, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) \
         ON CONFLICT (local_id) DO UPDATE SET provider_id = ?5, state = ?6, status = ?7, updated_at = ?8",
        params![
            record.local_id,
            scope,
            record.model,
            record.provider,
            record.provider_id,
            state_name(record.state),
            record.status,
            now
        ],
    )?;
    let known: i64 = tx.query_row(
        "SELECT count(*) FROM batch_requests WHERE local_id = ?1",
        [&record.local_id],
        |r| r.get(0),
    )?;
    if inserted > 0 && known == 0 {
        let mut insert = tx.prepare_cached(
            "INSERT INTO batch_requests (local_id, custom_id, request) VALUES (?1, ?2, ?3)",
        )?;
        for r in &record.requests {
            let json = serde_json::to_vec(&r.request)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            insert.execute(params![
                record.local_id,
                r.custom_id,
                codec::compress(&json)
            ])?;
        }
    }
    Ok(())
}

impl BatchRecords {
    /// The batch records of `ledger`'s database, filed under its scope.
    pub fn new(ledger: &CallLedger) -> Self {
        Self {
            ledger: ledger.clone(),
        }
    }

    /// The batches `filter` selects, oldest first, each with the scope it is filed under.
    async fn select(
        &self,
        filter: &'static str,
        args: Vec<String>,
    ) -> Result<Vec<(Option<String>, BatchRecord)>, BatchError> {
        let db = self.ledger.database().clone();
        self.ledger
            .database()
            .call(move |conn| {
                let read = || -> rusqlite::Result<Vec<(Option<String>, BatchRecord)>> {
                    let mut rows = conn.prepare(&format!(
                        "SELECT local_id, model, provider, provider_id, state, status, scope FROM batches {filter} ORDER BY created_at, local_id"
                    ))?;
                    let mut records: Vec<(Option<String>, BatchRecord)> = rows
                        .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                            let record = BatchRecord {
                                local_id: r.get(0)?,
                                model: r.get(1)?,
                                provider: r.get(2)?,
                                provider_id: r.get(3)?,
                                state: parse_state(&r.get::<_, String>(4)?)?,
                                status: r.get(5)?,
                                requests: Vec::new(),
                            };
                            Ok((r.get(6)?, record))
                        })?
                        .collect::<rusqlite::Result<_>>()?;
                    let mut requests = conn.prepare_cached(
                        "SELECT custom_id, request FROM batch_requests WHERE local_id = ?1 ORDER BY custom_id",
                    )?;
                    for (_, record) in &mut records {
                        record.requests = requests
                            .query_map([&record.local_id], |r| {
                                let stored: Vec<u8> = r.get(1)?;
                                let damaged = |message: String| {
                                    rusqlite::Error::FromSqlConversionFailure(
                                        1,
                                        rusqlite::types::Type::Blob,
                                        message.into(),
                                    )
                                };
                                let json = codec::decompress(&stored).ok_or_else(|| {
                                    damaged("a batch request that does not decompress".to_owned())
                                })?;
                                let request = serde_json::from_slice(&json)
                                    .map_err(|e| damaged(e.to_string()))?;
                                Ok(BatchRequest {
                                    custom_id: r.get(0)?,
                                    request,
                                })
                            })?
                            .collect::<rusqlite::Result<_>>()?;
                    }
                    Ok(records)
                };
                read().map_err(|e| db.describe(&e))
            })
            .await
            .and_then(|r| r)
            .map_err(journal)
    }

    /// Every batch with the scope (manifest id) it is filed under, oldest first; only those
    /// of `scope` with one.
    pub async fn filed(
        &self,
        scope: Option<&str>,
    ) -> Result<Vec<(Option<String>, BatchRecord)>, BatchError> {
        match scope {
            Some(scope) => {
                self.select("WHERE scope = ?1", vec![scope.to_owned()])
                    .await
            }
            None => self.select("", Vec::new()).await,
        }
    }
}

impl BatchRecords {
    /// Writes `record` and, in the same transaction, one finished call per cost.
    async fn write(&self, record: &BatchRecord, costs: &[f64]) -> Result<(), BatchError> {
        let (db, scope, record, costs) = (
            self.ledger.database().clone(),
            self.ledger.current_scope(),
            record.clone(),
            costs.to_vec(),
        );
        self.ledger
            .database()
            .call(move |conn| {
                let write = || -> rusqlite::Result<()> {
                    let tx = Savepoint::begin(conn)?;
                    upsert(&tx, scope.as_deref(), &record)?;
                    let now = now_ms();
                    let mut call = tx.prepare_cached(
                        "INSERT INTO calls (scope, model, started_at, worst_usd, cost_usd, finished_at) \
                         VALUES (?1, ?2, ?3, ?4, ?4, ?3)",
                    )?;
                    for cost in &costs {
                        call.execute(params![scope, record.model, now, cost])?;
                    }
                    drop(call);
                    tx.release()
                };
                write().map_err(|e| db.describe(&e))
            })
            .await
            .and_then(|r| r)
            .map_err(journal)
    }
}

#[async_trait]
impl BatchJournal for BatchRecords {
    async fn put(&self, record: &BatchRecord) -> Result<(), BatchError> {
        self.write(record, &[]).await
    }

    async fn collected(&self, record: &BatchRecord, costs: &[f64]) -> Result<(), BatchError> {
        self.write(record, costs).await
    }

    /// The open batches of `model` filed under the ledger's current scope (every scope's,
    /// without one): another benchmark's batches wait for that benchmark to resume, so their
    /// costs are never filed under this one.
    async fn open(&self, model: &str) -> Result<Vec<BatchRecord>, BatchError> {
        let open = match self.ledger.current_scope() {
            Some(scope) => {
                self.select(
                    "WHERE model = ?1 AND state IN ('submitting', 'submitted') AND scope = ?2",
                    vec![model.to_owned(), scope],
                )
                .await?
            }
            None => {
                self.select(
                    "WHERE model = ?1 AND state IN ('submitting', 'submitted')",
                    vec![model.to_owned()],
                )
                .await?
            }
        };
        Ok(open.into_iter().map(|(_, record)| record).collect())
    }

    async fn all(&self) -> Result<Vec<BatchRecord>, BatchError> {
        let all = self.filed(None).await?;
        Ok(all.into_iter().map(|(_, record)| record).collect())
    }
}
