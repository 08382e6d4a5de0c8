//! The call ledger: one row per model call that missed the response cache, written before the
//! call starts and closed when its answer is stored. It survives a crash, so a resumed
//! benchmark knows what its earlier processes spent, and which calls were cut off in flight.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use rusqlite::params;
use socratic_core::llm::Prices;
use socratic_core::llm::{
    CallRecorder, ConverseRequest, ConverseResponse, LlmClient, LlmError, worst_case_cost,
};

use crate::db::{Database, now_ms};

/// What the ledger holds for one scope.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LedgerTotals {
    /// Calls that reached a model, finished or not.
    pub calls: u64,
    /// Calls whose process stopped before they returned: in flight at a crash or kill.
    pub cut_off: u64,
    /// Dollars: the cost of finished calls plus the worst case of calls cut off.
    pub spent_usd: f64,
}

/// The call ledger of a [`Database`]. Cloning shares the scope.
///
/// Rows are filed under a scope, usually a manifest id, set with [`CallLedger::set_scope`]
/// once it is known; calls before that (a preflight check) have none.
#[derive(Debug, Clone)]
pub struct CallLedger {
    db: Database,
    scope: Arc<Mutex<Option<String>>>,
}

impl CallLedger {
    /// The ledger in `db`.
    pub fn new(db: &Database) -> Self {
        Self {
            db: db.clone(),
            scope: Arc::default(),
        }
    }

    /// Files later calls under `scope`.
    pub fn set_scope(&self, scope: impl Into<String>) {
        *self.scope.lock().unwrap_or_else(PoisonError::into_inner) = Some(scope.into());
    }

    fn scope(&self) -> Option<String> {
        self.current_scope()
    }

    /// The scope later calls are filed under.
    pub fn current_scope(&self) -> Option<String> {
        self.scope
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The database it writes to.
    pub(crate) fn database(&self) -> &Database {
        &self.db
    }

    /// Totals of the calls filed under `scope`.
    pub async fn totals(&self, scope: &str) -> Result<LedgerTotals, String> {
        let scope = scope.to_owned();
        let db = self.db.clone();
        self.db
            .call(move |conn| {
                conn.query_row(
                    "SELECT count(*), count(*) - count(finished_at), \
                     coalesce(sum(CASE WHEN finished_at IS NULL THEN worst_usd ELSE cost_usd END), 0) \
                     FROM calls WHERE scope = ?1",
                    [scope],
                    |r| {
                        Ok(LedgerTotals {
                            calls: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                            cut_off: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                            spent_usd: r.get(2)?,
                        })
                    },
                )
                .map_err(|e| db.describe(&e))
            })
            .await?
    }

    async fn open(&self, model: &str, worst: f64) -> Result<i64, String> {
        let (scope, model) = (self.scope(), model.to_owned());
        let db = self.db.clone();
        self.db
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO calls (scope, model, started_at, worst_usd) VALUES (?1, ?2, ?3, ?4)",
                    params![scope, model, now_ms(), worst],
                )
                .map(|_| conn.last_insert_rowid())
                .map_err(|e| db.describe(&e))
            })
            .await?
    }

    /// Closes a call with its cost, or forgets it when the cache answered (`None`).
    async fn close(&self, seq: i64, cost: Option<f64>) -> Result<(), String> {
        let db = self.db.clone();
        self.db
            .call(move |conn| {
                match cost {
                    Some(cost) => conn.execute(
                        "UPDATE calls SET cost_usd = ?2, finished_at = ?3 WHERE seq = ?1",
                        params![seq, cost, now_ms()],
                    ),
                    None => conn.execute("DELETE FROM calls WHERE seq = ?1", [seq]),
                }
                .map(|_| ())
                .map_err(|e| db.describe(&e))
            })
            .await?
    }
}

/// The ledger as the outermost layer of a client stack
/// ([`ClientStack::recorder`](socratic_core::llm::ClientStack::recorder)).
impl CallRecorder for CallLedger {
    fn wrap(&self, inner: Arc<dyn LlmClient>, prices: Prices) -> Arc<dyn LlmClient> {
        Arc::new(LedgerLlm::new(inner, prices, self.clone()))
    }
}

/// Records every call of one model in a [`CallLedger`].
///
/// Place it outside the response cache: a call is then closed only once its answer is in the
/// cache, so a call a resumed benchmark makes again was cut off in flight, never finished.
/// The cost recorded is the answer's at the model's prices (a timeout, the worst case); a
/// cache hit leaves no row.
#[derive(Debug)]
pub struct LedgerLlm<C> {
    inner: C,
    prices: Prices,
    ledger: CallLedger,
}

impl<C: LlmClient> LedgerLlm<C> {
    /// Records calls to `inner`, priced at `prices`.
    pub fn new(inner: C, prices: Prices, ledger: CallLedger) -> Self {
        Self {
            inner,
            prices,
            ledger,
        }
    }
}

fn unavailable(message: String) -> LlmError {
    LlmError::Unavailable {
        message: format!("call ledger: {message}"),
    }
}

#[async_trait]
impl<C: LlmClient> LlmClient for LedgerLlm<C> {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        let worst = worst_case_cost(&self.prices, request);
        let seq = self
            .ledger
            .open(&request.model, worst)
            .await
            .map_err(unavailable)?;
        let result = self.inner.converse(request).await;
        let cost = match &result {
            Ok(response) if response.cached => None,
            Ok(response) => Some(self.prices.cost(&response.usage)),
            // The request may have run to completion on the server.
            Err(LlmError::Timeout { .. }) => Some(worst),
            Err(_) => Some(0.0),
        };
        if let Err(message) = self.ledger.close(seq, cost).await {
            tracing::warn!(%message, "could not close a call in the ledger");
        }
        result
    }
}
