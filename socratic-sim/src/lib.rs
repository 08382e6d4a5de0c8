//! Offline models and fault injection for `socratic`, on no backend of their own.
//!
//! - [`simulated`]: deterministic tutors, student and judge ([`SimulatedLlm`]), so a whole
//!   benchmark runs without credentials or network, and the default offline benchmark
//!   ([`simulated_manifest`]). The command line's main job runs on them.
//! - [`ScriptedLlm`]: a model that answers from a script and records every request, for tests.
//! - [`chaos`]: fault injection for any port: a flaky or throttled model, a queue that delivers
//!   duplicates, a consumer that shuffles what it receives.
//!
//! It depends on `socratic-core` alone, so every backend's tests use the same models and the
//! same faults, and the backends stay siblings.

pub mod chaos;
mod scripted;
pub mod simulated;

use std::time::Duration;

use serde_json::Value;
use socratic_core::llm::{ConverseResponse, StopReason, Usage};

pub use scripted::ScriptedLlm;
pub use simulated::{SimulatedLlm, simulated_manifest};

/// An answer of an offline model: its text, or the structured value a judge asked for (a tool
/// use, as a provider reports it).
fn answer(
    text: String,
    structured: Option<Value>,
    usage: Usage,
    latency: Duration,
) -> ConverseResponse {
    ConverseResponse {
        stop_reason: if structured.is_some() {
            StopReason::ToolUse
        } else {
            StopReason::EndTurn
        },
        text,
        structured,
        usage,
        latency,
        cached: false,
        batched: false,
    }
}
