//! The history of a results directory, read from its database: every manifest (`list`), one
//! run's transcript with its judgments (`show`), and two manifests compared (`compare`).

use std::fmt::Write as _;

use socratic_core::calibration::Calibration;
use socratic_core::compare::ManifestComparison;
use socratic_core::entity::{JudgmentOutcome, Manifest, ManifestSummary, RunStatus};
use socratic_core::id::ModelId;
use socratic_core::keys;
use socratic_core::repository::{RepoError, Repository, RunRecord};

/// One line of `socratic list`.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestLine {
    /// The manifest.
    pub manifest: Manifest,
    /// Runs that reached a final status.
    pub finished: u64,
    /// Its summary, once curated.
    pub summary: Option<ManifestSummary>,
}

impl ManifestLine {
    /// `finished`, `running or stopped (N/M)`, and for a finished manifest with stopped runs,
    /// how many failed or were skipped.
    pub fn status(&self) -> String {
        match &self.summary {
            Some(s) if s.failed_runs + s.skipped_runs > 0 => format!(
                "finished ({} failed, {} skipped)",
                s.failed_runs, s.skipped_runs
            ),
            Some(_) => "finished".to_owned(),
            None => format!("unfinished ({}/{})", self.finished, self.manifest.run_count),
        }
    }
}

/// Every manifest of the repository, newest first.
pub async fn manifests(repository: &Repository) -> Result<Vec<ManifestLine>, RepoError> {
    let mut lines = Vec::new();
    let mut cursor = None;
    loop {
        let page = repository.list_manifests(100, cursor).await?;
        for manifest in page.items {
            let finished = repository
                .manifest_progress(&manifest.id)
                .await?
                .map_or(0, |p| p.finished);
            let summary = repository
                .get::<ManifestSummary>(&keys::manifest_summary(&manifest.id))
                .await?
                .map(|v| v.value);
            lines.push(ManifestLine {
                manifest,
                finished,
                summary,
            });
        }
        cursor = page.cursor;
        if cursor.is_none() {
            return Ok(lines);
        }
    }
}

/// The `list` table: id, date, label, tutors, status, runs and cost.
pub fn list_table(lines: &[ManifestLine]) -> String {
    let mut out = format!(
        "{:<26}  {:<16}  {:<28}  {:<30}  {:<22}  {:>5}  {:>9}\n",
        "manifest", "created (UTC)", "label", "tutors", "status", "runs", "cost $"
    );
    for line in lines {
        let request = &line.manifest.request;
        let tutors: Vec<&str> = request.tutors.iter().map(|t| t.model.as_str()).collect();
        let mut label = request.label.clone().unwrap_or_default();
        if let Some(source) = request.rejudge_of {
            label = format!("re-judge of {source} {label}");
        }
        let created = line.manifest.created_at.to_string();
        let cost = line
            .summary
            .as_ref()
            .map_or_else(|| "-".to_owned(), |s| format!("{:.4}", s.cost_usd));
        let _ = writeln!(
            out,
            "{:<26}  {:<16}  {:<28}  {:<30}  {:<22}  {:>5}  {:>9}",
            line.manifest.id,
            created.get(..16).unwrap_or(&created).replace('T', " "),
            clip(&label, 28),
            clip(&tutors.join(", "), 30),
            line.status(),
            line.manifest.run_count,
            cost
        );
    }
    out
}

fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let head: String = text.chars().take(width.saturating_sub(1)).collect();
        format!("{head}…")
    }
}

/// A run's transcript in the terminal: each turn's tutor and student text, then every
/// judge's scores, flags and rationale for it, or why the judgment is unscored.
pub fn transcript(record: &RunRecord) -> String {
    let run = &record.run.value;
    let mut out = format!(
        "run {}  manifest {}\ntutor {}  scenario {} ({:?})  repetition {}  status {}\n",
        run.id,
        run.manifest,
        run.tutor.model,
        run.scenario,
        run.vector,
        run.repetition,
        run.status.as_str()
    );
    if let Some(failure) = &run.failure {
        let _ = writeln!(out, "stopped at {:?}: {}", failure.stage, failure.reason);
    }
    if let Some(summary) = &record.summary {
        let overall = summary
            .overall
            .map_or_else(|| "unscored".to_owned(), |o| format!("{o:.2}"));
        let _ = writeln!(out, "overall {overall}");
    }
    let mut turns = record.turns.clone();
    turns.sort_by_key(|t| t.index);
    for turn in &turns {
        let _ = writeln!(out, "\n── turn {} ──", turn.index);
        let _ = writeln!(out, "TUTOR:   {}", indent(&turn.tutor_text));
        if let Some(student) = &turn.student_text {
            let _ = writeln!(out, "STUDENT: {}", indent(student));
        }
        let mut judgments: Vec<_> = record
            .judgments
            .iter()
            .filter(|j| j.turn == turn.index)
            .collect();
        judgments.sort_by(|a, b| a.judge.cmp(&b.judge));
        for judgment in judgments {
            match &judgment.outcome {
                JudgmentOutcome::Scored(verdict) => {
                    let scores: Vec<String> = verdict
                        .scores
                        .iter()
                        .map(|(d, s)| format!("{d} {s}"))
                        .collect();
                    let _ = writeln!(out, "  judge {}: {}", judgment.judge, scores.join(", "));
                    let flags: Vec<&str> = verdict
                        .flags
                        .iter()
                        .filter(|(_, on)| **on)
                        .map(|(name, _)| name.as_str())
                        .collect();
                    if !flags.is_empty() {
                        let _ = writeln!(out, "    flags: {}", flags.join(", "));
                    }
                    if !verdict.rationale.is_empty() {
                        let _ = writeln!(out, "    {}", indent(&verdict.rationale));
                    }
                }
                JudgmentOutcome::Unscored { reason } => {
                    let _ = writeln!(out, "  judge {}: unscored: {reason}", judgment.judge);
                }
            }
        }
    }
    if turns.is_empty() && run.status == RunStatus::Pending {
        out.push_str("\n(no turns yet)\n");
    }
    out
}

