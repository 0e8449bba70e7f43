//! Reads of one object's data (DESIGN §1 "read metrics"): its metrics, one series, its recent
//! activity (its system metrics are in `app.rs`, under the same rule). An object the caller's tenant neither has in its directory nor
//! holds values or activity for is `NotFound`, like anything else outside the tenant (an empty
//! answer would hide a typo in the id, and another tenant's id reads the same as a made-up one).

use crate::app::{App, AppError};
use crate::domain::{Activity, ExportRow, ObjectRef, SyncedRange, Target, TenantId};
use crate::error::ValidationError;
use crate::store::{ActivityOf, MetricInfo, SeriesPoint};
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

/// Earliest day looked at to learn whether an object has any activity at all.
const ACTIVITY_FLOOR: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => NaiveDate::MIN,
};

/// A metric present on an object, with the mapping that writes it and the days it synced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMetric {
    pub metric: String,
    /// The app of a per-app (multi-app) metric; empty otherwise.
    pub app: String,
    /// The name of the mapping that writes it; `None` when no mapping writes it any more.
    pub mapping: Option<String>,
    /// The days that mapping has synced (inclusive): a day in between without a value had no
    /// events (0); a day outside was not synced. `None` before its first sync from scratch.
    pub synced_from: Option<NaiveDate>,
    pub synced_to: Option<NaiveDate>,
}

/// System metrics of an end user or a company.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemMetrics {
    pub last_seen: Option<NaiveDate>,
    pub last_active: Option<NaiveDate>,
    pub users_active_last_7_days: Option<u64>,
}

impl App {
    /// Last seen / last active of an end user (non-passive activity only), or a company's users
    /// active in the 7 days ending on the last complete day. `NotFound` for an object the tenant
    /// does not know (see [`App::require_object`]).
    pub async fn system_metrics(
        &self,
        t: &TenantId,
        object: &ObjectRef,
    ) -> Result<SystemMetrics, AppError> {
        let i = self.integration(t).await?;
        self.require_object(t, object).await?;
        let last = crate::time::last_complete_day(
            self.ports.clock.now(),
            i.settings.timezone.map(|z| z.0),
        );
        let store = &self.ports.store;
        match object.kind {
            Target::EndUser => {
                let acts = store
                    .recent_activity(
                        t,
                        &ActivityOf::EndUser(object.id.clone()),
                        last - Duration::days(400),
                        100_000,
                    )
                    .await?;
                let active = acts.iter().filter(|a| !a.passive);
                Ok(SystemMetrics {
                    last_seen: active.clone().map(|a| a.day).max(),
                    last_active: active.filter(|a| a.minutes > 0.0).map(|a| a.day).max(),
                    users_active_last_7_days: None,
                })
            }
            Target::Company => {
                let from = last - Duration::days(6);
                let acts = store
                    .recent_activity(t, &ActivityOf::Company(object.id.clone()), from, 1_000_000)
                    .await?;
                let users: std::collections::BTreeSet<&str> = acts
                    .iter()
                    .filter(|a| !a.passive && a.day <= last)
                    .map(|a| a.end_user_id.as_str())
                    .collect();
                Ok(SystemMetrics {
                    users_active_last_7_days: Some(users.len() as u64),
                    ..Default::default()
                })
            }
            _ => Ok(SystemMetrics::default()),
        }
    }

    /// `NotFound` unless the tenant knows the object: it has stored values or activity for it,
    /// or the object is in its directory (companies, assets and projects by external id, end
    /// users by the service's id).
    ///
    /// # Errors
    /// `NotFound`, or the store's error.
    pub async fn require_object(&self, t: &TenantId, object: &ObjectRef) -> Result<(), AppError> {
        if self.knows_object(t, object).await? {
            Ok(())
        } else {
            Err(AppError::NotFound {
                what: object.kind.as_str(),
                id: object.id.clone(),
            })
        }
    }

