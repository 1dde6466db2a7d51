//! The factory's error: what stops `generate` before it can produce a
//! [`crate::Generation`]. A failed generation (budget, iterations, provider
//! refusal) is not an error but a `Generation` with a `Failed` outcome, so
//! that the iterations already paid for are kept.

/// Why the factory could not even start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FactoryError {
    /// The description is empty or too long.
    #[error("{0}")]
    InvalidDescription(String),
    /// A built-in prompt template failed to parse or render (a bug).
    #[error("prompt template error: {0}")]
    Template(String),
    /// The model has no price, so the budget could not be kept: its calls
    /// would count as free.
    #[error(
        "the model {model:?} has no price in the built-in table, so the budget cannot be kept; \
         set P38_LLM_PRICE_INPUT and P38_LLM_PRICE_OUTPUT (--llm-price-input, --llm-price-output: \
         USD per million tokens, 0 and 0 for a local model)"
    )]
    UnpricedModel {
        /// The configured model.
        model: String,
    },
}

impl From<FactoryError> for p38_core::Error {
    fn from(e: FactoryError) -> Self {
        match e {
            FactoryError::InvalidDescription(m) => p38_core::Error::validation("description", m),
            FactoryError::Template(m) => p38_core::Error::internal(m),
            e @ FactoryError::UnpricedModel { .. } => p38_core::Error::unavailable(e.to_string()),
        }
    }
}
