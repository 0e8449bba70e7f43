//! Metric mappings: one Pendo source turned into one metric (or one per app, or one per
//! column), with its target object and toggles; and the per-mapping sync state (cursor).

use super::ids::{MappingId, RunId, TenantId};
use super::integration::Integration;
use crate::error::ValidationError;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// The object a mapping's values land on.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Target {
    Company,
    EndUser,
    Asset,
    Project,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Company => "company",
            Self::EndUser => "endUser",
            Self::Asset => "asset",
            Self::Project => "project",
        }
    }
    /// The kind of object in a user's words ("company", "end user").
    pub fn noun(self) -> &'static str {
        match self {
            Self::Company => "company",
            Self::EndUser => "end user",
            Self::Asset => "asset",
            Self::Project => "project",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Company, Self::EndUser, Self::Asset, Self::Project]
            .into_iter()
            .find(|t| t.as_str() == s)
    }
}

/// PES components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum PesComponent {
    Score,
    Adoption,
    Stickiness,
    Growth,
}

impl PesComponent {
    /// The label of a component in metric names.
    pub fn label(self) -> &'static str {
        match self {
            PesComponent::Score => "PES",
            PesComponent::Adoption => "Adoption",
            PesComponent::Stickiness => "Stickiness",
            PesComponent::Growth => "Growth",
        }
    }
}

/// A mapped column or output field and the metric it feeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldMetric {
    pub field: String,
    pub metric: String,
}

/// What a mapping reads from Pendo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
pub enum MappingKind {
    /// `featureEvents` for one feature, all apps. `minutesMetric` adds `numMinutes` as a second
    /// metric.
    #[serde(rename_all = "camelCase")]
    Feature {
        feature_id: String,
        minutes_metric: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Page {
        page_id: String,
        minutes_metric: Option<String>,
    },
    /// `trackEvents` for one track type (server- or client-side custom events), all apps.
    /// `minutesMetric` adds `numMinutes` as a second metric.
    #[serde(rename_all = "camelCase")]
    Track {
        track_type_id: String,
        minutes_metric: Option<String>,
    },
    /// `guideEvents` of one guide, all apps: the times it was seen per object and day (the
    /// metric name); optionally the counts of its other events, each under its own metric
    /// name: steps advanced, dismissals, and completions (its last step seen, for a guide of
    /// several steps). End users get an activity record of each day they saw it.
    #[serde(rename_all = "camelCase")]
    Guide {
        guide_id: String,
        advanced_metric: Option<String>,
        dismissed_metric: Option<String>,
        completed_metric: Option<String>,
    },
    /// `pollEvents` of one poll of a guide, all apps. An NPS poll (`NPSRating`): on end users,
    /// the latest rating (0–10) of each day they answered; on companies, assets and projects,
    /// the NPS of the `windowDays` days ending on each day (default 90: % promoters, 9–10,
    /// minus % detractors, 0–6, over each end user's latest response in them; no value without
    /// one), and `responsesMetric` the responses it counted. Another poll: the responses of
    /// each day, and `meanMetric` the mean of its numeric answers. Respondents get an activity
    /// record of the day they answered.
    #[serde(rename_all = "camelCase")]
    Poll {
        guide_id: String,
        poll_id: String,
        window_days: Option<u32>,
        responses_metric: Option<String>,
        mean_metric: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Report {
        report_id: String,
        columns: Vec<FieldMetric>,
    },
    #[serde(rename_all = "camelCase")]
    Aggregation {
        pipeline: serde_json::Value,
        fields: Vec<FieldMetric>,
    },
    #[serde(rename_all = "camelCase")]
    Pes {
        app_id: i64,
        components: Vec<PesComponent>,
    },
}

/// The pre-aggregated event stream an event mapping (Feature, Page, Track) reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventSource {
    Feature,
    Page,
    Track,
}

/// The longest trailing window of an NPS mapping (a year).
pub const MAX_POLL_WINDOW_DAYS: u32 = 366;

/// The trailing window of an NPS mapping when it sets none.
pub const DEFAULT_POLL_WINDOW_DAYS: u32 = 90;

/// What a Guide mapping counts besides the times its guide was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuidePart {
    /// `guideAdvanced` events (a step moved on from).
    Advanced,
    /// `guideDismissed` events.
    Dismissed,
    /// The guide's last step seen (a guide of several steps).
    Completed,
}

