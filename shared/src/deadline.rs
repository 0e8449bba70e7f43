//! The time an invocation has left for its Pendo calls. A Lambda invocation has a deadline
//! (`Lambda-Runtime-Deadline-Ms`); past it, the function is stopped mid-work and nothing it
//! was doing is reported. The batch handler runs each record [`within`] the time its Pendo
//! calls may take (the deadline less what the chunk needs after its call to write and record);
//! the Pendo client bounds each attempt by it and gives up a retry whose wait would outlast
//! it, with a retryable timeout, so the chunk is handed back to the queue on time instead of
//! being cut off. Outside such a scope (the local runner) nothing is bounded here.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

tokio::task_local! {
    static CALLS_END: Instant;
}

/// Runs `f` with Pendo calls bounded to end by `calls_end`.
pub async fn within<F: Future>(calls_end: Instant, f: F) -> F::Output {
    CALLS_END.scope(calls_end, f).await
}

/// The time left for Pendo calls, when bounded.
pub fn left() -> Option<Duration> {
    CALLS_END
        .try_with(|end| end.saturating_duration_since(Instant::now()))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn time_is_left_only_inside_a_scope_and_shrinks() {
        assert_eq!(left(), None);
        let end = Instant::now() + Duration::from_secs(60);
        within(end, async {
            let l = left().unwrap();
            assert!(l <= Duration::from_secs(60) && l > Duration::from_secs(59));
        })
        .await;
        within(Instant::now(), async {
            assert_eq!(left(), Some(Duration::ZERO));
        })
        .await;
    }
}
