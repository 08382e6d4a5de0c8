//! The example models files under `examples/models/` load as they are.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use socratic_local::models;

#[test]
fn every_example_models_file_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models");
    let mut loaded = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            // Every key variable is taken as set.
            let file = models::load(&path, |_| Some("sk-example".to_owned()))
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(!file.models.is_empty(), "{}", path.display());
            loaded += 1;
        }
    }
    assert_eq!(
        loaded, 6,
        "bedrock, openai, anthropic, ollama, vllm, openrouter"
    );
}

#[test]
fn an_unset_key_variable_is_a_problem_of_the_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models/openai.toml");
    let error = models::load(&path, |_| None).unwrap_err();
    assert_eq!(error.problems.len(), 2, "{error}");
    assert!(error.to_string().contains("OPENAI_API_KEY"), "{error}");
}

#[test]
fn streaming_and_batching_are_read_and_refused_where_the_provider_has_neither() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.toml");
    std::fs::write(
        &path,
        r#"
[[models]]
id = "local"
provider = "openai"
model = "qwen"
base_url = "http://localhost:8080/v1"
prices = { input = 0.0, output = 0.0 }
timeout_secs = 60
stream = true
first_token_timeout_secs = 900

[[models]]
id = "claude"
provider = "bedrock"
model = "anthropic.claude-3-5-haiku-20241022-v1:0"
prices = { input = 0.8, output = 4.0 }
stream = true
batch = true
"#,
    )
    .unwrap();
    let error = models::load(&path, |_| None).unwrap_err();
    assert_eq!(error.problems.len(), 2, "{error}");
    assert!(
        error.problems[0].contains("models[1] (claude): stream = true"),
        "{error}"
    );
    assert!(
        error.problems[1].contains("models[1] (claude): batch = true"),
        "{error}"
    );

    let text = std::fs::read_to_string(&path).unwrap();
    let local_only = &text[..text.find("[[models]]\nid = \"claude\"").unwrap()];
    std::fs::write(&path, local_only).unwrap();
    let file = models::load(&path, |_| None).unwrap();
    let local = &file.models[0];
    assert!(local.stream && !local.batch);
    // One attempt may wait 900 s for its first byte and then take 60 s.
    assert_eq!(local.attempt_timeout(), std::time::Duration::from_secs(960));
}
