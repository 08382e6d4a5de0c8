//! Stage 2: run a dialogue, tutor ⇄ student, one stored turn at a time.

use super::prompts::{Sampling, student_request, tutor_request};
use super::raw;
use super::{
    Job, Ports, StageError, Transition, call_record, failed_run, failing_run_on_rejection, put_raw,
    run_id, run_record, transition, transition_with,
};
use crate::entity::{CallRecord, Manifest, Model, Prompt, Run, RunStatus, Scenario, Stage, Turn};
use crate::id::{ManifestId, RunId};
use crate::keys;
use crate::llm::{ConverseRequest, ConverseResponse, LlmClient};
use crate::repository::{Versioned, create_op};

/// Runs (or resumes) the dialogue of a run.
///
/// Resumes after the last stored turn; per turn calls the tutor, then the student (except after
/// the last turn) and stores the turn write-once. The first stored turn moves the run to
/// `running` and the last to `dialogue_complete`, each in the same transaction, and then the
/// run's judge job is sent. A retryable error leaves the job for redelivery; a permanent one
/// marks the run failed with the reason.
pub async fn run_dialogue(ports: &Ports, run: &RunId) -> Result<(), StageError> {
    failing_run_on_rejection(ports, run, Stage::Dialogue, dialogue(ports, run)).await
}

/// Loads a run with its stored turns. `None` when there is nothing to do.
async fn start(
    ports: &Ports,
    id: &RunId,
) -> Result<Option<(Versioned<Run>, Vec<Turn>)>, StageError> {
    let record = run_record(ports, id).await?;
    let run = record.run;
    match run.value.status {
        RunStatus::Pending | RunStatus::Running => Ok(Some((run, record.turns))),
        RunStatus::Failed => Err(failed_run(&run.value)),
        RunStatus::DialogueComplete => {
            // A crash after completing the dialogue may have lost the judge job.
            send_judge_job(ports, id).await?;
            Ok(None)
        }
        RunStatus::Judged | RunStatus::Curated | RunStatus::Skipped => Ok(None),
    }
}

async fn send_judge_job(ports: &Ports, id: &RunId) -> Result<(), StageError> {
    ports
        .judge_jobs
        .send(Job::Judge { run: *id }.message())
        .await?;
    Ok(())
}

async fn call(
    ports: &Ports,
    model: &Model,
    request: &ConverseRequest,
) -> Result<ConverseResponse, StageError> {
    let client = ports.providers.client(model).ok_or_else(|| {
        StageError::rejected(format!(
            "no client for provider {:?} of model {}",
            model.provider, model.id
        ))
    })?;
    client
        .converse(request)
        .await
        .map_err(|e| StageError::from_call(&e))
}

async fn dialogue(ports: &Ports, id: &RunId) -> Result<(), StageError> {
    // Another worker storing a turn or moving the run first makes this one read again.
    while let Step::Raced = dialogue_step(ports, id).await? {}
    Ok(())
}

/// How a pass over a run's dialogue ended.
enum Step {
    Done,
    Raced,
}

