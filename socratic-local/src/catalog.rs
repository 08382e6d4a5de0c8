//! Your own benchmark from files (`--catalog DIR`): rubrics, prompts and scenarios, checked as
//! a whole before anything runs, and `socratic init`'s starter.
//!
//! ```text
//! DIR/
//!   manifest.json            the manifest request (used when --manifest is not given)
//!   models.toml              the models file (used when --models is not given)
//!   rubrics/*.json           one rubric each
//!   prompts/<id>.md          a prompt: a front matter with `kind` and `title`, then the body
//!   prompts/*.json           or a prompt as JSON: id, kind, title, body
//!   scenarios/*.json         a scenario, or a list of them
//! ```
//!
//! Entities are stored content-addressed, like the built-in ones: a manifest records the
//! SHA-256 of every entity it used, so results always name the exact version that produced
//! them, and the response cache keys on the full request, so an edited scenario is never
//! answered from a stale cache. Give an edited entity a new id to keep both versions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::Value;
use socratic_core::defaults::Defaults;
use socratic_core::entity::{
    EntityError, Prompt, PromptKind, Rubric, Scenario, Validate, from_json,
};
use socratic_core::id::PromptId;
use socratic_core::repository::{RepoError, Repository};

/// Every problem of a catalog directory, each naming its file and field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", crate::problem_list(&dir.display().to_string(), problems))]
pub struct CatalogError {
    /// The directory.
    pub dir: PathBuf,
    /// What is wrong, one line each: `file: field: message`.
    pub problems: Vec<String>,
}

/// The entities of a catalog directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    /// Rubrics.
    pub rubrics: Vec<Rubric>,
    /// Prompts.
    pub prompts: Vec<Prompt>,
    /// Scenarios.
    pub scenarios: Vec<Scenario>,
}

impl Catalog {
    /// Stores every entity; identical content already stored is left alone.
    pub async fn install(&self, repository: &Repository) -> Result<(), RepoError> {
        for rubric in &self.rubrics {
            repository.put_catalog(rubric).await?;
        }
        for prompt in &self.prompts {
            repository.put_catalog(prompt).await?;
        }
        for scenario in &self.scenarios {
            repository.put_catalog(scenario).await?;
        }
        Ok(())
    }
}

/// The files of `dir/sub` ending in `extension`, sorted; none when the folder is absent.
fn files(dir: &Path, sub: &str, extension: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    paths.sort();
    paths
}

/// A path as shown in problems: relative to the catalog directory.
fn shown(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir).unwrap_or(path).display().to_string()
}

/// The problems of an entity that did not load, each prefixed with `file`.
pub fn describe(file: &str, error: EntityError) -> Vec<String> {
    let mut problems = Vec::new();
    entity_problems(file, error, &mut problems);
    problems
}

fn entity_problems(file: &str, error: EntityError, problems: &mut Vec<String>) {
    match error {
        EntityError::Json { source, .. } => problems.push(format!("{file}: {source}")),
        EntityError::Invalid {
            problems: found, ..
        } => {
            for p in found.0 {
                problems.push(format!("{file}: {}: {}", p.field, p.message));
            }
        }
        other => problems.push(format!("{file}: {other}")),
    }
}

/// One entity, or a list of them, from a JSON file.
fn read_entities<T: DeserializeOwned + Validate>(
    kind: &'static str,
    dir: &Path,
    path: &Path,
    problems: &mut Vec<String>,
) -> Vec<T> {
    let file = shown(dir, path);
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            problems.push(format!("{file}: cannot read it: {e}"));
            return Vec::new();
        }
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| match from_json::<T>(kind, &item.to_string()) {
                Ok(entity) => Some(entity),
                Err(e) => {
                    entity_problems(&format!("{file} [{i}]"), e, problems);
                    None
                }
            })
            .collect(),
        Ok(_) => match from_json::<T>(kind, &text) {
            Ok(entity) => vec![entity],
            Err(e) => {
                entity_problems(&file, e, problems);
                Vec::new()
            }
        },
        Err(e) => {
            problems.push(format!("{file}: not valid JSON: {e}"));
            Vec::new()
        }
    }
}

