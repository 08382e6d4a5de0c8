//! The built-in scenario bank: its schema and balance, the starter set, and the table of it in
//! docs/rubric.md.

use std::collections::{BTreeMap, BTreeSet};

use socratic_core::answer_key::states_answer_key;
use socratic_core::defaults::{Defaults, STARTER_SCENARIOS, ScenarioSet};
use socratic_core::entity::{Level, Scenario, Validate, Vector};

fn bank() -> Defaults {
    Defaults::load().expect("the embedded defaults load")
}

#[test]
fn the_bank_is_large_and_balanced_enough_to_separate_models() {
    let defaults = bank();
    let scenarios = defaults.scenario_set(ScenarioSet::Full);
    assert_eq!(scenarios.len(), defaults.scenarios.len());
    assert!(scenarios.len() >= 48, "{} scenarios", scenarios.len());
    for vector in Vector::ALL {
        let n = scenarios.iter().filter(|s| s.vector == vector).count();
        assert!(n >= 16, "{vector}: {n} scenarios");
    }
    let subjects: BTreeSet<&str> = scenarios
        .iter()
        .filter_map(|s| s.subject.as_deref())
        .collect();
    assert!(
        subjects.len() >= 10,
        "{} subjects: {subjects:?}",
        subjects.len()
    );
    let levels: BTreeSet<Level> = scenarios.iter().filter_map(|s| s.level).collect();
    assert_eq!(levels, Level::ALL.into_iter().collect());
    // Every vector spans more than one level, so no vector is confounded with one audience.
    for vector in Vector::ALL {
        let levels: BTreeSet<Level> = scenarios
            .iter()
            .filter(|s| s.vector == vector)
            .filter_map(|s| s.level)
            .collect();
        assert!(levels.len() >= 2, "{vector} spans {levels:?}");
    }
}

#[test]
fn every_scenario_is_complete_and_its_answer_key_stays_off_the_tutors_side() {
    let defaults = bank();
    let mut ids = BTreeSet::new();
    let mut problems = Vec::new();
    for s in &defaults.scenarios {
        let id = s.id.as_str();
        if !ids.insert(id) {
            problems.push(format!("{id}: duplicate id"));
        }
        if let Err(p) = s.validate() {
            problems.push(format!("{id}: {p}"));
        }
        let prefix = match s.vector {
            Vector::Elenchus => "EL-",
            Vector::Maieutics => "MAI-",
            Vector::Aporia => "APO-",
        };
        if !id.starts_with(prefix) {
            problems.push(format!("{id}: a {} id starts with {prefix}", s.vector));
        }
        match s.subject.as_deref() {
            None => problems.push(format!("{id}: no subject")),
            Some(subject) if subject != subject.to_lowercase() => {
                problems.push(format!("{id}: subject {subject:?} is not lower case"))
            }
            Some(_) => {}
        }
        if s.level.is_none() {
            problems.push(format!("{id}: no level"));
        }
        if s.goals.len() < 2 {
            problems.push(format!("{id}: {} goal(s), at least 2", s.goals.len()));
        }
        // Scripted replies cover a 3-turn manifest without a student model.
        if s.student_replies.len() < 3 {
            problems.push(format!(
                "{id}: {} scripted replies",
                s.student_replies.len()
            ));
        }
        // The tutor sees the persona and the opening statement: neither may carry the answer
        // key (any six-word sequence of a goal or the key conflict).
        for (field, text) in [
            ("persona", &s.persona),
            ("opening_statement", &s.opening_statement),
        ] {
            if states_answer_key(text, s) {
                problems.push(format!("{id}: {field} states the answer key"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_starter_set_is_eight_named_scenarios_covering_every_vector() {
    let defaults = bank();
    let starter = defaults.scenario_set(ScenarioSet::Starter);
    let ids: Vec<&str> = starter.iter().map(|s| s.id.as_str()).collect();
    let mut expected = STARTER_SCENARIOS.to_vec();
    expected.sort_unstable();
    let mut found = ids.clone();
    found.sort_unstable();
    assert_eq!(found, expected, "every starter id is in the bank");
    let per_vector = |v: Vector| starter.iter().filter(|s| s.vector == v).count();
    assert_eq!(
        Vector::ALL.map(per_vector),
        [2, 2, 4],
        "elenchus, maieutics, aporia"
    );
    assert_eq!("full".parse::<ScenarioSet>(), Ok(ScenarioSet::Full));
    let unknown = "all".parse::<ScenarioSet>().expect_err("no such set");
    assert!(unknown.contains("starter and full"), "{unknown}");
}

const TABLE_START: &str = "<!-- scenario-bank:start -->";
const TABLE_END: &str = "<!-- scenario-bank:end -->";

/// The bank as a Markdown table, grouped by vector, with a count line per vector.
fn bank_table(scenarios: &[Scenario]) -> String {
    let mut by_vector: BTreeMap<Vector, Vec<&Scenario>> = BTreeMap::new();
    for s in scenarios {
        by_vector.entry(s.vector).or_default().push(s);
    }
    let mut out = String::from(
        "| id | vector | subject | level | title | starter |\n|---|---|---|---|---|---|\n",
    );
    for group in by_vector.values() {
        for s in group {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} |\n",
                s.id,
                s.vector,
                s.subject.as_deref().unwrap_or(""),
                s.level.map(Level::label).unwrap_or(""),
                s.title,
                if STARTER_SCENARIOS.contains(&s.id.as_str()) {
                    "yes"
                } else {
                    ""
                },
            ));
        }
    }
    let subjects: BTreeSet<&str> = scenarios
        .iter()
        .filter_map(|s| s.subject.as_deref())
        .collect();
    out.push_str(&format!(
        "\n{} scenarios: {}; {} subjects; {}.\n",
        scenarios.len(),
        by_vector
            .iter()
            .map(|(v, g)| format!("{} {v}", g.len()))
            .collect::<Vec<_>>()
            .join(", "),
        subjects.len(),
        Level::ALL
            .iter()
            .map(|l| format!(
                "{} {}",
                scenarios.iter().filter(|s| s.level == Some(*l)).count(),
                l.label()
            ))
            .collect::<Vec<_>>()
            .join(", "),
    ));
    out
}

#[test]
fn docs_rubric_md_carries_the_bank_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/rubric.md");
    let doc = std::fs::read_to_string(path).expect("docs/rubric.md reads");
    let expected = bank_table(&bank().scenarios);
    let start = doc.find(TABLE_START).map(|i| i + TABLE_START.len());
    let end = doc.find(TABLE_END);
    let (Some(start), Some(end)) = (start, end) else {
        panic!("docs/rubric.md has no {TABLE_START} … {TABLE_END} section");
    };
    let found = doc[start..end].trim();
    if found != expected.trim() {
        // SOCRATIC_BLESS=1 rewrites the section from the bank.
        if std::env::var_os("SOCRATIC_BLESS").is_some() {
            let updated = format!("{}\n{}{}", &doc[..start], expected, &doc[end..]);
            std::fs::write(path, updated).expect("docs/rubric.md writes");
        }
        panic!(
            "docs/rubric.md's scenario table differs from the bank; run with SOCRATIC_BLESS=1 to \
             rewrite it. Expected:\n{expected}"
        );
    }
}
