//! Did the student get there, and who said it first?
//!
//! A scenario's goals and key conflict are its answer key. Whether a text states one is decided
//! on normalised text: lower-case, punctuation stripped, and any run of [`SEQUENCE_WORDS`]
//! consecutive words of the passage (the whole passage when it is shorter) found in the text.
//! Six words are enough to be the passage's own wording rather than a chance overlap, and few
//! enough to catch a paraphrase that keeps a clause of it.
//!
//! [`AnswerKey`] is the verbatim telling detector, the second opinion beside the judges'
//! `reveals_answer` flag: after `MathDial` (Macina et al., 2023), which marks a tutor turn as
//! telling when it states the final numeric answer, a tutor turn tells when it states a run
//! of the answer key, or when one of its statements (a sentence that is not a question)
//! carries a number of a goal or two of a goal's key terms that the student did not bring.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use crate::entity::{Scenario, Turn};

/// How many consecutive words of a passage a text must contain to state it.
pub const SEQUENCE_WORDS: usize = 6;

/// The words of `text`: lower-case, with everything but letters and digits taken as a space.
pub fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Passages made ready to be looked for in many texts: each passage's runs of
/// [`SEQUENCE_WORDS`] words (one run of all of it when shorter), in a set, so a text is read
/// once and each of its windows looked up.
#[derive(Debug, Clone, Default)]
pub struct Passages {
    /// Per passage: its run length and its runs, each as its words joined by one space.
    runs: Vec<(usize, HashSet<String, BuildHasherDefault<WordHasher>>)>,
}

impl Passages {
    /// The passages' runs. An empty passage has none, so no text states it.
    pub fn new<'a>(passages: impl IntoIterator<Item = &'a str>) -> Self {
        let runs = passages
            .into_iter()
            .filter_map(|passage| {
                let words = Normalised::of(passage);
                if words.len() == 0 {
                    return None;
                }
                let length = words.len().min(SEQUENCE_WORDS);
                Some((length, words.windows(length).map(str::to_owned).collect()))
            })
            .collect();
        Self { runs }
    }

    /// Whether `text` states one of the passages: contains one of its runs.
    pub fn stated_in(&self, text: &str) -> bool {
        let text = Normalised::of(text);
        self.runs
            .iter()
            .any(|(length, runs)| text.windows(*length).any(|window| runs.contains(window)))
    }
}

/// A text's [`words`] joined by single spaces, with where each word starts and ends, so a run
/// of consecutive words is a slice of one string: no allocation per word or window.
struct Normalised {
    text: String,
    /// Byte range of each word in `text`.
    bounds: Vec<(usize, usize)>,
}

impl Normalised {
    fn of(text: &str) -> Self {
        let lower = text.to_lowercase();
        let mut normalised = Self {
            text: String::with_capacity(lower.len()),
            bounds: Vec::new(),
        };
        for word in lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            if !normalised.text.is_empty() {
                normalised.text.push(' ');
            }
            let start = normalised.text.len();
            normalised.text.push_str(word);
            normalised.bounds.push((start, normalised.text.len()));
        }
        normalised
    }

    fn len(&self) -> usize {
        self.bounds.len()
    }

    /// Every run of `length` consecutive words.
    fn windows(&self, length: usize) -> impl Iterator<Item = &str> {
        self.bounds
            .windows(length)
            .map(move |w| &self.text[w[0].0..w[length - 1].1])
    }
}

/// FNV-1a over the bytes: the runs are short, trusted text, where the default hasher's
/// resistance to chosen collisions costs several times as much per lookup.
struct WordHasher(u64);