/// A prompt in Markdown: its id is the file name; a front matter between `---` lines gives
/// `kind` (`socratic_tutor`, `student` or `judge`) and `title`; the rest is the body.
fn read_markdown_prompt(dir: &Path, path: &Path, problems: &mut Vec<String>) -> Option<Prompt> {
    let file = shown(dir, path);
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            problems.push(format!("{file}: cannot read it: {e}"));
            return None;
        }
    };
    let Some(rest) = text.strip_prefix("---\n") else {
        problems.push(format!(
            "{file}: a Markdown prompt starts with a front matter: ---, kind: …, title: …, ---"
        ));
        return None;
    };
    let Some((front, body)) = rest.split_once("\n---\n") else {
        problems.push(format!("{file}: the front matter has no closing ---"));
        return None;
    };
    let mut fields = BTreeMap::new();
    for line in front.lines().filter(|l| !l.trim().is_empty()) {
        match line.split_once(':') {
            Some((key, value)) => {
                fields.insert(key.trim().to_owned(), value.trim().to_owned());
            }
            None => problems.push(format!(
                "{file}: front matter line {line:?} is not `key: value`"
            )),
        }
    }
    let id = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let mut found = Vec::new();
    let id = PromptId::new(id)
        .map_err(|e| found.push(format!("{file}: id (the file name): {e}")))
        .ok();
    let kind = match fields.get("kind").map(String::as_str) {
        None => {
            found.push(format!(
                "{file}: kind: missing (socratic_tutor, student or judge)"
            ));
            None
        }
        Some(kind) => serde_json::from_value::<PromptKind>(Value::from(kind))
            .map_err(|_| {
                found.push(format!(
                    "{file}: kind: {kind:?} is not socratic_tutor, student or judge"
                ));
            })
            .ok(),
    };
    for key in fields.keys() {
        if !matches!(key.as_str(), "kind" | "title") {
            found.push(format!("{file}: {key}: unknown front matter field"));
        }
    }
    let title = fields.get("title").cloned().unwrap_or_default();
    let empty = found.is_empty();
    problems.extend(found);
    let prompt = Prompt {
        id: id?,
        kind: kind?,
        title,
        body: body.trim().to_owned(),
    };
    if let Err(invalid) = prompt.validate() {
        for p in invalid.0 {
            problems.push(format!("{file}: {}: {}", p.field, p.message));
        }
        return None;
    }
    empty.then_some(prompt)
}

/// Reads and checks a catalog directory. Every problem of every file is reported in one
/// error; ids used twice, and built-in ids given other content, are problems too.
pub fn load(dir: &Path) -> Result<Catalog, CatalogError> {
    let mut problems = Vec::new();
    if !dir.is_dir() {
        return Err(CatalogError {
            dir: dir.to_owned(),
            problems: vec!["is not a directory".to_owned()],
        });
    }
    let mut catalog = Catalog::default();
    for path in files(dir, "rubrics", "json") {
        catalog
            .rubrics
            .extend(read_entities::<Rubric>("rubric", dir, &path, &mut problems));
    }
    for path in files(dir, "prompts", "json") {
        catalog
            .prompts
            .extend(read_entities::<Prompt>("prompt", dir, &path, &mut problems));
    }
    for path in files(dir, "prompts", "md") {
        catalog
            .prompts
            .extend(read_markdown_prompt(dir, &path, &mut problems));
    }
    for path in files(dir, "scenarios", "json") {
        catalog.scenarios.extend(read_entities::<Scenario>(
            "scenario",
            dir,
            &path,
            &mut problems,
        ));
    }
    check_ids(&catalog, &mut problems);
    if problems.is_empty() {
        Ok(catalog)
    } else {
        Err(CatalogError {
            dir: dir.to_owned(),
            problems,
        })
    }
}

/// Ids must be unique, and a built-in id may only carry the built-in content.
fn check_ids(catalog: &Catalog, problems: &mut Vec<String>) {
    let defaults = Defaults::load().ok();
    let mut seen = BTreeMap::new();
    let mut check = |kind: &str, id: String, builtin: Option<bool>| {
        if seen.insert(format!("{kind} {id}"), ()).is_some() {
            problems.push(format!("{kind} {id}: the id is used twice"));
        }
        if builtin == Some(false) {
            problems.push(format!(
                "{kind} {id}: a built-in {kind} has this id with other content; give yours a new id"
            ));
        }
    };
    for rubric in &catalog.rubrics {
        let builtin = defaults
            .as_ref()
            .filter(|d| d.rubric.id == rubric.id)
            .map(|d| &d.rubric == rubric);
        check("rubric", rubric.id.to_string(), builtin);
    }
    for prompt in &catalog.prompts {
        let builtin = defaults.as_ref().and_then(|d| {
            [&d.tutor_prompt, &d.student_prompt, &d.judge_prompt]
                .into_iter()
                .find(|p| p.id == prompt.id)
                .map(|p| p == prompt)
        });
        check("prompt", prompt.id.to_string(), builtin);
    }
    for scenario in &catalog.scenarios {
        let builtin = defaults.as_ref().and_then(|d| {
            d.scenarios
                .iter()
                .find(|s| s.id == scenario.id)
                .map(|s| s == scenario)
        });
        check("scenario", scenario.id.to_string(), builtin);
    }
}

