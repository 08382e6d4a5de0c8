//! Human calibration: people score judged turns, and each judge is measured against them.
//!
//! Labels arrive as CSV with a header naming the columns `run_id`, `turn`, `dimension` and
//! `score`, and optionally `rater`:
//!
//! ```text
//! run_id,turn,dimension,score,rater
//! 01JDZ2…,1,pedagogical_stance,4,ana
//! sim-socratic/EL-ETH-UTIL-DEON-01/1,2,pedagogical_stance,5,ana
//! ```
//!
//! A run is named by its id or by its coordinates in the manifest, `tutor/scenario/repetition`.
//! Coordinates name the same dialogue in a manifest and in its re-judges, so one label file
//! calibrates every judge that scored those dialogues.
//!
//! [`import_labels`] checks every row against the manifest (its runs, their judged turns, the
//! rubric's dimensions and scales) and rejects the file with one error listing every problem,
//! writing nothing; otherwise it merges the rows into the manifest's stored labels (a row for
//! the same run, turn, dimension and rater replaces the earlier one). [`calibrate`] then
//! reports, per judge and dimension, quadratic-weighted kappa and Krippendorff's α between
//! judge and humans and the judge's mean bias, each with a 95% interval from resampling runs.

use std::collections::{BTreeMap, BTreeSet};

use crate::clock::Timestamp;
pub use crate::entity::{Calibration, HumanAgreement};
use crate::entity::{HumanLabel, HumanLabels, Manifest, Problems, Rubric, SkippedTurn};
use crate::id::{ManifestId, ModelId, RunId, ScenarioId};
use crate::keys;
use crate::repository::{RepoError, Repository, RunRecord};
use crate::stats;

/// Where a label goes: run, turn, dimension and rater. A later label for the same slot
/// replaces the earlier one; a file may name each slot once.
type Slot = (RunId, u32, String, Option<String>);

fn slot(label: &HumanLabel) -> Slot {
    (
        label.run,
        label.turn,
        label.dimension.clone(),
        label.rater.clone(),
    )
}

/// Why labels were not imported or calibration not computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CalibrationError {
    /// The labels have problems, every one listed by line; nothing was written.
    #[error("the labels were not imported: {0}")]
    Labels(Problems),
    /// The store failed, or the manifest or its rubric is missing.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// How a label file names a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunRef {
    /// By its id.
    Id(RunId),
    /// By its coordinates in the manifest: `tutor/scenario/repetition`.
    Coordinates {
        /// The tutor model.
        tutor: ModelId,
        /// The scenario.
        scenario: ScenarioId,
        /// The repetition, from 1.
        repetition: u32,
    },
}

impl RunRef {
    /// Parses a run id or `tutor/scenario/repetition`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Ok(id) = text.parse::<RunId>() {
            return Ok(RunRef::Id(id));
        }
        let parts: Vec<&str> = text.split('/').collect();
        let [tutor, scenario, repetition] = parts.as_slice() else {
            return Err(format!(
                "run_id {text:?} is neither a run id nor tutor/scenario/repetition"
            ));
        };
        Ok(RunRef::Coordinates {
            tutor: ModelId::new(*tutor).map_err(|e| format!("run_id {text:?}: tutor: {e}"))?,
            scenario: ScenarioId::new(*scenario)
                .map_err(|e| format!("run_id {text:?}: scenario: {e}"))?,
            repetition: repetition
                .parse::<u32>()
                .ok()
                .filter(|r| *r >= 1)
                .ok_or_else(|| format!("run_id {text:?}: repetition is not 1, 2, …"))?,
        })
    }

    /// The run's id in `manifest` (coordinates give the id the planner gave that run).
    pub fn resolve(&self, manifest: &ManifestId) -> RunId {
        match self {
            RunRef::Id(id) => *id,
            RunRef::Coordinates {
                tutor,
                scenario,
                repetition,
            } => crate::pipeline::run_id(manifest, tutor, scenario, *repetition),
        }
    }
}

