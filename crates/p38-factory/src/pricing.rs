//! What model calls cost: a table of USD per million input and output
//! tokens, with defaults for the providers' default models, overridable from
//! configuration.
//!
//! Prices are list prices as published by the providers in 2025; they change,
//! so deployments should override them from configuration rather than trust
//! this table. A model is looked up by exact name first, then by the longest
//! table entry that prefixes it (so `claude-sonnet-4-5-20250929` is priced as
//! `claude-sonnet-4-5`). Unknown models (a local Ollama model) cost nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The price of one model, in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// USD per million prompt tokens.
    pub input_per_mtok: f64,
    /// USD per million answer tokens.
    pub output_per_mtok: f64,
}

impl Price {
    /// A price from its two rates.
    pub const fn new(input_per_mtok: f64, output_per_mtok: f64) -> Self {
        Price {
            input_per_mtok,
            output_per_mtok,
        }
    }
}

/// Built-in prices: (model, input, output) in USD per million tokens.
const DEFAULTS: &[(&str, f64, f64)] = &[
    ("claude-sonnet-4-5", 3.0, 15.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-opus-4-1", 15.0, 75.0),
    ("claude-haiku-4-5", 1.0, 5.0),
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4.1-mini", 0.4, 1.6),
    ("gpt-4o", 2.5, 10.0),
    ("gpt-4o-mini", 0.15, 0.6),
    ("gemini-2.5-flash", 0.30, 2.50),
    ("gemini-2.5-pro", 1.25, 10.0),
];

/// A price table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    table: BTreeMap<String, Price>,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            table: DEFAULTS
                .iter()
                .map(|(m, i, o)| (m.to_string(), Price::new(*i, *o)))
                .collect(),
        }
    }
}

impl Prices {
    /// An empty table: every model is free.
    pub fn empty() -> Self {
        Prices {
            table: BTreeMap::new(),
        }
    }

    /// The defaults with `overrides` laid over them (from configuration).
    pub fn with_overrides(overrides: impl IntoIterator<Item = (String, Price)>) -> Self {
        let mut p = Prices::default();
        p.table.extend(overrides);
        p
    }

    /// Sets the price of one model.
    pub fn set(&mut self, model: impl Into<String>, price: Price) {
        self.table.insert(model.into(), price);
    }

    /// The price of `model`: exact match, else the longest prefix entry.
    pub fn get(&self, model: &str) -> Option<Price> {
        if let Some(p) = self.table.get(model) {
            return Some(*p);
        }
        self.table
            .iter()
            .filter(|(name, _)| model.starts_with(name.as_str()))
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| *p)
    }

    /// The cost in USD of one call; zero for an unknown model.
    pub fn cost(&self, model: &str, input_tokens: u64, output_tokens: u64) -> f64 {
        self.get(model).map_or(0.0, |p| {
            (input_tokens as f64 * p.input_per_mtok + output_tokens as f64 * p.output_per_mtok)
                / 1_000_000.0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs() {
        let p = Prices::default();
        let c = p.cost("claude-sonnet-4-5", 1_000_000, 100_000);
        assert!((c - 4.5).abs() < 1e-9);
        // A dated snapshot is priced as its family.
        assert_eq!(
            p.cost("claude-sonnet-4-5-20250929", 1000, 0),
            p.cost("claude-sonnet-4-5", 1000, 0)
        );
        // gpt-4.1-mini is not priced as gpt-4.1.
        assert!((p.cost("gpt-4.1-mini", 1_000_000, 0) - 0.4).abs() < 1e-9);
        assert_eq!(p.cost("llama3.1", 1_000_000, 1_000_000), 0.0);
        let p = Prices::with_overrides([("llama3.1".to_string(), Price::new(1.0, 1.0))]);
        assert!((p.cost("llama3.1", 500_000, 500_000) - 1.0).abs() < 1e-9);
    }
}
