//! Stage 4: when a manifest's last run finishes, summarise the manifest and write its report
//! files. A run is summarised where it is judged ([`curate_run`], called by the judge), so the
//! curator reads a run only for runs stored by earlier releases, which stopped at `judged`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::leaderboard::{RunDigest, summarize_digests};
use super::{Ports, StageError, Transition, run_record, transition_with};
use crate::answer_key::{AnswerKey, GoalTimeline};
use crate::blob::{BlobError, BlobKey, BlobPutMode, BlobStore, BlobStoreExt};
use crate::clock::Timestamp;
use crate::entity::{
    Judgment, Manifest, ManifestSummary, Model, REVEALS_ANSWER_FLAG, RoleUsage, Rubric, Run,
    RunStatus, RunSummary, Scenario, Turn, TurnTelling,
};
use crate::id::{ManifestId, ModelId, RunId};
use crate::keys;
use crate::llm::{Prices, Role};
use crate::report::{self, ReportRuns};
use crate::repository::{RepoError, Repository, RunFilter, RunRecord, overwrite_op};
use crate::stats;
use crate::store::{StoreError, TxOp};

/// Handles a `run-judged` event: the run's manifest may be complete. When every run of the
/// manifest is final, computes the manifest's summaries and report files (idempotently). A
/// `judged` run, left by an earlier release, is curated first.
pub async fn curate(ports: &Ports, id: &RunId) -> Result<(), StageError> {
    let repo = &ports.repository;
    loop {
        let record = run_record(ports, id).await?;
        let manifest_id = record.run.value.manifest;
        match record.run.value.status {
            RunStatus::Curated => {
                rewrite_curated(ports, &record).await?;
                return finish_manifest_if_complete(ports, &manifest_id, id).await;
            }
            RunStatus::Failed | RunStatus::Skipped => {
                return finish_manifest_if_complete(ports, &manifest_id, id).await;
            }
            // Premature: the judge sends the event again once the run is curated.
            RunStatus::Pending | RunStatus::Running | RunStatus::DialogueComplete => return Ok(()),
            RunStatus::Judged => {
                let manifest = repo
                    .get::<Manifest>(&keys::manifest(&manifest_id))
                    .await?
                    .ok_or_else(|| StageError::rejected("manifest does not exist"))?
                    .value;
                if let Some(finished) = curate_run(ports, &manifest, &record, Vec::new()).await? {
                    if finished < manifest.run_count {
                        return Ok(());
                    }
                    return finish_manifest_if_complete(ports, &manifest_id, id).await;
                }
            }
        }
    }
}

/// Curates a run whose judgments are all in `record`: in one transaction with `also` (the
/// judgment that completes it, when the judge calls this), its summary and its move to
/// `curated`, counted on the manifest; then its curated document. Answers with the count of
/// the manifest's finished runs, this one included, or `None` when another writer moved the
/// run first.
pub(crate) async fn curate_run(
    ports: &Ports,
    manifest: &Manifest,
    record: &RunRecord,
    mut also: Vec<TxOp>,
) -> Result<Option<u64>, StageError> {
    let summary = summarize(ports, manifest, record).await?;
    // The summary is written with the move, so a curated run always has one.
    also.push(overwrite_op(&summary)?);
    match transition_with(ports, &record.run, RunStatus::Curated, None, also).await? {
        Transition::Moved { run, finished } => {
            write_curated(
                ports,
                &run.value,
                &record.turns,
                &record.judgments,
                &summary,
            )
            .await?;
            // A final move is always counted; without a count, check the manifest.
            Ok(Some(finished.unwrap_or(u64::MAX)))
        }
        Transition::Raced => Ok(None),
    }
}

/// Writes a curated run's document, `curated/runs/<run>.json`, again from what is stored: a
/// crash may have come between its move and its document.
pub(crate) async fn rewrite_curated(ports: &Ports, record: &RunRecord) -> Result<(), StageError> {
    match &record.summary {
        Some(summary) => {
            write_curated(
                ports,
                &record.run.value,
                &record.turns,
                &record.judgments,
                summary,
            )
            .await
        }
        None => Ok(()),
    }
}

