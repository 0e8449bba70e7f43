//! The Pendo objects a mapping refers to (its feature, page, track type, guide, saved report,
//! PES app, segment),
//! checked against what Pendo lists. On create and edit, a reference Pendo does not know is
//! refused, naming its field; at the planning of a run, a mapping whose object has disappeared
//! since is left out of the run (syncing it would replace its values with nothing), and its
//! status says why. Each list is read from Pendo once per check or run, whatever the number of
//! mappings.

use crate::domain::aggregation::NamedId;
use crate::domain::{Connection, Integration, Mapping, MappingId, MappingKind};
use crate::pendo::pipelines::custom_request;
use crate::pendo::{ObjectList, PendoError, RowError, RowSink};
use crate::ports::Ports;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// One reference of a mapping to an object of the Pendo subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Feature(String),
    Page(String),
    TrackType(String),
    Guide(String),
    /// A poll of a guide: (guide, poll).
    Poll(String, String),
    Report(String),
    /// The app a PES mapping scores.
    App(i64),
    Segment(String),
    /// A feature or page an aggregation's pipeline names by id.
    InPipeline(NamedId),
}

impl Reference {
    /// The JSON path of the field that holds it in a mapping's body.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Feature(_) => "source.featureId",
            Self::Page(_) => "source.pageId",
            Self::TrackType(_) => "source.trackTypeId",
            Self::Guide(_) => "source.guideId",
            Self::Poll(..) => "source.pollId",
            Self::Report(_) => "source.reportId",
            Self::App(_) => "source.appId",
            Self::Segment(_) => "segmentId",
            Self::InPipeline(_) => "source.pipeline",
        }
    }

    fn what(&self) -> String {
        match self {
            Self::Feature(id) => format!("feature {id}"),
            Self::Page(id) => format!("page {id}"),
            Self::TrackType(id) => format!("track type {id}"),
            Self::Guide(id) => format!("guide {id}"),
            Self::Poll(guide, poll) => format!("poll {poll} of guide {guide}"),
            Self::Report(id) => format!("report {id}"),
            Self::App(id) => format!("app {id}"),
            Self::Segment(id) => format!("segment {id}"),
            Self::InPipeline(NamedId::Feature(id)) => {
                format!("feature {id}, named in the pipeline,")
            }
            Self::InPipeline(NamedId::Page(id)) => format!("page {id}, named in the pipeline,"),
        }
    }
}

/// The references a mapping makes (an aggregation's: the features and pages its pipeline
/// names by id).
pub fn references(m: &Mapping) -> Vec<Reference> {
    let mut out = match &m.source {
        MappingKind::Feature { feature_id, .. } => vec![Reference::Feature(feature_id.clone())],
        MappingKind::Page { page_id, .. } => vec![Reference::Page(page_id.clone())],
        MappingKind::Track { track_type_id, .. } => {
            vec![Reference::TrackType(track_type_id.clone())]
        }
        MappingKind::Guide { guide_id, .. } => vec![Reference::Guide(guide_id.clone())],
        MappingKind::Poll {
            guide_id, poll_id, ..
        } => vec![
            Reference::Guide(guide_id.clone()),
            Reference::Poll(guide_id.clone(), poll_id.clone()),
        ],
        MappingKind::Report { report_id, .. } => vec![Reference::Report(report_id.clone())],
        MappingKind::Pes { app_id, .. } => vec![Reference::App(*app_id)],
        MappingKind::Aggregation { pipeline, .. } => {
            crate::domain::aggregation::unwrap_pipeline(pipeline)
                .map(|stages| crate::domain::aggregation::named_ids(&stages))
                .unwrap_or_default()
                .into_iter()
                .map(Reference::InPipeline)
                .collect()
        }
    };
    if let Some(s) = &m.segment_id {
        out.push(Reference::Segment(s.clone()));
    }
    out
}

/// The lists of the subscription's objects, as Pendo returned them (`None`: not read).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    features: Option<BTreeSet<String>>,
    pages: Option<BTreeSet<String>>,
    track_types: Option<BTreeSet<String>>,
    guides: Option<Vec<Value>>,
    segments: Option<BTreeSet<String>>,
    reports: Option<Vec<Value>>,
    apps: Option<BTreeSet<i64>>,
}

