//! The HTML report: one self-contained file. The summary is rendered as HTML tables and inline
//! SVG charts (readable without scripts, and in print); each run's dialogue and judgments are
//! embedded as JSON and rendered by a small script only when a reader opens them.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};

use crate::entity::{
    Calibration, Judgment, JudgmentOutcome, Manifest, ManifestSummary, Rubric, Run, RunSummary,
    Scenario, Turn,
};
use crate::id::{ModelId, ScenarioId};

use super::{
    budget_note, coverage_note, design_note, fmt_opt, group_text, percent, rejudge_note,
    self_judging_note, signed_interval,
};

pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) const COLOURS: [&str; 8] = [
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

/// Per-dimension profiles: one group of bars per dimension, one bar per model.
fn profile_chart(summary: &ManifestSummary, max: f64) -> String {
    let groups = summary
        .dimensions
        .iter()
        .map(|dim| {
            let bars = summary
                .leaderboard
                .iter()
                .map(|row| row.dimensions.get(dim).copied())
                .collect();
            (dim.clone(), bars)
        })
        .collect();
    grouped_chart(summary, groups, max, "Mean score per dimension and model")
}

/// Per vector, one bar per model.
fn vector_chart(summary: &ManifestSummary, max: f64) -> String {
    let groups = summary
        .vectors
        .iter()
        .map(|vector| {
            let bars = summary
                .leaderboard
                .iter()
                .map(|row| vector.models.get(&row.model).copied())
                .collect();
            (vector.vector.to_string(), bars)
        })
        .collect();
    grouped_chart(
        summary,
        groups,
        max,
        "Mean overall score per vector and model",
    )
}

/// Groups of bars, one bar per model of the leaderboard (in its order) with its interval, a
/// legend, and the figures in the text alternative. Bars start at zero so the lowest score
/// still shows.
fn grouped_chart(
    summary: &ManifestSummary,
    groups: Vec<(String, Vec<Option<crate::stats::Estimate>>)>,
    max: f64,
    title: &str,
) -> String {
    let models = summary.leaderboard.len().max(1) as f64;
    let (bar, gap, top, plot) = (24.0, 48.0, 34.0, 220.0);
    let group_width = bar * models + gap;
    // Wide enough for the legend too.
    let width = (60.0 + group_width * groups.len() as f64).max(50.0 + 160.0 * models);
    let y = |v: f64| top + plot - v / max * plot;
    let mut label = format!("{title}: ");
    for (name, bars) in &groups {
        let scores: Vec<String> = summary
            .leaderboard
            .iter()
            .zip(bars)
            .filter_map(|(row, e)| e.map(|e| format!("{} {:.2}", row.model, e.mean)))
            .collect();
        let _ = write!(label, "{name}: {}. ", scores.join(", "));
    }
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{:.0}" role="img" aria-label="{}">"#,
        top + plot + 50.0,
        escape(label.trim())
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
    for (g, (name, bars)) in groups.iter().enumerate() {
        let x0 = 50.0 + g as f64 * group_width;
        for (m, (row, e)) in summary.leaderboard.iter().zip(bars).enumerate() {
            let Some(e) = e else {
                continue;
            };
            let x = x0 + m as f64 * bar;
            let _ = write!(
                svg,
                r##"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} — {}: {:.2} {}</title></rect>"##,
                y(e.mean),
                bar - 3.0,
                (y(0.0) - y(e.mean)).max(0.0),
                COLOURS[m % COLOURS.len()],
                escape(row.model.as_str()),
                escape(name),
                e.mean,
                e.interval_text(2),
            );
            if let Some((low, high)) = e.interval() {
                let _ = write!(
                    svg,
                    r##"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="#222"/>"##,
                    x + (bar - 3.0) / 2.0,
                    y(low),
                    y(high),
                );
            }
        }
        // Names go on two lines so neighbours do not overlap.
        let words: Vec<&str> = name.split('_').collect();
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

/// The page's style: screen and print.
const STYLE: &str = include_str!("report.css");
/// The run explorer: filters, a run list and a run's dialogue, rendered from the embedded data.
const SCRIPT: &str = include_str!("report.js");

/// A self-contained HTML report of a manifest, built from its summary and, one at a time, its
/// runs.
///
/// The page holds the leaderboard, charts (overall, dimension profiles, per vector, cost and
/// latency), a scenario × model heatmap, the manifest's settings, the paired comparisons and
/// judge agreement as HTML and inline SVG, and a run explorer: from a model to its scenarios
/// to one run, with the transcript and every judge's scores, flags and rationale. Runs are
/// embedded as JSON and rendered only when opened, so the file stays small and opens fast; it
/// loads nothing from the network.
#[derive(Debug)]
pub struct HtmlReport<'a> {
    summary: &'a ManifestSummary,
    rubric: &'a Rubric,
    manifest: Option<&'a Manifest>,
    runs: Option<&'a ReportRuns>,
    calibration: Option<&'a Calibration>,
}

/// The runs a report shows, added one at a time as they are read, each kept only as the JSON
/// the page embeds.
#[derive(Debug, Default)]
pub struct ReportRuns {
    scenarios: BTreeMap<ScenarioId, Value>,
    /// Each added run's JSON, comma-separated, `<` already escaped ([`script_json`]).
    runs: String,
    /// Sum and count of run overall scores per (scenario, model), for the heatmap.
    cells: BTreeMap<(ScenarioId, ModelId), (f64, u32)>,
}

impl<'a> HtmlReport<'a> {
    /// A report of `summary`, scored against `rubric`.
    pub fn new(summary: &'a ManifestSummary, rubric: &'a Rubric) -> Self {
        Self {
            summary,
            rubric,
            manifest: None,
            runs: None,
            calibration: None,
        }
    }

    /// Adds the manifest, for the settings section.
    pub fn manifest(mut self, manifest: &'a Manifest) -> Self {
        self.manifest = Some(manifest);
        self
    }

    /// Adds the runs, for the heatmap and the run explorer.
    pub fn runs(mut self, runs: &'a ReportRuns) -> Self {
        self.runs = Some(runs);
        self
    }

    /// Adds the judges' calibration against human labels; without it the page says the
    /// judges are not calibrated.
    pub fn calibration(mut self, calibration: &'a Calibration) -> Self {
        self.calibration = Some(calibration);
        self
    }
}

impl ReportRuns {
    /// No runs yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a scenario's title, subject, level and opening statement, shown with its runs.
    pub fn scenario(&mut self, scenario: &Scenario) {
        self.scenarios.insert(
            scenario.id.clone(),
            json!({
                "title": scenario.title,
                "vector": scenario.vector,
                "subject": scenario.subject,
                "level": scenario.level,
                "opening": scenario.opening_statement,
            }),
        );
    }

    /// Counts a run's overall score in the heatmap's (scenario, model) cell; a run without
    /// one is not counted. [`run`](Self::run) does this too; a caller that streams the runs'
    /// data ([`HtmlReport::page_start`]) counts them with this alone.
    pub fn cell(&mut self, scenario: &ScenarioId, model: &ModelId, overall: Option<f64>) {
        if let Some(score) = overall {
            let cell = self
                .cells
                .entry((scenario.clone(), model.clone()))
                .or_insert((0.0, 0));
            cell.0 += score;
            cell.1 += 1;
        }
    }

    /// Takes the data of the runs added so far (comma-separated JSON, escaped for the page),
    /// leaving none: a page of runs to stream between [`HtmlReport::page_start`] and
    /// [`HtmlReport::page_end`], each page after the first preceded by a comma.
    pub fn take_data(&mut self) -> String {
        std::mem::take(&mut self.runs)
    }

    /// Adds a run with what is stored of it: its turns, judgments and summary (none for a run
    /// that failed before them).
    pub fn run(
        &mut self,
        run: &Run,
        turns: &[Turn],
        judgments: &[Judgment],
        summary: Option<&RunSummary>,
    ) {
        let mut ordered: Vec<&Turn> = turns.iter().collect();
        ordered.sort_by_key(|t| t.index);
        let overall = summary.and_then(|s| s.overall);
        self.cell(&run.scenario, &run.tutor.model, overall);
        let data = RunData {
            run,
            failure: run
                .failure
                .as_ref()
                .map(|f| format!("{}: {}", f.stage.as_str(), f.reason)),
            overall,
            leak: summary.and_then(|s| s.answer_leak_turn),
            reached: summary.and_then(|s| s.goal_reached_turn),
            told: summary.and_then(|s| s.goal_told_turn),
            cost: summary.map(|s| s.usage.values().map(|u| u.cost_usd).sum::<f64>()),
            turns: ordered
                .iter()
                .map(|t| {
                    (
                        &*t.tutor_text,
                        t.student_text.as_deref(),
                        t.tutor_call.latency_ms,
                    )
                })
                .collect(),
            judgments: judgments.iter().map(JudgmentData).collect(),
        };
        if !self.runs.is_empty() {
            self.runs.push(',');
        }
        // Serialising typed data cannot fail.
        let json = serde_json::to_string(&data).unwrap_or_default();
        script_json(&mut self.runs, &json);
    }
}

/// A run as the page's script reads it.
struct RunData<'a> {
    run: &'a Run,
    failure: Option<String>,
    overall: Option<f64>,
    leak: Option<u32>,
    reached: Option<u32>,
    told: Option<u32>,
    cost: Option<f64>,
    /// Per turn: tutor text, student text, tutor latency in ms.
    turns: Vec<(&'a str, Option<&'a str>, u64)>,
    judgments: Vec<JudgmentData<'a>>,
}

impl Serialize for RunData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let run = self.run;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("id", &run.id)?;
        map.serialize_entry("tutor", &run.tutor.model)?;
        map.serialize_entry("scenario", &run.scenario)?;
        map.serialize_entry("vector", &run.vector)?;
        map.serialize_entry("rep", &run.repetition)?;
        map.serialize_entry("status", &run.status)?;
        map.serialize_entry("failure", &self.failure)?;
        map.serialize_entry("overall", &self.overall)?;
        map.serialize_entry("leak", &self.leak)?;
        map.serialize_entry("reached", &self.reached)?;
        map.serialize_entry("told", &self.told)?;
        map.serialize_entry("cost", &self.cost)?;
        map.serialize_entry("turns", &self.turns)?;
        map.serialize_entry("judgments", &self.judgments)?;
        map.end()
    }
}

