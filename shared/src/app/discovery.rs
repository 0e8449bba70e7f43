//! Discovery: what Pendo lists for the tenant's connection (pages, features, segments, saved
//! reports), for the page's pickers and the demo.

use super::{App, AppError};
use crate::domain::{Connection, TenantId};
use crate::pendo::reports::{classify, ReportInfo};
use crate::pendo::ObjectList;
use serde_json::Value;

impl App {
    /// Pendo's objects of one kind, as it lists them; `NotConnected` without an active
    /// connection.
    pub async fn pendo_objects(
        &self,
        t: &TenantId,
        what: ObjectList,
    ) -> Result<Vec<Value>, AppError> {
        let conn = self.active_connection(t).await?;
        Ok(self.ports.pendo.list(&conn, what).await?)
    }

    /// The tenant's Pendo connection; `NotConnected` when it has none active.
    async fn active_connection(&self, t: &TenantId) -> Result<Connection, AppError> {
        let i = self.integration(t).await?;
        super::active_connection(&i).cloned()
    }

    /// The subscription's apps with their names, as Pendo lists them.
    pub async fn pendo_apps(
        &self,
        t: &TenantId,
    ) -> Result<Vec<crate::sync::references::PendoApp>, AppError> {
        let conn = self.active_connection(t).await?;
        Ok(crate::sync::references::list_apps(&self.ports, &conn).await?)
    }

    /// The saved reports, each classified (compatible with its numeric columns, or refused with
    /// the reason).
    pub async fn report_catalog(&self, t: &TenantId) -> Result<Vec<ReportInfo>, AppError> {
        Ok(self
            .pendo_objects(t, ObjectList::Reports)
            .await?
            .iter()
            .map(classify)
            .collect())
    }
}
