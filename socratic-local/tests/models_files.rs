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
    assert_eq!(error.problems.len(), 3, "{error}");
    assert!(
        error.problems[0].contains("models[1] (claude): stream = true"),
        "{error}"
    );
    // Bedrock batches Claude, given where its records go and the role that reads them.
    assert!(
        error.problems[1]
            .contains("models[1] (claude): Bedrock batch inference needs batch_role_arn"),
        "{error}"
    );
    assert!(error.problems[2].contains("needs batch_s3_uri"), "{error}");

    let text = std::fs::read_to_string(&path).unwrap();
    let local_only = &text[..text.find("[[models]]\nid = \"claude\"").unwrap()];
    std::fs::write(&path, local_only).unwrap();
    let file = models::load(&path, |_| None).unwrap();
    let local = &file.models[0];
    assert!(local.stream && !local.batch);
    // One attempt may wait 900 s for its first byte and then take 60 s.
    assert_eq!(local.attempt_timeout(), std::time::Duration::from_secs(960));
}

#[test]
fn bedrock_batch_settings_are_checked_and_make_claude_batchable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("models.toml");
    let write = |text: &str| std::fs::write(&path, text).unwrap();
    write(
        r#"
[[models]]
id = "nova"
provider = "bedrock"
model = "us.amazon.nova-pro-v1:0"
prices = { input = 0.8, output = 3.2, batch_input = 0.4, batch_output = 1.6 }
batch = true
batch_role_arn = "arn:aws:iam::123456789012:role/socratic-batch"
batch_s3_uri = "bucket/prefix"

[[models]]
id = "local"
provider = "openai"
model = "qwen"
base_url = "http://localhost:8080/v1"
prices = { input = 0.0, output = 0.0 }
batch_role_arn = "arn:aws:iam::123456789012:role/socratic-batch"

[[models]]
id = "haiku"
provider = "bedrock"
model = "anthropic.claude-3-haiku-20240307-v1:0"
prices = { input = 0.25, output = 1.25 }
batch_s3_uri = "s3://bucket/socratic"
batch_min_records = 0
"#,
    );
    let error = models::load(&path, |_| None).unwrap_err();
    let problems = error.problems.join("\n");
    for expected in [
        "models[0] (nova): batch_s3_uri \"bucket/prefix\" is not an s3://bucket/prefix URI",
        "models[0] (nova): Bedrock batch inference takes Claude models",
        "models[1] (local): batch_role_arn is for provider \"bedrock\"",
        "models[2] (haiku): Bedrock batch inference needs batch_role_arn",
        "models[2] (haiku): batch_min_records must be at least 1",
    ] {
        assert!(
            problems.contains(expected),
            "{expected} not in:\n{problems}"
        );
    }
    assert_eq!(error.problems.len(), 5, "{problems}");

    write(
        r#"
[[models]]
id = "haiku"
provider = "bedrock"
model = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
prices = { input = 0.8, output = 4.0, batch_input = 0.4, batch_output = 2.0 }
batch_role_arn = "arn:aws:iam::123456789012:role/socratic-batch"
batch_s3_uri = "s3://bucket/socratic"

[[models]]
id = "nova"
provider = "bedrock"
model = "us.amazon.nova-pro-v1:0"
prices = { input = 0.8, output = 3.2 }
"#,
    );
    let file = models::load(&path, |_| None).unwrap();
    assert!(file.models[0].can_batch());
    assert!(!file.models[1].can_batch(), "no batch settings, not Claude");
}
