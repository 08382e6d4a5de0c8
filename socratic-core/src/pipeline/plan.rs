//! Stage 1: plan a manifest into runs and dialogue jobs.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use super::{Job, Ports, StageError};
use crate::blob::{BlobError, BlobKey, BlobPutMode, BlobStoreExt};
use crate::canonical::{ContentHash, content_hash};
use crate::entity::{
    CatalogEntity, Manifest, ManifestRequest, Model, Problems, Prompt, PromptKind, Rubric, Run,
    RunStatus, Scenario, Validate,
};
use crate::id::{ManifestId, ModelId, RunId, ScenarioId};
use crate::queue::QueueProducerExt;
use crate::repository::RunFilter;

/// The result of planning.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The manifest: new, or the one already stored with the same content.
    pub manifest: Manifest,
    /// Every run of the manifest, in planning order.
    pub runs: Vec<RunId>,
    /// Whether this call stored the manifest (false when the same content was posted before).
    pub created: bool,
    /// Dialogue jobs sent by this call.
    pub jobs_sent: usize,
}

/// Why a manifest could not be planned.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The request is invalid; every problem is listed.
    #[error("invalid manifest: {0}")]
    Invalid(Problems),
    /// A backend failed; planning again converges.
    #[error(transparent)]
    Backend(#[from] StageError),
}

/// Validates a manifest request against the catalog, stores the manifest and its runs, and
/// sends one dialogue job per pending run.
///
/// Idempotent: the manifest's content hash finds an earlier post of the same request, whose
/// runs have deterministic ids, so a repeat (or a retry after a crash at any point) creates only
/// what is missing and sends jobs only for runs that have not started.
pub async fn plan(ports: &Ports, request: &ManifestRequest) -> Result<Plan, PlanError> {
    let catalog = check_references(ports, request).await?;
    let hash = content_hash(request)
        .map_err(|e| StageError::rejected(format!("cannot hash manifest: {e}")))?;

    let (manifest, created) = match ports
        .repository
        .manifest_by_hash(&hash)
        .await
        .map_err(StageError::from)?
    {
        Some(existing) => (existing, false),
        None => {
            let now = ports.clock.now();
            let fresh = Manifest {
                id: ManifestId::from_ulid(ports.ids.next_ulid(now)),
                hash,
                request: request.clone(),
                catalog_hashes: catalog.hashes,
                run_count: request.run_count(),
                created_at: now,
            };
            let stored = ports
                .repository
                .create_manifest(&fresh)
                .await
                .map_err(StageError::from)?;
            let created = stored.id == fresh.id;
            (stored, created)
        }
    };

    let blob = BlobKey::new(format!("manifests/{}.json", manifest.id)).map_err(StageError::from)?;
    match ports
        .blobs
        .put_json(&blob, &manifest, BlobPutMode::Create)
        .await
    {
        Ok(_) | Err(BlobError::AlreadyExists { .. }) => {}
        Err(e) => return Err(StageError::from(e).into()),
    }

    let planned = planned_runs(&manifest, &catalog.scenarios);
    let existing: HashMap<RunId, RunStatus> = if created {
        HashMap::new()
    } else {
        let mut statuses = HashMap::new();
        let mut cursor = None;
        loop {
            let page = ports
                .repository
                .list_runs(&RunFilter::Manifest(manifest.id), 1000, cursor)
                .await
                .map_err(StageError::from)?;
            statuses.extend(page.items.into_iter().map(|r| (r.id, r.status)));
            cursor = page.cursor;
            if cursor.is_none() {
                break statuses;
            }
        }
    };
    let missing: Vec<&Run> = planned
        .iter()
        .filter(|r| !existing.contains_key(&r.id))
        .collect();
    ports
        .repository
        .create_runs(&missing)
        .await
        .map_err(StageError::from)?;

    let pending: Vec<_> = planned
        .iter()
        .filter(|r| existing.get(&r.id).is_none_or(|s| *s == RunStatus::Pending))
        .map(|r| Job::Dialogue { run: r.id }.message())
        .collect();
    let jobs_sent = pending.len();
    if !pending.is_empty() {
        ports
            .dialogue_jobs
            .send_all(pending)
            .await
            .map_err(StageError::from)?;
    }
    Ok(Plan {
        runs: planned.iter().map(|r| r.id).collect(),
        manifest,
        created,
        jobs_sent,
    })
}

