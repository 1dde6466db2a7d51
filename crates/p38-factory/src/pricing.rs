//! What model calls cost: a table of USD per million input and output
//! tokens, with the providers' current models built in, overridable from
//! configuration.
//!
//! A model is looked up by its exact id, else by its id without a dated
//! snapshot suffix (`claude-haiku-4-5-20251001` is priced as
//! `claude-haiku-4-5`, `gpt-4.1-2025-04-14` as `gpt-4.1`), or without
//! `-latest`. Never by a shorter prefix: `gpt-4.1-nano` is not `gpt-4.1`, and
//! `gemini-2.5-flash-lite` is not `gemini-2.5-flash`. A model the table does
//! not know has no price, and [`crate::Factory::generate`] refuses to start
//! with it rather than count its calls as free (which would turn the budget
//! off); configuration then gives its price (`P38_LLM_PRICE_INPUT`,
//! `P38_LLM_PRICE_OUTPUT`; 0 and 0 for a local model).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The price of one model, in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Price {
    /// USD per million prompt tokens.
    pub input_per_mtok: f64,
    /// USD per million answer tokens (thinking tokens included).
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

/// Built-in prices: (model, input, output) in USD per million tokens, the
/// standard (not batch, not cached) rates; prices as published, read
/// 2026-12-01. They change: deployments should set their own rather than
/// trust this table.
const DEFAULTS: &[(&str, f64, f64)] = &[
    // Anthropic
    ("claude-opus-4-1", 15.0, 75.0),
    ("claude-opus-4", 15.0, 75.0),
    ("claude-sonnet-4-5", 3.0, 15.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-haiku-4-5", 1.0, 5.0),
    ("claude-3-5-haiku", 0.80, 4.0),
    // OpenAI
    ("gpt-5", 1.25, 10.0),
    ("gpt-5-mini", 0.25, 2.0),
    ("gpt-5-nano", 0.05, 0.40),
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("gpt-4o", 2.50, 10.0),
    ("gpt-4o-mini", 0.15, 0.60),
    ("o1", 15.0, 60.0),
    ("o3", 2.0, 8.0),
    ("o4-mini", 1.10, 4.40),
    ("o3-mini", 1.10, 4.40),
    // Google; gemini-2.5-pro at its rate for prompts up to 200k tokens.
    ("gemini-2.5-pro", 1.25, 10.0),
    ("gemini-2.5-flash", 0.30, 2.50),
    ("gemini-2.5-flash-lite", 0.10, 0.40),
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

/// The most answer tokens a model accepts as `max_tokens`, for the models
/// whose limit is below the factory's ceiling (as published, read
/// 2026-12-01); `None`: the ceiling applies. Matched like prices: exactly
/// or by a dated suffix.
pub fn max_output_tokens(model: &str) -> Option<u32> {
    const LIMITS: &[(&str, u32)] = &[
        ("claude-3-5-haiku", 8192),
        ("gpt-4o", 16384),
        ("gpt-4o-mini", 16384),
    ];
    let find = |m: &str| LIMITS.iter().find(|(name, _)| *name == m).map(|(_, l)| *l);
    find(model).or_else(|| undated(model).and_then(find))
}

/// `model` without a dated snapshot suffix (`-20251001`, `-2025-04-14`) or
/// `-latest`, when it has one.
fn undated(model: &str) -> Option<&str> {
    if let Some(base) = model.strip_suffix("-latest") {
        return Some(base);
    }
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // -YYYYMMDD
    if let Some((base, date)) = model.rsplit_once('-')
        && date.len() == 8
        && all_digits(date)
    {
        return Some(base);
    }
    // -YYYY-MM-DD
    let mut parts = model.rsplitn(4, '-');
    let (d, m, y, base) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (y.len() == 4
        && m.len() == 2
        && d.len() == 2
        && all_digits(y)
        && all_digits(m)
        && all_digits(d))
    .then_some(base)
}

impl Prices {
    /// An empty table: no model has a price.
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

    /// The price of `model`: its exact id, else its id without a dated
    /// suffix; `None` when the table does not know it.
    pub fn get(&self, model: &str) -> Option<Price> {
        if let Some(p) = self.table.get(model) {
            return Some(*p);
        }
        undated(model).and_then(|base| self.table.get(base).copied())
    }

    /// The cost in USD of one call, `None` for a model without a price.
    pub fn cost(&self, model: &str, input_tokens: u64, output_tokens: u64) -> Option<f64> {
        self.get(model).map(|p| {
            (input_tokens as f64 * p.input_per_mtok + output_tokens as f64 * p.output_per_mtok)
                / 1_000_000.0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input_price(p: &Prices, model: &str) -> Option<f64> {
        p.get(model).map(|p| p.input_per_mtok)
    }

    #[test]
    fn output_limits_below_the_ceiling_are_known() {
        assert_eq!(max_output_tokens("claude-3-5-haiku"), Some(8192));
        assert_eq!(max_output_tokens("claude-3-5-haiku-20241022"), Some(8192));
        assert_eq!(max_output_tokens("claude-3-5-haiku-x"), None);
        assert_eq!(max_output_tokens("claude-sonnet-4-5"), None);
    }

    #[test]
    fn costs() {
        let p = Prices::default();
        let c = p.cost("claude-sonnet-4-5", 1_000_000, 100_000).unwrap();
        assert!((c - 4.5).abs() < 1e-9);
        assert_eq!(p.cost("llama3.1", 1_000_000, 1_000_000), None);
        let p = Prices::with_overrides([("llama3.1".to_string(), Price::new(1.0, 1.0))]);
        assert!((p.cost("llama3.1", 500_000, 500_000).unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn dated_snapshots_are_priced_as_their_model() {
        let p = Prices::default();
        for (dated, base) in [
            ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
            ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
            ("claude-opus-4-1-20250805", "claude-opus-4-1"),
            ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
            ("gpt-4.1-2025-04-14", "gpt-4.1"),
            ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
            ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
            ("o3-2025-04-16", "o3"),
        ] {
            assert_eq!(p.get(dated), p.get(base), "{dated}");
            assert!(p.get(dated).is_some(), "{dated}");
        }
    }

    #[test]
    fn a_longer_model_is_never_priced_as_its_prefix() {
        let p = Prices::default();
        assert_eq!(input_price(&p, "gpt-4.1-nano"), Some(0.10));
        assert_eq!(input_price(&p, "gpt-4.1-mini"), Some(0.40));
        assert_eq!(input_price(&p, "gpt-4.1"), Some(2.0));
        assert_eq!(input_price(&p, "gemini-2.5-flash-lite"), Some(0.10));
        assert_eq!(input_price(&p, "gemini-2.5-flash"), Some(0.30));
        assert_eq!(input_price(&p, "gpt-5-nano"), Some(0.05));
        assert_eq!(input_price(&p, "o3-mini"), Some(1.10));
        assert_eq!(input_price(&p, "o3"), Some(2.0));
        // Unknown relatives of known models have no price at all.
        for m in [
            "gpt-4.1-turbo",
            "gemini-2.5-flash-lite-preview",
            "gpt-4o-audio-preview",
            "o1-pro",
            "claude-sonnet-4-5-x",
            "gpt-4.1-2025-4-14",
        ] {
            assert_eq!(p.get(m), None, "{m}");
        }
    }

    #[test]
    fn the_table_has_the_published_prices() {
        let p = Prices::default();
        for (m, i, o) in [
            ("claude-opus-4-1", 15.0, 75.0),
            ("claude-opus-4", 15.0, 75.0),
            ("claude-haiku-4-5", 1.0, 5.0),
            ("claude-3-5-haiku", 0.80, 4.0),
            ("gpt-5", 1.25, 10.0),
            ("gpt-5-mini", 0.25, 2.0),
            ("o1", 15.0, 60.0),
            ("o4-mini", 1.10, 4.40),
            ("gemini-2.5-pro", 1.25, 10.0),
            ("gemini-2.5-flash-lite", 0.10, 0.40),
        ] {
            assert_eq!(p.get(m), Some(Price::new(i, o)), "{m}");
        }
    }
}