async fn dialogue_step(ports: &Ports, id: &RunId) -> Result<Step, StageError> {
    let Some((mut run, mut turns)) = start(ports, id).await? else {
        return Ok(Step::Done);
    };
    let repo = &ports.repository;
    let manifest = repo
        .get::<Manifest>(&keys::manifest(&run.value.manifest))
        .await?
        .ok_or_else(|| {
            StageError::rejected(format!(
                "manifest {} of run {id} does not exist",
                run.value.manifest
            ))
        })?
        .value;
    let request = &manifest.request;
    if let Some(source) = &request.rejudge_of {
        reuse_dialogue(ports, &run, source, &turns).await?;
        return complete(ports, run, id).await;
    }
    let tutor: Model = repo.require_catalog(&run.value.tutor.model).await?;
    let tutor_prompt: Prompt = repo.require_catalog(&request.tutor_prompt).await?;
    let scenario: Scenario = repo.require_catalog(&run.value.scenario).await?;
    let student = match &request.student {
        Some(config) => {
            let model: Model = repo.require_catalog(&config.model).await?;
            let prompt: Prompt = repo.require_catalog(&config.prompt).await?;
            Some((model, prompt, config.temperature))
        }
        None => None,
    };

    turns.sort_by_key(|t| t.index);
    let next = u32::try_from(turns.len()).unwrap_or(u32::MAX) + 1;
    for index in next..=run.value.turns {
        let mut tutor_req = tutor_request(
            &tutor,
            Sampling {
                temperature: run.value.tutor.temperature,
                max_tokens: request.max_tokens,
            },
            &tutor_prompt,
            &scenario,
            &turns,
        );
        tutor_req.sample = run.value.repetition;
        let tutor_resp = call(ports, &tutor, &tutor_req).await?;
        if tutor_resp.text.trim().is_empty() {
            return Err(StageError::rejected(format!(
                "tutor {} returned no text on turn {index}",
                tutor.id
            )));
        }
        let (student_text, student_call, student_exchange) = if index == run.value.turns {
            (None, None, None)
        } else if let Some((model, prompt, temperature)) = &student {
            let mut req = student_request(
                model,
                Sampling {
                    temperature: *temperature,
                    max_tokens: request.max_tokens,
                },
                prompt,
                &scenario,
                &turns,
                &tutor_resp.text,
            );
            req.sample = run.value.repetition;
            let resp = call(ports, model, &req).await?;
            if resp.text.trim().is_empty() {
                return Err(StageError::rejected(format!(
                    "student {} returned no text on turn {index}",
                    model.id
                )));
            }
            let record = call_record(model, &req, &resp);
            (Some(resp.text.clone()), Some(record), Some((req, resp)))
        } else {
            let reply = scenario
                .student_replies
                .get(index as usize - 1)
                .cloned()
                .ok_or_else(|| {
                    StageError::rejected(format!(
                        "scenario {} has no scripted reply for turn {index}",
                        scenario.id
                    ))
                })?;
            (Some(reply), None, None)
        };
        let turn = Turn {
            run: *id,
            index,
            tutor_text: tutor_resp.text.clone(),
            tutor_call: call_record(&tutor, &tutor_req, &tutor_resp),
            student_text,
            student_call,
            created_at: ports.clock.now(),
        };
        // Write-once: if a racing worker stored this turn first, its version wins. The first
        // and the last turn move the run in the same write.
        let last = index == run.value.turns;
        let stored = if last || run.value.status == RunStatus::Pending {
            let to = if last {
                RunStatus::DialogueComplete
            } else {
                RunStatus::Running
            };
            let also = vec![create_op(&turn)?];
            match transition_with(ports, &run, to, None, also).await? {
                Transition::Moved { run: moved, .. } => run = moved,
                Transition::Raced => {
                    // Keep what was paid for unless the racing worker stored the turn.
                    repo.put_once(turn).await?;
                    return Ok(Step::Raced);
                }
            }
            turn
        } else {
            repo.put_once(turn).await?
        };
        let document = raw::Turn {
            tutor: raw::Exchange {
                request: &tutor_req,
                response: &tutor_resp,
            },
            student: student_exchange
                .as_ref()
                .map(|(request, response)| raw::Exchange { request, response }),
        };
        put_raw(
            ports,
            format!("raw/runs/{id}/turn-{index:03}.json"),
            &document,
        )
        .await?;
        turns.push(stored);
    }
    complete(ports, run, id).await
}

/// Marks the dialogue complete (unless that is done, or a racing worker did it) and sends
/// the run's judge job.
async fn complete(ports: &Ports, mut run: Versioned<Run>, id: &RunId) -> Result<Step, StageError> {
    while matches!(run.value.status, RunStatus::Pending | RunStatus::Running) {
        if let Transition::Moved { .. } =
            transition(ports, &run, RunStatus::DialogueComplete, None).await?
        {
            break;
        }
        run = ports
            .repository
            .get_run(id)
            .await?
            .ok_or_else(|| StageError::rejected(format!("run {id} vanished")))?;
    }
    if run.value.status.is_final() {
        // Read again: a failed run is reported, any other final one needs nothing.
        return Ok(Step::Raced);
    }
    send_judge_job(ports, id).await?;
    Ok(Step::Done)
}

/// A re-judge's dialogue: the turns of the source manifest's run with the same tutor,
/// scenario and repetition, copied write-once with their calls marked as reused (`cached`).
/// No model is called.
async fn reuse_dialogue(
    ports: &Ports,
    run: &Versioned<Run>,
    source: &ManifestId,
    stored: &[Turn],
) -> Result<(), StageError> {
    let id = run.value.id;
    let source_run = run_id(
        source,
        &run.value.tutor.model,
        &run.value.scenario,
        run.value.repetition,
    );
    let record = ports
        .repository
        .run_record(&source_run)
        .await?
        .ok_or_else(|| {
            StageError::rejected(format!(
                "run {source_run} of manifest {source} is not stored, so its dialogue cannot be re-judged"
            ))
        })?;
    let complete = matches!(
        record.run.value.status,
        RunStatus::DialogueComplete | RunStatus::Judged | RunStatus::Curated
    );
    if !complete || record.turns.len() < run.value.turns as usize {
        return Err(StageError::rejected(format!(
            "run {source_run} of manifest {source} did not finish its dialogue (status {}), so it cannot be re-judged",
            record.run.value.status
        )));
    }
    let mut turns = record.turns;
    turns.sort_by_key(|t| t.index);
    let reused = |call: CallRecord| CallRecord {
        cached: true,
        ..call
    };
    for turn in turns.into_iter().take(run.value.turns as usize) {
        let index = turn.index;
        if !stored.iter().any(|t| t.index == index) {
            let copy = Turn {
                run: id,
                tutor_call: reused(turn.tutor_call),
                student_call: turn.student_call.map(reused),
                created_at: ports.clock.now(),
                ..turn
            };
            ports.repository.put_once(copy).await?;
            let document = raw::ReusedTurn {
                reused: raw::Source {
                    manifest: source,
                    run: &source_run,
                    turn: index,
                },
            };
            put_raw(
                ports,
                format!("raw/runs/{id}/turn-{index:03}.json"),
                &document,
            )
            .await?;
        }
    }
    Ok(())
}
