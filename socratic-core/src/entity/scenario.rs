use std::fmt;

use serde::{Deserialize, Serialize};

use super::validation::{Problems, Validate, require_text};
use crate::id::ScenarioId;

/// The Socratic move a scenario exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vector {
    /// Draw out a contradiction in the student's own beliefs.
    Elenchus,
    /// Scaffold a correct but shallow understanding one step deeper per question.
    Maieutics,
    /// Lead a deep misconception into productive puzzlement, then rebuild.
    Aporia,
}

impl Vector {
    /// Every vector.
    pub const ALL: [Vector; 3] = [Vector::Elenchus, Vector::Maieutics, Vector::Aporia];

    /// The snake-case name used in keys and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Vector::Elenchus => "elenchus",
            Vector::Maieutics => "maieutics",
            Vector::Aporia => "aporia",
        }
    }

    /// The objective given to the tutor for this vector.
    pub fn objective(self) -> &'static str {
        match self {
            Vector::Elenchus => {
                "The student holds a belief that contradicts itself. Bring the contradiction to \
                 light with questions built on the student's own words and reasoning. Do not \
                 resolve it for them."
            }
            Vector::Maieutics => {
                "The student's understanding is correct but shallow. Help them build it one step \
                 deeper with each question: one idea per question, never a block of information."
            }
            Vector::Aporia => {
                "The student holds a deep misconception. Lead them, through questions, to notice \
                 that their explanation does not hold, then help them rebuild it, still asking \
                 rather than telling."
            }
        }
    }
}

impl fmt::Display for Vector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The student's level of study, so a bank can be checked to span more than one audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Grades 6 to 8, ages 11 to 14.
    MiddleSchool,
    /// Grades 9 to 12, ages 14 to 18.
    HighSchool,
    /// A university course.
    Undergraduate,
}

impl Level {
    /// Every level.
    pub const ALL: [Level; 3] = [Level::MiddleSchool, Level::HighSchool, Level::Undergraduate];

    /// The snake-case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::MiddleSchool => "middle_school",
            Level::HighSchool => "high_school",
            Level::Undergraduate => "undergraduate",
        }
    }

    /// The name for people: `middle school`.
    pub fn label(self) -> &'static str {
        match self {
            Level::MiddleSchool => "middle school",
            Level::HighSchool => "high school",
            Level::Undergraduate => "undergraduate",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A benchmark scenario (the SEED entity). Immutable once stored.
///
/// `key_conflict` and `goals` are the answer key: the judge and the student simulator see them,
/// the tutor never does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Stable human-readable id, e.g. `EL-ETH-UTIL-DEON-01`.
    pub id: ScenarioId,
    /// The vector it exercises.
    pub vector: Vector,
    /// The subject, in lower case: `physics`, `history`. Optional for scenarios of your own;
    /// every built-in scenario has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The student's level. Optional for scenarios of your own; every built-in scenario has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// Short title.
    pub title: String,
    /// Who the student is: age or grade, course, and a line of attitude.
    pub persona: String,
    /// What the student says first.
    pub opening_statement: String,
    /// The misconception or contradiction at stake (answer key).
    pub key_conflict: String,
    /// What a good dialogue reaches (answer key).
    pub goals: Vec<String>,
    /// Scripted student replies, one per tutor turn; empty when a student model answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub student_replies: Vec<String>,
}

impl Validate for Scenario {
    fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::new();
        require_text(&mut problems, "title", &self.title);
        if let Some(subject) = &self.subject {
            require_text(&mut problems, "subject", subject);
        }
        require_text(&mut problems, "persona", &self.persona);
        require_text(&mut problems, "opening_statement", &self.opening_statement);
        require_text(&mut problems, "key_conflict", &self.key_conflict);
        problems.check(
            !self.goals.is_empty(),
            "goals",
            "must list at least one goal",
        );
        for (i, goal) in self.goals.iter().enumerate() {
            require_text(&mut problems, &format!("goals[{i}]"), goal);
        }
        for (i, reply) in self.student_replies.iter().enumerate() {
            require_text(&mut problems, &format!("student_replies[{i}]"), reply);
        }
        problems.into_result()
    }
}
