//! The HTML report of a 1,000-run benchmark: every run's dialogue and judgments are in it, and
//! it stays under 10 MB with turns as long as real models write. The file is kept under
//! `target/tmp/` for the browser check (scripts/browser).

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use socratic_core::blob::{BlobKey, BlobStore};
use socratic_core::defaults::{Defaults, ScenarioSet};
use socratic_core::llm::{ConverseRequest, ConverseResponse, LlmClient, LlmError, Role};
use socratic_core::pipeline::{PipelineConfig, Providers};
use socratic_core::runner::RunnerConfig;
use socratic_memory::{LocalPipeline, MemoryBlobStore};
use socratic_sim::simulated::PROVIDER;
use socratic_sim::{SimulatedLlm, simulated_manifest};

/// The largest report the issue allows for 1,000 runs of 3 turns.
const MAX_REPORT_BYTES: usize = 10 * 1024 * 1024;

/// The simulated models, with answers padded to lengths real models write: tutor turns of
/// 800 characters, student replies of 300, judge rationales of 400.
struct Verbose(SimulatedLlm);

fn pad(text: &mut String, to: usize) {
    const FILLER: &str = " Let us look at that step again, slowly, with an example of our own.";
    while text.len() < to {
        text.push_str(FILLER);
    }
}

#[async_trait]
impl LlmClient for Verbose {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        let mut response = self.0.converse(request).await?;
        match request.role {
            Role::Tutor => pad(&mut response.text, 800),
            Role::Student => pad(&mut response.text, 300),
            Role::Judge => {
                if let Some(Value::String(rationale)) = response
                    .structured
                    .as_mut()
                    .and_then(|v| v.get_mut("rationale"))
                {
                    pad(rationale, 400);
                }
            }
        }
        Ok(response)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_run_report_holds_every_dialogue_in_under_ten_megabytes() {
    let defaults = Defaults::load().unwrap();
    let mut request = simulated_manifest(&defaults);
    request.scenarios = defaults.scenario_ids(ScenarioSet::Full);
    request.repetitions = 7; // 48 scenarios × 3 tutors × 7 = 1,008 runs
    let blobs: Arc<dyn BlobStore> = Arc::new(MemoryBlobStore::new());
    let providers = Providers::new().with(PROVIDER, Arc::new(Verbose(SimulatedLlm::new())));
    let pipeline = LocalPipeline::new(Arc::clone(&blobs), providers, PipelineConfig::default());
    pipeline
        .install_catalog(&SimulatedLlm::catalog())
        .await
        .unwrap();
    let config = RunnerConfig {
        receive_wait: Duration::from_millis(20),
        ..RunnerConfig::default()
    };
    let summary = pipeline
        .runner(16, config)
        .run_manifest(&request)
        .await
        .unwrap();
    assert_eq!(summary.runs, 1008);

    let key = BlobKey::new(format!(
        "curated/manifests/{}/report.html",
        summary.manifest
    ))
    .unwrap();
    let html = String::from_utf8(blobs.get(&key).await.unwrap()).unwrap();
    let target = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-1000-runs.html");
    std::fs::write(&target, &html).unwrap();
    eprintln!(
        "report of {} runs: {:.2} MB ({})",
        summary.runs,
        html.len() as f64 / 1e6,
        target.display()
    );
    assert!(
        html.len() < MAX_REPORT_BYTES,
        "{} bytes for 1,008 runs",
        html.len()
    );

    // Every run's dialogue and judgments are embedded, ready to render.
    let start = html.find(r#"id="socratic-data">"#).unwrap() + r#"id="socratic-data">"#.len();
    let end = start + html[start..].find("</script>").unwrap();
    let data: Value = serde_json::from_str(&html[start..end]).unwrap();
    let runs = data["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1008);
    for run in runs {
        let turns = run["turns"].as_array().unwrap();
        assert_eq!(turns.len(), 3, "{}", run["id"]);
        assert!(turns.iter().all(|t| t[0].as_str().unwrap().len() >= 800));
        let judgments = run["judgments"].as_array().unwrap();
        assert_eq!(judgments.len(), 3, "{}", run["id"]);
        assert!(
            judgments
                .iter()
                .all(|j| j["rationale"].as_str().is_some_and(|r| r.len() >= 400))
        );
    }
    assert_eq!(data["scenarios"].as_object().unwrap().len(), 48);
}

/// The simulated models, with every tutor turn ending in markup that would run a script if the
/// report pasted it into the page.
struct Hostile(SimulatedLlm);

const MARKUP: &str = "</script><script>alert(1)</script><img src=x onerror=alert(2)>";

#[async_trait]
impl LlmClient for Hostile {
    async fn converse(&self, request: &ConverseRequest) -> Result<ConverseResponse, LlmError> {
        let mut response = self.0.converse(request).await?;
        if request.role == Role::Tutor {
            response.text.push_str(MARKUP);
        }
        Ok(response)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_text_is_data_in_the_report_never_markup() {
    let defaults = Defaults::load().unwrap();
    let mut request = simulated_manifest(&defaults);
    request.scenarios.truncate(2);
    let blobs: Arc<dyn BlobStore> = Arc::new(MemoryBlobStore::new());
    let providers = Providers::new().with(PROVIDER, Arc::new(Hostile(SimulatedLlm::new())));
    let pipeline = LocalPipeline::new(Arc::clone(&blobs), providers, PipelineConfig::default());
    pipeline
        .install_catalog(&SimulatedLlm::catalog())
        .await
        .unwrap();
    let summary = pipeline
        .runner(4, RunnerConfig::default())
        .run_manifest(&request)
        .await
        .unwrap();
    let key = BlobKey::new(format!(
        "curated/manifests/{}/report.html",
        summary.manifest
    ))
    .unwrap();
    let html = String::from_utf8(blobs.get(&key).await.unwrap()).unwrap();

    assert!(!html.contains("<script>alert"));
    assert!(!html.contains("<img src=x"));
    assert_eq!(
        html.matches("</script>").count(),
        2,
        "only the data's and the explorer's own script elements close"
    );
    let start = html.find(r#"id="socratic-data">"#).unwrap() + r#"id="socratic-data">"#.len();
    let end = start + html[start..].find("</script>").unwrap();
    let data: Value = serde_json::from_str(&html[start..end]).unwrap();
    let runs = data["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 6);
    for run in runs {
        for turn in run["turns"].as_array().unwrap() {
            assert!(
                turn[0].as_str().unwrap().ends_with(MARKUP),
                "the text is kept whole"
            );
        }
    }
}