impl GuidePart {
    /// Its name in the mapping's fields (`{name}Metric`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Advanced => "advanced",
            Self::Dismissed => "dismissed",
            Self::Completed => "completed",
        }
    }
}

/// What an event mapping reads: its stream, the id of its feature, page or track type, and
/// its minutes metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventItem<'a> {
    pub source: EventSource,
    pub id: &'a str,
    pub minutes_metric: Option<&'a str>,
}

impl MappingKind {
    /// The event stream and item of a Feature, Page or Track mapping; `None` for the others.
    pub fn event_item(&self) -> Option<EventItem<'_>> {
        let (source, id, minutes) = match self {
            Self::Feature {
                feature_id,
                minutes_metric,
            } => (EventSource::Feature, feature_id, minutes_metric),
            Self::Page {
                page_id,
                minutes_metric,
            } => (EventSource::Page, page_id, minutes_metric),
            Self::Track {
                track_type_id,
                minutes_metric,
            } => (EventSource::Track, track_type_id, minutes_metric),
            Self::Guide { .. }
            | Self::Poll { .. }
            | Self::Report { .. }
            | Self::Aggregation { .. }
            | Self::Pes { .. } => return None,
        };
        Some(EventItem {
            source,
            id,
            minutes_metric: minutes.as_deref(),
        })
    }

    /// The optional metrics of a Guide mapping, in order (`None` for the other kinds).
    pub fn guide_parts(&self) -> Option<Vec<(GuidePart, &str)>> {
        let Self::Guide {
            advanced_metric,
            dismissed_metric,
            completed_metric,
            ..
        } = self
        else {
            return None;
        };
        Some(
            [
                (GuidePart::Advanced, advanced_metric),
                (GuidePart::Dismissed, dismissed_metric),
                (GuidePart::Completed, completed_metric),
            ]
            .into_iter()
            .filter_map(|(p, m)| m.as_deref().map(|m| (p, m)))
            .collect(),
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Feature { .. } => "feature",
            Self::Page { .. } => "page",
            Self::Track { .. } => "track",
            Self::Guide { .. } => "guide",
            Self::Poll { .. } => "poll",
            Self::Report { .. } => "report",
            Self::Aggregation { .. } => "aggregation",
            Self::Pes { .. } => "pes",
        }
    }
    /// Event kinds are fetched in chunks of up to 7 days; the others one day a call.
    pub fn max_chunk_days(&self) -> u32 {
        match self {
            Self::Feature { .. } | Self::Page { .. } | Self::Track { .. } => 7,
            _ => 1,
        }
    }
}

/// A mapping as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Mapping {
    #[schema(value_type = String)]
    pub tenant: TenantId,
    #[schema(value_type = String)]
    pub id: MappingId,
    pub source: MappingKind,
    pub target: Target,
    pub metric_name: String,
    pub passive: bool,
    pub multi_app: bool,
    pub auto_create_users: bool,
    pub segment_id: Option<String>,
    pub enabled: bool,
    /// Set by an edit: the mapping's values must be purged and re-fetched.
    pub rebuild_required: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A mapping as a user creates or replaces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MappingInput {
    pub source: MappingKind,
    pub target: Target,
    pub metric_name: String,
    #[serde(default)]
    pub passive: bool,
    #[serde(default)]
    pub multi_app: bool,
    #[serde(default)]
    pub auto_create_users: bool,
    #[serde(default)]
    pub segment_id: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

fn check_metric_name(field: &str, raw: &str) -> Result<String, ValidationError> {
    let s = raw.trim();
    if s.is_empty() || s.len() > 120 || s.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must be 1 to 120 characters, without control characters",
        ));
    }
    Ok(s.to_string())
}

