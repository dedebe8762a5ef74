//! Cost: a price table (`data/prices.toml`, embedded) and per-model overrides from the
//! pipeline turn token usage into US dollars.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::Usage;
use super::{ModelId, Price};

/// A model's prices per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    pub input: f64,
    pub output: f64,
    /// Defaults to the input price.
    pub cached_input: Option<f64>,
}

impl Rates {
    pub fn from_price(price: &Price) -> Rates {
        Rates {
            input: price.input_per_mtok,
            output: price.output_per_mtok,
            cached_input: price.cached_input_per_mtok,
        }
    }

    /// What `usage` costs in US dollars.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let cached = usage.cached_tokens.min(usage.input_tokens) as f64;
        let fresh = usage.input_tokens as f64 - cached;
        (fresh * self.input
            + cached * self.cached_input.unwrap_or(self.input)
            + usage.output_tokens as f64 * self.output)
            / 1_000_000.0
    }
}

type Table = BTreeMap<String, BTreeMap<String, Rates>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| {
        toml::from_str(include_str!("../../data/prices.toml")).expect("the price table parses")
    })
}

/// The model's rates: the pipeline's `price` if given, else the table's longest matching
/// entry; `None` when neither knows the model (its cost is then unknown, not zero).
pub fn rates(id: &ModelId, price: Option<&Price>) -> Option<Rates> {
    if let Some(price) = price {
        return Some(Rates::from_price(price));
    }
    let entries = table().get(id.provider.name())?;
    let model = id.model.rsplit('/').next().unwrap_or(&id.model);
    entries
        .iter()
        .filter(|(prefix, _)| model.starts_with(prefix.as_str()))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, rates)| *rates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_wins() {
        let mini = rates(&ModelId::parse("gpt-4.1-mini-2025-04-14").unwrap(), None).unwrap();
        assert_eq!(mini.input, 0.40);
        let full = rates(&ModelId::parse("openai/gpt-4.1").unwrap(), None).unwrap();
        assert_eq!(full.input, 2.0);
        assert!(rates(&ModelId::parse("openai/my-local-llama").unwrap(), None).is_none());
    }

    #[test]
    fn cost_counts_cached_input_at_its_own_price() {
        let sonnet = rates(&ModelId::parse("claude-sonnet-4-20250514").unwrap(), None).unwrap();
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cached_tokens: 500_000,
        };
        // 0.5M fresh × $3 + 0.5M cached × $0.30 + 0.1M output × $15
        assert!((sonnet.cost(&usage) - (1.5 + 0.15 + 1.5)).abs() < 1e-9);
    }

    #[test]
    fn a_pipeline_price_overrides_the_table() {
        let price = Price {
            input_per_mtok: 1.0,
            output_per_mtok: 2.0,
            cached_input_per_mtok: None,
        };
        let id = ModelId::parse("claude-sonnet-4-20250514").unwrap();
        assert_eq!(rates(&id, Some(&price)).unwrap().input, 1.0);
    }
}
