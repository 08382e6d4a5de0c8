//! Human labels in the browser: `socratic label` serves a page on the loopback address where a
//! person scores a stratified sample of a finished benchmark's tutor turns, blind to the
//! tutors and the judges, and every answer is stored in the results database at once.
//!
//! [`LabelServer::open`] reads the benchmark, draws the sample
//! ([`socratic_core::labelling::sample_turns`]) and binds 127.0.0.1; [`LabelServer::serve`]
//! answers until its shutdown signal. Every request must carry the random token of
//! [`LabelServer::url`], or it gets 403. [`export_labels`] writes the stored labels as the CSV
//! `socratic calibrate --labels` imports.

mod api;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use socratic_core::entity::{Manifest, ManifestSummary, Rubric, Scenario, Vector};
use socratic_core::id::{ManifestId, RunId};
use socratic_core::keys;
use socratic_core::labelling::{self, DEFAULT_SAMPLE, rater_problem, sample_turns};
use socratic_core::repository::{Repository, RunFilter, RunRecord};
use socratic_core::stats::seed_of;

use crate::error::{Context, Error};
use crate::history::History;

/// What to label and where to serve the page.
#[derive(Debug, Clone)]
pub struct LabelOptions {
    /// The results directory.
    pub out: PathBuf,
    /// The benchmark; by default the newest finished one.
    pub manifest: Option<ManifestId>,
    /// How many turns to sample (`--turns`).
    pub turns: usize,
    /// The sample's seed (`--seed`); by default one drawn from the manifest's id, so every
    /// rater of a benchmark gets the same turns unless told otherwise.
    pub seed: Option<u64>,
    /// Who labels (`--rater`); without it the page asks.
    pub rater: Option<String>,
    /// The port to try first; taken or absent, the system picks a free one.
    pub port: Option<u16>,
}

impl Default for LabelOptions {
    fn default() -> Self {
        Self {
            out: "results".into(),
            manifest: None,
            turns: DEFAULT_SAMPLE,
            seed: None,
            rater: None,
            port: None,
        }
    }
}

/// A labelling page bound to the loopback address, ready to serve.
#[derive(Debug)]
pub struct LabelServer {
    listener: tokio::net::TcpListener,
    state: Arc<api::State>,
    seed: u64,
    taken_port: Option<u16>,
}

/// One sampled turn as the page shows it: the dialogue up to the turn, and nothing that names
/// a tutor or a judge.
#[derive(Debug, Clone)]
struct Item {
    run: RunId,
    turn: u32,
    vector: Vector,
    /// The scenario as a rater needs it (title, student, answer key).
    scenario: serde_json::Value,
    /// `(speaker, text)`: the student's opening, then tutor and student in turn, ending with
    /// the tutor's turn to label.
    dialogue: Vec<(&'static str, String)>,
}

impl LabelServer {
    /// Reads the finished benchmark of `options`, draws its sample and binds the page's port.
    ///
    /// Fails with [`Error::NotFound`] when the results directory holds no finished benchmark
    /// (or not the one named), and [`Error::Invalid`] when it has no judged tutor turn or the
    /// rater's name or the sample size cannot be used.
    pub async fn open(options: LabelOptions) -> Result<Self, Error> {
        if options.turns == 0 {
            return Err(Error::Invalid("--turns must be at least 1".into()));
        }
        if let Some(problem) = options.rater.as_deref().and_then(rater_problem) {
            return Err(Error::Invalid(format!("--rater: {problem}")));
        }
        let history = History::open(&options.out)?;
        let id = history.finished_or(options.manifest).await?;
        let repository = history.repository().clone();
        let (manifest, rubric) = finished(&repository, &id, &options.out).await?;
        let records = records(&repository, &id).await?;
        let seed = options.seed.unwrap_or_else(|| seed_of(&id.to_string()));
        let sample = sample_turns(&records, options.turns, seed);
        if sample.is_empty() {
            return Err(Error::Invalid(format!(
                "manifest {id} has no judged tutor turn to label"
            )));
        }
        let mut items = Vec::with_capacity(sample.len());
        for drawn in &sample {
            let Some(record) = records.iter().find(|r| r.run.value.id == drawn.run) else {
                continue;
            };
            let scenario = repository
                .get_catalog::<Scenario>(&record.run.value.scenario)
                .await
                .with_context(|| format!("reading scenario {}", record.run.value.scenario))?;
            items.push(item(record, drawn.turn, scenario.as_ref()));
        }
        let (listener, taken_port) = bind(options.port).await?;
        let state = Arc::new(api::State {
            repository,
            manifest,
            rubric,
            items,
            token: token()?,
            rater: options.rater,
        });
        Ok(Self {
            listener,
            state,
            seed,
            taken_port,
        })
    }

    /// The page's address with its token (and the rater, when named): what to open.
    pub fn url(&self) -> String {
        let mut url = format!("http://{}/?token={}", self.address(), self.state.token);
        if let Some(rater) = &self.state.rater {
            url.push_str("&rater=");
            url.extend(form_urlencoded::byte_serialize(rater.as_bytes()));
        }
        url
    }

