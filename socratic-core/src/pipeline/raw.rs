//! The raw artifacts: every request and response as the model saw and sent it, written once
//! under `raw/runs/<run>/`. Serialised straight from the pipeline's values, with no JSON tree
//! built in between.

use serde::Serialize;

use crate::id::{ManifestId, RunId};
use crate::llm::{ConverseRequest, ConverseResponse};

/// One call: what was asked and what came back.
#[derive(Serialize)]
pub(crate) struct Exchange<'a> {
    pub(crate) request: &'a ConverseRequest,
    pub(crate) response: &'a ConverseResponse,
}

/// `turn-001.json`: the tutor's call, and the student model's (none with scripted replies or
/// after the last turn).
#[derive(Serialize)]
pub(crate) struct Turn<'a> {
    pub(crate) tutor: Exchange<'a>,
    pub(crate) student: Option<Exchange<'a>>,
}

/// `turn-001.json` of a re-judge: where the turn was copied from.
#[derive(Serialize)]
pub(crate) struct ReusedTurn<'a> {
    pub(crate) reused: Source<'a>,
}

/// The run and turn a re-judge's turn was copied from.
#[derive(Serialize)]
pub(crate) struct Source<'a> {
    pub(crate) manifest: &'a ManifestId,
    pub(crate) run: &'a RunId,
    pub(crate) turn: u32,
}

/// `judge-001-<judge>.json`: the last request (with any corrections asked for) and every
/// attempt's answer.
#[derive(Serialize)]
pub(crate) struct Judging<'a> {
    pub(crate) request: &'a ConverseRequest,
    pub(crate) exchanges: &'a [JudgeAttempt],
}

/// One judge call's answer: a response, or output the client could not read.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum JudgeAttempt {
    /// The response.
    Answered {
        /// What came back.
        response: ConverseResponse,
    },
    /// The client could not read the output.
    Unreadable {
        /// Why.
        invalid_output: String,
        /// The output as it came.
        raw: String,
    },
}
