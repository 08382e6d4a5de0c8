//! Plain-text features the simulated models react to.

const STOPWORDS: [&str; 40] = [
    "about",
    "after",
    "again",
    "because",
    "being",
    "could",
    "doesn't",
    "every",
    "first",
    "have",
    "having",
    "maybe",
    "might",
    "other",
    "really",
    "should",
    "something",
    "still",
    "their",
    "there",
    "these",
    "thing",
    "things",
    "think",
    "those",
    "though",
    "through",
    "where",
    "which",
    "while",
    "would",
    "you're",
    "your",
    "yours",
    "basically",
    "always",
    "never",
    "guess",
    "sure",
    "actually",
];

/// Lowercase words of five letters or more that carry content.
pub(crate) fn content_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for raw in text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '-')) {
        let raw = raw.trim_matches(|c: char| c == '\'' || c == '-');
        // Most words are ASCII: short ones, stopwords and repeats are told without
        // lower-casing a copy (ASCII lower-casing is `to_lowercase` there, and every kept word
        // is already lower case).
        if raw.is_ascii() {
            // No stopword is longer than nine letters (a test checks).
            let stopword = raw.len() <= 9 && STOPWORDS.iter().any(|w| w.eq_ignore_ascii_case(raw));
            if raw.len() >= 5 && !stopword && !words.iter().any(|w| w.eq_ignore_ascii_case(raw)) {
                words.push(raw.to_ascii_lowercase());
            }
            continue;
        }
        let word = raw.to_lowercase();
        if word.chars().count() >= 5
            && !STOPWORDS.contains(&word.as_str())
            && !words.contains(&word)
        {
            words.push(word);
        }
    }
    words
}

/// Sentences with their closing punctuation.
pub(crate) fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        current.push(c);
        if matches!(c, '.' | '?' | '!') {
            let sentence = current.trim().to_owned();
            if sentence.chars().any(char::is_alphanumeric) {
                out.push(sentence);
            }
            current.clear();
        }
    }
    let rest = current.trim();
    if rest.chars().any(char::is_alphanumeric) {
        out.push(rest.to_owned());
    }
    out
}

/// The first `n` words of a text, without trailing punctuation.
pub(crate) fn first_words(text: &str, n: usize) -> String {
    let words: Vec<&str> = text.split_whitespace().take(n).collect();
    words
        .join(" ")
        .trim_end_matches(['.', ',', '!', '?', ';', ':'])
        .to_owned()
}

const CONFIRMATIONS: [&str; 8] = [
    "does that make sense",
    "okay?",
    "ok?",
    "right?",
    "got it",
    "do you understand",
    "is that clear",
    "make sense?",
];
const REVEAL_MARKERS: [&str; 8] = [
    "the answer is",
    "actually,",
    "in fact",
    "the real reason",
    "the key idea",
    "the correct",
    "what really happens",
    "let me explain",
];
const OPEN_STARTS: [&str; 7] = ["what", "why", "how", "where", "when", "which", "who"];
const CLOSED_STARTS: [&str; 12] = [
    "is", "are", "do", "does", "did", "can", "could", "would", "will", "should", "have", "has",
];

/// What a judge (or a student) notices in a tutor turn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TurnFeatures {
    pub(crate) genuine_questions: usize,
    pub(crate) open_question: bool,
    pub(crate) closed_question: bool,
    pub(crate) ends_with_question: bool,
    pub(crate) reveals_answer: bool,
    pub(crate) lecture: bool,
    pub(crate) advice: bool,
    pub(crate) leading: bool,
    pub(crate) words: usize,
    /// Share of the student's content words the tutor picked up.
    pub(crate) overlap: f64,
}

fn first_word(sentence: &str) -> String {
    sentence
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase()
}

/// Features of `tutor`'s turn, answering a student who last said `student`.
pub(crate) fn features(tutor: &str, student: &str) -> TurnFeatures {
    let lower = tutor.to_lowercase();
    let all = sentences(tutor);
    let is_confirmation = |s: &str| {
        let l = s.to_lowercase();
        CONFIRMATIONS.iter().any(|c| l.contains(c))
    };
    let questions: Vec<&String> = all.iter().filter(|s| s.ends_with('?')).collect();
    let genuine: Vec<&&String> = questions.iter().filter(|s| !is_confirmation(s)).collect();
    let declarative = all.iter().filter(|s| !s.ends_with('?')).count();
    let words = tutor.split_whitespace().count();
    let theirs = content_words(student);
    let ours = content_words(tutor);
    let overlap = if theirs.is_empty() {
        0.0
    } else {
        theirs.iter().filter(|w| ours.contains(w)).count() as f64 / theirs.len() as f64
    };
    let last = all.last().map(String::as_str).unwrap_or_default();
    TurnFeatures {
        genuine_questions: genuine.len(),
        open_question: genuine.iter().any(|s| {
            OPEN_STARTS.contains(&first_word(s).as_str()) || s.to_lowercase().contains(" what ")
        }),
        closed_question: genuine
            .iter()
            .any(|s| CLOSED_STARTS.contains(&first_word(s).as_str())),
        ends_with_question: last.ends_with('?') && !is_confirmation(last),
        reveals_answer: REVEAL_MARKERS.iter().any(|m| lower.contains(m)),
        lecture: declarative >= 3 || words > 60,
        advice: lower.contains("you should"),
        leading: ["isn't it", "don't you think", "wouldn't you agree"]
            .iter()
            .any(|m| lower.contains(m)),
        words,
        overlap,
    }
}

/// A rough token count (about four characters a token).
pub(crate) fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_tell_questions_from_confirmations_and_reveals() {
        let socratic = features(
            "You said metal is hotter. What makes you sure metal is hotter?",
            "Metal is hotter than wood.",
        );
        assert_eq!(socratic.genuine_questions, 1);
        assert!(socratic.open_question && socratic.ends_with_question && !socratic.reveals_answer);
        assert!(socratic.overlap > 0.3);
        let leaky = features(
            "Actually, the answer is conduction. Does that make sense?",
            "Metal is hotter.",
        );
        assert_eq!(leaky.genuine_questions, 0);
        assert!(leaky.reveals_answer && !leaky.ends_with_question);
        assert_eq!(sentences("One. Two? Three"), ["One.", "Two?", "Three"]);
        assert_eq!(first_words("a b c d.", 3), "a b c");
    }

    #[test]
    fn no_stopword_is_longer_than_nine_letters() {
        assert!(STOPWORDS.iter().all(|w| w.len() <= 9));
    }

    #[test]
    fn content_words_are_lower_case_once_each_without_stopwords() {
        assert_eq!(
            content_words(
                "Metal FEELS colder, metal feels colder! Because 'heat-flow' - Heat-Flow; \
                 ÉNERGIE énergie KELVIN \u{212a}elvin would"
            ),
            ["metal", "feels", "colder", "heat-flow", "énergie", "kelvin"]
        );
    }
}
