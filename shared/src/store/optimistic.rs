//! The retry-on-conflict loops of the items written with a version (a write from an older read
//! is refused as a conflict): the integration, and a Pendo subscription's request budget. A
//! change reads the item, edits it and writes it, and on a conflict reads it again and retries.

use super::{BudgetStore, Store, StoreError};
use crate::domain::{Budget, BudgetSettings, Integration, TenantId};

/// Attempts before a change that keeps meeting concurrent writes gives up.
pub const ATTEMPTS: usize = 5;

/// Reads the tenant's integration, gives it to `start` (`None` when none is stored: `start`
/// returns the integration to begin from, or why not), lets `change` edit it (or refuse), and
/// writes it unless someone wrote it since the read; on such a conflict it starts over, up to
/// [`ATTEMPTS`] times. Returns the written integration with its new version, or `None` when
/// every attempt met a conflict.
pub async fn update_integration<E>(
    store: &dyn Store,
    t: &TenantId,
    mut start: impl FnMut(Option<Integration>) -> Result<Integration, E>,
    mut change: impl FnMut(&mut Integration) -> Result<(), E>,
) -> Result<Option<Integration>, E>
where
    E: From<StoreError>,
{
    for _ in 0..ATTEMPTS {
        let mut i = start(store.get_integration(t).await?)?;
        change(&mut i)?;
        match store.put_integration(&i).await {
            Ok(version) => {
                i.version = version;
                return Ok(Some(i));
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// Compare-and-set attempts of a budget change before it gives up (each conflict means another
/// worker changed the budget in between: it is re-read and the change applied again).
pub const BUDGET_ATTEMPTS: usize = 32;

/// Applies `change` to the subscription's budget (a fresh one when none is stored) and writes
/// what it returns, if anything, with a compare-and-set; again on each conflict, up to
/// [`BUDGET_ATTEMPTS`] times (`what` names the change in the error after the last).
pub(super) async fn update_budget<S: BudgetStore + ?Sized, R>(
    store: &S,
    subscription: &str,
    s: &BudgetSettings,
    now_ms: i64,
    what: &str,
    change: impl Fn(Budget) -> (Option<Budget>, R) + Send + Sync,
) -> Result<R, StoreError> {
    for _ in 0..BUDGET_ATTEMPTS {
        let (stored, version) = store.read_budget(subscription).await?;
        let (next, out) = change(stored.unwrap_or_else(|| Budget::fresh(s, now_ms)));
        let Some(next) = next else {
            return Ok(out);
        };
        match store.write_budget(subscription, &next, version).await {
            Err(StoreError::Conflict(_)) => continue,
            written => return written.map(|()| out),
        }
    }
    Err(StoreError::Conflict(format!(
        "the request budget changed {BUDGET_ATTEMPTS} times while {what}"
    )))
}
