//! The manifest body of the deployment guide the project grew from (`prompt_id`, `seed_ids`,
//! `model_configs`, ids written with their key prefixes), mapped onto a manifest request.

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The guide's body, plus what it lacked: judge models (the guide had no judge stage).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedManifest {
    prompt_id: String,
    judge_prompt_id: String,
    rubric_id: String,
    seed_ids: Vec<String>,
    model_configs: Vec<SeedModel>,
    #[serde(default)]
    judge_model_configs: Vec<SeedModel>,
    #[serde(default)]
    turns: Option<u32>,
    #[serde(default)]
    repetitions: Option<u32>,
    #[serde(default)]
    label: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedModel {
    model_id: String,
    #[serde(default)]
    temperature: Option<f64>,
}

/// Whether a JSON body is in the guide's shape rather than a manifest request's.
pub(super) fn is_seed_body(body: &Value) -> bool {
    ["prompt_id", "seed_ids", "model_configs"]
        .iter()
        .any(|field| body.get(field).is_some())
}

/// `PROMPT#x` → `x`: the guide wrote ids with their key prefix.
fn bare(id: &str, prefix: &str) -> Value {
    Value::from(id.strip_prefix(prefix).unwrap_or(id))
}

fn models(configs: &[SeedModel], temperature: f64) -> Value {
    configs
        .iter()
        .map(|c| json!({"model": bare(&c.model_id, "MODEL#"), "temperature": c.temperature.unwrap_or(temperature)}))
        .collect()
}

/// The manifest request the guide's body means, as JSON for the usual parsing and checks.
/// Without `judge_model_configs` it has no judge, which the planner reports like any other
/// problem.
pub(super) fn to_request(body: Value) -> Result<Value, serde_json::Error> {
    let seed: SeedManifest = serde_json::from_value(body)?;
    let mut request = Map::new();
    request.insert("tutor_prompt".into(), bare(&seed.prompt_id, "PROMPT#"));
    request.insert(
        "judge_prompt".into(),
        bare(&seed.judge_prompt_id, "PROMPT#"),
    );
    request.insert("rubric".into(), bare(&seed.rubric_id, "RUBRIC#"));
    request.insert(
        "scenarios".into(),
        seed.seed_ids.iter().map(|s| bare(s, "SEED#")).collect(),
    );
    request.insert("tutors".into(), models(&seed.model_configs, 0.7));
    request.insert("judges".into(), models(&seed.judge_model_configs, 0.0));
    if let Some(turns) = seed.turns {
        request.insert("turns".into(), turns.into());
    }
    if let Some(repetitions) = seed.repetitions {
        request.insert("repetitions".into(), repetitions.into());
    }
    if let Some(label) = seed.label {
        request.insert("label".into(), label.into());
    }
    Ok(Value::Object(request))
}