/// `curated/runs/<run>.json`. Only the writer whose move curated the run, or a later job that
/// reads the stored run, writes it, so it never shows a judgment that lost a race.
async fn write_curated(
    ports: &Ports,
    run: &Run,
    turns: &[Turn],
    judgments: &[Judgment],
    summary: &RunSummary,
) -> Result<(), StageError> {
    let blob = BlobKey::new(format!("curated/runs/{}.json", run.id))?;
    let document = CuratedDocument {
        run,
        turns,
        judgments,
        summary,
    };
    // Compact, like the raw artifacts: one is written per run.
    ports
        .blobs
        .put_compact_json(&blob, &document, BlobPutMode::Overwrite)
        .await?;
    Ok(())
}

async fn summarize(
    ports: &Ports,
    manifest: &Manifest,
    record: &RunRecord,
) -> Result<RunSummary, StageError> {
    let repo = &ports.repository;
    let rubric: Rubric = repo.require_catalog(&manifest.request.rubric).await?;
    let mut models = BTreeSet::new();
    for turn in &record.turns {
        models.insert(turn.tutor_call.model.clone());
        if let Some(call) = &turn.student_call {
            models.insert(call.model.clone());
        }
    }
    for judgment in &record.judgments {
        models.extend(judgment.calls.iter().map(|c| c.model.clone()));
    }
    let mut prices = BTreeMap::new();
    for id in models {
        let model: Model = repo.require_catalog(&id).await?;
        prices.insert(id, model.prices);
    }
    let scenario: Scenario = repo.require_catalog(&record.run.value.scenario).await?;
    Ok(summarize_run(
        &record.run.value,
        &rubric,
        &scenario,
        &record.turns,
        &record.judgments,
        &prices,
        ports.clock.now(),
    ))
}

/// Scores of one turn: the mean of every judge's scored verdict per dimension, and whether a
/// majority flagged it as revealing the answer.
struct TurnScores {
    index: u32,
    dimensions: BTreeMap<String, f64>,
    score: f64,
    reveals_answer: bool,
}

