//! The store contract, Pendo subscriptions' request budgets: a versioned compare-and-set
//! under the rules of `domain/budget.rs` (see `contract.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::{Store, StoreError};
use crate::domain::{Answer, BudgetSettings, Take};

fn settings(burst: f64) -> BudgetSettings {
    BudgetSettings {
        rate: 2.0,
        burst,
        max_in_flight: 8,
        lease_ms: 60_000,
    }
}

/// A subscription's budget grants its burst, then says how long to wait without writing; each
/// grant and each settle is one write.
pub async fn a_budget_grants_its_burst_then_waits_without_writing(s: &dyn Store) {
    let set = settings(2.0);
    assert_eq!(s.read_budget("sub-a").await.unwrap(), (None, 0));
    let t1 = s.take_budget("sub-a", &set, 0).await.unwrap();
    let t2 = s.take_budget("sub-a", &set, 0).await.unwrap();
    assert_eq!(
        t1,
        Take::Granted {
            lease_until_ms: 60_000
        }
    );
    assert_eq!(
        t2,
        Take::Granted {
            lease_until_ms: 60_000
        }
    );
    let t3 = s.take_budget("sub-a", &set, 0).await.unwrap();
    assert_eq!(t3, Take::Wait { ms: 500 });
    let (b, version) = s.read_budget("sub-a").await.unwrap();
    assert_eq!(version, 2, "the wait wrote nothing");
    assert_eq!(b.unwrap().in_flight, vec![60_000, 60_000]);
    s.settle_budget("sub-a", &set, 100, 60_000, Answer::Answered)
        .await
        .unwrap();
    let (b, version) = s.read_budget("sub-a").await.unwrap();
    assert_eq!((version, b.unwrap().in_flight), (3, vec![60_000]));
}

/// Callers taking at the same moment never spend one token twice: of six concurrent takes on a
/// burst of three, exactly three are granted (each write is conditional on the version read).
pub async fn concurrent_takes_never_spend_one_token_twice(s: &dyn Store) {
    let set = settings(3.0);
    let takes = (0..6).map(|_| s.take_budget("sub-b", &set, 1_000));
    let got = futures_util::future::join_all(takes).await;
    let granted = got
        .iter()
        .filter(|t| matches!(t, Ok(Take::Granted { .. })))
        .count();
    let waits = got
        .iter()
        .filter(|t| matches!(t, Ok(Take::Wait { ms: 500 })))
        .count();
    assert_eq!((granted, waits), (3, 3), "{got:?}");
    let (b, version) = s.read_budget("sub-b").await.unwrap();
    assert_eq!((version, b.unwrap().in_flight.len()), (3, 3));
}

/// A 429 stops every caller of that subscription until its Retry-After, and no other
/// subscription (one tenant never takes another's budget).
pub async fn a_429_stops_that_subscription_only(s: &dyn Store) {
    let set = settings(2.0);
    let Take::Granted { lease_until_ms } = s.take_budget("sub-c", &set, 0).await.unwrap() else {
        panic!("a fresh budget grants");
    };
    let throttled = Answer::Throttled {
        retry_after_ms: Some(3_000),
    };
    s.settle_budget("sub-c", &set, 100, lease_until_ms, throttled)
        .await
        .unwrap();
    assert_eq!(
        s.take_budget("sub-c", &set, 1_000).await.unwrap(),
        Take::Wait { ms: 2_100 }
    );
    assert_eq!(
        s.take_budget("sub-d", &set, 1_000).await.unwrap(),
        Take::Granted {
            lease_until_ms: 61_000
        }
    );
    let (b, _) = s.read_budget("sub-c").await.unwrap();
    assert_eq!(b.unwrap().rate, 1.0, "the 429 halved the rate");
}

/// A write at a version that is no longer stored is a conflict and changes nothing.
pub async fn a_budget_written_at_a_stale_version_is_a_conflict(s: &dyn Store) {
    let set = settings(2.0);
    let first = crate::domain::Budget::fresh(&set, 5);
    s.write_budget("sub-e", &first, 0).await.unwrap();
    let other = crate::domain::Budget::fresh(&set, 9);
    for stale in [0, 2] {
        match s.write_budget("sub-e", &other, stale).await {
            Err(StoreError::Conflict(_)) => {}
            other => panic!("a write at version {stale} over version 1: {other:?}"),
        }
    }
    assert_eq!(s.read_budget("sub-e").await.unwrap(), (Some(first), 1));
}