/// Trims the mapped fields and checks their metric names (unique within the mapping).
fn check_field_metrics(
    fields: &[FieldMetric],
    list: &str,
) -> Result<Vec<FieldMetric>, ValidationError> {
    let mut out: Vec<FieldMetric> = Vec::with_capacity(fields.len());
    for (i, f) in fields.iter().enumerate() {
        let metric = check_metric_name(&format!("source.{list}[{i}].metric"), &f.metric)?;
        if out
            .iter()
            .any(|o| o.metric.to_lowercase() == metric.to_lowercase())
        {
            return Err(ValidationError::new(
                format!("source.{list}[{i}].metric"),
                "each mapped field needs its own metric name",
            ));
        }
        out.push(FieldMetric {
            field: f.field.trim().to_string(),
            metric,
        });
    }
    Ok(out)
}

impl MappingInput {
    /// An enabled mapping of `source` to `target` under `metric_name`, every option off (as a
    /// request that names only those three fields).
    pub fn new(source: MappingKind, target: Target, metric_name: &str) -> Self {
        Self {
            source,
            target,
            metric_name: metric_name.into(),
            passive: false,
            multi_app: false,
            auto_create_users: false,
            segment_id: None,
            enabled: true,
        }
    }

    /// Validates the input against the integration (segments, field mappings) and builds the
    /// mapping. `existing` is the other mappings of the tenant (metric names must be unique per
    /// target, so two mappings never write the same value).
    pub fn validate(
        &self,
        integration: &Integration,
        id: MappingId,
        existing: &[Mapping],
        now: DateTime<Utc>,
    ) -> Result<Mapping, ValidationError> {
        let metric_name = check_metric_name("metricName", &self.metric_name)?;
        let source = self.validated_source(integration)?;
        self.check_target(&integration.settings.field_mappings)?;
        let segment_id = self.validated_segment(integration)?;
        check_metric_names_free(&source, &metric_name, self.target, &id, existing)?;
        Ok(Mapping {
            tenant: integration.tenant.clone(),
            id,
            source,
            target: self.target,
            metric_name,
            passive: self.passive,
            multi_app: self.multi_app,
            auto_create_users: self.auto_create_users,
            segment_id,
            enabled: self.enabled,
            rebuild_required: false,
            created_at: now,
            updated_at: now,
        })
    }

    /// The source with its ids and metric names checked, per kind.
    fn validated_source(&self, integration: &Integration) -> Result<MappingKind, ValidationError> {
        let minutes = |m: &Option<String>| {
            m.as_deref()
                .map(|m| check_metric_name("source.minutesMetric", m))
                .transpose()
        };
        Ok(match &self.source {
            MappingKind::Feature {
                feature_id,
                minutes_metric,
            } => MappingKind::Feature {
                feature_id: crate::domain::ids::check_id("source.featureId", feature_id)?,
                minutes_metric: minutes(minutes_metric)?,
            },
            MappingKind::Page {
                page_id,
                minutes_metric,
            } => MappingKind::Page {
                page_id: crate::domain::ids::check_id("source.pageId", page_id)?,
                minutes_metric: minutes(minutes_metric)?,
            },
            MappingKind::Track {
                track_type_id,
                minutes_metric,
            } => MappingKind::Track {
                track_type_id: crate::domain::ids::check_id("source.trackTypeId", track_type_id)?,
                minutes_metric: minutes(minutes_metric)?,
            },
            MappingKind::Guide {
                guide_id,
                advanced_metric,
                dismissed_metric,
                completed_metric,
            } => {
                let metric = |field: &str, m: &Option<String>| {
                    m.as_deref()
                        .map(|m| check_metric_name(field, m))
                        .transpose()
                };
                MappingKind::Guide {
                    guide_id: crate::domain::ids::check_id("source.guideId", guide_id)?,
                    advanced_metric: metric("source.advancedMetric", advanced_metric)?,
                    dismissed_metric: metric("source.dismissedMetric", dismissed_metric)?,
                    completed_metric: metric("source.completedMetric", completed_metric)?,
                }
            }
            MappingKind::Poll {
                guide_id,
                poll_id,
                window_days,
                responses_metric,
                mean_metric,
            } => {
                let metric = |field: &str, m: &Option<String>| {
                    m.as_deref()
                        .map(|m| check_metric_name(field, m))
                        .transpose()
                };
                if let Some(w) = window_days {
                    if !(1..=MAX_POLL_WINDOW_DAYS).contains(w) {
                        return Err(ValidationError::new(
                            "source.windowDays",
                            format!("must be 1 to {MAX_POLL_WINDOW_DAYS} days"),
                        ));
                    }
                }
                MappingKind::Poll {
                    guide_id: crate::domain::ids::check_id("source.guideId", guide_id)?,
                    poll_id: crate::domain::ids::check_id("source.pollId", poll_id)?,
                    window_days: *window_days,
                    responses_metric: metric("source.responsesMetric", responses_metric)?,
                    mean_metric: metric("source.meanMetric", mean_metric)?,
                }
            }
            MappingKind::Aggregation { pipeline, fields } => {
                let stages = crate::domain::aggregation::validate_aggregation(
                    pipeline,
                    fields,
                    self.target,
                    &integration.settings.field_mappings,
                )?;
                MappingKind::Aggregation {
                    pipeline: serde_json::Value::Array(stages),
                    fields: check_field_metrics(fields, "fields")?,
                }
            }
            MappingKind::Pes { app_id, components } => {
                self.check_pes(&integration.settings.field_mappings, components)?;
                MappingKind::Pes {
                    app_id: *app_id,
                    components: components.clone(),
                }
            }
            // The report itself (compatible, numeric columns, id fields) is checked against
            // Pendo by `App` before this.
            MappingKind::Report { report_id, columns } => {
                if columns.is_empty() {
                    return Err(ValidationError::new(
                        "source.columns",
                        "map at least one numeric column to a metric",
                    ));
                }
                MappingKind::Report {
                    report_id: crate::domain::ids::check_id("source.reportId", report_id)?,
                    columns: check_field_metrics(columns, "columns")?,
                }
            }
        })
    }

