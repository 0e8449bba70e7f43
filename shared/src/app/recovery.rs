//! Unmatched identities, the use cases: what each mapping could not use and why (read at the
//! mapping's current generation), which of it the directory now resolves, and the recovery of
//! those days (by the next daily run, or at once with `recover`).

use crate::app::{App, AppError};
use crate::domain::unmatched::{UnmatchedIdentity, UnmatchedReason, UnmatchedTotals};
use crate::domain::Window;
use crate::domain::{Integration, Mapping, MappingId, RunId, Target, TenantId};
use crate::queue::messages::RunAction;
use crate::sync::unmatched::{
    objects_of, recoverable_days, recoverable_identities, summarize, windows, Known,
};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why a recovery is refused when the directory resolves none of a mapping's unmatched rows.
pub const NOTHING_TO_RECOVER_ALL: &str = "nothing to recover: no mapping could not use rows of a company or end user the directory holds now";
pub const NOTHING_TO_RECOVER: &str = "nothing to recover: no row this mapping could not use belongs to a company or end user the directory holds now";

/// How a mapping's list is read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnmatchedQuery {
    /// Only this reason (`companyNotInDirectory`, `notInDirectory`, `endUserNotFound`,
    /// `noCompanyId`, `anonymousVisitor`, `noId`).
    pub reason: Option<String>,
    /// `rows` (default) or `value`: the largest first.
    pub sort: Option<String>,
    /// Identities to skip (default 0).
    pub offset: Option<usize>,
    /// At most this many identities (default 100, at most 1,000).
    pub limit: Option<usize>,
}

/// What a mapping could not use.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnmatchedView {
    #[schema(value_type = String)]
    pub mapping_id: MappingId,
    pub metric_name: String,
    /// Exact totals per reason (identities past the 1,000 kept per reason counted in
    /// `otherRows`/`otherValue`).
    pub totals: BTreeMap<UnmatchedReason, UnmatchedTotals>,
    /// Identities listed for the query, before `offset`/`limit`.
    pub matching: usize,
    pub identities: Vec<UnmatchedIdentity>,
    /// Identities the directory now holds, by reason: their days are re-fetched by the next
    /// daily run, or at once by `POST /v1/mappings/{id}/recover`.
    pub recoverable: BTreeMap<UnmatchedReason, Vec<String>>,
    /// The days a recovery would re-fetch.
    pub recoverable_days: Vec<NaiveDate>,
}

/// A recovery Recover all started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryStarted {
    pub metric_name: String,
    #[schema(value_type = String)]
    pub mapping_id: MappingId,
    #[schema(value_type = String)]
    pub run_id: RunId,
}

/// What Recover all started, and what it left (a mapping needing a rebuild).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoverAll {
    pub started: Vec<RecoveryStarted>,
    /// Mappings with recoverable days left out, each with why (`"Clicks": click Rebuild …`).
    pub left: Vec<String>,
}

/// A mapping's totals, for the integration's overview.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingUnmatched {
    #[schema(value_type = String)]
    pub mapping_id: MappingId,
    pub metric_name: String,
    pub totals: BTreeMap<UnmatchedReason, UnmatchedTotals>,
    pub recoverable_days: usize,
}

/// A target's directory as a recovery reads it: companies, the target's own objects (assets or
/// projects), end users.
type KnownLists = (
    Vec<crate::domain::DirectoryObject>,
    Vec<crate::domain::DirectoryObject>,
    Vec<crate::domain::EndUser>,
);

/// The directory lists read so far by one planning, per target.
#[derive(Default)]
pub(crate) struct DirectoryLists(Vec<(Target, std::sync::Arc<KnownLists>)>);

impl App {
    /// What the directory knows, for a mapping's target: read once per target for all the
    /// mappings one planning looks at (`lists`).
    async fn known_directory(
        &self,
        t: &TenantId,
        target: Target,
        lists: &mut DirectoryLists,
    ) -> Result<std::sync::Arc<KnownLists>, AppError> {
        if let Some((_, found)) = lists.0.iter().find(|(k, _)| *k == target) {
            return Ok(found.clone());
        }
        let store = &self.ports.store;
        let companies = store.list_objects(t, Target::Company).await?;
        let objects = match objects_of(target) {
            Some(k) => store.list_objects(t, k).await?,
            None => Vec::new(),
        };
        let users = if target == Target::EndUser {
            store.list_end_users(t).await?
        } else {
            Vec::new()
        };
        let known = std::sync::Arc::new((companies, objects, users));
        lists.0.push((target, known.clone()));
        Ok(known)
    }

    /// The windows of days before `before` (all days when `None`) whose unmatched rows the
    /// directory now resolves, for a run to re-fetch.
    pub(crate) async fn recovery_windows(
        &self,
        i: &Integration,
        m: &Mapping,
        before: Option<NaiveDate>,
        lists: &mut DirectoryLists,
    ) -> Result<Vec<Window>, AppError> {
        let entries = self
            .ports
            .store
            .unmatched_of(&i.tenant, &m.id, i.generations().writes(&m.id))
            .await?;
        if entries.iter().all(|e| e.identity.is_none()) {
            return Ok(Vec::new());
        }
        let lists = self.known_directory(&i.tenant, m.target, lists).await?;
        let (companies, objects, users) = &*lists;
        let known = Known::new(companies, objects, users);
        let mut days = recoverable_days(&entries, &known);
        if let Some(before) = before {
            days.retain(|d| *d < before);
        }
        let mut out = Vec::new();
        for w in windows(&days) {
            out.extend(crate::sync::plan::chunks(w, m.source.max_chunk_days()));
        }
        Ok(out)
    }

