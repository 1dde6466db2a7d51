//! Retries of transient provider failures with exponential backoff and
//! jitter. Refusals (`Auth`, `Request`) and malformed answers are returned at
//! once: asking again would fail the same way and cost money.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;

use super::{ChatRequest, ChatResponse, LlmProvider, ProviderError};

/// When and how long to wait between attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (default 4).
    pub max_attempts: u32,
    /// Wait before the second attempt; doubles after each (default 1 s).
    pub base_delay: Duration,
    /// Upper bound of a computed backoff (default 30 s).
    pub max_delay: Duration,
    /// Upper bound on a provider's `Retry-After` hint (default 60 s).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based) with `err`.
    ///
    /// A `Retry-After` hint is honoured up to `max_retry_after`; otherwise
    /// the wait is `base * 2^(attempt-1)`, capped at `max_delay`, of which a
    /// random half is taken away ("equal jitter") so that many clients hit by
    /// the same outage do not come back in step.
    pub fn delay(&self, attempt: u32, err: &ProviderError) -> Duration {
        if let ProviderError::RateLimited {
            retry_after: Some(hint),
        } = err
        {
            return (*hint).min(self.max_retry_after);
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        let capped = exp.min(self.max_delay);
        let half = capped / 2;
        let jitter = rand::rng().random_range(0.0..=1.0);
        half + half.mul_f64(jitter)
    }
}

/// Wraps a provider and retries its transient failures.
#[derive(Clone)]
pub struct RetryingProvider {
    inner: Arc<dyn LlmProvider>,
    policy: RetryPolicy,
}

impl std::fmt::Debug for RetryingProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryingProvider")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .finish()
    }
}

impl RetryingProvider {
    /// Wraps `inner` with `policy`.
    pub fn new(inner: Arc<dyn LlmProvider>, policy: RetryPolicy) -> Self {
        RetryingProvider { inner, policy }
    }

    /// The policy in force.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

#[async_trait]
impl LlmProvider for RetryingProvider {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn model(&self) -> &str {
        self.inner.model()
    }

    async fn complete(&self, req: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let mut attempt = 1;
        loop {
            match self.inner.complete(req).await {
                Ok(resp) => return Ok(resp),
                Err(e) if e.is_retryable() && attempt < self.policy.max_attempts.max(1) => {
                    let wait = self.policy.delay(attempt, &e);
                    tracing::warn!(
                        provider = self.inner.name(),
                        model = self.inner.model(),
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        error = %e,
                        "LLM call failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_honour_hints() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
            max_retry_after: Duration::from_secs(2),
            ..Default::default()
        };
        let d1 = p.delay(1, &ProviderError::Timeout);
        assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
        let d3 = p.delay(3, &ProviderError::Timeout);
        assert!(d3 >= Duration::from_millis(150) && d3 <= Duration::from_millis(300));
        let hint = ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(10)),
        };
        assert_eq!(p.delay(1, &hint), Duration::from_secs(2));
    }
}