    /// A PES mapping targets companies identified by `accountId`, reads one app and lists each
    /// component once.
    fn check_pes(
        &self,
        fm: &crate::domain::FieldMappings,
        components: &[PesComponent],
    ) -> Result<(), ValidationError> {
        if self.target != Target::Company {
            return Err(ValidationError::new(
                "target",
                "PES mappings target companies only (PES is computed per Pendo account)",
            ));
        }
        if fm.company_id.record != crate::domain::FieldRecord::Row
            || fm.company_id.path != "accountId"
        {
            return Err(ValidationError::new(
                "source.kind",
                "PES is computed per Pendo account: map the company id field to accountId (a row field) before adding a PES mapping",
            ));
        }
        if self.multi_app {
            return Err(ValidationError::new(
                "multiApp",
                "a PES mapping reads one app; multi-app does not apply",
            ));
        }
        if components.is_empty() {
            return Err(ValidationError::new(
                "source.components",
                "choose at least one PES component",
            ));
        }
        for (i, c) in components.iter().enumerate() {
            if components[..i].contains(c) {
                return Err(ValidationError::new(
                    format!("source.components[{i}]"),
                    "is listed twice",
                ));
            }
        }
        Ok(())
    }

    /// Assets and projects are targets only once their id field is mapped.
    fn check_target(&self, fm: &crate::domain::FieldMappings) -> Result<(), ValidationError> {
        match self.target {
            Target::Asset if fm.asset_id.is_none() => Err(ValidationError::new(
                "target",
                "map the asset id field in the settings before targeting assets",
            )),
            Target::Project if fm.project_id.is_none() => Err(ValidationError::new(
                "target",
                "map the project id field in the settings before targeting projects",
            )),
            _ => Ok(()),
        }
    }

    /// The segment, which must be in the integration's segments table (blank: none).
    fn validated_segment(
        &self,
        integration: &Integration,
    ) -> Result<Option<String>, ValidationError> {
        match self.segment_id.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(s) if integration.segments.iter().any(|seg| seg.id == s) => {
                Ok(Some(s.to_string()))
            }
            Some(_) => Err(ValidationError::new(
                "segmentId",
                "is not in the segments table; add it there first",
            )),
        }
    }
}

