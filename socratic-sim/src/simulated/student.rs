//! A simulated student who holds their misconception until the tutor actually probes it.

use socratic_core::llm::{ConverseRequest, Speaker};

use super::text::{features, first_words};

fn field<'a>(system: &'a str, label: &str) -> Option<&'a str> {
    system
        .lines()
        .find_map(|line| line.strip_prefix(label))
        .map(str::trim)
}

/// The student's next reply.
///
/// A tutor turn *probes* when it asks a genuine open question and gives nothing away. The
/// student gives ground one step per probe, along the scenario's goals; a turn that lectures or
/// reveals the answer is politely accepted without any change of mind.
pub(crate) fn reply(request: &ConverseRequest) -> String {
    let system: String = request
        .system
        .iter()
        .map(|p| p.text.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let opening = field(&system, "What you said first:").unwrap_or("I still think I'm right");
    // The goals are the list after "Where a good tutor could lead you"; the prompt's own
    // instructions are a list too.
    let goals: Vec<&str> = system
        .lines()
        .skip_while(|l| !l.starts_with("Where a good tutor could lead you"))
        .filter_map(|l| l.strip_prefix("- "))
        .collect();
    let mut previous_student = opening.to_owned();
    let mut probes: usize = 0;
    let mut last_probed = false;
    for message in &request.messages {
        match message.speaker {
            Speaker::User => {
                let f = features(&message.text, &previous_student);
                last_probed = f.open_question && !f.reveals_answer;
                if last_probed {
                    probes += 1;
                }
            }
            Speaker::Assistant => previous_student = message.text.clone(),
        }
    }
    let belief = first_words(opening, 12);
    if !last_probed {
        return format!("Okay, if you say so... but honestly I still think {belief}.");
    }
    match probes {
        1 => format!(
            "Hmm, I'm not totally sure. I mean, {belief}, but maybe not in every single case?"
        ),
        n => {
            let goal = goals
                .get(n.saturating_sub(2).min(goals.len().saturating_sub(1)))
                .copied()
                .unwrap_or("my idea has a gap");
            let goal = goal.trim_end_matches('.');
            let mut lowered = goal.chars();
            let goal = match lowered.next() {
                Some(c) => c.to_lowercase().collect::<String>() + lowered.as_str(),
                None => String::new(),
            };
            format!("Wait... so maybe {goal}? That would mean my first idea was too simple.")
        }
    }
}
