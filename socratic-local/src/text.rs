//! What the command line prints: each table and summary as text, so it can be tested
//! without a process.

use std::fmt::Write as _;

use socratic_core::calibration::Calibration;
use socratic_core::compare::ManifestComparison;
use socratic_core::entity::{JudgmentOutcome, RunStatus};
use socratic_core::estimate::{BATCH_WINDOW, PlanEstimate, PlanPower, TYPICAL_BATCH_ROUND};
use socratic_core::id::ModelId;
use socratic_core::report;
use socratic_core::repository::RunRecord;

use crate::benchmark::{Finished, Planned};
use crate::history::ManifestLine;
use crate::models::ModelsFile;

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

/// A table of the models, for `socratic models`.
pub fn models_table(file: &ModelsFile) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<10} {:<36} {:>9} {:>9}",
        "id", "provider", "model", "in $/M", "out $/M"
    );
    for m in &file.models {
        let _ = writeln!(
            out,
            "{:<24} {:<10} {:<36} {:>9.3} {:>9.3}",
            m.id, m.provider, m.model, m.prices.input, m.prices.output
        );
    }
    out
}

/// The plan and its estimated cost, per role and per model, and whether `cap` covers the
/// worst case.
pub fn estimate_table(estimate: &PlanEstimate, cap: Option<f64>, batch: bool) -> String {
    let mut out = format!(
        "plan: {} run(s); estimated cost ${:.4}, at most ${:.4}\n",
        estimate.runs, estimate.cost_usd, estimate.worst_cost_usd
    );
    if batch {
        let _ = writeln!(
            out,
            "batch: estimated cost ${:.4}, at most ${:.4} (live: ${:.4}, at most ${:.4})",
            estimate.batch_cost_usd,
            estimate.batch_worst_cost_usd,
            estimate.cost_usd,
            estimate.worst_cost_usd
        );
        let hours = |d: std::time::Duration| d.as_secs() / 3600;
        let rounds = u64::from(estimate.batch_rounds);
        let _ = writeln!(
            out,
            "batch wall time: {rounds} round(s) × about {} h = about {} h; each round may take up to the {} h window, so at most {} h",
            hours(TYPICAL_BATCH_ROUND),
            rounds * hours(TYPICAL_BATCH_ROUND),
            hours(BATCH_WINDOW),
            rounds * hours(BATCH_WINDOW)
        );
    }
    let _ = writeln!(
        out,
        "  {:<8} {:>7} {:>12} {:>12} {:>14} {:>14}",
        "role", "calls", "input tok", "output tok", "max input tok", "max output tok"
    );
    for (role, e) in &estimate.roles {
        let _ = writeln!(
            out,
            "  {:<8} {:>7} {:>12} {:>12} {:>14} {:>14}",
            role.as_str(),
            e.calls,
            e.input_tokens,
            e.output_tokens,
            e.worst_input_tokens,
            e.worst_output_tokens
        );
    }
    if batch {
        let _ = writeln!(
            out,
            "  {:<24} {:>12} {:>12} {:>12} {:>12}",
            "model", "estimate $", "at most $", "batch $", "batch max $"
        );
    } else {
        let _ = writeln!(
            out,
            "  {:<24} {:>12} {:>12}",
            "model", "estimate $", "at most $"
        );
    }
    for (model, e) in &estimate.models {
        let _ = write!(
            out,
            "  {:<24} {:>12.4} {:>12.4}",
            model.as_str(),
            e.cost_usd,
            e.worst_cost_usd
        );
        if batch {
            let _ = write!(
                out,
                " {:>12.4} {:>12.4}",
                e.batch_cost_usd, e.batch_worst_cost_usd
            );
            if !e.batch_priced {
                let _ = write!(
                    out,
                    "  (live prices: no batch prices or no batch interface)"
                );
            }
        }
        out.push('\n');
    }
    let worst = if batch {
        estimate.batch_worst_cost_usd
    } else {
        estimate.worst_cost_usd
    };
    if let Some(cap) = cap {
        if cap < worst {
            let _ = writeln!(
                out,
                "  the cap of ${cap:.4} is below the worst case: the benchmark may stop before every run finishes"
            );
        } else {
            let _ = writeln!(out, "  the cap of ${cap:.4} covers the worst case");
        }
    }
    out
}

