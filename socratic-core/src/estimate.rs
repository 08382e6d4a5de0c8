//! What a manifest will cost, before any call is made.
//!
//! The estimate builds the real requests each role will send, from the real prompts, rubric
//! and scenarios, with a transcript that grows turn by turn. Two cases:
//!
//! - **expected**: every reply uses half of `max_tokens`, and a token is about four bytes of
//!   text;
//! - **worst case**: every reply uses all of `max_tokens`, and every input byte is a token,
//!   priced at the dearest input price (the bound the spending cap reserves per call, see
//!   [`worst_case_cost`]).
//!
//! Each cost comes twice: at the live prices, and through the providers' batch interfaces
//! (each model at its batch prices, [`Prices::batch`], or live where it has none), with the
//! rounds a turn-synchronous batch benchmark takes ([`PlanEstimate::batch_rounds`]).
//!
//! Judge calls retried for invalid output are not counted: they are the exception. A re-judge
//! counts only its judges' calls.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::clock::Timestamp;
use crate::entity::{CallRecord, ManifestRequest, Model, Prompt, Rubric, Scenario, Turn};
use crate::id::{ManifestId, ModelId, RunId};
use crate::llm::{
    ConverseRequest, Prices, Role, StopReason, Usage, input_size, worst_case_cost,
    worst_case_input_tokens,
};
use crate::pipeline::{ALPHA, Sampling, judge_request, student_request, tutor_request};
use crate::repository::{RepoError, Repository};
use crate::stats::{DesignVariance, Power};

/// How long a provider typically takes to answer a batch: OpenAI and Anthropic say most
/// batches finish within an hour.
pub const TYPICAL_BATCH_ROUND: std::time::Duration = std::time::Duration::from_secs(3600);

/// The completion window a batch is submitted with: a provider may take this long, and
/// expires what it has not answered by then.
pub const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Bytes of text per token assumed for the expected case.
const BYTES_PER_TOKEN: u64 = 4;

/// Calls and tokens of one role, or of one model in one role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct TokenEstimate {
    /// Model calls.
    pub calls: u64,
    /// Expected input tokens.
    pub input_tokens: u64,
    /// Expected output tokens.
    pub output_tokens: u64,
    /// Input tokens in the worst case.
    pub worst_input_tokens: u64,
    /// Output tokens in the worst case.
    pub worst_output_tokens: u64,
}

impl TokenEstimate {
    fn add(&mut self, other: &TokenEstimate) {
        self.calls += other.calls;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.worst_input_tokens += other.worst_input_tokens;
        self.worst_output_tokens += other.worst_output_tokens;
    }
}

/// What one model will be asked and what it will cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModelEstimate {
    /// Per role it plays.
    pub roles: BTreeMap<Role, TokenEstimate>,
    /// Expected cost in US dollars.
    pub cost_usd: f64,
    /// Worst-case cost in US dollars.
    pub worst_cost_usd: f64,
    /// Expected cost through the batch interface (the live cost without batch prices).
    pub batch_cost_usd: f64,
    /// Worst-case cost through the batch interface.
    pub batch_worst_cost_usd: f64,
    /// Whether the model has batch prices.
    pub batch_priced: bool,
}

/// The estimate of a whole manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlanEstimate {
    /// Runs the manifest plans.
    pub runs: u64,
    /// Per role, over every model.
    pub roles: BTreeMap<Role, TokenEstimate>,
    /// Per model called.
    pub models: BTreeMap<ModelId, ModelEstimate>,
    /// Expected cost in US dollars.
    pub cost_usd: f64,
    /// Worst-case cost in US dollars.
    pub worst_cost_usd: f64,
    /// Expected cost with every model's calls sent through its batch interface.
    pub batch_cost_usd: f64,
    /// Worst-case cost with every model's calls sent through its batch interface.
    pub batch_worst_cost_usd: f64,
    /// The rounds of batches a turn-synchronous benchmark takes: one per tutor turn, one per
    /// student turn, and one for the judges.
    pub batch_rounds: u32,
}

