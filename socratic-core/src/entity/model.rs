use serde::{Deserialize, Serialize};

use super::validation::{Problems, Validate, require_text};
use crate::id::ModelId;
use crate::llm::Prices;

/// A model that can play tutor, student or judge (the MODEL entity). Immutable once stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Catalog id, e.g. `claude-sonnet-4`.
    pub id: ModelId,
    /// Which [`LlmClient`](crate::llm::LlmClient) serves it, e.g. `bedrock` or `simulated`.
    pub provider: String,
    /// The provider's own id, e.g. `anthropic.claude-sonnet-4-20250514-v1:0`.
    pub provider_model_id: String,
    /// Display name.
    pub name: String,
    /// Prices per million tokens.
    pub prices: Prices,
    /// Whether new manifests may use it.
    #[serde(default = "default_true")]
    pub active: bool,
    /// Free-form tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

fn default_true() -> bool {
    true
}

impl Validate for Model {
    fn validate(&self) -> Result<(), Problems> {
        let mut problems = Problems::new();
        require_text(&mut problems, "provider", &self.provider);
        require_text(&mut problems, "provider_model_id", &self.provider_model_id);
        require_text(&mut problems, "name", &self.name);
        for (field, price) in [
            ("prices.input", self.prices.input),
            ("prices.output", self.prices.output),
            ("prices.cache_read", self.prices.cache_read),
            ("prices.cache_write", self.prices.cache_write),
        ] {
            problems.check(
                price.is_finite() && price >= 0.0,
                field,
                "must be a finite price >= 0",
            );
        }
        for (field, price) in [
            ("prices.batch_input", self.prices.batch_input),
            ("prices.batch_output", self.prices.batch_output),
        ] {
            problems.check(
                price.is_none_or(|p| p.is_finite() && p >= 0.0),
                field,
                "must be a finite price >= 0",
            );
        }
        problems.check(
            self.prices.batch_input.is_some() == self.prices.batch_output.is_some(),
            "prices.batch_input",
            "batch prices come in pairs: set both batch_input and batch_output, or neither",
        );
        problems.into_result()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Usage;

    #[test]
    fn cost_is_priced_per_million_tokens() {
        let prices = Prices {
            input: 3.0,
            output: 15.0,
            cache_read: 0.3,
            cache_write: 3.75,
            ..Prices::default()
        };
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cache_read_tokens: 2_000_000,
            cache_write_tokens: 0,
        };
        // 3.00 + 1.50 + 0.60
        assert!((prices.cost(&usage) - 5.1).abs() < 1e-12);
    }

    #[test]
    fn batch_prices_discount_cache_prices_alike() {
        let live = Prices {
            input: 3.0,
            output: 15.0,
            cache_read: 0.3,
            cache_write: 3.75,
            batch_input: Some(1.5),
            batch_output: Some(7.5),
        };
        let batch = live.batch().expect("both batch prices set");
        assert_eq!((batch.input, batch.output), (1.5, 7.5));
        assert!((batch.cache_read - 0.15).abs() < 1e-12);
        assert!((batch.cache_write - 1.875).abs() < 1e-12);
        let half = Prices {
            batch_output: None,
            ..live
        };
        assert_eq!(half.batch(), None);
    }

    #[test]
    fn a_lone_batch_price_is_refused() {
        let model = Model {
            id: ModelId::new("m").expect("valid id"),
            provider: "openai".into(),
            provider_model_id: "m".into(),
            name: "m".into(),
            prices: Prices {
                input: 1.0,
                output: 2.0,
                batch_input: Some(0.5),
                ..Prices::default()
            },
            active: true,
            tags: Vec::new(),
        };
        let problems = model.validate().expect_err("batch_output missing");
        assert!(
            problems.to_string().contains("batch prices come in pairs"),
            "{problems}"
        );
    }
}