/// Computes a run's summary (DOMAIN.md "From scores to conclusions"). Unscored judgments are
/// counted, never averaged in; a turn no judge scored is left out of the means.
pub fn summarize_run(
    run: &Run,
    rubric: &Rubric,
    scenario: &Scenario,
    turns: &[Turn],
    judgments: &[Judgment],
    prices: &BTreeMap<ModelId, Prices>,
    now: Timestamp,
) -> RunSummary {
    let mut scored_turns: Vec<TurnScores> = Vec::new();
    let mut violations = BTreeMap::new();
    let mut unscored = 0u32;
    let mut indexes: Vec<u32> = turns.iter().map(|t| t.index).collect();
    indexes.sort_unstable();
    for index in indexes {
        let verdicts: Vec<_> = judgments
            .iter()
            .filter(|j| j.turn == index)
            .filter_map(Judgment::verdict)
            .collect();
        unscored += u32::try_from(
            judgments
                .iter()
                .filter(|j| j.turn == index && j.verdict().is_none())
                .count(),
        )
        .unwrap_or(0);
        for verdict in &verdicts {
            for violation in &verdict.violations {
                *violations.entry(*violation).or_insert(0) += 1;
            }
        }
        if verdicts.is_empty() {
            continue;
        }
        let mut dimensions = BTreeMap::new();
        let (mut weighted, mut weights) = (0.0, 0.0);
        for dim in &rubric.dimensions {
            let values: Vec<f64> = verdicts
                .iter()
                .filter_map(|v| v.scores.get(&dim.name))
                .map(|s| f64::from(*s))
                .collect();
            if let Some(mean) = stats::mean(&values) {
                dimensions.insert(dim.name.clone(), mean);
                weighted += dim.weight * mean;
                weights += dim.weight;
            }
        }
        let flagged = verdicts
            .iter()
            .filter(|v| v.flags.get(REVEALS_ANSWER_FLAG).copied().unwrap_or(false))
            .count();
        if weights > 0.0 {
            scored_turns.push(TurnScores {
                index,
                dimensions,
                score: weighted / weights,
                reveals_answer: flagged * 2 > verdicts.len(),
            });
        }
    }
    let scores: Vec<f64> = scored_turns.iter().map(|t| t.score).collect();
    let mut dimension_means = BTreeMap::new();
    for dim in &rubric.dimensions {
        let values: Vec<f64> = scored_turns
            .iter()
            .filter_map(|t| t.dimensions.get(&dim.name))
            .copied()
            .collect();
        if let Some(mean) = stats::mean(&values) {
            dimension_means.insert(dim.name.clone(), mean);
        }
    }
    let passing = scores
        .iter()
        .filter(|s| **s >= rubric.pass_threshold)
        .count();

    let mut usage: BTreeMap<Role, RoleUsage> = BTreeMap::new();
    let mut add = |call: &crate::entity::CallRecord| {
        let entry = usage.entry(call.role).or_default();
        entry.calls += 1;
        entry.usage = entry.usage + call.usage;
        entry.cost_usd += prices
            .get(&call.model)
            .map_or(0.0, |p| p.for_call(call.batched).cost(&call.usage));
    };
    for turn in turns {
        add(&turn.tutor_call);
        if let Some(call) = &turn.student_call {
            add(call);
        }
    }
    for judgment in judgments {
        judgment.calls.iter().for_each(&mut add);
    }
    let mut ordered: Vec<&Turn> = turns.iter().collect();
    ordered.sort_by_key(|t| t.index);
    let goals = GoalTimeline::of(scenario, turns);
    let telling = turn_telling(rubric, scenario, &ordered, &scored_turns);
    let judge_ratings = judge_ratings(rubric, judgments);

    RunSummary {
        run: run.id,
        manifest: run.manifest,
        tutor: run.tutor.model.clone(),
        scenario: run.scenario.clone(),
        vector: run.vector,
        rubric: rubric.id.clone(),
        dimension_means,
        overall: stats::mean(&scores),
        min: scores.iter().copied().reduce(f64::min),
        max: scores.iter().copied().reduce(f64::max),
        median: stats::median(&scores),
        std_dev: stats::std_dev(&scores),
        compliance: (!scores.is_empty()).then(|| passing as f64 / scores.len() as f64),
        half_life: scored_turns
            .iter()
            .find(|t| t.score < rubric.pass_threshold)
            .map(|t| t.index),
        answer_leak_turn: scored_turns
            .iter()
            .find(|t| t.reveals_answer)
            .map(|t| t.index),
        goal_reached_turn: goals.reached,
        goal_told_turn: goals.told,
        telling,
        judge_ratings,
        violations,
        scored_turns: u32::try_from(scored_turns.len()).unwrap_or(u32::MAX),
        unscored_judgments: unscored,
        usage,
        // A batched call waited hours in the provider's batch, with no latency of its own:
        // only live calls tell how fast a tutor answers.
        tutor_latencies_ms: ordered
            .iter()
            .filter(|t| !t.tutor_call.batched)
            .map(|t| t.tutor_call.latency_ms)
            .collect(),
        computed_at: now,
    }
}

/// With two or more judges, per dimension and per turn at least two judges scored, each
/// judge's score, turns in order and judges by model id (the order the store lists a run's
/// judgments in, so the same run always gives the same ratings).
fn judge_ratings(
    rubric: &Rubric,
    judgments: &[Judgment],
) -> Option<BTreeMap<String, Vec<Vec<u8>>>> {
    let judges: BTreeSet<&ModelId> = judgments.iter().map(|j| &j.judge).collect();
    if judges.len() < 2 {
        return None;
    }
    let mut ordered: Vec<&Judgment> = judgments.iter().collect();
    ordered.sort_by(|a, b| (a.turn, &a.judge).cmp(&(b.turn, &b.judge)));
    let mut ratings: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for turn in ordered.chunk_by(|a, b| a.turn == b.turn) {
        for dim in &rubric.dimensions {
            let scores: Vec<u8> = turn
                .iter()
                .filter_map(|j| j.verdict()?.scores.get(&dim.name).copied())
                .collect();
            if scores.len() >= 2 {
                ratings.entry(dim.name.clone()).or_default().push(scores);
            }
        }
    }
    Some(ratings)
}