/// The starter benchmark `socratic init` writes: copies of the built-in rubric and prompts
/// under new ids, one scenario per vector, a manifest over them and the simulated models, a
/// models file to add real models to, and a README. Returns the files written; refuses a
/// directory that already has files, so nothing is overwritten.
pub fn init(dir: &Path) -> Result<Vec<PathBuf>, InitError> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| InitError::Io {
                path: dir.to_owned(),
                message: e.to_string(),
            })?
            .next()
            .is_some()
    {
        return Err(InitError::NotEmpty(dir.to_owned()));
    }
    let defaults = Defaults::load().map_err(|e| InitError::Io {
        path: dir.to_owned(),
        message: e.to_string(),
    })?;
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    let json = |value: &Value| serde_json::to_string_pretty(value).unwrap_or_default() + "\n";

    let mut rubric = serde_json::to_value(&defaults.rubric).unwrap_or_default();
    rubric["id"] = Value::from(STARTER_RUBRIC);
    files.push((
        PathBuf::from(format!("rubrics/{STARTER_RUBRIC}.json")),
        json(&rubric),
    ));
    for (id, prompt) in [
        (STARTER_TUTOR_PROMPT, &defaults.tutor_prompt),
        (STARTER_STUDENT_PROMPT, &defaults.student_prompt),
        (STARTER_JUDGE_PROMPT, &defaults.judge_prompt),
    ] {
        let kind = serde_json::to_value(prompt.kind).unwrap_or_default();
        files.push((
            PathBuf::from(format!("prompts/{id}.md")),
            format!(
                "---\nkind: {}\ntitle: {}\n---\n{}\n",
                kind.as_str().unwrap_or_default(),
                prompt.title,
                prompt.body
            ),
        ));
    }
    let mut scenario_ids = Vec::new();
    for vector in socratic_core::entity::Vector::ALL {
        if let Some(scenario) = defaults.scenarios.iter().find(|s| s.vector == vector) {
            let mut value = serde_json::to_value(scenario).unwrap_or_default();
            let id = format!("MY-{}", scenario.id);
            value["id"] = Value::from(id.clone());
            files.push((PathBuf::from(format!("scenarios/{id}.json")), json(&value)));
            scenario_ids.push(id);
        }
    }
    let manifest = serde_json::json!({
        "label": "My first Socratic benchmark",
        "tutor_prompt": STARTER_TUTOR_PROMPT,
        "judge_prompt": STARTER_JUDGE_PROMPT,
        "rubric": STARTER_RUBRIC,
        "scenarios": scenario_ids,
        "tutors": [
            {"model": "sim-socratic", "temperature": 0.7},
            {"model": "sim-leaky", "temperature": 0.7}
        ],
        "student": {"model": "sim-student", "temperature": 0.7, "prompt": STARTER_STUDENT_PROMPT},
        "judges": [{"model": "sim-judge", "temperature": 0.0}],
        "turns": 3,
        "repetitions": 1,
        "max_tokens": 512
    });
    files.push((PathBuf::from("manifest.json"), json(&manifest)));
    files.push((PathBuf::from("models.toml"), STARTER_MODELS.to_owned()));
    files.push((PathBuf::from("README.md"), STARTER_README.to_owned()));

    let mut written = Vec::new();
    for (relative, content) in files {
        let path = dir.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| InitError::Io {
                path: parent.to_owned(),
                message: e.to_string(),
            })?;
        }
        std::fs::write(&path, content).map_err(|e| InitError::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
        written.push(path);
    }
    Ok(written)
}

/// Why `init` wrote nothing, or not everything.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// The directory has files already.
    #[error("{} is not empty; init writes only into a new or empty directory", .0.display())]
    NotEmpty(PathBuf),
    /// A file could not be written.
    #[error("{}: {message}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// The starter's rubric id.
pub const STARTER_RUBRIC: &str = "my-rubric-v1";
/// The starter's tutor prompt id.
pub const STARTER_TUTOR_PROMPT: &str = "my-tutor-v1";
/// The starter's student prompt id.
pub const STARTER_STUDENT_PROMPT: &str = "my-student-v1";
/// The starter's judge prompt id.
pub const STARTER_JUDGE_PROMPT: &str = "my-judge-v1";

const STARTER_MODELS: &str = r#"# The models this benchmark may call, besides the built-in simulated ones (sim-socratic,
# sim-leaky, sim-lecturer, sim-student, sim-judge, sim-judge-strict). Uncomment one, set its
# key variable, and name its id in manifest.json or with --tutor / --judge. See docs/models.md.

# [[models]]
# id = "gpt-4o-mini"
# provider = "openai"
# model = "gpt-4o-mini"
# base_url = "https://api.openai.com/v1"
# api_key_env = "OPENAI_API_KEY"
# prices = { input = 0.15, output = 0.60, cache_read = 0.075 }

# [[models]]
# id = "llama3.2-local"
# provider = "openai"
# model = "llama3.2"
# base_url = "http://localhost:11434/v1"
# structured = "json_schema"
# prices = { input = 0.0, output = 0.0 }
"#;

const STARTER_README: &str = r#"# My Socratic benchmark

- `rubrics/my-rubric-v1.json`: the dimensions judges score, with anchored levels.
- `prompts/*.md`: the tutor, student and judge prompts (front matter: kind and title).
- `scenarios/*.json`: one scenario per vector: persona, opening statement, key conflict, goals,
  scripted replies.
- `manifest.json`: which prompts, rubric, scenarios and models a run uses.
- `models.toml`: real models to add (OpenAI, Bedrock, Ollama, vLLM, …).

Check it, then run it (offline, on the simulated models, until you add real ones):

    socratic check .
    socratic run --catalog .

Edit anything and check again: every problem is listed with its file and field. Give an edited
rubric, prompt or scenario a new id (and name it in manifest.json) to keep both versions.
"#;
