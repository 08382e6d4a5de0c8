//! Stage 3: judge every turn of a run with every judge of the manifest.

use futures::StreamExt;
use serde_json::Value;

use super::curate::{curate_run, rewrite_curated};
use super::prompts::{JudgeBrief, Sampling};
use super::raw;
use super::{
    Job, Ports, StageError, call_record, failed_run, failing_run_on_rejection, put_raw, run_record,
};
use crate::entity::{
    Judgment, JudgmentOutcome, Manifest, Model, ModelConfig, Prompt, Rubric, RunStatus, Scenario,
    Stage, Turn, Verdict,
};
use crate::id::RunId;
use crate::keys;
use crate::llm::{LlmError, Message};
use crate::repository::{RunRecord, create_op};

/// Judges every turn of a run whose dialogue is complete, with each judge that has not
/// judged it yet, then curates the run: its summary and its move to `curated`.
///
/// A judge's output is validated against the rubric; invalid output is retried with the
/// problems fed back, up to `judge_attempts` calls, and then stored **unscored with the
/// reason**, never as a silent score. Each judgment is written once as soon as it is made,
/// so a redelivered job calls no judge twice; the last one is written in the same
/// transaction as the run's summary and its move. The move that finishes a manifest's last
/// run sends the `run-judged` event, and the curator summarises the manifest. A job for a
/// run still in dialogue does nothing: the dialogue sends it again when it completes.
pub async fn judge(ports: &Ports, run: &RunId) -> Result<(), StageError> {
    failing_run_on_rejection(ports, run, Stage::Judge, judge_run(ports, run)).await
}

async fn judge_run(ports: &Ports, id: &RunId) -> Result<(), StageError> {
    let repo = &ports.repository;
    loop {
        let mut record = run_record(ports, id).await?;
        match record.run.value.status {
            RunStatus::Failed => return Err(failed_run(&record.run.value)),
            RunStatus::Pending | RunStatus::Running | RunStatus::Skipped => return Ok(()),
            // A crash after the run was curated may have lost its document and the event; the
            // curator checks the manifest.
            RunStatus::Curated => {
                rewrite_curated(ports, &record).await?;
                return send_judged(ports, id).await;
            }
            RunStatus::Judged => return send_judged(ports, id).await,
            RunStatus::DialogueComplete => {}
        }
        let manifest = repo
            .get::<Manifest>(&keys::manifest(&record.run.value.manifest))
            .await?
            .ok_or_else(|| StageError::rejected(format!("manifest of run {id} does not exist")))?
            .value;
        let Some(made) = judge_missing(ports, &manifest, &record).await? else {
            continue; // another worker stored a judgment first: read again
        };
        record.judgments.extend(made.stored);
        record.judgments.extend(made.held.iter().cloned());
        // In the store's order, so the summary's sums match one computed from a reread.
        record
            .judgments
            .sort_by(|a, b| (a.turn, a.judge.as_str()).cmp(&(b.turn, b.judge.as_str())));
        let also = made.held.as_ref().map(create_op).transpose()?;
        match curate_run(ports, &manifest, &record, also.into_iter().collect()).await? {
            Some(finished) if finished < manifest.run_count => return Ok(()),
            Some(_) => return send_judged(ports, id).await,
            None => {
                // Another writer moved the run or stored this judgment: keep what was paid
                // for, then read again to see what it did.
                if let Some(judgment) = made.held {
                    repo.store_judgment(&judgment).await?;
                }
            }
        }
    }
}

async fn send_judged(ports: &Ports, id: &RunId) -> Result<(), StageError> {
    ports
        .run_events
        .send(Job::Curate { run: *id }.message())
        .await?;
    Ok(())
}

/// The judgments one job made.
struct Made {
    /// Stored as they arrived.
    stored: Vec<Judgment>,
    /// The last, left for the transaction that curates the run.
    held: Option<Judgment>,
}

/// Makes the run's missing judgments, a few calls at a time, storing each as it arrives
/// except the last. `None` when a racing worker had stored one of them first: its judgment
/// wins, and the caller reads the run again.
async fn judge_missing(
    ports: &Ports,
    manifest: &Manifest,
    record: &RunRecord,
) -> Result<Option<Made>, StageError> {
    let repo = &ports.repository;
    let run = &record.run.value;
    let mut turns = record.turns.clone();
    turns.sort_by_key(|t| t.index);
    if let Some(missing) = (1..=run.turns).find(|i| !turns.iter().any(|t| t.index == *i)) {
        return Err(StageError::rejected(format!(
            "turn {missing} of run {} is not stored",
            run.id
        )));
    }
    let rubric: Rubric = repo.require_catalog(&manifest.request.rubric).await?;
    let prompt: Prompt = repo.require_catalog(&manifest.request.judge_prompt).await?;
    let scenario: Scenario = repo.require_catalog(&run.scenario).await?;
    let mut judges = Vec::new();
    for config in &manifest.request.judges {
        let model: Model = repo.require_catalog(&config.model).await?;
        judges.push((model, config));
    }
    let brief = JudgeBrief::new(&prompt, &rubric, &scenario);
    let case = Case {
        max_tokens: manifest.request.max_tokens,
        sample: run.repetition,
        brief: &brief,
        rubric: &rubric,
        scenario: &scenario,
        turns: &turns,
    };
    let missing: Vec<_> = turns
        .iter()
        .flat_map(|turn| judges.iter().map(move |judge| (turn.index, judge)))
        .filter(|(turn, (model, _))| {
            !record
                .judgments
                .iter()
                .any(|j| j.turn == *turn && j.judge == model.id)
        })
        .collect();
    let total = missing.len();
    // Built eagerly: a stream mapping a closure to futures borrowing `case` is not `Send`.
    let calls: Vec<_> = missing
        .into_iter()
        .map(|(turn, (model, config))| judge_with(ports, model, config, &case, &run.id, turn))
        .collect();
    let mut results =
        futures::stream::iter(calls).buffer_unordered(ports.config.judge_calls_at_once.max(1));
    let mut made = Made {
        stored: Vec::new(),
        held: None,
    };
    let (mut done, mut failed, mut raced) = (0, None, false);
    while let Some(result) = results.next().await {
        done += 1;
        match result {
            Ok(judgment) if done == total && failed.is_none() && !raced => {
                made.held = Some(judgment);
            }
            Ok(judgment) => {
                if repo.store_judgment(&judgment).await? {
                    made.stored.push(judgment);
                } else {
                    raced = true;
                }
            }
            Err(error) => {
                failed.get_or_insert(error);
            }
        }
    }
    if let Some(error) = failed {
        return Err(error);
    }
    Ok((!raced).then_some(made))
}

/// What every judge of a turn is shown.
#[derive(Clone, Copy)]
struct Case<'a> {
    max_tokens: u32,
    /// The run's repetition, which keeps identical dialogues' judgments distinct samples.
    sample: u32,
    brief: &'a JudgeBrief,
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
        brief,
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
    let mut request = brief.request(model, sampling, scenario, turns, turn);
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
                exchanges.push(raw::JudgeAttempt::Answered { response });
                (raw, output)
            }
            Err(LlmError::InvalidOutput { message, raw }) => {
                exchanges.push(raw::JudgeAttempt::Unreadable {
                    invalid_output: message,
                    raw: raw.clone(),
                });
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
    let document = raw::Judging {
        request: &request,
        exchanges: &exchanges,
    };
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
