//! The HTML page of a comparison of two manifests: per model, the change B − A with its
//! interval, as a table and a chart, and the scenarios that changed most. One self-contained
//! file without scripts.

use std::fmt::Write;

use super::html::{COLOURS, escape};
use crate::compare::ManifestComparison;

/// How many of the most changed (model, scenario) pairs the page lists.
pub const MOST_CHANGED: usize = 20;

/// The comparison as a self-contained HTML page. `alpha` is the significance level a verdict
/// (better or worse) needs after the Holm adjustment.
pub fn comparison_html(comparison: &ManifestComparison, alpha: f64) -> String {
    let title = format!("Manifest {} compared with {}", comparison.b, comparison.a);
    let mut html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{}</style>
</head><body>
<h1>{title}</h1>
<p class="note">B = {} (the candidate) against A = {} (the baseline). Per model, the mean over the scenarios both scored of B − A, with a 95% t interval over scenarios and a sign-flip p-value, Holm-adjusted across models.</p>
"#,
        include_str!("report.css"),
        comparison.b,
        comparison.a,
    );
    html.push_str("<section id=\"models\"><h2>Per model</h2>\n");
    if comparison.models.is_empty() {
        html.push_str(
            "<p class=\"note\">No model was scored on a shared scenario in both manifests.</p>\n",
        );
    } else {
        html.push_str(&difference_chart(comparison));
        html.push_str("<table><thead><tr><th scope=\"col\">verdict</th><th scope=\"col\">model</th><th scope=\"col\">A</th><th scope=\"col\">B</th><th scope=\"col\">B − A</th><th scope=\"col\">95% CI</th><th scope=\"col\">scenarios</th><th scope=\"col\">p</th><th scope=\"col\">p (Holm)</th></tr></thead><tbody>\n");
        for m in &comparison.models {
            let verdict = if m.p_adjusted >= alpha {
                "no difference shown"
            } else if m.difference.mean > 0.0 {
                "better"
            } else {
                "worse"
            };
            let _ = writeln!(
                html,
                "<tr><td>{verdict}</td><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:+.3}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td></tr>",
                escape(m.model.as_str()),
                m.a_mean,
                m.b_mean,
                m.difference.mean,
                m.difference.interval().map_or_else(
                    || "n/a".to_owned(),
                    |(low, high)| format!("[{low:+.3}, {high:+.3}]")
                ),
                m.difference.n,
                m.p_value,
                m.p_adjusted,
            );
        }
        html.push_str("</tbody></table>\n");
    }
    if !comparison.unmatched.is_empty() {
        let _ = writeln!(
            html,
            "<p class=\"note\">Scored in only one of the two, so not compared: {}.</p>",
            comparison
                .unmatched
                .iter()
                .map(|m| escape(m.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    html.push_str("</section>\n<section id=\"scenarios\"><h2>Scenarios that changed most</h2>\n");
    if comparison.scenarios.is_empty() {
        html.push_str("<p class=\"note\">No shared scenario.</p>\n");
    } else {
        let _ = writeln!(
            html,
            "<table><caption>The {} largest changes of a model's mean score on one scenario, of {}</caption><thead><tr><th scope=\"col\">change</th><th scope=\"col\">model</th><th scope=\"col\">scenario</th><th scope=\"col\">A</th><th scope=\"col\">B</th></tr></thead><tbody>",
            comparison.scenarios.len().min(MOST_CHANGED),
            comparison.scenarios.len()
        );
        for c in comparison.scenarios.iter().take(MOST_CHANGED) {
            let _ = writeln!(
                html,
                "<tr><td>{:+.2}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td></tr>",
                c.change(),
                escape(c.model.as_str()),
                escape(c.scenario.as_str()),
                c.a,
                c.b
            );
        }
        html.push_str("</tbody></table>\n");
    }
    html.push_str("</section>\n</body></html>\n");
    html
}

/// Each model's difference as a point with its interval around a zero line.
fn difference_chart(comparison: &ManifestComparison) -> String {
    let reach = comparison
        .models
        .iter()
        .flat_map(|m| {
            let (low, high) = m
                .difference
                .interval()
                .unwrap_or((m.difference.mean, m.difference.mean));
            [low.abs(), high.abs(), m.difference.mean.abs()]
        })
        .fold(0.5_f64, f64::max);
    let (left, width, row_height) = (220.0, 440.0, 28.0);
    let height = row_height * comparison.models.len() as f64 + 36.0;
    let x = |v: f64| left + (v + reach) / (2.0 * reach) * width;
    let mut alt = String::from("B − A per model with 95% intervals: ");
    for m in &comparison.models {
        let _ = write!(
            alt,
            "{} {:+.2} {}; ",
            m.model,
            m.difference.mean,
            m.difference.interval_text(2)
        );
    }
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{:.0}" height="{height:.0}" role="img" aria-label="{}"><line x1="{2:.1}" y1="4" x2="{2:.1}" y2="{3:.1}" stroke="#888" stroke-dasharray="4 3"/><text x="{2:.1}" y="{4:.1}" font-size="11" text-anchor="middle">0 (no change)</text>"##,
        left + width + 40.0,
        escape(alt.trim()),
        x(0.0),
        height - 22.0,
        height - 8.0,
    );
    for (i, m) in comparison.models.iter().enumerate() {
        let y = 16.0 + i as f64 * row_height;
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="13" text-anchor="end">{}</text>"#,
            left - 8.0,
            y + 4.0,
            escape(m.model.as_str())
        );
        if let Some((low, high)) = m.difference.interval() {
            let _ = write!(
                svg,
                r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#222" stroke-width="2"/>"##,
                x(low),
                x(high)
            );
        }
        let _ = write!(
            svg,
            r#"<circle cx="{:.1}" cy="{y:.1}" r="5" fill="{}"><title>{}: {:+.2} {}</title></circle>"#,
            x(m.difference.mean),
            COLOURS[i % COLOURS.len()],
            escape(m.model.as_str()),
            m.difference.mean,
            m.difference.interval_text(2)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{ModelDifference, ScenarioChange};
    use crate::id::{ModelId, ScenarioId};
    use crate::stats::{Caution, Estimate};

    fn model(id: &str) -> ModelId {
        ModelId::new(id).expect("valid id")
    }

    #[test]
    fn the_page_gives_each_verdict_and_the_largest_changes_first() {
        let change = |m: &str, s: &str, a: f64, b: f64| ScenarioChange {
            model: model(m),
            scenario: ScenarioId::new(s).expect("valid id"),
            a,
            b,
        };
        let comparison = ManifestComparison {
            a: "01J0000000000000000000000A".parse().expect("id"),
            b: "01J0000000000000000000000B".parse().expect("id"),
            models: vec![
                ModelDifference {
                    model: model("better-model"),
                    a_mean: 3.0,
                    b_mean: 4.0,
                    difference: Estimate {
                        mean: 1.0,
                        ci_low: Some(0.6),
                        ci_high: Some(1.4),
                        n: 8,
                        caution: Some(Caution::FewScenarios),
                    },
                    p_value: 0.004,
                    p_adjusted: 0.008,
                },
                ModelDifference {
                    model: model("same-model"),
                    a_mean: 3.0,
                    b_mean: 3.1,
                    difference: Estimate {
                        mean: 0.1,
                        ci_low: Some(-0.3),
                        ci_high: Some(0.5),
                        n: 8,
                        caution: Some(Caution::FewScenarios),
                    },
                    p_value: 0.6,
                    p_adjusted: 0.6,
                },
            ],
            unmatched: vec![model("only-in-a")],
            scenarios: vec![
                change("better-model", "s2", 2.0, 4.5),
                change("same-model", "s1", 3.0, 3.2),
            ],
        };
        let html = comparison_html(&comparison, 0.05);
        assert!(html.contains("<td>better</td><td>better-model</td>"));
        assert!(html.contains("<td>no difference shown</td><td>same-model</td>"));
        assert!(html.contains("only-in-a"));
        let first = html.find("<td>+2.50</td>").expect("the largest change");
        let second = html.find("<td>+0.20</td>").expect("the smaller change");
        assert!(first < second, "largest change first");
        assert!(html.contains(r#"role="img" aria-label="B − A per model"#));
        assert!(!html.contains("<script"), "no scripts");
    }
}