    /// The address served: 127.0.0.1 and the port bound.
    pub fn address(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    }

    /// The port asked for, when another process held it and a free one was taken instead.
    pub fn taken_port(&self) -> Option<u16> {
        self.taken_port
    }

    /// The benchmark labelled.
    pub fn manifest(&self) -> ManifestId {
        self.state.manifest.id
    }

    /// The sample's seed: a second rater given it labels the same turns.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// How many turns were drawn (fewer than asked when the benchmark has fewer).
    pub fn turns(&self) -> usize {
        self.state.items.len()
    }

    /// Answers requests until `shutdown` completes, then finishes those under way.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let address = self.address();
        axum::serve(self.listener, api::router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(Error::io(format!("http://{address}")))
    }
}

/// The manifest and its rubric, once the manifest is finished.
async fn finished(
    repository: &Repository,
    id: &ManifestId,
    out: &Path,
) -> Result<(Manifest, Rubric), Error> {
    let reading = || format!("reading manifest {id}");
    let manifest = repository
        .get::<Manifest>(&keys::manifest(id))
        .await
        .with_context(reading)?
        .ok_or_else(|| Error::NotFound(format!("manifest {id} is not in {}", out.display())))?
        .value;
    let summary = repository
        .get::<ManifestSummary>(&keys::manifest_summary(id))
        .await
        .with_context(reading)?;
    if summary.is_none() {
        return Err(Error::NotFound(format!(
            "manifest {id} has not finished; label a finished benchmark"
        )));
    }
    let rubric = repository
        .require_catalog::<Rubric>(&manifest.request.rubric)
        .await
        .with_context(|| format!("reading rubric {}", manifest.request.rubric))?;
    Ok((manifest, rubric))
}

/// Every run of manifest `id` with its turns and judgments.
async fn records(repository: &Repository, id: &ManifestId) -> Result<Vec<RunRecord>, Error> {
    let reading = || format!("reading the runs of manifest {id}");
    let mut records = Vec::new();
    let mut cursor = None;
    loop {
        let page = repository
            .list_runs(&RunFilter::Manifest(*id), 500, cursor)
            .await
            .with_context(reading)?;
        for run in &page.items {
            if let Some(record) = repository.run_record(&run.id).await.with_context(reading)? {
                records.push(record);
            }
        }
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(records),
        }
    }
}

/// What the page shows of turn `turn` of `record`.
fn item(record: &RunRecord, turn: u32, scenario: Option<&Scenario>) -> Item {
    let mut dialogue = Vec::new();
    if let Some(s) = scenario {
        dialogue.push(("student", s.opening_statement.clone()));
    }
    for t in record.turns.iter().filter(|t| t.index <= turn) {
        dialogue.push(("tutor", t.tutor_text.clone()));
        if t.index < turn
            && let Some(reply) = &t.student_text
        {
            dialogue.push(("student", reply.clone()));
        }
    }
    let scenario = scenario.map_or(serde_json::Value::Null, |s| {
        serde_json::json!({
            "title": s.title,
            "subject": s.subject,
            "level": s.level.map(|l| l.as_str()),
            "persona": s.persona,
            "key_conflict": s.key_conflict,
            "goals": s.goals,
        })
    });
    Item {
        run: record.run.value.id,
        turn,
        vector: record.run.value.vector,
        scenario,
        dialogue,
    }
}

/// Binds 127.0.0.1 on `port`, or on a free port when it is taken or not given; with the port
/// that was taken.
async fn bind(port: Option<u16>) -> Result<(tokio::net::TcpListener, Option<u16>), Error> {
    let bind_to = |port: u16| tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port));
    if let Some(port) = port.filter(|p| *p != 0) {
        match bind_to(port).await {
            Ok(listener) => return Ok((listener, None)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                let listener = bind_to(0).await.map_err(Error::io("127.0.0.1"))?;
                return Ok((listener, Some(port)));
            }
            Err(e) => return Err(Error::io(format!("127.0.0.1:{port}"))(e)),
        }
    }
    Ok((bind_to(0).await.map_err(Error::io("127.0.0.1"))?, None))
}

/// 128 random bits from the system, in hex: the page's secret.
fn token() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::Failed {
        context: "drawing the page's token".into(),
        source: Box::new(std::io::Error::other(e.to_string())),
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes manifest `id`'s stored labels (by default the newest finished benchmark's) to
/// `file` as the CSV `socratic calibrate --labels` imports; answers how many were written.
/// A benchmark without labels is an error, and no file is written.
pub async fn export_labels(
    out: &Path,
    id: Option<ManifestId>,
    file: &Path,
) -> Result<usize, Error> {
    let history = History::open(out)?;
    let id = history.finished_or(id).await?;
    let (csv, count) = labelling::labels_csv(history.repository(), &id)
        .await
        .with_context(|| format!("reading the labels of manifest {id}"))?;
    if count == 0 {
        return Err(Error::NotFound(format!(
            "manifest {id} has no human labels to export; label turns with `socratic label`"
        )));
    }
    std::fs::write(file, csv).map_err(Error::io(file))?;
    Ok(count)
}
