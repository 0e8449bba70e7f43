//! Creating and editing mappings (DESIGN §1 "mappings"): the input is validated, then every
//! Pendo object it refers to is checked against Pendo (a feature, page or saved report Pendo does
//! not list, a PES app that is not an app of the subscription, a segment Pendo does not list, a
//! feature or page an aggregation's pipeline names: 400 naming the field; Pendo unreachable:
//! 502), an aggregation's pipeline is run once for one day (`pipeline_check.rs`), and only then
//! stored. A refused request
//! changes nothing. Also the rule that keeps PES mappings valid when the settings change.

use crate::app::{App, AppError};
use crate::domain::mapping::MappingInput;
use crate::domain::{
    FieldMappings, FieldRecord, Integration, Mapping, MappingId, MappingKind, MappingRun,
    MappingRunView, MappingState, MappingStatus, TenantId,
};
use crate::error::ValidationError;
use crate::sync::references::{references, Catalog, Reference};

impl App {
    pub async fn mapping(&self, t: &TenantId, id: &MappingId) -> Result<Mapping, AppError> {
        self.ports
            .store
            .get_mapping(t, id)
            .await?
            .ok_or_else(|| AppError::NotFound {
                what: "mapping",
                id: id.to_string(),
            })
    }

    /// Deletes the mapping and its state; its values, activity and unmatched entries are
    /// purged by the worker (queued: a request purges nothing).
    pub async fn delete_mapping(&self, t: &TenantId, id: &MappingId) -> Result<(), AppError> {
        if self.ports.store.delete_mapping(t, id).await? {
            let purge = crate::queue::messages::PurgeMessage {
                v: crate::queue::messages::MESSAGE_VERSION,
                tenant: t.clone(),
                mapping_id: Some(id.clone()),
            };
            self.ports.queue.send_purge(&purge).await?;
            Ok(())
        } else {
            Err(AppError::NotFound {
                what: "mapping",
                id: id.to_string(),
            })
        }
    }

    pub async fn create_mapping(
        &self,
        t: &TenantId,
        input: &MappingInput,
    ) -> Result<Mapping, AppError> {
        let i = self.integration(t).await?;
        let existing = self.ports.store.list_mappings(t).await?;
        let m = input.validate(&i, MappingId::random(), &existing, self.ports.clock.now())?;
        self.check_with_pendo(&i, &m, None).await?;
        self.ports
            .store
            .reset_mapping_state(t, &m.id, i.generations().writes(&m.id))
            .await?;
        self.ports.store.put_mapping(&m).await?;
        Ok(m)
    }

    /// Edits a mapping in place; it is marked "rebuild required" until `rebuild_mapping`.
    pub async fn update_mapping(
        &self,
        t: &TenantId,
        id: &MappingId,
        input: &MappingInput,
    ) -> Result<Mapping, AppError> {
        let i = self.integration(t).await?;
        let old = self.mapping(t, id).await?;
        let existing = self.ports.store.list_mappings(t).await?;
        let mut m = input.validate(&i, id.clone(), &existing, self.ports.clock.now())?;
        self.check_with_pendo(&i, &m, Some(&old)).await?;
        m.created_at = old.created_at;
        m.rebuild_required = old.rebuild_required
            || m.source != old.source
            || m.target != old.target
            || m.metric_name != old.metric_name
            || m.multi_app != old.multi_app
            || m.segment_id != old.segment_id
            || m.passive != old.passive;
        self.ports.store.put_mapping(&m).await?;
        Ok(m)
    }

    /// The mapping's status: its cursor, and its share of its last run and of its last
    /// successful run (two small reads each, whatever the runs' size).
    ///
    /// # Errors
    /// The store's.
    /// A mapping's cursor, generation and last error, as stored.
    pub async fn mapping_state(
        &self,
        t: &TenantId,
        id: &MappingId,
    ) -> Result<Option<MappingState>, AppError> {
        Ok(self.ports.store.get_mapping_state(t, id).await?)
    }

    /// Every mapping of the tenant.
    pub async fn mappings(&self, t: &TenantId) -> Result<Vec<Mapping>, AppError> {
        Ok(self.ports.store.list_mappings(t).await?)
    }

    pub async fn mapping_status(&self, m: &Mapping) -> Result<Option<MappingStatus>, AppError> {
        let store = &self.ports.store;
        let Some(state) = store.get_mapping_state(&m.tenant, &m.id).await? else {
            return Ok(None);
        };
        let now = self.ports.clock.now();
        let last = match &state.last_run {
            Some(r) => store.mapping_run(&m.tenant, r, &m.id).await?,
            None => None,
        };
        // The tenant's generation matters only to a run still open (one a Re-sync all may
        // have replaced): read only then.
        let generation = match &last {
            Some(r) if r.counters.open > 0 => self.generation(&m.tenant).await?,
            _ => 0,
        };
        let view =
            |run: Option<MappingRun>| run.map(|r| MappingRunView::at(&r, &m.id, now, generation));
        let last = view(last);
        let ok = match &state.last_successful_run {
            Some(r) if Some(r) == state.last_run.as_ref() => last.clone(),
            Some(r) => view(store.mapping_run(&m.tenant, r, &m.id).await?),
            None => None,
        };
        Ok(Some(MappingStatus::new(&state, last, ok)))
    }

