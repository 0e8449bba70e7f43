//! The one retry-on-conflict loop: the integration is written with a version (a write from an
//! older read is refused as a conflict), so a change reads it, edits it and writes it, and on a
//! conflict reads it again and retries.

use super::{Store, StoreError};
use crate::domain::{Integration, TenantId};

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
