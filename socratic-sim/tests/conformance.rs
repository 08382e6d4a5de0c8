//! The scripted model passes the model port's conformance suite, directly and through
//! `Arc<dyn LlmClient>`.

use std::sync::Arc;

use socratic_core::llm::LlmClient;
use socratic_core::testkit;
use socratic_sim::ScriptedLlm;

#[tokio::test]
async fn scripted_llm_passes_the_llm_suite() {
    testkit::llm::run_all(&ScriptedLlm::new(), "scripted").await;
    let shared: Arc<dyn LlmClient> = Arc::new(ScriptedLlm::new());
    testkit::llm::run_all(&shared, "scripted").await;
}
