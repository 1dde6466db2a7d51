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
}

impl From<FactoryError> for p38_core::Error {
    fn from(e: FactoryError) -> Self {
        match e {
            FactoryError::InvalidDescription(m) => p38_core::Error::validation("description", m),
            FactoryError::Template(m) => p38_core::Error::internal(m),
        }
    }
}
