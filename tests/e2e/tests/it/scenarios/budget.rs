//! The request budget every worker calling one Pendo subscription shares (issue 28). Pendo
//! publishes no rate limit, but third parties report 429s with `Retry-After` from a leaky
//! bucket per subscription: the simulator stands for it at 2 requests/s per key. Two workers
//! sync two per-day mappings (a call per day each) through a client that takes each call's
//! token from the budget in the store: Pendo answers no 429. The same run without the budget
//! receives 429s and retries them; both store the same values with the same calls.

use crate::helpers::*;
use pendo_sim::Limits;
use pendo_sync::domain::mapping::PesComponent;
use pendo_sync::domain::*;

const AGG: &str = "/api/v1/aggregation";

/// A Re-sync all of two PES mappings over 6 days against a simulator limiting the key to 2
/// requests/s: (429s answered, aggregation calls answered, the export).
async fn limited_resync(budget: Option<BudgetSettings>) -> (u64, u64, Vec<ExportRow>) {
    let s = Stack::build(
        sim_config(),
        StackOptions {
            budget,
            ..Default::default()
        },
    )
    .await;
    s.ny_days(6).await;
    s.add_companies(&[]).await;
    for (name, c) in [
        ("Score", PesComponent::Score),
        ("Adoption", PesComponent::Adoption),
    ] {
        let source = MappingKind::Pes {
            app_id: -323232,
            components: vec![c],
        };
        s.mapping(source, Target::Company, name, |_| {}).await;
    }
    s.sim
        .control()
        .set_limits(Limits {
            requests_per_second: Some(2.0),
            max_in_flight: None,
        })
        .unwrap();
    let calls_before = s.sim.control().counters().get(AGG).copied().unwrap_or(0);
    s.resync().await;
    let limited: u64 = s.sim.control().rate_limited().values().sum();
    let calls = s.sim.control().counters().get(AGG).copied().unwrap_or(0) - calls_before;
    (limited, calls, s.export().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_sharing_the_budget_receive_no_429() {
    // Our budget: 2 calls/s in bursts of 1, under the simulator's 2/s in bursts of 2 (the
    // margin absorbs the time a call takes to reach it).
    let budget = BudgetSettings {
        rate: 2.0,
        burst: 1.0,
        max_in_flight: 4,
        lease_ms: 60_000,
    };
    let (limited, calls, with_budget) = limited_resync(Some(budget)).await;
    assert_eq!((limited, calls), (0, 12), "6 days of 2 mappings, no 429");
    let (limited, calls, without) = limited_resync(None).await;
    assert!(
        limited > 0,
        "without the budget, the workers outrun the limit"
    );
    assert_eq!(calls, 12, "a 429 is retried, not lost");
    assert!(!with_budget.is_empty());
    assert_eq!(with_budget, without);
}
