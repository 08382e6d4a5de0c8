//! Bad input gets a typed error naming what is wrong, never a panic.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use socratic_core::blob::{BlobError, BlobKey};
use socratic_core::defaults::Defaults;
use socratic_core::entity::{
    EntityError, Judgment, Manifest, ManifestRequest, Model, Prompt, Rubric, Run, Scenario, Turn,
    Validate, Verdict, from_json,
};

fn rubric_json() -> Value {
    serde_json::to_value(Defaults::load().unwrap().rubric).unwrap()
}

fn invalid_fields(err: EntityError) -> Vec<String> {
    match err {
        EntityError::Invalid { problems, .. } => problems.0.into_iter().map(|p| p.field).collect(),
        other => panic!("expected Invalid, got {other}"),
    }
}

#[test]
fn unknown_and_missing_fields_are_named() {
    let mut rubric = rubric_json();
    rubric["colour"] = json!("blue");
    let err = from_json::<Rubric>("rubric", &rubric.to_string()).unwrap_err();
    assert!(matches!(
        err,
        EntityError::Json {
            entity: "rubric",
            ..
        }
    ));
    assert!(err.to_string().contains("unknown field `colour`"), "{err}");

    let mut rubric = rubric_json();
    rubric.as_object_mut().unwrap().remove("pass_threshold");
    let err = from_json::<Rubric>("rubric", &rubric.to_string()).unwrap_err();
    assert!(
        err.to_string().contains("missing field `pass_threshold`"),
        "{err}"
    );

    let mut dims = rubric_json();
    dims["dimensions"][0]["extra"] = json!(1);
    let err = from_json::<Rubric>("rubric", &dims.to_string()).unwrap_err();
    assert!(err.to_string().contains("unknown field `extra`"), "{err}");
}

#[test]
fn every_entity_rejects_unknown_fields() {
    let defaults = Defaults::load().unwrap();
    fn check<T: serde::Serialize + serde::de::DeserializeOwned + Validate + std::fmt::Debug>(
        name: &'static str,
        value: &T,
    ) {
        let mut json = serde_json::to_value(value).unwrap();
        json["surprise"] = json!(true);
        let err = from_json::<T>(name, &json.to_string()).unwrap_err();
        assert!(err.to_string().contains("surprise"), "{name}: {err}");
    }
    check::<Prompt>("prompt", &defaults.tutor_prompt);
    check::<Scenario>("scenario", &defaults.scenarios[0]);
    check::<Rubric>("rubric", &defaults.rubric);
    let model: Model = serde_json::from_value(json!({
        "id": "m", "provider": "simulated", "provider_model_id": "m", "name": "M",
        "prices": {"input": 1.0, "output": 2.0}
    }))
    .unwrap();
    check::<Model>("model", &model);
}

#[test]
fn a_rubric_without_dimensions_is_invalid() {
    let mut rubric = rubric_json();
    rubric["dimensions"] = json!([]);
    let err = from_json::<Rubric>("rubric", &rubric.to_string()).unwrap_err();
    assert_eq!(invalid_fields(err), ["dimensions"]);
}

#[test]
fn weights_must_be_positive_and_anchors_on_the_scale() {
    let mut rubric = rubric_json();
    rubric["dimensions"][1]["weight"] = json!(0.0);
    rubric["dimensions"][2]["weight"] = json!(-1.5);
    rubric["dimensions"][3]["anchors"][0]["score"] = json!(9);
    rubric["pass_threshold"] = json!(7.0);
    let err = from_json::<Rubric>("rubric", &rubric.to_string()).unwrap_err();
    assert_eq!(
        invalid_fields(err),
        [
            "dimensions[1].weight",
            "dimensions[2].weight",
            "dimensions[3].anchors[0].score",
            "pass_threshold"
        ]
    );
}

#[test]
fn ids_with_separators_or_whitespace_are_rejected_with_the_field() {
    let mut scenario = serde_json::to_value(&Defaults::load().unwrap().scenarios[0]).unwrap();
    for bad in ["EL#1", "EL 1", "", "a/b"] {
        scenario["id"] = json!(bad);
        let err = from_json::<Scenario>("scenario", &scenario.to_string()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("scenario id"), "{bad:?}: {text}");
    }
    let err = serde_json::from_value::<Run>(json!({"id": "RUN#x"})).unwrap_err();
    assert!(err.to_string().contains("run id"), "{err}");
}

#[test]
fn scores_outside_the_scale_are_named() {
    let rubric = Defaults::load().unwrap().rubric;
    let output = json!({
        "scores": {"pedagogical_stance": 6, "conceptual_fidelity": 0, "persona_adaptation": 3, "empathy": 4},
        "flags": {"ends_with_question": true},
        "violations": ["lecturing", "shouting"],
        "rationale": ""
    });
    let problems = Verdict::from_output(&output, &rubric).unwrap_err();
    let fields: Vec<_> = problems.0.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "scores.pedagogical_stance",
            "scores.conceptual_fidelity",
            "scores.dialectical_progress",
            "scores.empathy",
            "flags.reveals_answer",
            "violations[1]",
            "rationale"
        ]
    );
    assert!(
        problems
            .to_string()
            .contains("6 is outside the scale 1..=5"),
        "{problems}"
    );
    assert!(Verdict::from_output(&json!("just text"), &rubric).is_err());
    assert!(
        Verdict::from_output(&json!({"scores": {"pedagogical_stance": 2.5}}), &rubric).is_err()
    );
}

#[test]
fn a_valid_verdict_is_read_and_scored() {
    let rubric = Defaults::load().unwrap().rubric;
    let output = json!({
        "scores": {"pedagogical_stance": 5, "conceptual_fidelity": 4, "persona_adaptation": 4, "dialectical_progress": 3},
        "flags": {"ends_with_question": true, "reveals_answer": false},
        "violations": ["closed_question", "closed_question"],
        "rationale": "Asks \"what would happen if...\"."
    });
    let verdict = Verdict::from_output(&output, &rubric).unwrap();
    assert_eq!(verdict.violations.len(), 1, "duplicates are folded");
    assert_eq!(rubric.turn_score(&verdict.scores), Some(4.0));
}

#[test]
fn manifests_list_every_problem() {
    let request = json!({
        "tutor_prompt": "socratic-tutor-v1", "judge_prompt": "judge-v1", "rubric": "ase-v1",
        "scenarios": [], "tutors": [{"model": "a", "temperature": 1.5}, {"model": "a"}],
        "judges": [], "turns": 0, "repetitions": 0
    });
    let err = from_json::<ManifestRequest>("manifest", &request.to_string()).unwrap_err();
    let fields = invalid_fields(err);
    assert_eq!(
        fields,
        [
            "scenarios",
            "judges",
            "turns",
            "repetitions",
            "tutors[0].temperature",
            "tutors"
        ]
    );
}

#[test]
fn malformed_json_is_an_error_not_a_panic() {
    for text in ["", "{", "[]", "null", "{\"id\": 5}"] {
        assert!(from_json::<Prompt>("prompt", text).is_err());
        assert!(from_json::<Manifest>("manifest", text).is_err());
        assert!(from_json::<Turn>("turn", text).is_err());
        assert!(from_json::<Judgment>("judgment", text).is_err());
    }
}

#[test]
fn blob_keys_that_escape_the_root_are_named() {
    match BlobKey::new("../../etc/passwd") {
        Err(BlobError::InvalidKey { key, reason }) => {
            assert_eq!(key, "../../etc/passwd");
            assert!(reason.contains(".."));
        }
        other => panic!("expected InvalidKey, got {other:?}"),
    }
}
