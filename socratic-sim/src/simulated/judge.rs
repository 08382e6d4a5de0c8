//! A heuristic judge that scores the tutor text it is shown, through structured output.

use serde_json::{Map, Value, json};
use socratic_core::llm::{ConverseRequest, LlmError};
use socratic_core::pipeline::JUDGE_TURN_MARKER;

use super::text::{TurnFeatures, features, first_words};

/// Finds the scored tutor turn and the student line before it in the judge's message.
fn scored_turn(request: &ConverseRequest) -> Option<(String, String)> {
    let task = &request.messages.first()?.text;
    let (before, after) = task.split_once(JUDGE_TURN_MARKER)?;
    let tutor_text: String = after
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("Score tutor turn"))
        .collect::<Vec<_>>()
        .join(" ");
    let student = before
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("Student: "))
        .unwrap_or_default();
    Some((tutor_text.trim().to_owned(), student.to_owned()))
}

fn score(dimension: &str, f: &TurnFeatures) -> i64 {
    let pedagogical = if f.genuine_questions == 0 {
        1
    } else if f.reveals_answer {
        2
    } else if f.lecture {
        3
    } else if f.genuine_questions > 1 || !f.open_question {
        4
    } else {
        5
    };
    match dimension {
        "pedagogical_stance" => pedagogical,
        "conceptual_fidelity" => {
            let base = if f.overlap >= 0.34 {
                5
            } else if f.overlap >= 0.2 {
                4
            } else if f.overlap > 0.0 {
                3
            } else {
                2
            };
            base - i64::from(f.reveals_answer)
        }
        "persona_adaptation" => {
            let base = match f.words {
                0..=30 => 5,
                31..=50 => 4,
                51..=80 => 3,
                81..=120 => 2,
                _ => 1,
            };
            base - i64::from(f.genuine_questions > 1)
        }
        "dialectical_progress" => {
            if f.reveals_answer {
                2
            } else if f.open_question && f.overlap >= 0.2 {
                5
            } else if f.open_question {
                4
            } else if f.genuine_questions > 0 {
                3
            } else {
                1
            }
        }
        // Dimensions of other rubrics: fall back on the overall stance.
        _ => pedagogical,
    }
}

fn properties<'a>(schema: &'a Value, field: &str) -> Option<&'a Map<String, Value>> {
    schema
        .get("properties")?
        .get(field)?
        .get("properties")?
        .as_object()
}

/// Scores the turn for every dimension and flag named in the requested schema.
pub(crate) fn judge(request: &ConverseRequest, strict: bool) -> Result<Value, LlmError> {
    let schema = &request
        .structured_output
        .as_ref()
        .ok_or_else(|| LlmError::Validation {
            message: "the simulated judge needs a structured-output schema".to_owned(),
        })?
        .schema;
    let (tutor, student) = scored_turn(request).ok_or_else(|| LlmError::Validation {
        message: format!("the judge request has no {JUDGE_TURN_MARKER} section"),
    })?;
    let f = features(&tutor, &student);
    let mut scores = Map::new();
    for (name, spec) in properties(schema, "scores").into_iter().flatten() {
        let min = spec.get("minimum").and_then(Value::as_i64).unwrap_or(1);
        let max = spec.get("maximum").and_then(Value::as_i64).unwrap_or(5);
        // Map the 1..=5 heuristic onto the dimension's own scale.
        let harsher = strict && name == "persona_adaptation" && f.words > 20;
        let raw = (score(name, &f) - i64::from(harsher)).clamp(1, 5);
        let scaled = min + ((raw - 1) * (max - min) + 2) / 4;
        scores.insert(name.clone(), json!(scaled.clamp(min, max)));
    }
    let mut flags = Map::new();
    for name in properties(schema, "flags")
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        let value = match name.as_str() {
            "ends_with_question" => f.ends_with_question,
            "reveals_answer" => f.reveals_answer,
            _ => false,
        };
        flags.insert(name.clone(), json!(value));
    }
    let allowed: Vec<&str> = schema
        .pointer("/properties/violations/items/enum")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let observed = [
        ("lecturing", f.lecture),
        ("multiple_questions", f.genuine_questions > 1),
        ("answer_reveal", f.reveals_answer),
        ("closed_question", f.closed_question),
        ("advice_leak", f.advice),
        ("leading_question", f.leading),
    ];
    let violations: Vec<&str> = observed
        .iter()
        .filter(|(v, seen)| *seen && allowed.contains(v))
        .map(|(v, _)| *v)
        .collect();
    let rationale = format!(
        "The tutor wrote \"{}\": {} genuine question(s), {}, {} words.",
        first_words(&tutor, 10),
        f.genuine_questions,
        if f.reveals_answer {
            "states the answer"
        } else {
            "does not state the answer"
        },
        f.words
    );
    Ok(json!({"scores": scores, "flags": flags, "violations": violations, "rationale": rationale}))
}
