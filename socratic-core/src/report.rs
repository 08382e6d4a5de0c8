//! Rendering a manifest's summary: a CSV leaderboard, a terminal table, and a self-contained
//! HTML report with inline SVG charts (no scripts, no network).

use std::fmt::Write;

use crate::entity::{Estimate, ManifestSummary, Rubric};

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
        "rank_group,model,overall,ci_low,ci_high,scenarios,runs,failed_runs,skipped_runs,compliance,unscored_judgments,runs_with_answer_leak,cost_usd,latency_p50_ms,latency_p95_ms,scenarios_scored,scenarios_planned,letters,success_rate,telling_rate",
    );
    for dim in &summary.dimensions {
        let _ = write!(out, ",{}", csv_field(dim));
    }
    out.push('\n');
    for row in &summary.leaderboard {
        let o = row.overall;
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{:.6},{},{},{},{},{},{},{}",
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
            row.runs_with_answer_leak,
            row.cost_usd,
            fmt_opt(row.latency_p50_ms, 1),
            fmt_opt(row.latency_p95_ms, 1),
            row.scenarios_scored,
            row.scenarios_planned,
            row.letters,
            fmt_opt(row.success_rate, 4),
            fmt_opt(row.telling_rate, 4),
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
        "{:<5} {:<width$} {:>7} {:>17} {:>9} {:>7} {:>5} {:>6} {:>10} {:>8} {:>9}\n",
        "group",
        "model",
        "overall",
        "95% CI",
        "scenarios",
        "reached",
        "told",
        "leaks",
        "compliance",
        "unscored",
        "cost $"
    );
    for row in &summary.leaderboard {
        let (mean, ci) = match row.overall {
            Some(e) => (format!("{:.2}", e.mean), e.interval_text(2)),
            None => ("—".to_owned(), "no scores".to_owned()),
        };
        let _ = writeln!(
            out,
            "{:<5} {:<width$} {:>7} {:>17} {:>9} {:>7} {:>5} {:>6} {:>10} {:>8} {:>9.4}",
            group_text(row),
            row.model.as_str(),
            mean,
            ci,
            format!("{}/{}", row.scenarios_scored, row.scenarios_planned),
            percent(row.success_rate),
            percent(row.telling_rate),
            format!("{}/{}", row.runs_with_answer_leak, row.runs),
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

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLOURS: [&str; 8] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f",
];

/// A horizontal bar chart of overall scores with their 95% intervals as whiskers.
fn overall_chart(summary: &ManifestSummary, min: f64, max: f64) -> String {
    let (left, width, row_height) = (220.0, 520.0, 34.0);
    let height = row_height * summary.leaderboard.len() as f64 + 40.0;
    let x = |v: f64| left + (v - min) / (max - min) * width;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" role="img" aria-label="Overall score per model with 95% confidence intervals">"#,
        left + width + 40.0
    );
    for tick in 0..=((max - min) as usize) {
        let v = min + tick as f64;
        let _ = write!(
            svg,
            r##"<line x1="{0:.1}" y1="10" x2="{0:.1}" y2="{1:.1}" stroke="#ddd"/><text x="{0:.1}" y="{2:.1}" font-size="11" text-anchor="middle">{v}</text>"##,
            x(v),
            height - 22.0,
            height - 8.0
        );
    }
    for (i, row) in summary.leaderboard.iter().enumerate() {
        let y = 14.0 + i as f64 * row_height;
        let colour = COLOURS[i % COLOURS.len()];
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="13" text-anchor="end">{} ({})</text>"#,
            left - 8.0,
            y + 15.0,
            escape(row.model.as_str()),
            if row.letters.is_empty() {
                "unranked".to_owned()
            } else {
                format!("group {}", row.letters)
            }
        );
        if let Some(e) = row.overall {
            let _ = write!(
                svg,
                r##"<rect x="{left}" y="{y:.1}" width="{:.1}" height="20" fill="{colour}" opacity="0.8"><title>{}: {:.2} {}</title></rect>"##,
                (x(e.mean) - left).max(0.0),
                escape(row.model.as_str()),
                e.mean,
                e.interval_text(2),
            );
            // Whiskers only where there is an interval: one scenario has none.
            if let Some((low, high)) = e.interval() {
                let _ = write!(
                    svg,
                    r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#222" stroke-width="2"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#222"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#222"/>"##,
                    x(low),
                    y + 10.0,
                    x(high),
                    y + 10.0,
                    x(low),
                    y + 4.0,
                    x(low),
                    y + 16.0,
                    x(high),
                    y + 4.0,
                    x(high),
                    y + 16.0,
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Per-dimension profiles: one group of bars per dimension, one bar per model, with intervals
/// and a legend. Bars start at zero so the lowest score still shows.
fn profile_chart(summary: &ManifestSummary, max: f64) -> String {
    let models = summary.leaderboard.len().max(1) as f64;
    let (bar, gap, top, plot) = (24.0, 48.0, 34.0, 220.0);
    let group_width = bar * models + gap;
    let width = 60.0 + group_width * summary.dimensions.len() as f64;
    let y = |v: f64| top + plot - v / max * plot;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{:.0}" role="img" aria-label="Mean score per dimension and model">"#,
        top + plot + 50.0
    );
    for (m, row) in summary.leaderboard.iter().enumerate() {
        let x = 50.0 + m as f64 * 160.0;
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="6" width="12" height="12" fill="{}"/><text x="{:.1}" y="16" font-size="12">{}</text>"#,
            COLOURS[m % COLOURS.len()],
            x + 16.0,
            escape(row.model.as_str())
        );
    }
    for tick in 0..=(max as usize) {
        let v = tick as f64;
        let _ = write!(
            svg,
            r##"<line x1="40" y1="{0:.1}" x2="{width:.0}" y2="{0:.1}" stroke="#eee"/><text x="32" y="{1:.1}" font-size="11" text-anchor="end">{v}</text>"##,
            y(v),
            y(v) + 4.0
        );
    }
    for (d, dim) in summary.dimensions.iter().enumerate() {
        let x0 = 50.0 + d as f64 * group_width;
        for (m, row) in summary.leaderboard.iter().enumerate() {
            let Some(e) = row.dimensions.get(dim) else {
                continue;
            };
            let x = x0 + m as f64 * bar;
            let colour = COLOURS[m % COLOURS.len()];
            let _ = write!(
                svg,
                r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"><title>{} — {}: {:.2} {}</title></rect>"##,
                y(e.mean),
                bar - 3.0,
                (y(0.0) - y(e.mean)).max(0.0),
                escape(row.model.as_str()),
                escape(dim),
                e.mean,
                e.interval_text(2),
            );
            if let Some((low, high)) = e.interval() {
                let _ = write!(
                    svg,
                    r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#222"/>"##,
                    x + (bar - 3.0) / 2.0,
                    y(low),
                    x + (bar - 3.0) / 2.0,
                    y(high),
                );
            }
        }
        // Dimension names go on two lines so neighbours do not overlap.
        let words: Vec<&str> = dim.split('_').collect();
        let half = words.len().div_ceil(2);
        let centre = x0 + (bar * models - 3.0) / 2.0;
        let _ = write!(
            svg,
            r#"<text x="{centre:.1}" y="{:.1}" font-size="11" text-anchor="middle"><tspan x="{centre:.1}">{}</tspan><tspan x="{centre:.1}" dy="13">{}</tspan></text>"#,
            top + plot + 16.0,
            escape(&words[..half].join(" ")),
            escape(&words[half..].join(" "))
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A self-contained HTML report: leaderboard, charts, comparisons, judge agreement.
pub fn report_html(summary: &ManifestSummary, rubric: &Rubric) -> String {
    let min = f64::from(
        rubric
            .dimensions
            .iter()
            .map(|d| d.scale.min)
            .min()
            .unwrap_or(1),
    );
    let max = f64::from(
        rubric
            .dimensions
            .iter()
            .map(|d| d.scale.max)
            .max()
            .unwrap_or(5),
    )
    .max(min + 1.0);
    let title = summary
        .label
        .clone()
        .unwrap_or_else(|| format!("Manifest {}", summary.manifest));
    let mut html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}}table{{border-collapse:collapse;margin:1rem 0}}th,td{{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}}th:nth-child(2),td:nth-child(2){{text-align:left}}caption{{text-align:left;font-weight:bold}}.note{{color:#555;font-size:0.9rem}}</style>
</head><body>
<h1>{}</h1>
<p class="note">Rubric {} · {} runs ({} failed, {} skipped) · {} unscored judgments · total cost ${:.4} · computed {}</p>
{}"#,
        escape(&title),
        escape(&title),
        escape(rubric.id.as_str()),
        summary.runs,
        summary.failed_runs,
        summary.skipped_runs,
        summary.unscored_judgments,
        summary.cost_usd,
        summary.computed_at,
        [
            budget_note(summary),
            rejudge_note(summary),
            design_note(summary),
            coverage_note(summary),
            self_judging_note(summary)
        ]
        .into_iter()
        .flatten()
        .map(|note| format!(
            "<p class=\"note\" role=\"note\"><strong>{}</strong></p>\n",
            escape(&note)
        ))
        .collect::<String>()
    );
    html.push_str("<h2>Leaderboard</h2>\n<table><caption>Overall score (weighted mean of dimensions), 95% t interval over scenarios</caption><tr><th>group</th><th>model</th><th>overall</th><th>95% CI</th><th>scenarios (scored/planned)</th><th>student reached a goal</th><th>tutor told first</th><th>compliance</th><th>answer leaks</th><th>unscored</th><th>cost $</th><th>p50 ms</th><th>p95 ms</th></tr>\n");
    for row in &summary.leaderboard {
        let (mean, ci) = row.overall.map_or(("—".to_owned(), "—".to_owned()), |e| {
            (format!("{:.2}", e.mean), e.interval_text(2))
        });
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{mean}</td><td>{ci}</td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td><td>{:.4}</td><td>{}</td><td>{}</td></tr>",
            group_text(row),
            escape(row.model.as_str()),
            row.scenarios_scored,
            row.scenarios_planned,
            percent(row.success_rate),
            percent(row.telling_rate),
            row.compliance
                .map_or_else(|| "—".to_owned(), |c| format!("{:.0}%", c * 100.0)),
            row.runs_with_answer_leak,
            row.runs,
            row.unscored_judgments,
            row.cost_usd,
            fmt_opt(row.latency_p50_ms, 0),
            fmt_opt(row.latency_p95_ms, 0),
        );
    }
    html.push_str("</table>\n<p class=\"note\">Models sharing a letter are statistically tied: no paired comparison separates them (sign-flip permutation test on per-scenario differences, Holm-adjusted, alpha 0.05).</p>\n");
    html.push_str("<h2>Overall score</h2>\n");
    html.push_str(&overall_chart(summary, min, max));
    html.push_str("\n<h2>Dimension profiles</h2>\n");
    html.push_str(&profile_chart(summary, max));
    html.push_str("\n<h2>Paired comparisons</h2>\n<table><tr><th>a</th><th>b</th><th>mean a − b</th><th>95% CI</th><th>scenarios</th><th>p</th><th>p (Holm)</th></tr>\n");
    for c in &summary.comparisons {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{:+.2}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td></tr>",
            escape(c.a.as_str()),
            escape(c.b.as_str()),
            c.difference.mean,
            signed_interval(&c.difference),
            c.difference.n,
            c.p_value,
            c.p_adjusted
        );
    }
    html.push_str("</table>\n");
    if !summary.judge_agreement.is_empty() {
        html.push_str("<h2>Judge agreement</h2>\n<table><caption>Per dimension, with 95% intervals from resampling scenarios; kappa with exactly two judges</caption><tr><th>dimension</th><th>Krippendorff's alpha (interval)</th><th>95% CI</th><th>weighted kappa (quadratic)</th><th>95% CI</th><th>turns</th></tr>\n");
        let interval = |ci: Option<(f64, f64)>| {
            ci.map_or_else(
                || "n/a".to_owned(),
                |(low, high)| format!("[{low:.3}, {high:.3}]"),
            )
        };
        for (dim, a) in &summary.judge_agreement {
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(dim),
                fmt_opt(a.krippendorff_alpha, 3),
                interval(a.alpha_ci),
                fmt_opt(a.weighted_kappa, 3),
                interval(a.kappa_ci),
                a.units
            );
        }
        html.push_str("</table>\n");
    }
    html.push_str("</body></html>\n");
    html
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
