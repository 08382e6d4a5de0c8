//! Stage 3: judge one stored turn with every judge of the manifest.

use serde_json::{Value, json};

use super::prompts::{Sampling, judge_request};
use super::{
    Job, Ports, StageError, Transition, call_record, failing_run_on_rejection, put_raw, transition,
};
use crate::entity::{
    Judgment, JudgmentOutcome, Manifest, Model, ModelConfig, Prompt, Rubric, RunStatus, Scenario,
    Stage, Turn, Verdict,
};
use crate::id::RunId;
use crate::keys;
use crate::llm::{LlmError, Message};

/// Judges turn `turn` of a run with each judge that has not judged it yet.
///
/// A judge's output is validated against the rubric; invalid output is retried with the
/// problems fed back, up to `judge_attempts` calls, and then stored **unscored with the
/// reason** — never as a silent score. Each judgment is written once, in the same transaction
/// as the increment of the run's judged counter, so a duplicate job cannot count twice. When
/// the counter reaches turns × judges the `run-judged` event is sent.
pub async fn judge(ports: &Ports, run: &RunId, turn: u32) -> Result<(), StageError> {
    failing_run_on_rejection(ports, run, Stage::Judge, judge_turn(ports, run, turn)).await
}

async fn judge_turn(ports: &Ports, id: &RunId, turn: u32) -> Result<(), StageError> {
    let repo = &ports.repository;
    let record = repo
        .run_record(id)
        .await?
        .ok_or_else(|| StageError::rejected(format!("run {id} does not exist")))?;
    match record.run.value.status {
        RunStatus::Failed => {
            let reason = record
                .run
                .value
                .failure
                .map(|f| f.reason)
                .unwrap_or_default();
            return Err(StageError::rejected(format!(
                "run {id} has failed: {reason}"
            )));
        }
        RunStatus::Judged | RunStatus::Curated | RunStatus::Skipped => return Ok(()),
        RunStatus::Pending | RunStatus::Running | RunStatus::DialogueComplete => {}
    }
    let mut turns = record.turns;
    turns.sort_by_key(|t| t.index);
    if !turns.iter().any(|t| t.index == turn) {
        return Err(StageError::rejected(format!(
            "turn {turn} of run {id} is not stored"
        )));
    }
    let manifest = repo
        .get::<Manifest>(&keys::manifest(&record.run.value.manifest))
        .await?
        .ok_or_else(|| StageError::rejected(format!("manifest of run {id} does not exist")))?
        .value;
    let rubric: Rubric = repo.require_catalog(&manifest.request.rubric).await?;
    let prompt: Prompt = repo.require_catalog(&manifest.request.judge_prompt).await?;
    let scenario: Scenario = repo.require_catalog(&record.run.value.scenario).await?;

    // The run's count of judgments after this job's last write, when it wrote one.
    let mut judged = None;
    for config in &manifest.request.judges {
        let done = record
            .judgments
            .iter()
            .any(|j| j.turn == turn && j.judge == config.model);
        if done {
            continue;
        }
        let model: Model = repo.require_catalog(&config.model).await?;
        let case = Case {
            max_tokens: manifest.request.max_tokens,
            sample: record.run.value.repetition,
            prompt: &prompt,
            rubric: &rubric,
            scenario: &scenario,
            turns: &turns,
        };
        let judgment = judge_with(ports, &model, config, &case, id, turn).await?;
        judged = repo.store_judgment(&judgment).await?;
    }
    // Judgments still missing by this job's own count: whoever stores the last one sees the
    // full count and finishes the run, so there is nothing to read again.
    if judged.is_some_and(|n| n < record.run.value.expected_judgments()) {
        return Ok(());
    }
    finish_if_judged(ports, id).await
}

/// What every judge of a turn is shown.
#[derive(Clone, Copy)]
struct Case<'a> {
    max_tokens: u32,
    /// The run's repetition, which keeps identical dialogues' judgments distinct samples.
    sample: u32,
    prompt: &'a Prompt,
    rubric: &'a Rubric,
    scenario: &'a Scenario,
    turns: &'a [Turn],
}