/// One parsed row and the line it came from (1 is the header).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRow {
    /// The line in the file.
    pub line: usize,
    /// The run as the file names it.
    pub run: RunRef,
    /// The turn, from 1.
    pub turn: u32,
    /// The rubric dimension.
    pub dimension: String,
    /// The score.
    pub score: u8,
    /// The rater, when the file names one.
    pub rater: Option<String>,
}

impl LabelRow {
    /// The label this row gives in `manifest`.
    pub fn label(&self, manifest: &ManifestId) -> HumanLabel {
        HumanLabel {
            run: self.run.resolve(manifest),
            turn: self.turn,
            dimension: self.dimension.clone(),
            score: self.score,
            rater: self.rater.clone(),
        }
    }
}

/// The columns a label file must have, in any order; `rater` may be added.
pub const REQUIRED_COLUMNS: [&str; 4] = ["run_id", "turn", "dimension", "score"];

/// Splits one CSV record: fields separated by commas, a field in double quotes may hold
/// commas, and `""` inside quotes is a quote.
fn csv_fields(line: &str) -> Result<Vec<String>, &'static str> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed");
    }
    fields.push(field);
    Ok(fields.into_iter().map(|f| f.trim().to_owned()).collect())
}

impl std::fmt::Display for RunRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunRef::Id(id) => write!(f, "{id}"),
            RunRef::Coordinates {
                tutor,
                scenario,
                repetition,
            } => write!(f, "{tutor}/{scenario}/{repetition}"),
        }
    }
}

/// Parses a label file: the rows that parse, and a problem (by line) for every row that does
/// not, so that a caller can check the good rows too and report everything at once.
pub fn parse_labels(text: &str) -> (Vec<LabelRow>, Problems) {
    let mut problems = Problems::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((header_line, header)) = lines.next() else {
        problems.push("line 1", "the file is empty; it needs a header and labels");
        return (Vec::new(), problems);
    };
    let header = match csv_fields(header) {
        Ok(h) => h,
        Err(e) => {
            problems.push(format!("line {header_line}"), e);
            return (Vec::new(), problems);
        }
    };
    let column = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let missing: Vec<&str> = REQUIRED_COLUMNS
        .into_iter()
        .filter(|c| column(c).is_none())
        .collect();
    if !missing.is_empty() {
        problems.push(
            format!("line {header_line}"),
            format!(
                "the header lacks {}; it needs run_id, turn, dimension, score and optionally rater",
                missing.join(", ")
            ),
        );
        return (Vec::new(), problems);
    }
    let [run_at, turn_at, dimension_at, score_at] = REQUIRED_COLUMNS.map(&column);
    let rater_at = column("rater");
    let mut rows = Vec::new();
    for (line, text) in lines {
        let at = format!("line {line}");
        let fields = match csv_fields(text) {
            Ok(f) if f.len() == header.len() => f,
            Ok(f) => {
                problems.push(
                    at,
                    format!("{} field(s), the header has {}", f.len(), header.len()),
                );
                continue;
            }
            Err(e) => {
                problems.push(at, e);
                continue;
            }
        };
        let get = |i: Option<usize>| i.map(|i| fields[i].as_str()).unwrap_or_default();
        let run = RunRef::parse(get(run_at));
        let turn = get(turn_at).parse::<u32>().ok().filter(|t| *t >= 1);
        let score = get(score_at).parse::<u8>();
        let dimension = get(dimension_at);
        let mut ok = true;
        if let Err(e) = &run {
            problems.push(&at, e.clone());
            ok = false;
        }
        if turn.is_none() {
            problems.push(
                &at,
                format!("turn {:?} is not a turn number (1, 2, …)", get(turn_at)),
            );
            ok = false;
        }
        if score.is_err() {
            problems.push(
                &at,
                format!("score {:?} is not a whole number", get(score_at)),
            );
            ok = false;
        }
        if dimension.is_empty() {
            problems.push(&at, "the dimension is empty");
            ok = false;
        }
        if let (true, Ok(run), Some(turn), Ok(score)) = (ok, run, turn, score) {
            let rater = Some(get(rater_at)).filter(|r| !r.is_empty());
            rows.push(LabelRow {
                line,
                run,
                turn,
                dimension: dimension.to_owned(),
                score,
                rater: rater.map(str::to_owned),
            });
        }
    }
    if rows.is_empty() && problems.is_empty() {
        problems.push("line 2", "the file has a header but no labels");
    }
    (rows, problems)
}