/// A judgment as the page's script reads it: scores, or the reason there are none.
struct JudgmentData<'a>(&'a Judgment);

impl Serialize for JudgmentData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let j = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("turn", &j.turn)?;
        map.serialize_entry("judge", &j.judge)?;
        match &j.outcome {
            JudgmentOutcome::Scored(v) => {
                map.serialize_entry("scores", &v.scores)?;
                map.serialize_entry("flags", &v.flags)?;
                map.serialize_entry("violations", &v.violations)?;
                map.serialize_entry("rationale", &v.rationale)?;
            }
            JudgmentOutcome::Unscored { reason } => map.serialize_entry("unscored", reason)?,
        }
        map.end()
    }
}

/// Appends JSON to the page's data element. `<` only occurs inside JSON strings, where
/// `\u003c` means the same: the data can never close its script element.
fn script_json(out: &mut String, json: &str) {
    let mut parts = json.split('<');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for part in parts {
        out.push_str("\\u003c");
        out.push_str(part);
    }
}

impl HtmlReport<'_> {
    /// The page.
    pub fn render(&self) -> String {
        let runs = self.runs.map_or("", |r| r.runs.as_str());
        let mut html = self.page_start();
        html.reserve(runs.len() + SCRIPT.len() + 64);
        html.push_str(runs);
        html.push_str(&Self::page_end());
        html
    }

    /// The page up to its runs' data, for a caller that streams the data page by page
    /// ([`ReportRuns::take_data`]) rather than holding every run: everything but the runs
    /// is taken from the [`ReportRuns`] given to [`runs`](Self::runs) (scenarios and heatmap
    /// cells).
    pub fn page_start(&self) -> String {
        let summary = self.summary;
        let (min, max) = scale(self.rubric);
        let title = summary
            .label
            .clone()
            .unwrap_or_else(|| format!("Manifest {}", summary.manifest));
        let mut html = format!(
            r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{STYLE}</style>
</head><body>
<header><h1>{title}</h1>
<p class="note">Rubric {} · {} runs ({} failed, {} skipped) · {} unscored judgments · total cost ${:.4} · computed {}</p>
{}</header>
<nav aria-label="Sections"><a href="#leaderboard">Leaderboard</a> <a href="#charts">Charts</a> <a href="#heatmap">Scenarios × models</a> <a href="#cost">Cost and latency</a> <a href="#settings">Settings</a> <a href="#comparisons">Comparisons</a> <a href="#agreement">Judge agreement</a> <a href="#calibration">Calibration</a> <a href="#telling">Telling</a> <a href="#runs">Runs</a></nav>
<main>
"##,
            escape(self.rubric.id.as_str()),
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
            .collect::<String>(),
            title = escape(&title),
        );
        self.leaderboard(&mut html);
        html.push_str("<section id=\"charts\"><h2>Overall score</h2>\n");
        html.push_str(&overall_chart(summary, min, max));
        html.push_str("\n<h2>Dimension profiles</h2>\n");
        html.push_str(&profile_chart(summary, max));
        html.push_str("\n<h2>By vector</h2>\n");
        html.push_str(&vector_chart(summary, max));
        html.push_str("</section>\n");
        self.heatmap(&mut html, min, max);
        cost_section(&mut html, summary);
        self.settings(&mut html);
        comparisons(&mut html, summary);
        agreement(&mut html, summary);
        calibration(&mut html, self.calibration);
        telling(&mut html, summary);
        self.explorer(&mut html);
        html.push_str("</main>\n<script type=\"application/json\" id=\"socratic-data\">");
        let scenarios = serde_json::to_string(&self.runs.map(|r| &r.scenarios))
            .unwrap_or_else(|_| "null".into());
        let dimensions = serde_json::to_string(&summary.dimensions).unwrap_or_else(|_| "[]".into());
        html.push_str("{\"dimensions\":");
        script_json(&mut html, &dimensions);
        html.push_str(",\"scenarios\":");
        script_json(&mut html, &scenarios);
        html.push_str(",\"runs\":[");
        html
    }

    /// The page after its runs' data.
    pub fn page_end() -> String {
        format!("]}}</script>\n<script>{SCRIPT}</script>\n</body></html>\n")
    }

    fn leaderboard(&self, html: &mut String) {
        let summary = self.summary;
        html.push_str("<section id=\"leaderboard\"><h2>Leaderboard</h2>\n<table><caption>Overall score (weighted mean of dimensions), 95% interval over scenarios (level-prior Bayesian bootstrap; * fewer than 16 scenarios, less reliable; ! no spread, the interval rests on the prior). Open a model to read its runs.</caption><thead><tr><th scope=\"col\">group</th><th scope=\"col\">model</th><th scope=\"col\">overall</th><th scope=\"col\">95% CI</th><th scope=\"col\">scenarios (scored/planned)</th><th scope=\"col\">student reached a goal</th><th scope=\"col\">tutor told first</th><th scope=\"col\">compliance</th><th scope=\"col\">unscored</th><th scope=\"col\">cost $</th><th scope=\"col\">p50 ms</th><th scope=\"col\">p95 ms</th></tr></thead><tbody>\n");
        for row in &summary.leaderboard {
            let (mean, ci) = row.overall.map_or(("—".to_owned(), "—".to_owned()), |e| {
                (format!("{:.2}", e.mean), e.interval_text_marked(2))
            });
            let _ = writeln!(
                html,
                "<tr><td>{}</td><td><a class=\"model\" href=\"#model/{}\">{}</a></td><td>{mean}</td><td>{ci}</td><td>{}/{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{}</td><td>{}</td></tr>",
                group_text(row),
                escape(&fragment(row.model.as_str())),
                escape(row.model.as_str()),
                row.scenarios_scored,
                row.scenarios_planned,
                percent(row.success_rate),
                percent(row.telling_rate),
                row.compliance
                    .map_or_else(|| "—".to_owned(), |c| format!("{:.0}%", c * 100.0)),
                row.unscored_judgments,
                row.cost_usd,
                fmt_opt(row.latency_p50_ms, 0),
                fmt_opt(row.latency_p95_ms, 0),
            );
        }
        html.push_str("</tbody></table>\n<p class=\"note\">Models sharing a letter are statistically tied: no paired comparison separates them (sign-flip permutation test on per-scenario differences, Holm-adjusted, alpha 0.05). Tutor told first is telling@k, by ");
        html.push_str(&escape(summary.telling_detector.describe()));
        html.push_str(" (<a href=\"#telling\">telling</a>).</p></section>\n");
    }

    /// Scenario × model mean overall score, as a table whose cells are shaded by score: the
    /// table is its own text alternative.
    fn heatmap(&self, html: &mut String, min: f64, max: f64) {
        html.push_str("<section id=\"heatmap\"><h2>Scenarios × models</h2>\n");
        let Some(runs) = self.runs.filter(|r| !r.cells.is_empty()) else {
            html.push_str("<p class=\"note\">No scored runs in this report.</p></section>\n");
            return;
        };
        let models: Vec<&ModelId> = self.summary.leaderboard.iter().map(|r| &r.model).collect();
        let mut scenarios: Vec<&ScenarioId> = runs.cells.keys().map(|(s, _)| s).collect();
        scenarios.dedup();
        html.push_str("<div class=\"scroll\"><table class=\"heatmap\"><caption>Mean overall score of each model's runs of each scenario (darker is better). Open a cell to read those runs.</caption><thead><tr><th scope=\"col\">scenario</th>");
        for model in &models {
            let _ = write!(html, "<th scope=\"col\">{}</th>", escape(model.as_str()));
        }
        html.push_str("</tr></thead><tbody>\n");
        for scenario in scenarios {
            let title = runs
                .scenarios
                .get(scenario)
                .and_then(|s| s["title"].as_str())
                .map(|t| format!(" title=\"{}\"", escape(t)))
                .unwrap_or_default();
            let _ = write!(
                html,
                "<tr><th scope=\"row\"{title}>{}</th>",
                escape(scenario.as_str())
            );
            for model in &models {
                match runs.cells.get(&(scenario.clone(), (*model).clone())) {
                    Some(&(sum, n)) => {
                        let mean = sum / f64::from(n);
                        let share = ((mean - min) / (max - min)).clamp(0.0, 1.0);
                        let _ = write!(
                            html,
                            "<td style=\"background:hsl(210,60%,{:.0}%);color:{}\"><a href=\"#cell/{}/{}\">{mean:.2}</a></td>",
                            95.0 - share * 60.0,
                            if share > 0.6 { "#fff" } else { "#111" },
                            escape(&fragment(model.as_str())),
                            escape(&fragment(scenario.as_str())),
                        );
                    }
                    None => html.push_str("<td>—</td>"),
                }
            }
            html.push_str("</tr>\n");
        }
        html.push_str("</tbody></table></div></section>\n");
    }

    fn settings(&self, html: &mut String) {
        html.push_str(
            "<section id=\"settings\"><h2>Settings</h2>\n<table class=\"settings\"><tbody>\n",
        );
        let mut row = |name: &str, value: String| {
            let _ = writeln!(
                html,
                "<tr><th scope=\"row\">{name}</th><td>{value}</td></tr>"
            );
        };
        let rubric = self.rubric;
        row(
            "rubric",
            format!(
                "{} — {} (pass threshold {})",
                escape(rubric.id.as_str()),
                escape(&rubric.title),
                rubric.pass_threshold
            ),
        );
        row(
            "dimensions",
            rubric
                .dimensions
                .iter()
                .map(|d| {
                    format!(
                        "{} (weight {}, {}–{})",
                        escape(&d.name),
                        d.weight,
                        d.scale.min,
                        d.scale.max
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        );
        if let Some(manifest) = self.manifest {
            let r = &manifest.request;
            let configs = |list: &[crate::entity::ModelConfig]| {
                list.iter()
                    .map(|c| {
                        format!(
                            "{} (temperature {})",
                            escape(c.model.as_str()),
                            c.temperature
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            row("tutors", configs(&r.tutors));
            row("judges", configs(&r.judges));
            row(
                "student",
                r.student.as_ref().map_or_else(
                    || "scripted replies".to_owned(),
                    |s| {
                        format!(
                            "{} (temperature {}, prompt {})",
                            escape(s.model.as_str()),
                            s.temperature,
                            escape(s.prompt.as_str())
                        )
                    },
                ),
            );
            row(
                "prompts",
                format!(
                    "tutor {}, judge {}",
                    escape(r.tutor_prompt.as_str()),
                    escape(r.judge_prompt.as_str())
                ),
            );
            row(
                "scenarios",
                format!(
                    "{}: {}",
                    r.scenarios.len(),
                    r.scenarios
                        .iter()
                        .map(|s| escape(s.as_str()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            row("turns", r.turns.to_string());
            row("repetitions", r.repetitions.to_string());
            row("max tokens per call", r.max_tokens.to_string());
            row("manifest", escape(&manifest.id.to_string()));
        }
        row(
            "budget",
            if self.summary.stopped_by_budget {
                format!(
                    "a spending cap stopped the benchmark: {} run(s) skipped",
                    self.summary.skipped_runs
                )
            } else {
                "no spending cap stopped it".to_owned()
            },
        );
        if let Some(power) = &self.summary.power {
            let variance = if self.summary.design_variance.is_some() {
                "as this benchmark's scores varied"
            } else {
                "the default, as too few scores were shared to measure it"
            };
            let mut text = super::power_text(power, variance);
            if let Some(warning) = super::power_warning(power) {
                text = format!("{text}. {warning}");
            }
            row(
                "power",
                escape(text.strip_prefix("power: ").unwrap_or(&text)),
            );
        }
        html.push_str("</tbody></table></section>\n");
    }

    fn explorer(&self, html: &mut String) {
        let summary = self.summary;
        html.push_str("<section id=\"runs\"><h2>Runs</h2>\n");
        if self.runs.is_none() {
            html.push_str(
                "<p class=\"note\">This report was made without its runs.</p></section>\n",
            );
            return;
        }
        html.push_str("<noscript><p class=\"note\">Reading runs here needs JavaScript. Every run is also printed by <code>socratic show RUN</code> (<code>--json</code> for its document).</p></noscript>\n<form class=\"filters\" id=\"filters\" aria-controls=\"run-list\">");
        let select = |html: &mut String, name: &str, label: &str, options: Vec<String>| {
            let _ = write!(
                html,
                "<label>{label} <select name=\"{name}\"><option value=\"\">all</option>"
            );
            for option in options {
                let _ = write!(html, "<option>{}</option>", escape(&option));
            }
            html.push_str("</select></label> ");
        };
        select(
            html,
            "model",
            "Model",
            summary
                .leaderboard
                .iter()
                .map(|r| r.model.to_string())
                .collect(),
        );
        let mut scenarios: Vec<String> = match (self.manifest, self.runs) {
            (Some(m), _) => m
                .request
                .scenarios
                .iter()
                .map(ToString::to_string)
                .collect(),
            (None, Some(r)) => r.cells.keys().map(|(s, _)| s.to_string()).collect(),
            (None, None) => Vec::new(),
        };
        scenarios.sort();
        scenarios.dedup();
        select(html, "scenario", "Scenario", scenarios);
        select(
            html,
            "vector",
            "Vector",
            summary
                .vectors
                .iter()
                .map(|v| v.vector.to_string())
                .collect(),
        );
        html.push_str("</form>\n<div id=\"run-list\" aria-live=\"polite\"><p class=\"note\">Choose a model, a scenario or a vector, or open a model in the leaderboard.</p></div>\n<div id=\"run-detail\" tabindex=\"-1\"></div></section>\n");
    }
}

/// A self-contained HTML report of the summary alone (no run explorer, no settings); see
/// [`HtmlReport`] for the full page.
pub fn report_html(summary: &ManifestSummary, rubric: &Rubric) -> String {
    HtmlReport::new(summary, rubric).render()
}

/// The rubric's lowest and highest scores.
fn scale(rubric: &Rubric) -> (f64, f64) {
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
    (min, max)
}

/// An id as a URL fragment part: ids are letters, digits, `-`, `_`, `.` and `:`; anything else
/// is percent-encoded.
fn fragment(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':') {
                c.to_string()
            } else {
                let mut buf = [0u8; 4];
                c.encode_utf8(&mut buf)
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect()
            }
        })
        .collect()
}

/// Cost and tutor latency per model: three bar charts, each with its figures as its text
/// alternative.
fn cost_section(html: &mut String, summary: &ManifestSummary) {
    html.push_str("<section id=\"cost\"><h2>Cost and latency</h2>\n");
    let rows = &summary.leaderboard;
    let bars = |html: &mut String, label: &str, unit: &str, values: Vec<Option<f64>>| {
        let top = values.iter().flatten().copied().fold(0.0_f64, f64::max);
        let (left, width, row_height) = (220.0, 420.0, 26.0);
        let height = row_height * rows.len() as f64 + 10.0;
        let mut alt = format!("{label} per model: ");
        for (row, value) in rows.iter().zip(&values) {
            let _ = write!(
                alt,
                "{} {}; ",
                row.model,
                value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.4} {unit}"))
            );
        }
        let _ = write!(
            html,
            r#"<h3>{label}</h3><svg xmlns="http://www.w3.org/2000/svg" width="{:.0}" height="{height:.0}" role="img" aria-label="{}">"#,
            left + width + 120.0,
            escape(alt.trim())
        );
        for (i, (row, value)) in rows.iter().zip(&values).enumerate() {
            let y = 4.0 + i as f64 * row_height;
            let length = match (value, top > 0.0) {
                (Some(v), true) => v / top * width,
                _ => 0.0,
            };
            let _ = write!(
                html,
                r##"<text x="{:.1}" y="{:.1}" font-size="13" text-anchor="end">{}</text><rect x="{left}" y="{y:.1}" width="{length:.1}" height="18" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="12">{}</text>"##,
                left - 8.0,
                y + 14.0,
                escape(row.model.as_str()),
                COLOURS[i % COLOURS.len()],
                left + length + 6.0,
                y + 14.0,
                value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.4} {unit}"))
            );
        }
        html.push_str("</svg>\n");
    };
    bars(
        html,
        "Cost of the model's runs (every role)",
        "$",
        rows.iter().map(|r| Some(r.cost_usd)).collect(),
    );
    bars(
        html,
        "Tutor latency, median",
        "ms",
        rows.iter().map(|r| r.latency_p50_ms).collect(),
    );
    bars(
        html,
        "Tutor latency, 95th percentile",
        "ms",
        rows.iter().map(|r| r.latency_p95_ms).collect(),
    );
    html.push_str("</section>\n");
}

fn comparisons(html: &mut String, summary: &ManifestSummary) {
    html.push_str("<section id=\"comparisons\"><h2>Paired comparisons</h2>\n<table><thead><tr><th scope=\"col\">a</th><th scope=\"col\">b</th><th scope=\"col\">mean a − b</th><th scope=\"col\">95% CI</th><th scope=\"col\">scenarios</th><th scope=\"col\">p</th><th scope=\"col\">p (Holm)</th></tr></thead><tbody>\n");
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
    html.push_str("</tbody></table></section>\n");
}

/// The telling measure: its detector, the two detectors' agreement overall and per tutor,
/// and the turns they disagree on, each linked to its transcript.
fn telling(html: &mut String, summary: &ManifestSummary) {
    html.push_str("<section id=\"telling\"><h2>Telling</h2>\n");
    let _ = writeln!(
        html,
        "<p>A tutor tells when it hands the student the answer. Every telling figure here uses {}; the other detector is a second opinion.</p>",
        escape(summary.telling_detector.describe())
    );
    let Some(overall) = summary.telling_agreement else {
        html.push_str("<p class=\"note\">No turn was judged by both detectors, so their agreement is not measured.</p></section>\n");
        return;
    };
    html.push_str("<table><caption>The judges' reveals_answer flag against the verbatim answer-key detector, over turns both judged: Cohen's kappa with a 95% interval from resampling scenarios</caption><thead><tr><th scope=\"col\">tutor</th><th scope=\"col\">turns</th><th scope=\"col\">both tell</th><th scope=\"col\">judges only</th><th scope=\"col\">verbatim only</th><th scope=\"col\">kappa</th><th scope=\"col\">95% CI</th></tr></thead><tbody>\n");
    let rows = summary
        .leaderboard
        .iter()
        .filter_map(|r| r.telling_agreement.map(|a| (r.model.as_str(), a)))
        .chain([("all tutors", overall)]);
    for (tutor, a) in rows {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(tutor),
            a.turns,
            a.both,
            a.judges_only,
            a.verbatim_only,
            fmt_opt(a.kappa, 2),
            a.kappa_ci.map_or_else(
                || "n/a".to_owned(),
                |(low, high)| format!("[{low:.2}, {high:.2}]")
            )
        );
    }
    html.push_str("</tbody></table>\n");
    if summary.telling_disagreements.is_empty() {
        html.push_str("<p class=\"note\">The detectors agree on every turn.</p></section>\n");
        return;
    }
    html.push_str("<table><caption>Turns the detectors disagree on (open one to read it)</caption><thead><tr><th scope=\"col\">run</th><th scope=\"col\">tutor</th><th scope=\"col\">scenario</th><th scope=\"col\">turn</th><th scope=\"col\">judges</th><th scope=\"col\">verbatim</th></tr></thead><tbody>\n");
    let said = |tells: bool| if tells { "tells" } else { "does not tell" };
    for d in &summary.telling_disagreements {
        let _ = writeln!(
            html,
            "<tr><td><a href=\"#run/{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td><td>{5}</td></tr>",
            d.run,
            escape(d.tutor.as_str()),
            escape(d.scenario.as_str()),
            d.turn,
            said(d.judges),
            said(d.verbatim)
        );
    }
    html.push_str("</tbody></table></section>\n");
}

/// The judges against human labels, or that there are none.
fn calibration(html: &mut String, calibration: Option<&Calibration>) {
    html.push_str("<section id=\"calibration\"><h2>Calibration against human labels</h2>\n");
    let Some(calibration) = calibration.filter(|c| c.labels > 0) else {
        html.push_str("<p class=\"note\"><strong>Not calibrated:</strong> no human labels are stored for this benchmark, so nothing says how far its judges agree with people. Label turns in the browser with <code>socratic label</code>, then run <code>socratic calibrate</code>.</p></section>\n");
        return;
    };
    let raters = if calibration.raters.is_empty() {
        String::new()
    } else {
        format!(" by {}", escape(&calibration.raters.join(", ")))
    };
    let _ = writeln!(
        html,
        "<p class=\"note\">{} labels of {} turns in {} runs{raters}. Above 0, a bias means the judge scores higher than people.</p>",
        calibration.labels, calibration.turns, calibration.runs
    );
    html.push_str("<table><caption>Per judge and dimension, with 95% intervals from resampling runs</caption><thead><tr><th scope=\"col\">judge</th><th scope=\"col\">dimension</th><th scope=\"col\">weighted kappa (quadratic)</th><th scope=\"col\">95% CI</th><th scope=\"col\">Krippendorff's alpha (interval)</th><th scope=\"col\">95% CI</th><th scope=\"col\">mean bias (judge − human)</th><th scope=\"col\">95% CI</th><th scope=\"col\">labelled turns</th></tr></thead><tbody>\n");
    let interval = |ci: Option<(f64, f64)>| {
        ci.map_or_else(
            || "n/a".to_owned(),
            |(low, high)| format!("[{low:.3}, {high:.3}]"),
        )
    };
    for a in &calibration.agreement {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(a.judge.as_str()),
            escape(&a.dimension),
            fmt_opt(a.weighted_kappa, 3),
            interval(a.kappa_ci),
            fmt_opt(a.krippendorff_alpha, 3),
            interval(a.alpha_ci),
            a.mean_bias
                .map_or_else(|| "—".to_owned(), |b| format!("{b:+.3}")),
            interval(a.bias_ci),
            a.turns
        );
    }
    html.push_str("</tbody></table></section>\n");
}

fn agreement(html: &mut String, summary: &ManifestSummary) {
    html.push_str("<section id=\"agreement\"><h2>Judge agreement</h2>\n");
    if summary.judge_agreement.is_empty() {
        html.push_str("<p class=\"note\">One judge: there is no agreement to measure. Add a second judge, or compare the judge with human labels (<code>socratic calibrate</code>).</p></section>\n");
        return;
    }
    html.push_str("<table><caption>Per dimension, with 95% intervals from resampling scenarios; kappa with exactly two judges</caption><thead><tr><th scope=\"col\">dimension</th><th scope=\"col\">Krippendorff's alpha (interval)</th><th scope=\"col\">95% CI</th><th scope=\"col\">weighted kappa (quadratic)</th><th scope=\"col\">95% CI</th><th scope=\"col\">turns</th></tr></thead><tbody>\n");
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
    html.push_str("</tbody></table></section>\n");
}