/// What a planned design can detect, and whose scores' variance it assumes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PlanPower {
    /// The smallest detectable difference, and the scenarios that would detect 0.25 and 0.5
    /// points.
    pub power: Power,
    /// The finished benchmark whose variance the plan assumes; `None` for the default.
    pub variance_from: Option<ManifestId>,
}

/// The power of `request`'s design: its tutors compared pairwise (Holm-adjusted at
/// [`ALPHA`]) on its scenarios × repetitions, scores varying as the finished benchmark
/// `variance` says, or as [`DesignVariance::DEFAULT`] without one.
pub fn plan_power(
    request: &ManifestRequest,
    variance: Option<(ManifestId, DesignVariance)>,
) -> PlanPower {
    let (variance_from, variance) = match variance {
        Some((id, variance)) => (Some(id), variance),
        None => (None, DesignVariance::DEFAULT),
    };
    PlanPower {
        power: Power::of(
            request.tutors.len(),
            u32::try_from(request.scenarios.len()).unwrap_or(u32::MAX),
            request.repetitions,
            ALPHA,
            &variance,
        ),
        variance_from,
    }
}

impl PlanEstimate {
    fn record(&mut self, model: &Model, role: Role, pair: &RequestPair, times: u64) {
        let expected_input = expected_input_tokens(&pair.expected);
        let estimate = TokenEstimate {
            calls: times,
            input_tokens: expected_input * times,
            output_tokens: u64::from(pair.expected.max_tokens / 2) * times,
            worst_input_tokens: worst_case_input_tokens(&pair.worst) * times,
            worst_output_tokens: u64::from(pair.worst.max_tokens) * times,
        };
        let expected_usage = Usage {
            input_tokens: expected_input,
            output_tokens: u64::from(pair.expected.max_tokens / 2),
            ..Usage::default()
        };
        let costs = |prices: &Prices| {
            (
                prices.cost(&expected_usage) * times as f64,
                worst_case_cost(prices, &pair.worst) * times as f64,
            )
        };
        let (cost, worst) = costs(&model.prices);
        let batch_prices = model.prices.batch();
        let (batch_cost, batch_worst) = costs(batch_prices.as_ref().unwrap_or(&model.prices));
        self.roles.entry(role).or_default().add(&estimate);
        let entry = self.models.entry(model.id.clone()).or_default();
        entry.roles.entry(role).or_default().add(&estimate);
        entry.cost_usd += cost;
        entry.worst_cost_usd += worst;
        entry.batch_cost_usd += batch_cost;
        entry.batch_worst_cost_usd += batch_worst;
        entry.batch_priced = batch_prices.is_some();
        self.cost_usd += cost;
        self.worst_cost_usd += worst;
        self.batch_cost_usd += batch_cost;
        self.batch_worst_cost_usd += batch_worst;
    }
}

/// The same call in the expected and the worst case.
struct RequestPair {
    expected: ConverseRequest,
    worst: ConverseRequest,
}

fn expected_input_tokens(request: &ConverseRequest) -> u64 {
    // About four bytes of text a token; the template's overhead as the worst case counts it.
    let (text_bytes, overhead) = input_size(request);
    text_bytes.div_ceil(BYTES_PER_TOKEN) + overhead
}

/// A transcript of `turns` turns whose replies are `reply_tokens` tokens long.
fn transcript(turns: u32, reply_tokens: u32) -> Vec<Turn> {
    let reply = "word ".repeat(reply_tokens as usize * BYTES_PER_TOKEN as usize / 5);
    let call = CallRecord {
        role: Role::Tutor,
        model: ModelId::new("estimate").unwrap_or_else(|_| unreachable!("a valid id")),
        usage: Usage::default(),
        latency_ms: 0,
        stop_reason: StopReason::EndTurn,
        cached: false,
        batched: false,
    };
    (1..=turns)
        .map(|index| Turn {
            run: RunId::from_ulid(ulid::Ulid::nil()),
            index,
            tutor_text: reply.clone(),
            tutor_call: call.clone(),
            student_text: (index < turns).then(|| reply.clone()),
            student_call: None,
            created_at: Timestamp::from_millis(0),
        })
        .collect()
}

