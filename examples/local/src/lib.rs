//! The pieces of the `socratic` command line that are worth testing on their own: the models
//! file and the clients built from it, catalogs of your own from files, and the backend a
//! benchmark keeps its state in, and the history read back from it.

pub mod backend;
pub mod catalog;
pub mod history;
pub mod models;

/// `SUBJECT has N problem(s):` and one indented line per problem: how the command line reports
/// everything wrong with an input at once.
pub fn problem_list(subject: &str, problems: &[String]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
    format!(
        "{subject} has {} problem(s):\n{}",
        problems.len(),
        lines.join("\n")
    )
}