/// The batches of a results directory: one line each.
pub fn batch_table(lines: &[crate::batches::BatchLine]) -> String {
    let mut out = format!(
        "{:<26} {:<26} {:<18} {:<28} {:<10} {:>8}  {}\n",
        "batch", "manifest", "model", "provider id", "state", "requests", "status"
    );
    for line in lines {
        let r = &line.record;
        let _ = writeln!(
            out,
            "{:<26} {:<26} {:<18} {:<28} {:<10} {:>8}  {}",
            r.local_id,
            line.manifest.as_deref().unwrap_or("-"),
            r.model,
            r.provider_id.as_deref().unwrap_or("-"),
            r.state.as_str(),
            r.requests.len(),
            r.status
        );
    }
    out
}

/// What the plan can detect, whose variance it assumes, and, when `warn` and it cannot detect
/// half a point, what would.
pub fn power(plan: &PlanPower, warn: bool) -> String {
    let variance = plan.variance_from.map_or_else(
        || "the default: no finished benchmark in the results directory".to_owned(),
        |id| format!("as manifest {id}'s scores varied"),
    );
    let mut out = format!("{}\n", report::power_text(&plan.power, &variance));
    if let Some(warning) = report::power_warning(&plan.power).filter(|_| warn) {
        let _ = writeln!(out, "{warning}");
    }
    out
}

/// What a process resuming or reusing a planned benchmark says; nothing for a new one.
pub fn resumption(planned: &Planned, out: &std::path::Path) -> Option<String> {
    let resumed = planned.resumed?;
    let (id, total, earlier) = (planned.manifest, planned.runs, resumed.earlier);
    Some(if resumed.finished >= total {
        format!(
            "manifest {id} already ran in {}: reusing its {total} run(s); {} model call(s), ${:.4}",
            out.display(),
            earlier.calls,
            earlier.spent_usd
        )
    } else {
        format!(
            "resuming manifest {id}: {} of {total} run(s) already finished; {} model call(s), ${:.4}, spent before ({} cut off in flight)",
            resumed.finished, earlier.calls, earlier.spent_usd, earlier.cut_off
        )
    })
}

/// The leaderboard of a finished benchmark, what it took, where its files are, and the runs
/// the cap skipped.
pub fn finished(finished: &Finished) -> String {
    let summary = &finished.summary;
    let mut out = format!("\n{}\n", report::leaderboard_text(summary));
    let _ = writeln!(
        out,
        "{} runs, {} model answers ({} called now, {} from the cache or reused) in {:.1?}; retries {}, dead-lettered {}; spent ${:.4}",
        summary.runs,
        finished.answers,
        finished.called_now,
        finished.answers.saturating_sub(finished.called_now),
        finished.elapsed,
        finished.retries,
        finished.dead_letters,
        finished.spent_usd,
    );
    if let Some((given, hits)) = &finished.cache {
        let _ = writeln!(
            out,
            "cache: {} of {} answers found in {} ({})",
            hits.hits,
            hits.lookups,
            given.path.display(),
            given.kind
        );
    }
    if let Some(files) = &finished.files {
        let dir = files.summary.parent().unwrap_or(&files.summary);
        let _ = writeln!(out, "results: {}", dir.display());
        let _ = writeln!(out, "  report:      {}", files.report.display());
        let _ = writeln!(out, "  leaderboard: {}", files.leaderboard.display());
        let _ = writeln!(out, "  summary:     {}", files.summary.display());
        let _ = writeln!(
            out,
            "  runs:        socratic show RUN --out {} [--json]",
            dir.display()
        );
    }
    if summary.stopped_by_budget {
        let _ = writeln!(out, "skipped: budget — {} run(s):", summary.skipped_runs);
        for run in finished.skipped.iter().take(20) {
            let _ = writeln!(
                out,
                "  {} {} × {} (repetition {})",
                run.id, run.tutor.model, run.scenario, run.repetition
            );
        }
        if summary.skipped_runs > 20 {
            let _ = writeln!(out, "  … and {} more", summary.skipped_runs - 20);
        }
    }
    out
}