/// Per tutor turn, in order, what the two telling detectors say of it: the judges' majority
/// flag (when the rubric has it and a judge scored the turn) and the verbatim detector.
fn turn_telling(
    rubric: &Rubric,
    scenario: &Scenario,
    ordered: &[&Turn],
    scored_turns: &[TurnScores],
) -> Vec<TurnTelling> {
    let flagged = rubric.flags.iter().any(|f| f.name == REVEALS_ANSWER_FLAG);
    let key = AnswerKey::of(scenario);
    ordered
        .iter()
        .map(|turn| TurnTelling {
            turn: turn.index,
            judges: scored_turns
                .iter()
                .find(|t| t.index == turn.index)
                .filter(|_| flagged)
                .map(|t| t.reveals_answer),
            verbatim: key.told_in(&turn.tutor_text),
        })
        .collect()
}

/// How long a claim on writing a manifest's summary holds: longer than any job runs
/// (Lambda's limit is 15 minutes), so it passes to another job only when its claimant died.
const SUMMARY_CLAIM_LEASE: Duration = Duration::from_secs(20 * 60);

/// When every run of the manifest is final, computes and stores its summaries and writes
/// `summary.json`, `leaderboard.csv` and `report.html` under `curated/manifests/<id>/`, once:
/// a manifest with a summary is left as it is, and of the jobs whose runs finished it, only
/// the one that claims it ([`Repository::claim_summary`]) writes it.
async fn finish_manifest_if_complete(
    ports: &Ports,
    id: &ManifestId,
    run: &RunId,
) -> Result<(), StageError> {
    let repo = &ports.repository;
    let Some(progress) = repo.manifest_progress(id).await? else {
        return Err(StageError::rejected(format!(
            "manifest {id} does not exist"
        )));
    };
    if !progress.is_complete()
        || repo
            .get::<ManifestSummary>(&keys::manifest_summary(id))
            .await?
            .is_some()
    {
        return Ok(());
    }
    let now = ports.clock.now();
    if !repo
        .claim_summary(id, run, now, SUMMARY_CLAIM_LEASE)
        .await?
    {
        return Ok(());
    }
    let manifest = progress.manifest;
    // The report's runs are read and rendered on a task of their own while this one reads
    // the summaries: the two passes over the runs share the cores.
    let run_data = RunDataPages::start(ports, manifest.id);
    let rubric: Rubric = repo.require_catalog(&manifest.request.rubric).await?;
    // A page of runs at a time, each kept only as its digest: memory stays small however
    // many runs the manifest has. The runs' summaries are all that is read: they carry the
    // judges' ratings the agreement needs. A summary written before they were recorded has
    // its run's judgments read instead.
    let several_judges = manifest.request.judges.len() >= 2;
    // Sized once: a vector grown by doubling would hold up to twice what it needs. (Capped:
    // the count is read from the store; a larger manifest grows past it.)
    let capacity = usize::try_from(manifest.run_count.min(100_000)).unwrap_or(0);
    let mut digests = Vec::with_capacity(capacity);
    let mut cursor = None;
    loop {
        let page = repo
            .list_runs(&RunFilter::Manifest(*id), 100, cursor)
            .await?;
        let ids: Vec<_> = page.items.iter().map(|r| r.id).collect();
        let summaries = repo.run_summaries(&ids).await?;
        for (run, summary) in page.items.iter().zip(summaries) {
            let unrecorded = summary.as_ref().is_some_and(|s| s.judge_ratings.is_none());
            if several_judges && unrecorded {
                if let Some(record) = repo.run_record(&run.id).await? {
                    digests.push(RunDigest::of(&record, &rubric));
                }
            } else {
                digests.push(RunDigest::of_summary(run, summary));
            }
        }
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
    }
    // The heatmap's cells come from the digests; the runs' data is streamed into the page.
    let mut shown = report_scenarios(repo, &manifest).await?;
    for digest in &digests {
        let overall = digest.summary.as_ref().and_then(|s| s.overall);
        shown.cell(&digest.scenario, &digest.tutor, overall);
    }
    let summary = summarize_digests(&manifest, &rubric, digests, ports.clock.now());
    // Curation may run more than once for a manifest; the metric counts summaries written.
    tracing::info!(
        target: super::METRICS_TARGET,
        metric = "manifest_summarised",
        runs = summary.runs,
        failed_runs = summary.failed_runs,
        cost_usd = summary.cost_usd,
    );
    for model in &summary.leaderboard {
        repo.overwrite(model).await?;
    }
    for vector in &summary.vectors {
        repo.overwrite(vector).await?;
    }
    let page = report::HtmlReport::new(&summary, &rubric)
        .manifest(&manifest)
        .runs(&shown);
    write_report(ports.blobs.as_ref(), &summary, &page, run_data).await?;
    // The summary item last: its presence means every file above is written. Written once:
    // a job that took over the claim from one that only seemed dead may find it there.
    match repo.create(&summary).await {
        Ok(()) | Err(RepoError::Store(StoreError::AlreadyExists { .. })) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `curated/runs/<run>.json`, as written.
#[derive(serde::Serialize)]
struct CuratedDocument<'a> {
    run: &'a Run,
    turns: &'a [Turn],
    judgments: &'a [Judgment],
    summary: &'a RunSummary,
}

/// `curated/runs/<run>.json`, as read back.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct CuratedRun {
    /// The run.
    pub run: Run,
    /// Its turns.
    pub turns: Vec<Turn>,
    /// Its judgments.
    pub judgments: Vec<Judgment>,
    /// Its summary, when the document holds one.
    pub summary: Option<RunSummary>,
}