fn indent(text: &str) -> String {
    text.trim().replace('\n', "\n         ")
}

/// The `compare` table: per shared model, the means in A and B, the difference with its 95%
/// interval, and the Holm-adjusted p-value.
pub fn comparison_table(comparison: &ManifestComparison) -> String {
    let mut out = format!(
        "B = {} compared with A = {}, per model over the scenarios both scored (B − A)\n",
        comparison.b, comparison.a
    );
    let width = model_column(comparison.models.iter().map(|m| &m.model));
    let _ = writeln!(
        out,
        "{:<width$}  {:>6}  {:>6}  {:>7}  {:>17}  {:>9}  {:>10}",
        "model", "A", "B", "B − A", "95% interval", "scenarios", "p (Holm)"
    );
    for m in &comparison.models {
        let interval = m.difference.interval().map_or_else(
            || "n/a".to_owned(),
            |(low, high)| format!("[{low:+.3}, {high:+.3}]"),
        );
        let verdict = if m.p_adjusted < socratic_core::pipeline::ALPHA {
            if m.difference.mean > 0.0 {
                "  better"
            } else {
                "  worse"
            }
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:>6.3}  {:>6.3}  {:>+7.3}  {:>17}  {:>9}  {:>10.4}{verdict}",
            m.model.as_str(),
            m.a_mean,
            m.b_mean,
            m.difference.mean,
            interval,
            m.difference.n,
            m.p_adjusted
        );
    }
    if comparison.models.is_empty() {
        out.push_str("no model was scored on a shared scenario in both manifests\n");
    }
    if !comparison.unmatched.is_empty() {
        let names: Vec<&str> = comparison.unmatched.iter().map(|m| m.as_str()).collect();
        let _ = writeln!(out, "not in both: {}", names.join(", "));
    }
    out
}

/// The width of a table's first column of model ids: the longest, and at least its header's.
fn model_column<'a>(models: impl Iterator<Item = &'a ModelId>) -> usize {
    models.map(|m| m.as_str().len()).max().unwrap_or(0).max(5)
}

/// The `calibrate` table: per judge and dimension, agreement with the human labels.
pub fn calibration_table(calibration: &Calibration) -> String {
    let mut out = format!(
        "manifest {}: {} label(s) of {} turn(s) in {} run(s){}\n",
        calibration.manifest,
        calibration.labels,
        calibration.turns,
        calibration.runs,
        if calibration.raters.is_empty() {
            String::new()
        } else {
            format!("; raters: {}", calibration.raters.join(", "))
        }
    );
    let value = |v: Option<f64>, ci: Option<(f64, f64)>| match (v, ci) {
        (None, _) => "n/a".to_owned(),
        (Some(v), None) => format!("{v:+.2}"),
        (Some(v), Some((low, high))) => format!("{v:+.2} [{low:+.2}, {high:+.2}]"),
    };
    let width = model_column(calibration.agreement.iter().map(|a| &a.judge));
    let _ = writeln!(
        out,
        "{:<width$}  {:<22}  {:>5}  {:>5}  {:>20}  {:>20}  {:>20}",
        "judge", "dimension", "turns", "pairs", "weighted kappa", "alpha", "bias (judge − human)"
    );
    for a in &calibration.agreement {
        let _ = writeln!(
            out,
            "{:<width$}  {:<22}  {:>5}  {:>5}  {:>20}  {:>20}  {:>20}{}",
            a.judge.as_str(),
            a.dimension,
            a.turns,
            a.pairs,
            value(a.weighted_kappa, a.kappa_ci),
            value(a.krippendorff_alpha, a.alpha_ci),
            value(a.mean_bias, a.bias_ci),
            if a.unscored_turns > 0 {
                format!("  ({} labelled turn(s) unscored)", a.unscored_turns)
            } else {
                String::new()
            }
        );
    }
    out.push_str(
        "95% intervals resample runs; kappa and alpha near 1 mean the judge scores as people \
         do, bias above 0 means it scores higher\n",
    );
    out
}
