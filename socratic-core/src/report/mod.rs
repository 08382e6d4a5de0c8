//! Rendering a manifest's summary: a CSV leaderboard, a terminal table, and a self-contained
//! HTML report ([`HtmlReport`]).

use std::fmt::Write;

mod compare;
mod html;

pub use compare::{MOST_CHANGED, comparison_html};
pub use html::{HtmlReport, ReportRuns, report_html};

use crate::entity::{ManifestSummary, TellingDetector};
use crate::stats::{Caution, Estimate, Power};

/// An interval of a difference, with signs: `[-0.12, +0.40]`, or `n/a`.
fn signed_interval(e: &Estimate) -> String {
    e.interval().map_or_else(
        || "n/a".to_owned(),
        |(low, high)| format!("[{low:+.2}, {high:+.2}]"),
    )
}

fn fmt_opt(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(String::new, |v| format!("{v:.digits$}"))
}

/// One text field of a CSV row. Quoted per RFC 4180 when it holds a comma, a quote or a line
/// break (`\r` included); a field a spreadsheet would run as a formula (it begins with `=`,
/// `+`, `-`, `@`, a tab or a carriage return) gets a leading apostrophe first, as OWASP
/// advises, since model and dimension names are user-supplied.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// The leaderboard as CSV, one row per model, best first.
pub fn leaderboard_csv(summary: &ManifestSummary) -> String {
    let mut out = String::from(
        "rank_group,model,overall,ci_low,ci_high,scenarios,runs,failed_runs,skipped_runs,compliance,unscored_judgments,cost_usd,latency_p50_ms,latency_p95_ms,scenarios_scored,scenarios_planned,letters,success_rate,telling_rate,telling_detector,detectors_kappa,detectors_kappa_low,detectors_kappa_high,detectors_turns,ci_caution",
    );
    for dim in &summary.dimensions {
        let _ = write!(out, ",{}", csv_field(dim));
    }
    out.push('\n');
    for row in &summary.leaderboard {
        let o = row.overall;
        let agreement = row.telling_agreement;
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{:.6},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            row.rank_group.map_or_else(String::new, |g| g.to_string()),
            csv_field(row.model.as_str()),
            fmt_opt(o.map(|e| e.mean), 4),
            fmt_opt(o.and_then(|e| e.ci_low), 4),
            fmt_opt(o.and_then(|e| e.ci_high), 4),
            o.map_or(0, |e| e.n),
            row.runs,
            row.failed_runs,
            row.skipped_runs,
            fmt_opt(row.compliance, 4),
            row.unscored_judgments,
            row.cost_usd,
            fmt_opt(row.latency_p50_ms, 1),
            fmt_opt(row.latency_p95_ms, 1),
            row.scenarios_scored,
            row.scenarios_planned,
            row.letters,
            fmt_opt(row.success_rate, 4),
            fmt_opt(row.telling_rate, 4),
            detector_name(summary),
            fmt_opt(agreement.and_then(|a| a.kappa), 4),
            fmt_opt(agreement.and_then(|a| a.kappa_ci).map(|c| c.0), 4),
            fmt_opt(agreement.and_then(|a| a.kappa_ci).map(|c| c.1), 4),
            agreement.map_or(0, |a| a.turns),
            o.and_then(|e| e.caution).map_or("", |c| match c {
                Caution::FewScenarios => "few_scenarios",
                Caution::NoSpread => "no_spread",
            }),
        );
        for dim in &summary.dimensions {
            let _ = write!(
                out,
                ",{}",
                fmt_opt(row.dimensions.get(dim).map(|e| e.mean), 4)
            );
        }
        out.push('\n');
    }
    out
}