/// The catalog entities a valid request refers to.
struct Catalog {
    scenarios: BTreeMap<ScenarioId, Scenario>,
    hashes: BTreeMap<String, ContentHash>,
}

async fn load<E: CatalogEntity + Clone>(
    ports: &Ports,
    id: &E::Id,
    field: &str,
    problems: &mut Problems,
    hashes: &mut BTreeMap<String, ContentHash>,
) -> Result<Option<E>, StageError> {
    let key = E::key_of(id);
    match ports.repository.get_catalog::<E>(id).await? {
        Some(entity) => {
            if let Some(hash) = ports.repository.catalog_hash::<E>(id).await? {
                hashes.insert(key.pk, hash);
            }
            Ok(Some(entity))
        }
        None => {
            problems.push(field, format!("unknown {} {}", E::KIND, id.to_string()));
            Ok(None)
        }
    }
}

async fn check_prompt(
    ports: &Ports,
    id: &crate::id::PromptId,
    kind: PromptKind,
    field: &str,
    problems: &mut Problems,
    hashes: &mut BTreeMap<String, ContentHash>,
) -> Result<(), StageError> {
    if let Some(prompt) = load::<Prompt>(ports, id, field, problems, hashes).await?
        && prompt.kind != kind
    {
        problems.push(
            field,
            format!("prompt {id} is a {:?} prompt, not {kind:?}", prompt.kind),
        );
    }
    Ok(())
}

async fn check_model(
    ports: &Ports,
    id: &ModelId,
    field: &str,
    called: bool,
    problems: &mut Problems,
    hashes: &mut BTreeMap<String, ContentHash>,
) -> Result<(), StageError> {
    if let Some(model) = load::<Model>(ports, id, field, problems, hashes).await? {
        if !model.active {
            problems.push(field, format!("model {id} is not active"));
        }
        if called && ports.providers.client(&model).is_none() {
            problems.push(
                field,
                format!(
                    "no client is configured for provider {:?} of model {id}",
                    model.provider
                ),
            );
        }
    }
    Ok(())
}

/// Every problem with the request, the catalog references included, in one error.
/// A re-judge must name a stored manifest and keep everything that shaped its dialogues.
async fn check_rejudge(
    ports: &Ports,
    request: &ManifestRequest,
    source: &ManifestId,
    problems: &mut Problems,
) -> Result<(), StageError> {
    let Some(stored) = ports
        .repository
        .get::<Manifest>(&crate::keys::manifest(source))
        .await?
    else {
        problems.push("rejudge_of", format!("unknown manifest {source}"));
        return Ok(());
    };
    let original = &stored.value.request;
    if original.rejudge_of.is_some() {
        problems.push(
            "rejudge_of",
            format!(
                "manifest {source} is itself a re-judge; name the manifest that ran the dialogues"
            ),
        );
    }
    let same = [
        ("tutors", request.tutors == original.tutors),
        ("scenarios", request.scenarios == original.scenarios),
        ("student", request.student == original.student),
        ("turns", request.turns == original.turns),
        ("repetitions", request.repetitions == original.repetitions),
        (
            "tutor_prompt",
            request.tutor_prompt == original.tutor_prompt,
        ),
    ];
    for (field, equal) in same {
        if !equal {
            problems.push(
                field,
                format!("must be the same as in manifest {source}, whose dialogues are re-judged"),
            );
        }
    }
    Ok(())
}