/// Estimates the calls, tokens and cost of `request` against the catalog in `repository`.
pub async fn estimate(
    repository: &Repository,
    request: &ManifestRequest,
) -> Result<PlanEstimate, RepoError> {
    let tutor_prompt: Prompt = repository.require_catalog(&request.tutor_prompt).await?;
    let judge_prompt: Prompt = repository.require_catalog(&request.judge_prompt).await?;
    let rubric: Rubric = repository.require_catalog(&request.rubric).await?;
    let mut scenarios = Vec::with_capacity(request.scenarios.len());
    for id in &request.scenarios {
        scenarios.push(repository.require_catalog::<Scenario>(id).await?);
    }
    let student = match &request.student {
        Some(config) => Some((
            repository.require_catalog::<Model>(&config.model).await?,
            repository.require_catalog::<Prompt>(&config.prompt).await?,
            config.temperature,
        )),
        None => None,
    };
    let mut judges = Vec::with_capacity(request.judges.len());
    for config in &request.judges {
        judges.push((
            repository.require_catalog::<Model>(&config.model).await?,
            config.temperature,
        ));
    }
    let turns = request.turns;
    let cases = [request.max_tokens / 2, request.max_tokens];
    let dialogues: Vec<Vec<Turn>> = cases
        .iter()
        .map(|&reply| transcript(turns, reply))
        .collect();
    let repetitions = u64::from(request.repetitions);
    let sampling = |temperature| Sampling {
        temperature,
        max_tokens: request.max_tokens,
    };

    // A re-judge reuses its dialogues: only the judges are called.
    let new_dialogues = request.rejudge_of.is_none();
    let dialogue_rounds = if new_dialogues {
        turns
            + if student.is_some() {
                turns.saturating_sub(1)
            } else {
                0
            }
    } else {
        0
    };
    let mut plan = PlanEstimate {
        runs: request.run_count(),
        batch_rounds: dialogue_rounds + u32::from(!judges.is_empty()),
        ..PlanEstimate::default()
    };
    for config in &request.tutors {
        let tutor: Model = repository.require_catalog(&config.model).await?;
        for scenario in &scenarios {
            for turn in 1..=turns {
                let before = (turn - 1) as usize;
                let pair = |dialogue: &Vec<Turn>| {
                    tutor_request(
                        &tutor,
                        sampling(config.temperature),
                        &tutor_prompt,
                        scenario,
                        &dialogue[..before],
                    )
                };
                let tutor_pair = RequestPair {
                    expected: pair(&dialogues[0]),
                    worst: pair(&dialogues[1]),
                };
                if new_dialogues {
                    plan.record(&tutor, Role::Tutor, &tutor_pair, repetitions);
                }
                if let Some((model, prompt, temperature)) = &student
                    && new_dialogues
                    && turn < turns
                {
                    let pair = |dialogue: &Vec<Turn>| {
                        student_request(
                            model,
                            sampling(*temperature),
                            prompt,
                            scenario,
                            &dialogue[..before],
                            &dialogue[before].tutor_text,
                        )
                    };
                    let student_pair = RequestPair {
                        expected: pair(&dialogues[0]),
                        worst: pair(&dialogues[1]),
                    };
                    plan.record(model, Role::Student, &student_pair, repetitions);
                }
                for (judge, temperature) in &judges {
                    let pair = |dialogue: &Vec<Turn>| {
                        judge_request(
                            judge,
                            sampling(*temperature),
                            &judge_prompt,
                            &rubric,
                            scenario,
                            dialogue,
                            turn,
                        )
                    };
                    let judge_pair = RequestPair {
                        expected: pair(&dialogues[0]),
                        worst: pair(&dialogues[1]),
                    };
                    plan.record(judge, Role::Judge, &judge_pair, repetitions);
                }
            }
        }
    }
    Ok(plan)
}
