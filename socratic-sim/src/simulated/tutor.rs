//! Simulated tutors with known behaviour.

use socratic_core::llm::{ConverseRequest, Speaker};

use super::text::{content_words, first_words};

/// How a simulated tutor behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TutorStyle {
    /// One open question per turn, built on the student's own words; never tells.
    Socratic,
    /// Socratic on turn 1, then reveals the answer from turn 2 on.
    Leaky,
    /// Explains at length and checks understanding with a confirmation question.
    Lecturer,
}

const QUESTIONS: [&str; 4] = [
    "You said \"{quote}\". What makes you sure that {w1} works that way every time?",
    "What would have to be true about {w1} for your idea to hold in every case?",
    "How could you check whether {w1} really explains what happens with {w2}?",
    "What do you notice when you put {w1} next to {w2}?",
];

fn fill(template: &str, quote: &str, w1: &str, w2: &str) -> String {
    template
        .replace("{quote}", quote)
        .replace("{w1}", w1)
        .replace("{w2}", w2)
}

/// The tutor's next turn.
pub(crate) fn reply(style: TutorStyle, request: &ConverseRequest) -> String {
    let turn = request
        .messages
        .iter()
        .filter(|m| m.speaker == Speaker::Assistant)
        .count()
        + 1;
    let student = request
        .messages
        .iter()
        .rev()
        .find(|m| m.speaker == Speaker::User)
        .map(|m| m.text.as_str())
        .unwrap_or_default();
    let words = content_words(student);
    let w1 = words.first().cloned().unwrap_or_else(|| "that".to_owned());
    let w2 = words.get(1).cloned().unwrap_or_else(|| w1.clone());
    let quote = first_words(student, 8);
    let socratic = || fill(QUESTIONS[(turn - 1) % QUESTIONS.len()], &quote, &w1, &w2);
    match style {
        TutorStyle::Socratic => socratic(),
        TutorStyle::Leaky if turn == 1 => socratic(),
        TutorStyle::Leaky => format!(
            "Actually, the answer is that \"{quote}\" is not quite right. In fact the real reason is that {w1} works differently from how you describe it, and {w2} follows from that. Does that make sense?"
        ),
        TutorStyle::Lecturer => format!(
            "Let me explain. Many students believe that {w1} is the whole story, but in fact the key idea is more general. \
             First, {w1} depends on several factors that interact. Second, {w2} changes how those factors combine. \
             Third, scientists and philosophers have studied this carefully and found that simple rules rarely hold. \
             So the main point is that {w1} and {w2} have to be understood together. Does that make sense?"
        ),
    }
}