/// Checks parsed rows, and the labels they give in `manifest` (`labels[i]` from `rows[i]`),
/// against the manifest's runs (those the rows name that belong to it) and rubric; every
/// problem is pushed onto `problems`.
pub fn check_labels(
    manifest: &Manifest,
    rubric: &Rubric,
    rows: &[LabelRow],
    labels: &[HumanLabel],
    runs: &BTreeMap<RunId, RunRecord>,
    problems: &mut Problems,
) {
    let dimensions: Vec<&str> = rubric.dimensions.iter().map(|d| d.name.as_str()).collect();
    let mut seen: BTreeMap<Slot, usize> = BTreeMap::new();
    for (row, label) in rows.iter().zip(labels) {
        let at = format!("line {}", row.line);
        match runs.get(&label.run) {
            None => problems.push(
                &at,
                match &row.run {
                    RunRef::Id(id) => format!("run {id} is not a run of manifest {}", manifest.id),
                    RunRef::Coordinates { .. } => {
                        format!("manifest {} has no run {}", manifest.id, row.run)
                    }
                },
            ),
            Some(record) => {
                let turns: BTreeSet<u32> = record.turns.iter().map(|t| t.index).collect();
                if !turns.contains(&label.turn) {
                    problems.push(
                        &at,
                        format!(
                            "run {} has no turn {} (its turns: {})",
                            row.run,
                            label.turn,
                            turns
                                .iter()
                                .map(u32::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
            }
        }
        match rubric.dimensions.iter().find(|d| d.name == label.dimension) {
            None => problems.push(
                &at,
                format!(
                    "dimension {:?} is not in rubric {} ({})",
                    label.dimension,
                    rubric.id,
                    dimensions.join(", ")
                ),
            ),
            Some(dim) if !dim.scale.contains(i64::from(label.score)) => problems.push(
                &at,
                format!(
                    "score {} is outside {}'s scale {}–{}",
                    label.score, dim.name, dim.scale.min, dim.scale.max
                ),
            ),
            Some(_) => {}
        }
        if let Some(first) = seen.insert(slot(label), row.line) {
            problems.push(
                &at,
                format!("repeats line {first} (same run, turn, dimension and rater)"),
            );
        }
    }
}

/// One labelled turn as one judge saw it: the judge's score and every human score.
#[derive(Debug, Clone)]
struct Unit {
    judge: u8,
    humans: Vec<u8>,
}

fn kappa(units: &[&Unit], min: u8, max: u8) -> Option<f64> {
    let (a, b): (Vec<u8>, Vec<u8>) = units
        .iter()
        .flat_map(|u| u.humans.iter().map(|h| (u.judge, *h)))
        .unzip();
    stats::weighted_kappa_quadratic(&a, &b, min, max)
}

fn alpha(units: &[&Unit]) -> Option<f64> {
    let values: Vec<Vec<f64>> = units
        .iter()
        .map(|u| {
            std::iter::once(u.judge)
                .chain(u.humans.iter().copied())
                .map(f64::from)
                .collect()
        })
        .collect();
    stats::krippendorff_alpha_interval(&values)
}

fn bias(units: &[&Unit]) -> Option<f64> {
    let differences: Vec<f64> = units
        .iter()
        .flat_map(|u| u.humans.iter().map(|h| f64::from(u.judge) - f64::from(*h)))
        .collect();
    stats::mean(&differences)
}

/// Resamples of runs behind each interval.
const RESAMPLES: usize = 1000;

/// Measures each judge of `records` against `labels`, per dimension of `rubric`.
pub fn calibrate(
    manifest: &Manifest,
    rubric: &Rubric,
    records: &[RunRecord],
    labels: &[HumanLabel],
) -> Calibration {
    // (run, turn, dimension) → human scores.
    let mut human: BTreeMap<(RunId, u32, &str), Vec<u8>> = BTreeMap::new();
    for label in labels {
        human
            .entry((label.run, label.turn, label.dimension.as_str()))
            .or_default()
            .push(label.score);
    }
    let judges: BTreeSet<&ModelId> = records
        .iter()
        .flat_map(|r| r.judgments.iter().map(|j| &j.judge))
        .chain(manifest.request.judges.iter().map(|j| &j.model))
        .collect();
    let mut agreement = Vec::new();
    for judge in judges {
        for dim in &rubric.dimensions {
            // Units grouped by run, the resampled cluster: turns of one dialogue are not
            // independent.
            let mut clusters: BTreeMap<RunId, Vec<Unit>> = BTreeMap::new();
            let mut unscored_turns = 0u32;
            for ((run, turn, dimension), humans) in &human {
                if *dimension != dim.name {
                    continue;
                }
                let score = records
                    .iter()
                    .find(|r| r.run.value.id == *run)
                    .and_then(|r| {
                        r.judgments
                            .iter()
                            .find(|j| j.turn == *turn && &j.judge == judge)
                    })
                    .and_then(|j| j.verdict())
                    .and_then(|v| v.scores.get(&dim.name).copied());
                match score {
                    Some(judge) => clusters.entry(*run).or_default().push(Unit {
                        judge,
                        humans: humans.clone(),
                    }),
                    None => unscored_turns += 1,
                }
            }
            let clusters: Vec<Vec<Unit>> = clusters.into_values().collect();
            let units: Vec<&Unit> = clusters.iter().flatten().collect();
            let (min, max) = (dim.scale.min, dim.scale.max);
            let seed = |what: &str| {
                stats::seed_of(&format!(
                    "{}/calibration/{judge}/{}/{what}",
                    manifest.hash, dim.name
                ))
            };
            agreement.push(HumanAgreement {
                judge: judge.clone(),
                dimension: dim.name.clone(),
                turns: count(units.len()),
                pairs: count(units.iter().map(|u| u.humans.len()).sum()),
                unscored_turns,
                weighted_kappa: kappa(&units, min, max),
                kappa_ci: stats::cluster_bootstrap(
                    &clusters,
                    |u| kappa(u, min, max),
                    RESAMPLES,
                    seed("kappa"),
                ),
                krippendorff_alpha: alpha(&units),
                alpha_ci: stats::cluster_bootstrap(&clusters, alpha, RESAMPLES, seed("alpha")),
                mean_bias: bias(&units),
                bias_ci: stats::cluster_bootstrap(&clusters, bias, RESAMPLES, seed("bias")),
            });
        }
    }
    let turns: BTreeSet<(RunId, u32)> = labels.iter().map(|l| (l.run, l.turn)).collect();
    let runs: BTreeSet<RunId> = labels.iter().map(|l| l.run).collect();
    let raters: BTreeSet<&str> = labels.iter().filter_map(|l| l.rater.as_deref()).collect();
    Calibration {
        manifest: manifest.id,
        rubric: rubric.id.clone(),
        labels: count(labels.len()),
        runs: count(runs.len()),
        turns: count(turns.len()),
        raters: raters.into_iter().map(str::to_owned).collect(),
        agreement,
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub(crate) async fn manifest_and_rubric(
    repository: &Repository,
    id: &ManifestId,
) -> Result<(Manifest, Rubric), CalibrationError> {
    let manifest = repository
        .get::<Manifest>(&keys::manifest(id))
        .await?
        .ok_or_else(|| RepoError::NotFound {
            entity: keys::EntityKind::Manifest,
            id: id.to_string(),
        })?
        .value;
    let rubric = repository
        .require_catalog::<Rubric>(&manifest.request.rubric)
        .await?;
    Ok((manifest, rubric))
}

/// The records of the manifest's runs among `ids`; runs of other manifests are left out.
pub(crate) async fn records_of(
    repository: &Repository,
    manifest: &ManifestId,
    ids: BTreeSet<RunId>,
) -> Result<BTreeMap<RunId, RunRecord>, RepoError> {
    let mut records = BTreeMap::new();
    for id in ids {
        if let Some(record) = repository.run_record(&id).await?
            && record.run.value.manifest == *manifest
        {
            records.insert(id, record);
        }
    }
    Ok(records)
}

/// Checks a label file against manifest `id` and, if every row holds, merges it into the
/// manifest's stored labels and answers with the calibration over all of them. With any
/// problem, nothing is written and the error lists them all.
pub async fn import_labels(
    repository: &Repository,
    id: &ManifestId,
    csv: &str,
    now: Timestamp,
) -> Result<Calibration, CalibrationError> {
    let (manifest, rubric) = manifest_and_rubric(repository, id).await?;
    let (rows, mut problems) = parse_labels(csv);
    let new: Vec<HumanLabel> = rows.iter().map(|r| r.label(id)).collect();
    let named: BTreeSet<RunId> = new.iter().map(|l| l.run).collect();
    let mut records = records_of(repository, id, named).await?;
    check_labels(&manifest, &rubric, &rows, &new, &records, &mut problems);
    // Problems come back in file order, parse and content problems together.
    problems.0.sort_by_key(|p| {
        p.field
            .trim_start_matches("line ")
            .parse::<usize>()
            .unwrap_or(0)
    });
    if !problems.is_empty() {
        return Err(CalibrationError::Labels(problems));
    }
    let merged = merge_labels(repository, id, &new, &[], now).await?;
    // The file's runs were read for the checks; read only the others.
    let others = merged
        .labels
        .iter()
        .map(|l| l.run)
        .filter(|run| !records.contains_key(run))
        .collect();
    records.extend(records_of(repository, id, others).await?);
    let all: Vec<RunRecord> = records.into_values().collect();
    Ok(calibrate(&manifest, &rubric, &all, &merged.labels))
}

/// Merges `labels` and `skipped` into manifest `id`'s stored labels, under the item's
/// version so that two writers at once cannot lose each other's: a label replaces the one in
/// its slot (run, turn, dimension, rater); a skip is kept once. Answers with what is stored.
pub(crate) async fn merge_labels(
    repository: &Repository,
    id: &ManifestId,
    labels: &[HumanLabel],
    skipped: &[SkippedTurn],
    now: Timestamp,
) -> Result<HumanLabels, RepoError> {
    loop {
        let stored = repository
            .get::<HumanLabels>(&keys::human_labels(id))
            .await?;
        // Stored labels, then the new ones, by slot: a new label replaces the old one.
        let by_slot: BTreeMap<Slot, HumanLabel> = stored
            .iter()
            .flat_map(|s| s.value.labels.iter())
            .chain(labels)
            .map(|l| (slot(l), l.clone()))
            .collect();
        let skips: BTreeSet<SkippedTurn> = stored
            .iter()
            .flat_map(|s| s.value.skipped.iter())
            .chain(skipped)
            .cloned()
            .collect();
        let merged = HumanLabels {
            manifest: *id,
            labels: by_slot.into_values().collect(),
            skipped: skips.into_iter().collect(),
            updated_at: now,
        };
        let written = match &stored {
            None => repository.create(&merged).await,
            Some(s) => repository.update(&merged, s.version).await.map(|_| ()),
        };
        match written {
            Ok(()) => return Ok(merged),
            // Another writer was first: merge into what it wrote.
            Err(RepoError::Store(
                crate::store::StoreError::AlreadyExists { .. }
                | crate::store::StoreError::ConditionFailed { .. },
            )) => {}
            Err(e) => return Err(e),
        }
    }
}

/// The calibration of manifest `id` over its stored labels; `None` when it has none.
pub async fn stored_calibration(
    repository: &Repository,
    id: &ManifestId,
) -> Result<Option<Calibration>, CalibrationError> {
    let (manifest, rubric) = manifest_and_rubric(repository, id).await?;
    let Some(stored) = repository
        .get::<HumanLabels>(&keys::human_labels(id))
        .await?
    else {
        return Ok(None);
    };
    let labels = stored.value.labels;
    let runs = labels.iter().map(|l| l.run).collect();
    let records = records_of(repository, id, runs).await?;
    let records: Vec<RunRecord> = records.into_values().collect();
    Ok(Some(calibrate(&manifest, &rubric, &records, &labels)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_follow_quotes() {
        assert_eq!(csv_fields("a, b ,c").unwrap(), ["a", "b", "c"]);
        assert_eq!(
            csv_fields(r#"x,"Smith, J.","say ""hi""""#).unwrap(),
            ["x", "Smith, J.", r#"say "hi""#]
        );
        assert_eq!(csv_fields("a,,").unwrap(), ["a", "", ""]);
        assert!(csv_fields(r#"a,"open"#).is_err());
    }

    #[test]
    fn columns_come_in_any_order_with_an_optional_rater() {
        let text = "\u{feff}score,dimension,turn,run_id,rater\r\n\
                    4,pedagogical_stance,2,sim-socratic/EL-ETH-UTIL-DEON-01/1,\"Lee, A.\"\r\n\
                    \r\n\
                    3,persona_adaptation,1,01ARZ3NDEKTSV4RRFFQ69G5FAV,\r\n";
        let (rows, problems) = parse_labels(text);
        assert!(problems.is_empty(), "{problems}");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(
            rows[0].run,
            RunRef::Coordinates {
                tutor: ModelId::new("sim-socratic").unwrap(),
                scenario: ScenarioId::new("EL-ETH-UTIL-DEON-01").unwrap(),
                repetition: 1,
            }
        );
        assert_eq!(
            (rows[0].turn, rows[0].dimension.as_str(), rows[0].score),
            (2, "pedagogical_stance", 4)
        );
        assert_eq!(rows[0].rater.as_deref(), Some("Lee, A."));
        assert_eq!(rows[1].line, 4, "blank lines still count");
        assert!(matches!(rows[1].run, RunRef::Id(_)));
        assert_eq!(rows[1].rater, None, "an empty rater is none");
    }

    #[test]
    fn coordinates_resolve_to_the_planned_run_id() {
        let manifest = ManifestId::from_ulid(ulid::Ulid::from(7u128));
        let tutor = ModelId::new("sim-leaky").unwrap();
        let scenario = ScenarioId::new("MAI-ECO-INFL-01").unwrap();
        let reference = RunRef::parse("sim-leaky/MAI-ECO-INFL-01/2").unwrap();
        assert_eq!(
            reference.resolve(&manifest),
            crate::pipeline::run_id(&manifest, &tutor, &scenario, 2)
        );
        assert_eq!(reference.to_string(), "sim-leaky/MAI-ECO-INFL-01/2");
        for bad in [
            "sim-leaky/MAI-ECO-INFL-01/0",
            "a/b",
            "a/b/c/d",
            "bad id/x/1",
        ] {
            assert!(RunRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_malformed_row_is_reported_by_line() {
        let text = "run_id,turn,dimension,score\n\
                    nope,1,pedagogical_stance,3\n\
                    sim-a/S-1/1,first,pedagogical_stance,3\n\
                    sim-a/S-1/1,1,,3.5\n\
                    sim-a/S-1/1,1,pedagogical_stance\n\
                    sim-a/S-1/1,1,pedagogical_stance,3\n";
        let (rows, problems) = parse_labels(text);
        assert_eq!(rows.len(), 1, "the good row still parses");
        let fields: Vec<&str> = problems.0.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            ["line 2", "line 3", "line 4", "line 4", "line 5"],
            "{problems}"
        );
        let (_, empty) = parse_labels("");
        assert!(empty.to_string().contains("empty"), "{empty}");
        let (_, header_only) = parse_labels("run_id,turn,dimension,score\n");
        assert!(
            header_only.to_string().contains("no labels"),
            "{header_only}"
        );
    }
}