/// The metric names a mapping writes are its own: its minutes metric differs from its metric
/// name, and no other mapping of the target writes any of them.
fn check_metric_names_free(
    source: &MappingKind,
    metric_name: &str,
    target: Target,
    id: &MappingId,
    existing: &[Mapping],
) -> Result<(), ValidationError> {
    if let Some(minutes) = source.event_item().and_then(|e| e.minutes_metric) {
        if minutes.to_lowercase() == metric_name.to_lowercase() {
            return Err(ValidationError::new(
                "source.minutesMetric",
                "must differ from metricName",
            ));
        }
    }
    let parts: Vec<(&str, &str)> = match source {
        MappingKind::Guide { .. } => source
            .guide_parts()
            .into_iter()
            .flatten()
            .map(|(p, n)| (p.as_str(), n))
            .collect(),
        MappingKind::Poll {
            responses_metric,
            mean_metric,
            ..
        } => [("responses", responses_metric), ("mean", mean_metric)]
            .into_iter()
            .filter_map(|(p, m)| m.as_deref().map(|m| (p, m)))
            .collect(),
        _ => Vec::new(),
    };
    let mut seen = vec![metric_name.to_lowercase()];
    for (part, name) in parts {
        let lower = name.to_lowercase();
        if seen.contains(&lower) {
            return Err(ValidationError::new(
                format!("source.{part}Metric"),
                "must differ from metricName and the mapping's other metrics",
            ));
        }
        seen.push(lower);
    }
    let names = metric_names(source, metric_name);
    for other in existing
        .iter()
        .filter(|m| &m.id != id && m.target == target)
    {
        // Names that differ only by case would read as one metric to a person.
        let taken: Vec<String> = metric_names(&other.source, &other.metric_name)
            .iter()
            .map(|n| n.to_lowercase())
            .collect();
        if let Some(dup) = names.iter().find(|n| taken.contains(&n.to_lowercase())) {
            return Err(ValidationError::new(
                "metricName",
                format!(
                    "metric '{dup}' on this target is already fed by mapping \"{}\"",
                    other.metric_name
                ),
            ));
        }
    }
    Ok(())
}

/// Whether mapping `m` writes `metric` (a per-app metric carries its app's prefix:
/// `"{prefix} - {name}"`).
pub fn writes_metric(m: &Mapping, metric: &str, per_app: bool) -> bool {
    metric_names(&m.source, &m.metric_name).iter().any(|n| {
        n == metric
            || (per_app
                && metric
                    .strip_suffix(n.as_str())
                    .is_some_and(|p| p.ends_with(" - ")))
    })
}

/// Base metric names a mapping writes (before any multi-app prefix).
pub fn metric_names(kind: &MappingKind, metric_name: &str) -> Vec<String> {
    let mut v = vec![metric_name.to_string()];
    match kind {
        MappingKind::Feature { .. } | MappingKind::Page { .. } | MappingKind::Track { .. } => {
            v.extend(
                kind.event_item()
                    .and_then(|e| e.minutes_metric)
                    .map(str::to_string),
            );
        }
        MappingKind::Guide { .. } => {
            v.extend(
                kind.guide_parts()
                    .into_iter()
                    .flatten()
                    .map(|(_, n)| n.to_string()),
            );
        }
        MappingKind::Poll {
            responses_metric,
            mean_metric,
            ..
        } => v.extend(
            [responses_metric, mean_metric]
                .into_iter()
                .flatten()
                .cloned(),
        ),
        MappingKind::Report { columns: f, .. } | MappingKind::Aggregation { fields: f, .. } => {
            v = f
                .iter()
                .map(|c| part_metric_name(metric_name, f.len(), &c.metric))
                .collect()
        }
        MappingKind::Pes { components, .. } => {
            v = components
                .iter()
                .map(|c| pes_metric_name(metric_name, components.len(), *c))
                .collect()
        }
    }
    v
}

/// How every mapping names what it writes: a mapping that writes one metric from its source
/// writes it under its metric name; one that writes several (PES components, report columns,
/// aggregation fields) names each `"{metricName} - {part}"`, the part being the component
/// (PES, Adoption, Stickiness, Growth) or the column's or field's own metric name. (A Feature
/// or Page mapping's minutes metric is named on its own.) The page shows the same names
/// before saving (`storedNames` in `web/src/app.js`).
pub fn part_metric_name(metric_name: &str, count: usize, part: &str) -> String {
    if count <= 1 {
        metric_name.to_string()
    } else {
        format!("{metric_name} - {part}")
    }
}

/// The metric a PES component feeds ([`part_metric_name`]).
pub fn pes_metric_name(metric_name: &str, count: usize, c: PesComponent) -> String {
    part_metric_name(metric_name, count, c.label())
}