    /// Reads, once each, the lists of Pendo objects `refs` name and refuses the first reference
    /// Pendo does not list (400 on `field(r)`; Pendo unreachable: 502 on the same field).
    /// Returns the lists read.
    pub(crate) async fn refuse_unlisted(
        &self,
        i: &Integration,
        refs: &[Reference],
        field: impl Fn(&Reference) -> &'static str,
    ) -> Result<Catalog, AppError> {
        let conn = super::active_connection(i)?;
        let catalog = Catalog::load(&self.ports, conn, refs)
            .await
            .map_err(|(r, error)| AppError::PendoCheck {
                field: field(&r),
                error,
            })?;
        match refs
            .iter()
            .find_map(|r| catalog.missing(r).map(|why| (r, why)))
        {
            Some((r, why)) => Err(ValidationError::new(field(r), why).into()),
            None => Ok(catalog),
        }
    }

    /// Checks the mapping's references against what Pendo lists (each list read once), and a
    /// Report mapping's report against the mapping (compatible, numeric columns, id fields).
    /// An edit checks only what it changes: a reference kept as it was is left to the sync
    /// (which shows on the mapping when its object disappears), so a mapping whose feature
    /// was deleted can still be disabled or renamed.
    async fn check_with_pendo(
        &self,
        i: &Integration,
        m: &Mapping,
        old: Option<&Mapping>,
    ) -> Result<(), AppError> {
        // An aggregation's pipeline runs once, for one day, whenever what it runs changes: a
        // pipeline Pendo refuses is never saved.
        if let MappingKind::Aggregation { pipeline, .. } = &m.source {
            if old.is_none_or(|o| o.source != m.source || o.target != m.target) {
                self.check_pipeline(&i.tenant, pipeline, Some(m.target), true)
                    .await?;
            }
        }
        let kept = old.map(references).unwrap_or_default();
        // A report is re-checked whenever its mapping's source or target changes: its columns
        // and id fields depend on both; a guide whenever its source does (its completions need
        // a guide of several steps).
        let source_changed = old.is_none_or(|o| o.source != m.source || o.target != m.target);
        let refs: Vec<Reference> = references(m)
            .into_iter()
            .filter(|r| {
                !kept.contains(r)
                    || (source_changed
                        && matches!(
                            r,
                            Reference::Report(_) | Reference::Guide(_) | Reference::Poll(..)
                        ))
            })
            .collect();
        if refs.is_empty() {
            return Ok(());
        }
        let catalog = self.refuse_unlisted(i, &refs, Reference::field).await?;
        if let MappingKind::Report { report_id, columns } = &m.source {
            if let Some(report) = catalog.report(report_id) {
                crate::sync::report_source::prepare(
                    report,
                    columns,
                    m.target,
                    &i.settings.field_mappings,
                )?;
            }
        }
        if let MappingKind::Guide {
            guide_id,
            completed_metric: Some(_),
            ..
        } = &m.source
        {
            let single = catalog
                .guide(guide_id)
                .is_some_and(|g| crate::sync::guide_source::completing_step(g).is_none());
            if single {
                return Err(ValidationError::new(
                    "source.completedMetric",
                    format!("guide {guide_id} has a single step: it is completed when seen, which the guide's metric counts already"),
                )
                .into());
            }
        }
        if let MappingKind::Poll {
            guide_id,
            poll_id,
            window_days,
            mean_metric,
            ..
        } = &m.source
        {
            use crate::sync::poll_source::{poll, poll_type};
            let found = catalog.guide(guide_id).and_then(|g| poll(g, poll_id));
            if let Some(p) = found {
                check_poll_options(poll_type(p), m.target, *window_days, mean_metric.is_some())?;
            }
        }
        Ok(())
    }
}

/// What a Poll mapping may set for its poll's type: a trailing window only for an NPS poll on
/// companies, assets or projects; a mean only for a poll other than NPS.
fn check_poll_options(
    kind: Option<&str>,
    target: crate::domain::Target,
    window_days: Option<u32>,
    mean: bool,
) -> Result<(), ValidationError> {
    use crate::sync::poll_source::NPS_RATING;
    let nps = kind == Some(NPS_RATING);
    let kind = kind.unwrap_or("of no type");
    if nps && mean {
        return Err(ValidationError::new(
            "source.meanMetric",
            "an NPS poll has no mean: its metric is the NPS (on end users, their rating)",
        ));
    }
    if window_days.is_some() && (!nps || target == crate::domain::Target::EndUser) {
        return Err(ValidationError::new(
            "source.windowDays",
            format!("only the NPS of companies, assets or projects has a trailing window (this poll is {kind}, on {})", match target {
                crate::domain::Target::Company => "companies",
                crate::domain::Target::EndUser => "end users",
                crate::domain::Target::Asset => "assets",
                crate::domain::Target::Project => "projects",
            }),
        ));
    }
    Ok(())
}

/// PES is computed per Pendo account: while PES mappings exist, the company id field must stay
/// the row field `accountId`. The refusal names the field and the PES mappings.
///
/// # Errors
/// A `ValidationError` on `fieldMappings.companyId`.
pub fn check_pes_company_field(fm: &FieldMappings, pes: &[Mapping]) -> Result<(), ValidationError> {
    let account = fm.company_id.record == FieldRecord::Row && fm.company_id.path == "accountId";
    if account || pes.is_empty() {
        return Ok(());
    }
    let mut pes: Vec<&Mapping> = pes.iter().collect();
    pes.sort_by(|a, b| (&a.metric_name, &a.id).cmp(&(&b.metric_name, &b.id)));
    let names: Vec<String> = pes
        .iter()
        .map(|m| format!("'{}' ({})", m.metric_name, m.id))
        .collect();
    Err(ValidationError::new(
        "fieldMappings.companyId",
        format!(
            "PES is computed per Pendo account, so the company id field must stay accountId while PES mappings exist: delete the PES mapping{} {} first",
            if pes.len() == 1 { "" } else { "s" },
            names.join(", ")
        ),
    ))
}