/// The leaderboard as a fixed-width table for a terminal.
pub fn leaderboard_text(summary: &ManifestSummary) -> String {
    let width = summary
        .leaderboard
        .iter()
        .map(|r| r.model.as_str().len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "{:<5} {:<width$} {:>7} {:>17} {:>9} {:>7} {:>5} {:>10} {:>8} {:>9}\n",
        "group",
        "model",
        "overall",
        "95% CI",
        "scenarios",
        "reached",
        "told",
        "compliance",
        "unscored",
        "cost $"
    );
    for row in &summary.leaderboard {
        let (mean, ci) = match row.overall {
            Some(e) => (format!("{:.2}", e.mean), e.interval_text_marked(2)),
            None => ("—".to_owned(), "no scores".to_owned()),
        };
        let _ = writeln!(
            out,
            "{:<5} {:<width$} {:>7} {:>17} {:>9} {:>7} {:>5} {:>10} {:>8} {:>9.4}",
            group_text(row),
            row.model.as_str(),
            mean,
            ci,
            format!("{}/{}", row.scenarios_scored, row.scenarios_planned),
            percent(row.success_rate),
            percent(row.telling_rate),
            row.compliance
                .map_or_else(|| "—".to_owned(), |c| format!("{:.0}%", c * 100.0)),
            row.unscored_judgments,
            row.cost_usd,
        );
    }
    let groups: std::collections::BTreeSet<char> = summary
        .leaderboard
        .iter()
        .flat_map(|r| r.letters.chars())
        .collect();
    let _ = writeln!(
        out,
        "{} model(s) in {} tie group(s): models sharing a letter are not told apart (paired sign-flip tests, Holm-adjusted, alpha 0.05); {} run(s), {} failed, {} unscored judgment(s).",
        summary.leaderboard.len(),
        groups.len(),
        summary.runs,
        summary.failed_runs,
        summary.unscored_judgments
    );
    if let Some(note) = budget_note(summary) {
        let _ = writeln!(out, "{note}");
    }
    if let Some(note) = rejudge_note(summary) {
        let _ = writeln!(out, "{note}");
    }
    for note in [
        interval_note(summary),
        Some(telling_note(summary)),
        design_note(summary),
        coverage_note(summary),
        self_judging_note(summary),
    ]
    .into_iter()
    .flatten()
    {
        let _ = writeln!(out, "{note}");
    }
    out
}

/// What a design can detect, for people: the smallest detectable difference at 80% power, and
/// the scenarios that would detect 0.25 and 0.5 points; `variance` says whose variance the
/// plan assumes.
pub fn power_text(power: &Power, variance: &str) -> String {
    let needed = |scenarios: Option<u32>| {
        scenarios.map_or_else(|| "more than 100,000".to_owned(), |n| n.to_string())
    };
    let detect = match power.detectable {
        Some(points) => format!(
            "{} scenario(s) × {} repetition(s) detect a difference of {points:.2} points",
            power.scenarios, power.repetitions
        ),
        None if power.pairs == 0 => "one tutor: there is no pair to compare".to_owned(),
        None => format!(
            "no figure: {} scenario(s) give no interval; at least 2 are needed",
            power.scenarios
        ),
    };
    if power.pairs == 0 {
        return format!("power: {detect}");
    }
    format!(
        "power: at 80% power and alpha 0.05 Holm-adjusted over {} pair(s) ({:.4} each), {detect}; 0.25 points would need {} scenarios and 0.5 points {} (a per-scenario difference of sd {:.2}, {variance})",
        power.pairs,
        power.alpha,
        needed(power.scenarios_for_quarter_point),
        needed(power.scenarios_for_half_point),
        power.difference_sd,
    )
}

/// What to say when a design cannot detect half a point, and what would.
pub fn power_warning(power: &Power) -> Option<String> {
    let detectable = power.detectable?;
    (detectable > 0.5).then(|| {
        let more = power
            .scenarios_for_half_point
            .map_or_else(String::new, |n| format!(" (about {n} detect 0.5)"));
        format!(
            "CANNOT DETECT 0.5: this plan detects only differences of {detectable:.2} points or more; run the whole bank (--scenario-set full) or more scenarios{more}"
        )
    })
}

/// What the marks beside the intervals mean, when any interval has one.
pub fn interval_note(summary: &ManifestSummary) -> Option<String> {
    let cautions: std::collections::BTreeSet<Caution> = summary
        .leaderboard
        .iter()
        .filter_map(|r| r.overall.and_then(|e| e.caution))
        .collect();
    let mut said: Vec<&str> = cautions
        .iter()
        .map(|c| match c {
            Caution::FewScenarios => "* fewer than 16 scenarios: the interval covers less reliably",
            Caution::NoSpread => {
                "! no spread: every scenario scored the same, and the interval rests on the prior"
            }
        })
        .collect();
    if summary
        .leaderboard
        .iter()
        .any(|r| r.overall.is_some_and(|e| e.interval().is_none()))
    {
        said.push("n/a: a single scenario gives no interval");
    }
    (!said.is_empty()).then(|| format!("95% CI: {}.", said.join("; ")))
}

/// The telling detector's name in the CSV: `judges` or `verbatim`.
fn detector_name(summary: &ManifestSummary) -> &'static str {
    match summary.telling_detector {
        TellingDetector::Judges => "judges",
        TellingDetector::Verbatim => "verbatim",
    }
}