/// Outcome of the last run of a mapping, shown in its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    pub at: DateTime<Utc>,
    pub message: String,
}

/// The sync state of one mapping: its cursor for the generation it was reset for, and the runs
/// its status is read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MappingState {
    pub generation: u64,
    /// Last local day whose values are complete; `None` before the first sync.
    pub last_synced_day: Option<NaiveDate>,
    /// First local day of the synced range: the start of the window the mapping was last
    /// synced from scratch for (in this generation). From it to `last_synced_day`, a day
    /// without a value had no events (0); outside, the day was not synced.
    #[serde(default)]
    pub synced_from: Option<NaiveDate>,
    /// The latest run planned with this mapping, whatever its outcome.
    #[schema(value_type = Option<String>)]
    pub last_run: Option<RunId>,
    /// The latest run in which every chunk of this mapping was done.
    #[schema(value_type = Option<String>)]
    pub last_successful_run: Option<RunId>,
    pub last_error: Option<LastError>,
    /// The synced range of the generation reads show, kept while a Re-sync all builds the next
    /// one (this state's cursor is the new generation's): what the charts show until the
    /// switch, and the cursor a discarded re-sync goes back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<SyncedRange>,
}

/// A mapping's synced range in one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncedRange {
    pub generation: u64,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

impl MappingState {
    /// This state's synced range.
    pub fn range(&self) -> SyncedRange {
        SyncedRange {
            generation: self.generation,
            from: self.synced_from,
            to: self.last_synced_day,
        }
    }

