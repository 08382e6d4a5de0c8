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
    assert_eq!(loaded, 5, "bedrock, openai, ollama, vllm, openrouter");
}

#[test]
fn an_unset_key_variable_is_a_problem_of_the_file() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models/openai.toml");
    let error = models::load(&path, |_| None).unwrap_err();
    assert_eq!(error.problems.len(), 2, "{error}");
    assert!(error.to_string().contains("OPENAI_API_KEY"), "{error}");
}