    /// What a mapping could not use, listed per identity and totalled per reason.
    pub async fn unmatched(
        &self,
        t: &TenantId,
        id: &MappingId,
        q: &UnmatchedQuery,
    ) -> Result<UnmatchedView, AppError> {
        let i = self.integration(t).await?;
        let m = self.mapping(t, id).await?;
        let reason = q
            .reason
            .as_deref()
            .map(|r| {
                UnmatchedReason::parse(r).ok_or_else(|| {
                    crate::error::ValidationError::new("reason", format!("unknown reason {r:?}"))
                })
            })
            .transpose()?;
        let by_value = match q.sort.as_deref() {
            None | Some("rows") => false,
            Some("value") => true,
            Some(_) => {
                return Err(
                    crate::error::ValidationError::new("sort", "must be rows or value").into(),
                )
            }
        };
        let limit = q.limit.unwrap_or(100).clamp(1, 1000);
        let written = i.generations().writes(id);
        let entries = self.ports.store.unmatched_of(t, id, written).await?;
        let lists = self
            .known_directory(t, m.target, &mut DirectoryLists::default())
            .await?;
        let (companies, objects, users) = &*lists;
        let known = Known::new(companies, objects, users);
        let recoverable = recoverable_identities(&entries, &known)
            .into_iter()
            .map(|(r, ids)| (r, ids.into_iter().collect()))
            .collect();
        let recoverable_days = recoverable_days(&entries, &known).into_iter().collect();
        let (mut identities, totals) = summarize(entries);
        identities.retain(|x| reason.is_none_or(|r| x.reason == r));
        if by_value {
            identities.sort_by(|a, b| {
                b.value
                    .total_cmp(&a.value)
                    .then(b.rows.cmp(&a.rows))
                    .then_with(|| a.identity.cmp(&b.identity))
            });
        } else {
            identities.sort_by(|a, b| {
                b.rows
                    .cmp(&a.rows)
                    .then(b.value.total_cmp(&a.value))
                    .then_with(|| a.identity.cmp(&b.identity))
            });
        }
        let matching = identities.len();
        let identities = identities
            .into_iter()
            .skip(q.offset.unwrap_or(0))
            .take(limit)
            .collect();
        Ok(UnmatchedView {
            mapping_id: m.id,
            metric_name: m.metric_name,
            totals,
            matching,
            identities,
            recoverable,
            recoverable_days,
        })
    }

    /// Every mapping's totals of what it could not use (mappings with nothing unmatched left out).
    pub async fn unmatched_overview(
        &self,
        t: &TenantId,
    ) -> Result<Vec<MappingUnmatched>, AppError> {
        let i = self.integration(t).await?;
        let store = &self.ports.store;
        let mut out = Vec::new();
        let mut lists = DirectoryLists::default();
        for m in store.list_mappings(t).await? {
            let written = i.generations().writes(&m.id);
            let entries = store.unmatched_of(t, &m.id, written).await?;
            if entries.is_empty() {
                continue;
            }
            let known = self.known_directory(t, m.target, &mut lists).await?;
            let (c, o, u) = &*known;
            let recoverable = recoverable_days(&entries, &Known::new(c, o, u)).len();
            let (_, totals) = summarize(entries);
            out.push(MappingUnmatched {
                mapping_id: m.id,
                metric_name: m.metric_name,
                totals,
                recoverable_days: recoverable,
            });
        }
        Ok(out)
    }

    /// Re-fetches, now, only the days a mapping could not use rows of identities the directory
    /// now holds. `Conflict` when there is none.
    /// Recover all: a recovery run for every enabled mapping with days the directory now
    /// resolves (one run each, as Recover on each would start). A mapping that needs a rebuild
    /// is left, saying so. `Conflict` when no mapping has anything to recover.
    pub async fn recover_all(&self, t: &TenantId) -> Result<RecoverAll, AppError> {
        let i = self.integration(t).await?;
        if !i.is_active() {
            return Err(AppError::NotConnected);
        }
        let mut out = RecoverAll {
            started: Vec::new(),
            left: Vec::new(),
        };
        let mut lists = DirectoryLists::default();
        for m in self.ports.store.list_mappings(t).await? {
            if !m.enabled
                || self
                    .recovery_windows(&i, &m, None, &mut lists)
                    .await?
                    .is_empty()
            {
                continue;
            }
            if m.rebuild_required {
                out.left
                    .push(AppError::RebuildRequired(m.metric_name.clone()).to_string());
                continue;
            }
            let run_id = self.queue_run(&i, &m, RunAction::Recover).await?;
            out.started.push(RecoveryStarted {
                metric_name: m.metric_name.clone(),
                mapping_id: m.id.clone(),
                run_id,
            });
        }
        if out.started.is_empty() && out.left.is_empty() {
            return Err(AppError::Conflict(NOTHING_TO_RECOVER_ALL.into()));
        }
        Ok(out)
    }

    pub async fn recover(&self, t: &TenantId, id: &MappingId) -> Result<RunId, AppError> {
        let i = self.integration(t).await?;
        if !i.is_active() {
            return Err(AppError::NotConnected);
        }
        let m = self.mapping(t, id).await?;
        if m.rebuild_required {
            return Err(AppError::RebuildRequired(m.metric_name));
        }
        // Refused at once when nothing can be recovered (a few store reads, no Pendo call);
        // the planning is queued.
        let mut lists = DirectoryLists::default();
        if self
            .recovery_windows(&i, &m, None, &mut lists)
            .await?
            .is_empty()
        {
            return Err(AppError::Conflict(NOTHING_TO_RECOVER.into()));
        }
        self.queue_run(&i, &m, RunAction::Recover).await
    }
}
