//! Backoff policy for transient Pendo faults: exponential with full jitter, `Retry-After`
//! honoured (capped), bounded attempts. Pure, so it is tested without sleeping.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts including the first.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured; longer asks are capped.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// A fast policy for tests against the simulator.
    pub fn fast() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_millis(1500),
        }
    }

    /// The delay before attempt `attempt + 1` (attempt counts from 1), given `jitter` in [0, 1)
    /// and the server's `Retry-After`, or `None` when attempts are exhausted.
    pub fn delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        if let Some(ra) = retry_after {
            return Some(ra.min(self.max_retry_after));
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let cap = exp.min(self.max_delay);
        // Full jitter, but never less than a tenth of the cap so a storm of 429s still spreads.
        let j = jitter.clamp(0.0, 1.0);
        Some(cap.mul_f64(0.1 + 0.9 * j))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_with_cap_and_jitter() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, None, 1.0), Some(Duration::from_millis(500)));
        assert_eq!(p.delay(2, None, 1.0), Some(Duration::from_millis(1000)));
        assert_eq!(p.delay(5, None, 1.0), Some(Duration::from_secs(8)));
        assert_eq!(p.delay(1, None, 0.0), Some(Duration::from_millis(50)));
        let p = RetryPolicy {
            max_attempts: 20,
            ..p
        };
        assert_eq!(p.delay(12, None, 1.0), Some(Duration::from_secs(30)));
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(7)), 0.3),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(900)), 0.3),
            Some(Duration::from_secs(120))
        );
    }

    #[test]
    fn attempts_are_bounded() {
        let p = RetryPolicy::default();
        assert!(p.delay(5, None, 0.5).is_some());
        assert_eq!(p.delay(6, None, 0.5), None);
        assert_eq!(p.delay(6, Some(Duration::from_secs(1)), 0.5), None);
    }
}
