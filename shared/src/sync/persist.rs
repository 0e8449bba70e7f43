//! A chunk's writes after its Pendo call, tried again inside the invocation. The AWS SDK
//! already retries a throttled, failed or timed-out call (`aws_env::aws_retry`); when it gives
//! up, the write is tried again here a few times before the message is handed back to the
//! queue — whose redelivery would call Pendo again for rows already in memory. Every write
//! this wraps is idempotent (a replace, a create-if-absent, a conditional outcome), so a write
//! that did apply before its error is harmless to repeat.

use super::processed::ProcessError;
use crate::queue::QueueError;
use crate::store::StoreError;
use std::future::Future;
use std::time::Duration;

/// Rounds after the first try (0.25 s, 0.5 s, 1 s, 2 s apart: under 4 s of waiting, well
/// inside the 30 s an invocation keeps for its writes, `lambda::BatchConfig`).
pub const ROUNDS: u32 = 4;

/// Errors a later try may not meet: the store or the queue unavailable.
pub trait Transient {
    fn is_transient(&self) -> bool;
}

impl Transient for StoreError {
    fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }
}

impl Transient for QueueError {
    fn is_transient(&self) -> bool {
        matches!(self, QueueError::Unavailable { .. })
    }
}

impl Transient for ProcessError {
    fn is_transient(&self) -> bool {
        match self {
            ProcessError::Retryable(c) => {
                c.downcast_ref::<StoreError>()
                    .is_some_and(Transient::is_transient)
                    || c.downcast_ref::<QueueError>()
                        .is_some_and(Transient::is_transient)
            }
            ProcessError::Permanent(_) => false,
        }
    }
}

/// `f`, tried again up to [`ROUNDS`] times while it fails transiently.
pub async fn again<T, E, F, Fut>(what: &str, f: F) -> Result<T, E>
where
    E: Transient + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    again_after(Duration::from_millis(250), what, f).await
}

/// [`again`] with the first wait `base` (doubling after).
async fn again_after<T, E, F, Fut>(base: Duration, what: &str, mut f: F) -> Result<T, E>
where
    E: Transient + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut round = 0;
    loop {
        match f().await {
            Err(e) if round < ROUNDS && e.is_transient() => {
                round += 1;
                tracing::warn!(what, round, error = %e, "store or queue unavailable; trying again");
                tokio::time::sleep(base * (1 << (round - 1))).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn transient_errors_are_tried_again_and_others_are_not() {
        let calls = AtomicU32::new(0);
        let r: Result<u32, StoreError> = again_after(Duration::from_millis(1), "w", || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 2 {
                Err(StoreError::unavailable("throttled"))
            } else {
                Ok(n)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 2);
        let calls = AtomicU32::new(0);
        let r: Result<(), StoreError> = again_after(Duration::from_millis(1), "w", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::unavailable("down"))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), ROUNDS + 1);
        let calls = AtomicU32::new(0);
        let r: Result<(), StoreError> = again_after(Duration::from_millis(1), "w", || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::Conflict("x".into()))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "a conflict is not retried here"
        );
        let r: Result<(), ProcessError> = again_after(Duration::from_millis(1), "w", || async {
            Err(ProcessError::Permanent("bad".into()))
        })
        .await;
        assert!(r.is_err());
    }
}