async fn check_references(ports: &Ports, request: &ManifestRequest) -> Result<Catalog, PlanError> {
    let mut problems = request.validate().err().unwrap_or_default();
    let mut hashes = BTreeMap::new();
    check_prompt(
        ports,
        &request.tutor_prompt,
        PromptKind::SocraticTutor,
        "tutor_prompt",
        &mut problems,
        &mut hashes,
    )
    .await?;
    check_prompt(
        ports,
        &request.judge_prompt,
        PromptKind::Judge,
        "judge_prompt",
        &mut problems,
        &mut hashes,
    )
    .await?;
    load::<Rubric>(ports, &request.rubric, "rubric", &mut problems, &mut hashes).await?;
    // A re-judge calls only its judges.
    let dialogues = request.rejudge_of.is_none();
    if let Some(source) = &request.rejudge_of {
        check_rejudge(ports, request, source, &mut problems).await?;
    }
    for (i, tutor) in request.tutors.iter().enumerate() {
        check_model(
            ports,
            &tutor.model,
            &format!("tutors[{i}].model"),
            dialogues,
            &mut problems,
            &mut hashes,
        )
        .await?;
    }
    for (i, judge) in request.judges.iter().enumerate() {
        check_model(
            ports,
            &judge.model,
            &format!("judges[{i}].model"),
            true,
            &mut problems,
            &mut hashes,
        )
        .await?;
    }
    if let Some(student) = &request.student {
        check_model(
            ports,
            &student.model,
            "student.model",
            dialogues,
            &mut problems,
            &mut hashes,
        )
        .await?;
        check_prompt(
            ports,
            &student.prompt,
            PromptKind::Student,
            "student.prompt",
            &mut problems,
            &mut hashes,
        )
        .await?;
        if request.tutors.iter().any(|t| t.model == student.model) {
            problems.push(
                "student.model",
                format!(
                    "{} is also a tutor; a model answering its own questions flatters itself",
                    student.model
                ),
            );
        }
    }
    // One batch read brings every scenario into the repository's memory for the checks below.
    ports
        .repository
        .get_catalog_many::<Scenario>(&request.scenarios)
        .await
        .map_err(StageError::from)?;
    let mut scenarios = BTreeMap::new();
    for (i, id) in request.scenarios.iter().enumerate() {
        let field = format!("scenarios[{i}]");
        if let Some(scenario) =
            load::<Scenario>(ports, id, &field, &mut problems, &mut hashes).await?
        {
            let needed = request.turns.saturating_sub(1) as usize;
            if request.student.is_none() && scenario.student_replies.len() < needed {
                problems.push(
                    field,
                    format!(
                        "scenario {id} scripts {} student replies but {} turns need {needed}; add replies or name a student model",
                        scenario.student_replies.len(),
                        request.turns
                    ),
                );
            }
            scenarios.insert(id.clone(), scenario);
        }
    }
    let limit = ports.config.max_runs_per_manifest;
    if request.run_count() > limit {
        problems.push(
            "repetitions",
            format!(
                "plans {} runs, more than the limit of {limit}",
                request.run_count()
            ),
        );
    }
    problems.into_result().map_err(PlanError::Invalid)?;
    Ok(Catalog { scenarios, hashes })
}

/// A run id derived from the manifest and the run's coordinates, so re-planning finds the same
/// runs instead of creating new ones.
pub fn run_id(
    manifest: &ManifestId,
    tutor: &ModelId,
    scenario: &ScenarioId,
    repetition: u32,
) -> RunId {
    let digest = Sha256::digest(format!("{manifest}/{tutor}/{scenario}/{repetition}").as_bytes());
    let mut head = [0u8; 16];
    head.copy_from_slice(&digest[..16]);
    let random = u128::from_be_bytes(head) >> 48;
    RunId::from_ulid(ulid::Ulid::from_parts(
        manifest.ulid().timestamp_ms(),
        random,
    ))
}

/// The manifest's runs: repetition-major, then scenario, then tutor, so every model advances
/// at the same pace.
fn planned_runs(manifest: &Manifest, scenarios: &BTreeMap<ScenarioId, Scenario>) -> Vec<Run> {
    let request = &manifest.request;
    let mut runs = Vec::new();
    for repetition in 1..=request.repetitions {
        for scenario_id in &request.scenarios {
            let Some(scenario) = scenarios.get(scenario_id) else {
                continue;
            };
            for tutor in &request.tutors {
                runs.push(Run {
                    id: run_id(&manifest.id, &tutor.model, scenario_id, repetition),
                    manifest: manifest.id,
                    tutor: tutor.clone(),
                    scenario: scenario_id.clone(),
                    vector: scenario.vector,
                    repetition,
                    turns: request.turns,
                    judges: u32::try_from(request.judges.len()).unwrap_or(u32::MAX),
                    status: RunStatus::Pending,
                    failure: None,
                    created_at: manifest.created_at,
                    updated_at: manifest.created_at,
                });
            }
        }
    }
    runs
}