/// What `told` means in this summary, and how far the second detector agrees.
pub fn telling_note(summary: &ManifestSummary) -> String {
    let agreement = summary.telling_agreement.map_or_else(
        || "the two detectors judged no turn in common".to_owned(),
        |a| {
            format!(
                "the other detector agrees with kappa {} {} over {} turn(s), {} disagreeing",
                a.kappa
                    .map_or_else(|| "n/a".to_owned(), |k| format!("{k:.2}")),
                a.kappa_ci.map_or_else(
                    || "(no interval)".to_owned(),
                    |(low, high)| format!("[{low:.2}, {high:.2}]")
                ),
                a.turns,
                a.judges_only + a.verbatim_only
            )
        },
    );
    format!(
        "told: the share of runs in which the tutor told the answer before the student reached a goal (telling@k), by {}; {agreement}.",
        summary.telling_detector.describe()
    )
}

/// A share as a whole percentage, or `—`.
fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "—".to_owned(), |s| format!("{:.0}%", s * 100.0))
}

/// A model's tie groups for people: its letters, or `unranked`.
fn group_text(row: &crate::entity::ModelSummary) -> String {
    if row.letters.is_empty() {
        "unranked".to_owned()
    } else {
        row.letters.clone()
    }
}

/// What to say when the design cannot tell any two models apart.
pub fn design_note(summary: &ManifestSummary) -> Option<String> {
    summary.scenarios_needed.map(|needed| {
        let shared = summary
            .comparisons
            .iter()
            .map(|c| c.difference.n)
            .max()
            .unwrap_or(0);
        format!(
            "CANNOT SEPARATE: with {shared} shared scenario(s) and {} comparison(s), even a model ahead on every scenario would not reach significance after Holm's correction; about {needed} scenarios would be needed. The groups say nothing about order.",
            summary.comparisons.len()
        )
    })
}

/// What to say about models that did not score every planned scenario.
pub fn coverage_note(summary: &ManifestSummary) -> Option<String> {
    let partial: Vec<String> = summary
        .leaderboard
        .iter()
        .filter(|r| r.scenarios_scored < r.scenarios_planned)
        .map(|r| {
            let mut parts = Vec::new();
            if !r.failed_scenarios.is_empty() {
                parts.push(format!("failed on {}", join(&r.failed_scenarios)));
            }
            if !r.unscored_scenarios.is_empty() {
                parts.push(format!("unscored on {}", join(&r.unscored_scenarios)));
            }
            format!(
                "{} scored {}/{} ({})",
                r.model,
                r.scenarios_scored,
                r.scenarios_planned,
                parts.join("; ")
            )
        })
        .collect();
    (!partial.is_empty()).then(|| {
        format!(
            "COVERAGE: {}. Scores and ranks use only the scenarios every ranked model scored.",
            partial.join("; ")
        )
    })
}

fn join(ids: &[crate::id::ScenarioId]) -> String {
    ids.iter()
        .map(|id| id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What to say when tutors judged their own dialogues.
pub fn self_judging_note(summary: &ManifestSummary) -> Option<String> {
    (!summary.self_judging.is_empty()).then(|| {
        let models: Vec<&str> = summary.self_judging.iter().map(|m| m.as_str()).collect();
        format!(
            "SELF-JUDGED: {} judged their own tutoring (allow_self_judging); their scores may favour them.",
            models.join(", ")
        )
    })
}

/// What to say when a manifest re-judged another's dialogues.
pub fn rejudge_note(summary: &ManifestSummary) -> Option<String> {
    summary.rejudge_of.map(|source| {
        format!(
            "RE-JUDGED: the dialogues of manifest {source} were reused ({} run(s)); only the judges were called.",
            summary.runs - summary.failed_runs - summary.skipped_runs
        )
    })
}

/// What to say when a spending cap stopped the benchmark, if one did.
pub fn budget_note(summary: &ManifestSummary) -> Option<String> {
    summary.stopped_by_budget.then(|| {
        format!(
            "STOPPED BY BUDGET: the spending cap was reached; {} of {} run(s) were skipped, so the scores cover only the runs that finished.",
            summary.skipped_runs, summary.runs
        )
    })
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_per_rfc_4180() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("carriage\rreturn"), "\"carriage\rreturn\"");
    }

    #[test]
    fn csv_fields_that_look_like_formulas_are_neutralised() {
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("+1"), "'+1");
        assert_eq!(csv_field("-2+3"), "'-2+3");
        assert_eq!(csv_field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_field("\tcmd"), "'\tcmd");
        assert_eq!(csv_field("fine=ok"), "fine=ok");
    }
}