    async fn knows_object(&self, t: &TenantId, object: &ObjectRef) -> Result<bool, AppError> {
        let store = &self.ports.store;
        if !store.list_metrics(t, object).await?.is_empty() {
            return Ok(true);
        }
        if let Some(of) = activity_of(object) {
            if !store
                .recent_activity(t, &of, ACTIVITY_FLOOR, 1)
                .await?
                .is_empty()
            {
                return Ok(true);
            }
        }
        Ok(match object.kind {
            Target::EndUser => store
                .list_end_users(t)
                .await?
                .iter()
                .any(|u| u.id == object.id),
            kind => store
                .list_objects(t, kind)
                .await?
                .iter()
                .any(|o| o.external_id == object.id),
        })
    }

    /// Every stored value and activity record of the tenant (or of every tenant), for an
    /// export.
    pub async fn export(&self, t: Option<&TenantId>) -> Result<Vec<ExportRow>, AppError> {
        Ok(self.ports.store.export(t).await?)
    }

    /// The metrics present on an object (with the app of per-app metrics), each with the
    /// mapping that writes it and the days that mapping has synced.
    ///
    /// # Errors
    /// `NotFound` for an object the tenant does not know.
    pub async fn object_metrics(
        &self,
        t: &TenantId,
        object: &ObjectRef,
    ) -> Result<Vec<ObjectMetric>, AppError> {
        let store = &self.ports.store;
        let metrics = store.list_metrics(t, object).await?;
        if metrics.is_empty() {
            self.require_object(t, object).await?;
            return Ok(Vec::new());
        }
        let gens = store.get_integration(t).await?.map(|i| i.generations());
        let mappings: Vec<_> = store
            .list_mappings(t)
            .await?
            .into_iter()
            .filter(|m| m.target == object.kind)
            .collect();
        let mut out = Vec::with_capacity(metrics.len());
        let mut states = std::collections::HashMap::new();
        for MetricInfo { metric, app } in metrics {
            let m = mappings
                .iter()
                .find(|m| crate::domain::mapping::writes_metric(m, &metric, !app.is_empty()));
            let mut range = (None, None);
            if let Some(m) = m {
                if !states.contains_key(&m.id) {
                    let st = store.get_mapping_state(t, &m.id).await?;
                    states.insert(m.id.clone(), st);
                }
                let shown = states
                    .get(&m.id)
                    .and_then(|st| st.as_ref().zip(gens.as_ref()))
                    .and_then(|(st, g)| st.range_in(g.shows(&m.id)));
                if let Some(SyncedRange {
                    from: Some(from),
                    to: Some(to),
                    ..
                }) = shown
                {
                    range = (Some(from), Some(to.max(from)));
                }
            }
            out.push(ObjectMetric {
                metric,
                app,
                mapping: m.map(|m| m.metric_name.clone()),
                synced_from: range.0,
                synced_to: range.1,
            });
        }
        Ok(out)
    }

    /// One metric's daily values on an object between two days (inclusive).
    ///
    /// # Errors
    /// `NotFound` for an object the tenant does not know.
    pub async fn object_series(
        &self,
        t: &TenantId,
        object: &ObjectRef,
        metric: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<SeriesPoint>, AppError> {
        let points = self
            .ports
            .store
            .read_series(t, object, metric, from, to)
            .await?;
        if points.is_empty() {
            self.require_object(t, object).await?;
        }
        Ok(points)
    }

    /// Recent activity of an end user or a company on or after `from`, newest first, at most
    /// `limit` records (passive activity included).
    ///
    /// # Errors
    /// `NotFound` for an object the tenant does not know; `Validation` (field `kind`) for an
    /// asset or a project, which have no activity.
    pub async fn object_activity(
        &self,
        t: &TenantId,
        object: &ObjectRef,
        from: NaiveDate,
        limit: usize,
    ) -> Result<Vec<Activity>, AppError> {
        let Some(of) = activity_of(object) else {
            self.require_object(t, object).await?;
            return Err(AppError::Validation(ValidationError::new(
                "kind",
                "activity exists for end users and companies",
            )));
        };
        let acts = self
            .ports
            .store
            .recent_activity(t, &of, from, limit)
            .await?;
        if acts.is_empty() {
            self.require_object(t, object).await?;
        }
        Ok(acts)
    }
}

fn activity_of(object: &ObjectRef) -> Option<ActivityOf> {
    match object.kind {
        Target::EndUser => Some(ActivityOf::EndUser(object.id.clone())),
        Target::Company => Some(ActivityOf::Company(object.id.clone())),
        Target::Asset | Target::Project => None,
    }
}