impl Default for WordHasher {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Whether `text` states `passage`: contains one of its runs of [`SEQUENCE_WORDS`] words.
pub fn states(text: &str, passage: &str) -> bool {
    Passages::new([passage]).stated_in(text)
}

/// Whether `text` states any of a scenario's goals or its key conflict.
pub fn states_answer_key(text: &str, scenario: &Scenario) -> bool {
    let goals = scenario.goals.iter().map(String::as_str);
    Passages::new(goals.chain([scenario.key_conflict.as_str()])).stated_in(text)
}

/// Words too common in goals to tell anything: the rubric's own verbs and the words any
/// sentence has. Key terms are the other words of five letters or more.
const COMMON_WORDS: [&str; 40] = [
    "student",
    "students",
    "reaches",
    "reach",
    "notices",
    "notice",
    "applies",
    "apply",
    "starts",
    "moves",
    "towards",
    "toward",
    "rebuilds",
    "builds",
    "identifies",
    "separates",
    "distinguishes",
    "interprets",
    "explains",
    "estimates",
    "their",
    "there",
    "these",
    "those",
    "which",
    "where",
    "while",
    "about",
    "other",
    "another",
    "rather",
    "example",
    "something",
    "thing",
    "things",
    "cannot",
    "because",
    "being",
    "would",
    "could",
];

/// Number words a goal may state its figures in.
const NUMBER_WORDS: [&str; 20] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "twelve", "twenty", "thirty", "fifty", "hundred", "thousand", "million", "billion", "half",
];

/// A scenario's answer key as the verbatim telling detector reads it.
#[derive(Debug, Clone, Default)]
pub struct AnswerKey {
    /// The runs of the goals and the key conflict.
    passages: Passages,
    /// The numbers the goals state, in digits or words, that the student did not bring.
    numbers: HashSet<String>,
    /// Per goal, its key terms: words of five letters or more, not common, that the student
    /// did not bring.
    terms: Vec<HashSet<String>>,
}

impl AnswerKey {
    /// The answer key of `scenario`. What the student brings (the opening statement, the
    /// persona, the title) is never a tell.
    pub fn of(scenario: &Scenario) -> Self {
        let brought: HashSet<String> = [
            &scenario.opening_statement,
            &scenario.persona,
            &scenario.title,
        ]
        .into_iter()
        .flat_map(|text| words(text))
        .collect();
        let goals = scenario.goals.iter().map(String::as_str);
        let passages = Passages::new(goals.chain([scenario.key_conflict.as_str()]));
        let mut numbers = HashSet::new();
        let mut terms = Vec::new();
        for goal in &scenario.goals {
            let mut goal_terms = HashSet::new();
            for word in words(goal).into_iter().filter(|w| !brought.contains(w)) {
                if word.bytes().all(|b| b.is_ascii_digit()) || NUMBER_WORDS.contains(&word.as_str())
                {
                    numbers.insert(word);
                } else if word.chars().count() >= 5 && !COMMON_WORDS.contains(&word.as_str()) {
                    goal_terms.insert(word);
                }
            }
            terms.push(goal_terms);
        }
        Self {
            passages,
            numbers,
            terms,
        }
    }

    /// Whether the tutor message `text` tells the answer.
    pub fn told_in(&self, text: &str) -> bool {
        self.passages.stated_in(text) || statements(text).any(|sentence| self.tells(&sentence))
    }

    /// Whether a statement carries a number of a goal, or two key terms of one goal.
    fn tells(&self, sentence: &[String]) -> bool {
        sentence.iter().any(|w| self.numbers.contains(w))
            || self
                .terms
                .iter()
                .any(|terms| sentence.iter().filter(|w| terms.contains(*w)).count() >= 2)
    }
}

/// The words of each sentence of `text` that is not a question.
fn statements(text: &str) -> impl Iterator<Item = Vec<String>> {
    let mut sentences = Vec::new();
    let mut start = 0;
    for (at, c) in text.char_indices() {
        if matches!(c, '.' | '!' | '?' | '\n') {
            if c != '?' {
                sentences.push(&text[start..at]);
            }
            start = at + c.len_utf8();
        }
    }
    sentences.push(&text[start..]);
    sentences.into_iter().map(words).filter(|w| !w.is_empty())
}