/// How many curated runs the report reads at once.
const REPORT_READS_AT_ONCE: usize = 16;

/// Reads what the HTML report shows of a manifest's runs: its scenarios, and every run, a page
/// at a time: curated runs from their curated documents (`curated/runs/<run>.json`, a few
/// reads at a time), stopped ones from the store, with what they stored before stopping.
pub async fn report_runs(
    repository: &Repository,
    blobs: &dyn BlobStore,
    manifest: &Manifest,
) -> Result<ReportRuns, StageError> {
    let mut shown = report_scenarios(repository, manifest).await?;
    let mut cursor = None;
    loop {
        let page = repository
            .list_runs(&RunFilter::Manifest(manifest.id), 100, cursor)
            .await?;
        add_to_report(repository, blobs, &page.items, &mut shown).await?;
        cursor = page.cursor;
        if cursor.is_none() {
            return Ok(shown);
        }
    }
}

/// A report's runs with the manifest's scenarios and no run yet.
async fn report_scenarios(
    repository: &Repository,
    manifest: &Manifest,
) -> Result<ReportRuns, StageError> {
    let mut shown = ReportRuns::new();
    for scenario in &manifest.request.scenarios {
        if let Some(scenario) = repository.get_catalog::<Scenario>(scenario).await? {
            shown.scenario(&scenario);
        }
    }
    Ok(shown)
}