fn ids(list: &[Value]) -> BTreeSet<String> {
    list.iter()
        .filter_map(|o| o.get("id").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// Collects the `id` of each row of the `apps` source.
#[derive(Default)]
struct AppIds(BTreeSet<i64>);

impl RowSink for AppIds {
    fn row(&mut self, raw: &[u8]) -> Result<(), RowError> {
        let row: Value = serde_json::from_slice(raw).map_err(|e| format!("bad app row: {e}"))?;
        if let Some(id) = row.get("id").and_then(Value::as_i64) {
            self.0.insert(id);
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.0.clear();
    }
}

/// An app as the `apps` aggregation source lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendoApp {
    pub id: i64,
    /// Its display name (`displayName`; its id when Pendo gives none).
    pub name: String,
    /// `web`, `ios`, … when Pendo says.
    pub platform: Option<String>,
}

/// Collects the rows of the `apps` source.
#[derive(Default)]
struct AppRows(Vec<PendoApp>);

impl RowSink for AppRows {
    fn row(&mut self, raw: &[u8]) -> Result<(), RowError> {
        let row: Value = serde_json::from_slice(raw).map_err(|e| format!("bad app row: {e}"))?;
        if let Some(id) = row.get("id").and_then(Value::as_i64) {
            let text = |k: &str| {
                row.get(k)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            };
            self.0.push(PendoApp {
                id,
                name: text("displayName")
                    .or_else(|| text("name"))
                    .unwrap_or_else(|| id.to_string()),
                platform: text("platform"),
            });
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.0.clear();
    }
}

/// The subscription's apps with their names (no object endpoint lists apps; the `apps`
/// aggregation source does), by name.
///
/// # Errors
/// Pendo's.
pub async fn list_apps(ports: &Ports, conn: &Connection) -> Result<Vec<PendoApp>, PendoError> {
    let request = custom_request(vec![json!({ "source": { "apps": null } })], "apps");
    let mut sink = AppRows::default();
    ports.pendo.aggregate(conn, &request, &mut sink).await?;
    let mut apps = sink.0;
    apps.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    Ok(apps)
}

/// Which list a reference is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Features,
    Pages,
    TrackTypes,
    Guides,
    Reports,
    Apps,
    Segments,
}

fn kind(r: &Reference) -> Kind {
    match r {
        Reference::Feature(_) => Kind::Features,
        Reference::Page(_) => Kind::Pages,
        Reference::TrackType(_) => Kind::TrackTypes,
        Reference::Guide(_) | Reference::Poll(..) => Kind::Guides,
        Reference::Report(_) => Kind::Reports,
        Reference::App(_) => Kind::Apps,
        Reference::Segment(_) => Kind::Segments,
        Reference::InPipeline(NamedId::Feature(_)) => Kind::Features,
        Reference::InPipeline(NamedId::Page(_)) => Kind::Pages,
    }
}

impl Catalog {
    /// Reads, once each, the lists `refs` are checked against. The first list that cannot be
    /// read ends it, with the reference that needed it.
    ///
    /// # Errors
    /// The Pendo error, with the first reference of the list that could not be read.
    pub async fn load(
        ports: &Ports,
        conn: &Connection,
        refs: &[Reference],
    ) -> Result<Self, (Reference, PendoError)> {
        let mut out = Self::default();
        let mut kinds: BTreeMap<Kind, &Reference> = BTreeMap::new();
        for r in refs {
            kinds.entry(kind(r)).or_insert(r);
        }
        for (k, r) in kinds {
            out.read(ports, conn, k).await.map_err(|e| (r.clone(), e))?;
        }
        Ok(out)
    }

    /// As [`Catalog::load`], but a list that cannot be read is left unread (its references
    /// then count as present): what a run's planning uses, so that a fault of Pendo never
    /// leaves a mapping out.
    pub async fn load_lenient(
        ports: &Ports,
        integration: &Integration,
        conn: &Connection,
        refs: &[Reference],
    ) -> Self {
        let mut out = Self::default();
        let kinds: BTreeSet<Kind> = refs.iter().map(kind).collect();
        for k in kinds {
            if let Err(e) = out.read(ports, conn, k).await {
                tracing::warn!(tenant = %integration.tenant, list = ?k, error = %e, "could not read a list of Pendo objects at planning; its references are taken as present");
            }
        }
        out
    }

    async fn read(&mut self, ports: &Ports, conn: &Connection, k: Kind) -> Result<(), PendoError> {
        let pendo = &ports.pendo;
        match k {
            Kind::Features => {
                self.features = Some(ids(&pendo.list(conn, ObjectList::Features).await?));
            }
            Kind::Pages => self.pages = Some(ids(&pendo.list(conn, ObjectList::Pages).await?)),
            Kind::TrackTypes => {
                self.track_types = Some(ids(&pendo.list(conn, ObjectList::TrackTypes).await?));
            }
            Kind::Guides => self.guides = Some(pendo.list(conn, ObjectList::Guides).await?),
            Kind::Segments => {
                self.segments = Some(ids(&pendo.list(conn, ObjectList::Segments).await?));
            }
            Kind::Reports => self.reports = Some(pendo.list(conn, ObjectList::Reports).await?),
            Kind::Apps => {
                // No object endpoint lists apps; the `apps` aggregation source does.
                let request = custom_request(vec![json!({ "source": { "apps": null } })], "apps");
                let mut sink = AppIds::default();
                pendo.aggregate(conn, &request, &mut sink).await?;
                self.apps = Some(sink.0);
            }
        }
        Ok(())
    }

    /// Why Pendo does not know `r`, or `None` when it does (or its list was not read).
    pub fn missing(&self, r: &Reference) -> Option<String> {
        let known = match r {
            Reference::Feature(id) => self.features.as_ref().map(|s| s.contains(id)),
            Reference::Page(id) => self.pages.as_ref().map(|s| s.contains(id)),
            Reference::TrackType(id) => self.track_types.as_ref().map(|s| s.contains(id)),
            Reference::Guide(id) => self
                .guide(id)
                .map(|_| true)
                .or(self.guides.as_ref().map(|_| false)),
            // A poll of a guide Pendo does not list is the guide's absence, said once.
            Reference::Poll(guide, poll) => self
                .guide(guide)
                .map(|g| super::poll_source::poll(g, poll).is_some()),
            Reference::Segment(id) => self.segments.as_ref().map(|s| s.contains(id)),
            Reference::Report(id) => self
                .reports
                .as_ref()
                .map(|l| super::report_source::find(l, id).is_ok()),
            Reference::App(id) => self.apps.as_ref().map(|s| s.contains(id)),
            Reference::InPipeline(NamedId::Feature(id)) => {
                self.features.as_ref().map(|s| s.contains(id))
            }
            Reference::InPipeline(NamedId::Page(id)) => self.pages.as_ref().map(|s| s.contains(id)),
        };
        if known != Some(false) {
            return None;
        }
        Some(match r {
            Reference::Feature(_) | Reference::InPipeline(NamedId::Feature(_)) => {
                format!("{} is not among the subscription's features", r.what())
            }
            Reference::Page(_) | Reference::InPipeline(NamedId::Page(_)) => {
                format!("{} is not among the subscription's pages", r.what())
            }
            Reference::TrackType(_) => {
                format!("{} is not among the subscription's track types", r.what())
            }
            Reference::Guide(_) => {
                format!("{} is not among the subscription's guides", r.what())
            }
            Reference::Poll(..) => format!("{} is not among the guide's polls", r.what()),
            Reference::Report(_) => {
                format!("{} is not among the subscription's saved reports", r.what())
            }
            Reference::Segment(_) => {
                format!("{} is not among the subscription's segments", r.what())
            }
            Reference::App(_) => {
                let apps: Vec<String> = self.apps.iter().flatten().map(i64::to_string).collect();
                format!(
                    "{} is not an app of the subscription (its apps: {})",
                    r.what(),
                    apps.join(", ")
                )
            }
        })
    }

    /// A guide, as Pendo listed it.
    pub fn guide(&self, id: &str) -> Option<&Value> {
        super::guide_source::find(self.guides.as_deref()?, id).ok()
    }

    /// A saved report's definition, as Pendo listed it.
    pub fn report(&self, id: &str) -> Option<&Value> {
        super::report_source::find(self.reports.as_deref()?, id).ok()
    }
}

/// What a run's planning learned of its mappings' references: the mappings to leave out (with
/// the reason their status shows) and, for each Report and Guide mapping, its saved report's
/// definition or its guide (each day chunk reads it from the run instead of listing them
/// again).
#[derive(Debug, Clone, Default)]
pub struct Planned {
    pub left_out: BTreeMap<MappingId, String>,
    pub sources: BTreeMap<MappingId, Value>,
}

/// Checks the references of a run's enabled mappings, reading each list Pendo needs once. A
/// list that cannot be read leaves its mappings in (each Report chunk then lists the reports
/// itself, as a run planned without sources does).
pub async fn plan_checks(
    ports: &Ports,
    integration: &Integration,
    mappings: &[Mapping],
) -> Planned {
    let mut out = Planned::default();
    let Some(conn) = integration.connection.as_ref() else {
        return out;
    };
    let enabled: Vec<&Mapping> = mappings.iter().filter(|m| m.enabled).collect();
    // A PES app is checked on create and edit only: listing apps is an aggregation, and a run
    // spends one aggregation per chunk.
    let refs: Vec<Reference> = enabled
        .iter()
        .flat_map(|m| references(m))
        .filter(|r| !matches!(r, Reference::App(_)))
        .collect();
    if refs.is_empty() {
        return out;
    }
    let catalog = Catalog::load_lenient(ports, integration, conn, &refs).await;
    for m in enabled {
        let gone: Vec<String> = references(m)
            .iter()
            .filter(|r| !matches!(r, Reference::App(_)))
            .filter_map(|r| catalog.missing(r))
            .collect();
        if !gone.is_empty() {
            tracing::warn!(tenant = %integration.tenant, mapping = %m.id, "left out of the run: an object it refers to is no longer in Pendo");
            out.left_out.insert(
                m.id.clone(),
                format!(
                    "not synced: {} any more (deleted in Pendo?); edit the mapping to pick another one, or delete it",
                    gone.join("; ")
                ),
            );
            continue;
        }
        let source = match &m.source {
            MappingKind::Report { report_id, .. } => catalog.report(report_id),
            MappingKind::Guide { guide_id, .. } | MappingKind::Poll { guide_id, .. } => {
                catalog.guide(guide_id)
            }
            _ => None,
        };
        if let Some(found) = source {
            out.sources.insert(m.id.clone(), found.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog {
            features: Some(["f1".to_string()].into()),
            pages: None,
            track_types: Some(["t1".to_string()].into()),
            guides: Some(vec![json!({"id": "g1", "steps": []})]),
            segments: Some(BTreeSet::new()),
            reports: Some(vec![json!({"id": "r1"})]),
            apps: Some([-323232, 7].into()),
        }
    }

    #[test]
    fn a_reference_is_missing_only_from_a_list_that_was_read() {
        let c = catalog();
        let missing = |r: Reference| c.missing(&r);
        assert_eq!(missing(Reference::Feature("f1".into())), None);
        assert_eq!(
            missing(Reference::Feature("f2".into())).as_deref(),
            Some("feature f2 is not among the subscription's features")
        );
        assert_eq!(missing(Reference::Page("p9".into())), None, "not read");
        assert_eq!(missing(Reference::TrackType("t1".into())), None);
        assert_eq!(
            missing(Reference::TrackType("t2".into())).as_deref(),
            Some("track type t2 is not among the subscription's track types")
        );
        assert_eq!(
            Reference::TrackType("t2".into()).field(),
            "source.trackTypeId"
        );
        assert_eq!(
            missing(Reference::Segment("s".into())).as_deref(),
            Some("segment s is not among the subscription's segments")
        );
        assert_eq!(missing(Reference::Report("r1".into())), None);
        assert_eq!(missing(Reference::Guide("g1".into())), None);
        assert_eq!(
            missing(Reference::Guide("g2".into())).as_deref(),
            Some("guide g2 is not among the subscription's guides")
        );
        assert_eq!(Reference::Guide("g2".into()).field(), "source.guideId");
        assert_eq!(
            missing(Reference::App(5)).as_deref(),
            Some("app 5 is not an app of the subscription (its apps: -323232, 7)")
        );
        assert_eq!(c.report("r1"), Some(&json!({"id": "r1"})));
        assert_eq!(Reference::App(5).field(), "source.appId");
    }
}