/// Where a dialogue first stated a goal: `reached`, the turn whose student reply first states
/// one (success@k holds for k ≥ it); `told`, the first turn whose tutor message tells the
/// answer (the tutor told before the student got there when `told ≤ reached`, or the student
/// never did: telling@k, after the `MathDial` benchmark). Which detector says `told` is the
/// caller's: the verbatim one here, the judges' flag where judges ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GoalTimeline {
    /// The first turn whose student reply states a goal.
    pub reached: Option<u32>,
    /// The first turn whose tutor message states a goal.
    pub told: Option<u32>,
}

impl GoalTimeline {
    /// The timeline of `turns` against the scenario's goals; the tutor tells by the verbatim
    /// detector ([`AnswerKey`]).
    pub fn of(scenario: &Scenario, turns: &[Turn]) -> Self {
        let goals = Passages::new(scenario.goals.iter().map(String::as_str));
        let states_goal = |text: &str| goals.stated_in(text);
        let key = AnswerKey::of(scenario);
        let mut ordered: Vec<&Turn> = turns.iter().collect();
        ordered.sort_by_key(|t| t.index);
        Self {
            reached: ordered
                .iter()
                .find(|t| t.student_text.as_deref().is_some_and(states_goal))
                .map(|t| t.index),
            told: ordered
                .iter()
                .find(|t| key.told_in(&t.tutor_text))
                .map(|t| t.index),
        }
    }

    /// Whether the tutor stated a goal before the student did (in a turn, the tutor speaks
    /// first), or without the student ever stating one.
    pub fn told_first(&self) -> bool {
        match (self.told, self.reached) {
            (Some(told), Some(reached)) => told <= reached,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_words_of_a_passage_state_it_whatever_the_case_and_punctuation() {
        let goal = "The student sees that 'always save the most' and rights cannot both hold.";
        assert!(states(
            "Oh! So ALWAYS save the most, and rights... they cannot both hold?",
            goal
        ));
        // Five consecutive words of it are not enough.
        assert!(!states("you always save the most people", goal));
        // The same words out of order are not the passage.
        assert!(!states(
            "hold both cannot rights and most the save always",
            goal
        ));
        // A passage shorter than six words must appear whole.
        assert!(states(
            "I think energy is conserved here",
            "Energy is conserved."
        ));
        assert!(!states("energy matters", "Energy is conserved."));
        assert!(!states("anything", ""));
    }

    #[test]
    fn a_normalised_text_s_windows_are_its_words_runs() {
        let text = "Heat≠temperature: it's 100°C! ÉTÉ, déjà-vu; and   SO on.";
        let normalised = Normalised::of(text);
        let words = words(text);
        assert_eq!(normalised.len(), words.len());
        for length in 1..=words.len() {
            let expected: Vec<String> = words.windows(length).map(|w| w.join(" ")).collect();
            assert_eq!(normalised.windows(length).collect::<Vec<_>>(), expected);
        }
    }

    #[test]
    fn the_verbatim_detector_catches_runs_numbers_and_key_terms_in_statements_only() {
        let defaults = crate::defaults::Defaults::load().unwrap();
        let scenario = defaults
            .scenarios
            .iter()
            .find(|s| s.id.as_str() == "MAI-CS-BINARY-SEARCH-01")
            .unwrap();
        let key = AnswerKey::of(scenario);
        // A run of six words of a goal.
        assert!(key.told_in("Remember: the list must be sorted for halving to work."));
        // A number of a goal the student did not bring.
        assert!(key.told_in("It takes about twenty steps."));
        // Two key terms of one goal, in a statement.
        assert!(key.told_in("The number of steps grows with the logarithm."));
        // The same terms in a question, or one term alone, tell nothing.
        assert!(!key.told_in("How does the number of steps grow with the logarithm of n?"));
        assert!(!key.told_in("Think about the logarithm."));
        // The student's own words (the opening statement) are no tell.
        assert!(!key.told_in("You said it cuts the list in half each time. Why?"));
    }

    #[test]
    fn words_are_lower_case_and_split_on_anything_but_letters_and_digits() {
        assert_eq!(
            words("Heat≠temperature: it's 100°C!"),
            ["heat", "temperature", "it", "s", "100", "c"]
        );
    }
}