/// One judgment: up to `judge_attempts` calls until the output validates.
async fn judge_with(
    ports: &Ports,
    model: &Model,
    config: &ModelConfig,
    case: &Case<'_>,
    run: &RunId,
    turn: u32,
) -> Result<Judgment, StageError> {
    let Case {
        max_tokens,
        sample: _,
        prompt,
        rubric,
        scenario,
        turns,
    } = *case;
    let client = ports.providers.client(model).ok_or_else(|| {
        StageError::rejected(format!(
            "no client for provider {:?} of model {}",
            model.provider, model.id
        ))
    })?;
    let sampling = Sampling {
        temperature: config.temperature,
        max_tokens,
    };
    let mut request = judge_request(model, sampling, prompt, rubric, scenario, turns, turn);
    request.sample = case.sample;
    let mut calls = Vec::new();
    let mut exchanges = Vec::new();
    let mut problems = String::new();
    let attempts = ports.config.judge_attempts.max(1);
    let mut outcome = None;
    for _ in 0..attempts {
        let (raw, output) = match client.converse(&request).await {
            Ok(response) => {
                calls.push(call_record(model, &request, &response));
                let output = response
                    .structured
                    .clone()
                    .or_else(|| serde_json::from_str::<Value>(response.text.trim()).ok());
                let raw = output
                    .as_ref()
                    .map_or_else(|| response.text.clone(), Value::to_string);
                exchanges.push(json!({"response": response}));
                (raw, output)
            }
            Err(LlmError::InvalidOutput { message, raw }) => {
                exchanges.push(json!({"invalid_output": message, "raw": raw}));
                (raw, None)
            }
            Err(e) => return Err(StageError::from_call(&e)),
        };
        match output.map(|value| Verdict::from_output(&value, rubric)) {
            Some(Ok(verdict)) => {
                outcome = Some(JudgmentOutcome::Scored(verdict));
                break;
            }
            Some(Err(found)) => problems = found.to_string(),
            None => problems = "the output was not JSON".to_owned(),
        }
        // Show the judge what was wrong; a judge that can correct itself usually does.
        request
            .messages
            .push(Message::assistant(if raw.trim().is_empty() {
                "(no output)".to_owned()
            } else {
                raw
            }));
        request.messages.push(Message::user(format!(
            "That judgment is invalid: {problems}. Record the judgment of tutor turn {turn} again, following the schema exactly."
        )));
    }
    let attempts_made = u32::try_from(exchanges.len()).unwrap_or(u32::MAX);
    let outcome = outcome.unwrap_or_else(|| JudgmentOutcome::Unscored {
        reason: format!("invalid judge output after {attempts_made} attempts: {problems}"),
    });
    let document = json!({"request": request, "exchanges": exchanges});
    put_raw(
        ports,
        format!("raw/runs/{run}/judge-{turn:03}-{}.json", model.id),
        &document,
    )
    .await?;
    Ok(Judgment {
        run: *run,
        turn,
        judge: model.id.clone(),
        outcome,
        attempts: attempts_made.max(1),
        calls,
        created_at: ports.clock.now(),
    })
}

/// When every judgment of a complete dialogue is stored: send `run-judged`, then mark the run
/// `judged`. Sending first means a crash in between re-sends (harmless) instead of losing the
/// event; the curator accepts a `dialogue_complete` run whose counter is complete.
pub(crate) async fn finish_if_judged(ports: &Ports, id: &RunId) -> Result<(), StageError> {
    loop {
        let Some((run, judged)) = ports.repository.run_with_judged(id).await? else {
            return Ok(());
        };
        if run.value.status != RunStatus::DialogueComplete
            || u64::try_from(judged).unwrap_or(0) < run.value.expected_judgments()
        {
            return Ok(());
        }
        ports
            .run_events
            .send(Job::Curate { run: *id }.message())
            .await?;
        if let Transition::Moved { .. } = transition(ports, &run, RunStatus::Judged, None).await? {
            return Ok(());
        }
    }
}