async fn add_to_report(
    repository: &Repository,
    blobs: &dyn BlobStore,
    runs: &[Run],
    shown: &mut ReportRuns,
) -> Result<(), StageError> {
    let reads: Vec<_> = runs
        .iter()
        .map(|run| async move {
            if run.status != RunStatus::Curated {
                return Ok(None);
            }
            let key = BlobKey::new(format!("curated/runs/{}.json", run.id))?;
            match blobs.get(&key).await {
                Ok(bytes) => Ok(serde_json::from_slice::<CuratedRun>(&bytes).ok()),
                Err(BlobError::NotFound { .. }) => Ok(None),
                Err(e) => Err(StageError::from(e)),
            }
        })
        .collect();
    let curated: Vec<Result<Option<CuratedRun>, StageError>> = futures::stream::iter(reads)
        .buffered(REPORT_READS_AT_ONCE)
        .collect()
        .await;
    for (run, curated) in runs.iter().zip(curated) {
        match curated? {
            Some(c) => shown.run(&c.run, &c.turns, &c.judgments, c.summary.as_ref()),
            None => match repository.run_record(&run.id).await? {
                Some(r) => shown.run(&r.run.value, &r.turns, &r.judgments, r.summary.as_ref()),
                None => shown.run(run, &[], &[], None),
            },
        }
    }
    Ok(())
}

/// The report's run data, a page of runs at a time, read and rendered by a task of its own
/// at most two pages ahead of the writer (so memory stays flat however many runs the
/// manifest has). Dropping it stops the task.
struct RunDataPages {
    pages: tokio::sync::mpsc::Receiver<Result<String, StageError>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunDataPages {
    fn start(ports: &Ports, manifest: ManifestId) -> Self {
        let (sender, pages) = tokio::sync::mpsc::channel(2);
        let (repository, blobs) = (ports.repository.clone(), Arc::clone(&ports.blobs));
        let task = tokio::spawn(async move {
            let mut cursor = None;
            loop {
                let page = async {
                    let runs = repository
                        .list_runs(&RunFilter::Manifest(manifest), 100, cursor.take())
                        .await?;
                    let mut shown = ReportRuns::new();
                    add_to_report(&repository, blobs.as_ref(), &runs.items, &mut shown).await?;
                    Ok::<_, StageError>((shown.take_data(), runs.cursor))
                }
                .await;
                // After an error there is no next page.
                let data = page.map(|(data, next)| {
                    cursor = next;
                    data
                });
                if sender.send(data).await.is_err() || cursor.is_none() {
                    return;
                }
            }
        });
        Self { pages, task }
    }

    /// The next page's data, or `None` after the last.
    async fn next(&mut self) -> Result<Option<String>, StageError> {
        match self.pages.recv().await {
            Some(page) => page.map(Some),
            // The task has ended: after its last page, unless it panicked.
            None => match (&mut self.task).await {
                Ok(()) => Ok(None),
                Err(e) => Err(StageError::Retryable {
                    message: format!("reading the report's runs: {e}"),
                    retry_after: None,
                }),
            },
        }
    }
}

impl Drop for RunDataPages {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The manifest's files. The report embeds every run, so it is written a page of runs at a
/// time ([`BlobStore::writer`]): a store that writes as it goes never holds it whole, and
/// memory stays flat however many runs the manifest has.
async fn write_report(
    blobs: &dyn BlobStore,
    summary: &ManifestSummary,
    page: &report::HtmlReport<'_>,
    mut run_data: RunDataPages,
) -> Result<(), StageError> {
    let dir = format!("curated/manifests/{}", summary.manifest);
    let files = [
        (
            "summary.json",
            serde_json::to_vec_pretty(summary).unwrap_or_default(),
        ),
        (
            "leaderboard.csv",
            report::leaderboard_csv(summary).into_bytes(),
        ),
    ];
    for (name, bytes) in files {
        blobs
            .put(
                &BlobKey::new(format!("{dir}/{name}"))?,
                bytes,
                BlobPutMode::Overwrite,
            )
            .await?;
    }
    let key = BlobKey::new(format!("{dir}/report.html"))?;
    let mut writer = blobs.writer(&key, BlobPutMode::Overwrite).await?;
    writer.write(page.page_start().as_bytes()).await?;
    let mut first = true;
    while let Some(data) = run_data.next().await? {
        if !data.is_empty() {
            if !first {
                writer.write(b",").await?;
            }
            writer.write(data.as_bytes()).await?;
            first = false;
        }
    }
    writer
        .write(report::HtmlReport::page_end().as_bytes())
        .await?;
    writer.finish().await?;
    Ok(())
}