    /// The synced range in `generation`: this state's, or the one it keeps from before a
    /// Re-sync all.
    pub fn range_in(&self, generation: u64) -> Option<SyncedRange> {
        [Some(self.range()), self.previous]
            .into_iter()
            .flatten()
            .find(|r| r.generation == generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::apps::Segment;

    fn integration() -> Integration {
        let mut i = Integration::new(TenantId::parse("t").unwrap());
        i.segments.push(Segment::parse("seg1", "Paid").unwrap());
        i
    }

    fn input(json: serde_json::Value) -> Result<MappingInput, serde_json::Error> {
        serde_json::from_value(json)
    }

    #[test]
    fn feature_mapping_validates() {
        let i = integration();
        let now = Utc::now();
        let m = input(serde_json::json!({"source":{"kind":"feature","featureId":"f1",
            "minutesMetric":"Minutes"},"target":"company","metricName":"Clicks","segmentId":"seg1"}))
        .unwrap()
        .validate(&i, MappingId::parse("m1").unwrap(), &[], now)
        .unwrap();
        assert_eq!(m.segment_id.as_deref(), Some("seg1"));
        assert!(m.enabled);
        let unknown_segment = input(serde_json::json!({"source":{"kind":"page","pageId":"p"},
            "target":"company","metricName":"Views","segmentId":"nope"}))
        .unwrap()
        .validate(&i, MappingId::parse("m2").unwrap(), &[], now)
        .unwrap_err();
        assert_eq!(unknown_segment.field, "segmentId");
        let dup = input(serde_json::json!({"source":{"kind":"page","pageId":"p"},
            "target":"company","metricName":"Minutes"}))
        .unwrap()
        .validate(&i, MappingId::parse("m3").unwrap(), &[m], now)
        .unwrap_err();
        assert_eq!(dup.field, "metricName");
    }

    /// A Guide mapping: its optional metrics named on their own, each distinct from the others
    /// and from the metric name; fetched a day a call, in no shared event call.
    #[test]
    fn a_guide_mapping_names_its_metrics() {
        let i = integration();
        let now = Utc::now();
        let guide = |source: serde_json::Value| {
            input(serde_json::json!({"source": source, "target": "company",
                "metricName": "Tour seen"}))
            .unwrap()
            .validate(&i, MappingId::parse("m1").unwrap(), &[], now)
        };
        let m = guide(serde_json::json!({"kind": "guide", "guideId": " g1 ",
            "advancedMetric": " Tour steps ", "completedMetric": "Tour done"}))
        .unwrap();
        assert_eq!(
            m.source,
            MappingKind::Guide {
                guide_id: "g1".into(),
                advanced_metric: Some("Tour steps".into()),
                dismissed_metric: None,
                completed_metric: Some("Tour done".into()),
            }
        );
        assert_eq!((m.source.name(), m.source.max_chunk_days()), ("guide", 1));
        assert_eq!(m.source.event_item(), None);
        assert_eq!(
            metric_names(&m.source, &m.metric_name),
            ["Tour seen", "Tour steps", "Tour done"].map(String::from)
        );
        let same = guide(serde_json::json!({"kind": "guide", "guideId": "g1",
            "dismissedMetric": "tour SEEN"}))
        .unwrap_err();
        assert_eq!(same.field, "source.dismissedMetric");
        let twice = guide(serde_json::json!({"kind": "guide", "guideId": "g1",
            "advancedMetric": "x", "completedMetric": "X"}))
        .unwrap_err();
        assert_eq!(twice.field, "source.completedMetric");
        let blank = guide(serde_json::json!({"kind": "guide", "guideId": "g1",
            "advancedMetric": "  "}))
        .unwrap_err();
        assert_eq!(blank.field, "source.advancedMetric");
        let no_id = guide(serde_json::json!({"kind": "guide", "guideId": ""})).unwrap_err();
        assert_eq!(no_id.field, "source.guideId");
    }

    #[test]
    fn a_track_mapping_validates_like_a_feature_mapping() {
        let i = integration();
        let now = Utc::now();
        let m = input(
            serde_json::json!({"source":{"kind":"track","trackTypeId":" t1 ",
            "minutesMetric":"Track minutes"},"target":"endUser","metricName":"Exports",
            "multiApp":true,"autoCreateUsers":true}),
        )
        .unwrap()
        .validate(&i, MappingId::parse("m1").unwrap(), &[], now)
        .unwrap();
        assert_eq!(
            m.source,
            MappingKind::Track {
                track_type_id: "t1".into(),
                minutes_metric: Some("Track minutes".into())
            }
        );
        assert_eq!(m.source.name(), "track");
        assert_eq!(m.source.max_chunk_days(), 7);
        assert_eq!(
            m.source.event_item(),
            Some(EventItem {
                source: EventSource::Track,
                id: "t1",
                minutes_metric: Some("Track minutes"),
            })
        );
        assert_eq!(
            metric_names(&m.source, &m.metric_name),
            vec!["Exports".to_string(), "Track minutes".to_string()]
        );
        let same = input(
            serde_json::json!({"source":{"kind":"track","trackTypeId":"t1",
            "minutesMetric":"Exports"},"target":"endUser","metricName":"Exports"}),
        )
        .unwrap()
        .validate(&i, MappingId::parse("m2").unwrap(), &[], now)
        .unwrap_err();
        assert_eq!(same.field, "source.minutesMetric");
        let blank = input(
            serde_json::json!({"source":{"kind":"track","trackTypeId":" "},
            "target":"endUser","metricName":"Other"}),
        )
        .unwrap()
        .validate(&i, MappingId::parse("m3").unwrap(), &[], now)
        .unwrap_err();
        assert_eq!(blank.field, "source.trackTypeId");
        assert!(input(
            serde_json::json!({"source":{"kind":"track","featureId":"f"},
            "target":"company","metricName":"x"})
        )
        .is_err());
    }

    #[test]
    fn unknown_fields_and_missing_fields_are_rejected() {
        assert!(input(
            serde_json::json!({"source":{"kind":"feature","featureId":"f"},
            "target":"company","metricName":"x","bogus":1})
        )
        .is_err());
        assert!(input(
            serde_json::json!({"source":{"kind":"feature","featureId":"f","x":1},
            "target":"company","metricName":"x"})
        )
        .is_err());
        assert!(input(
            serde_json::json!({"source":{"kind":"feature"},"target":"company",
            "metricName":"x"})
        )
        .is_err());
    }

    #[test]
    fn asset_target_needs_asset_field() {
        let i = integration();
        let e = input(
            serde_json::json!({"source":{"kind":"feature","featureId":"f"},
            "target":"asset","metricName":"x"}),
        )
        .unwrap()
        .validate(&i, MappingId::parse("m").unwrap(), &[], Utc::now())
        .unwrap_err();
        assert_eq!(e.field, "target");
    }
}
