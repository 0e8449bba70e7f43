//! The chunk fetch of per-day pipeline mappings (custom aggregations, reports, PES, guides):
//! build the day's request, stream its rows into a [`DayAccumulator`], write the day as one
//! chunk. The pure parts live in `custom_rows`, `report_source`, `pes` and `guide_source`.

use super::custom_rows::{DayAccumulator, DayActivity, DaySpec, Derived};
use super::engine::{ChunkError, Job};
use super::guide_source::GuideSink;
use super::persist::again;
use super::poll_source::{self, PollPlan, PollSink};
use crate::domain::aggregation;
use crate::domain::mapping::FieldMetric;
use crate::domain::Window;
use crate::domain::{ChunkStats, Mapping, MappingKind, Target};
use crate::pendo::pipelines::{
    custom_request, custom_time_series, reanchor, source_time_series, window_ending_on,
};
use crate::store::StoreError;
use chrono::NaiveDate;
use std::borrow::Cow;

/// A mapping that cannot be fetched as it is stored (never retried).
fn invalid(e: impl std::fmt::Display) -> ChunkError {
    ChunkError::Invalid(e.to_string())
}

/// The Pendo object a chunk reads (a Report mapping's saved report, a Guide mapping's guide):
/// as its run's planning read it from Pendo (once for the whole run), else, for a run planned
/// without it, listed now and found by `find`.
async fn planned_object<E: std::fmt::Display>(
    job: &Job<'_>,
    list: crate::pendo::ObjectList,
    id: &str,
    find: impl for<'v> Fn(&'v [serde_json::Value], &str) -> Result<&'v serde_json::Value, E>,
) -> Result<serde_json::Value, ChunkError> {
    let (ports, t, run, mapping, conn) = (
        job.ports,
        &job.integration.tenant,
        job.run,
        job.mapping,
        job.conn,
    );
    let planned = ports
        .store
        .run_source(t, run, &mapping.id)
        .await
        .map_err(ChunkError::Store)?;
    let listed;
    let reports: &[serde_json::Value] = match &planned {
        Some(serde_json::Value::Null) => &[],
        Some(found) => std::slice::from_ref(found),
        None => {
            listed = ports
                .pendo
                .list(conn, list)
                .await
                .map_err(ChunkError::Pendo)?;
            &listed
        }
    };
    find(reports, id).cloned().map_err(invalid)
}

/// How a day's rows are read.
enum Reader {
    /// As they are: each mapped column summed.
    Rows,
    /// PES rows of one app (never per multi-app).
    Pes(i64),
    /// Guide event counts, with the step that completes the guide.
    Guide(Option<String>),
    /// Raw poll responses.
    Poll(PollPlan),
}

/// The day's request of a per-day pipeline mapping, and how to read its rows.
struct DayPipeline<'m> {
    /// The stages, re-anchored on the day (and limited to the mapping's segment).
    stages: Vec<serde_json::Value>,
    /// Which output field becomes which metric.
    fields: Cow<'m, [FieldMetric]>,
    /// The output fields that name the object (company, end user, …).
    ids: aggregation::IdFields,
    reader: Reader,
    /// Values computed from the fields' sums.
    derived: Vec<Derived>,
    /// The field whose sum is each end user's activity, and the column its label says.
    activity: Option<(usize, Option<&'static str>)>,
}

/// One local day of a per-day pipeline mapping (custom aggregation, report, PES): the pipeline
/// re-anchored on the day, its rows summed per object/metric/app, written as the day's chunk.
pub(super) async fn fetch_pipeline_day(
    job: &Job<'_>,
    window: Window,
) -> Result<ChunkStats, ChunkError> {
    let Job {
        ports,
        integration,
        mapping,
        conn,
        ..
    } = *job;
    let settings = &integration.settings;
    let fm = &settings.field_mappings;
    let day = window.from;
    let pipeline = day_pipeline(job, day).await?;
    let request = custom_request(pipeline.stages, &format!("{}-{}", mapping.id, day));
    // End users are matched for the target, and for the activity of any target (guides, polls).
    let with_users = mapping.target == Target::EndUser || pipeline.activity.is_some();
    let dir = super::engine::load_directory(job, mapping.target, with_users)
        .await
        .map_err(ChunkError::Store)?;
    // Guides and polls record the days their end users saw or answered them, on any target
    // (as event kinds do).
    let activity = pipeline.activity.map(|(field, detail)| DayActivity {
        mapping_id: mapping.id.clone(),
        label: mapping.metric_name.clone(),
        field,
        passive: mapping.passive,
        detail: detail.map(str::to_string),
    });
    let spec = DaySpec {
        target: mapping.target,
        ids: pipeline.ids,
        fields: pipeline
            .fields
            .iter()
            .map(|f| (f.field.clone(), f.metric.clone()))
            .collect(),
        multi_app: mapping.multi_app && !matches!(pipeline.reader, Reader::Pes(_)),
        email_mapped: fm.email.is_some(),
        may_create: (mapping.target == Target::EndUser || activity.is_some())
            && settings.auto_detect_end_users
            && mapping.auto_create_users,
        auto_create: mapping.auto_create_users,
        day,
        apps: integration.apps.clone(),
        activity,
        derived: pipeline.derived,
    };
    let mut acc = DayAccumulator::new(spec, &dir);
    let pendo = &ports.pendo;
    let fetched = match pipeline.reader {
        Reader::Pes(app_id) => {
            let mut sink = super::pes::PesSink {
                app_id,
                acc: &mut acc,
            };
            pendo.aggregate(conn, &request, &mut sink).await
        }
        Reader::Guide(completing) => {
            let mut sink = GuideSink::new(&mut acc, completing);
            pendo.aggregate(conn, &request, &mut sink).await
        }
        Reader::Poll(plan) => {
            let tz = settings.timezone.map(|z| z.0);
            let mut sink = PollSink::new(&mut acc, plan, day, tz);
            let answer = pendo.aggregate(conn, &request, &mut sink).await;
            sink.finish();
            answer
        }
        Reader::Rows => pendo.aggregate(conn, &request, &mut acc).await,
    };
    fetched.map_err(ChunkError::Pendo)?;
    write_day(job, window, acc).await
}

/// The mapped fields with the names their metrics are stored under
/// ([`crate::domain::mapping::part_metric_name`]).
fn stored_names<'m>(mapping: &Mapping, fields: &[FieldMetric]) -> Cow<'m, [FieldMetric]> {
    let n = fields.len();
    Cow::Owned(
        fields
            .iter()
            .map(|f| FieldMetric {
                field: f.field.clone(),
                metric: crate::domain::mapping::part_metric_name(
                    &mapping.metric_name,
                    n,
                    &f.metric,
                ),
            })
            .collect(),
    )
}

/// The day's stages of the mapping, with the fields and ids that read its rows.
async fn day_pipeline<'m>(job: &Job<'m>, day: NaiveDate) -> Result<DayPipeline<'m>, ChunkError> {
    let Job {
        integration,
        mapping,
        ..
    } = *job;
    let tz = integration.settings.timezone.map(|z| z.0);
    let fm = &integration.settings.field_mappings;
    let mut derived = Vec::new();
    let mut activity = None;
    let (stages, fields, ts, ids, reader) = match &mapping.source {
        MappingKind::Pes { app_id, components } => {
            // PES is per Pendo account: with another company id field its rows would land on
            // the wrong companies (the settings refuse that change while a PES mapping exists).
            if fm.company_id.record != crate::domain::FieldRecord::Row
                || fm.company_id.path != "accountId"
            {
                return Err(invalid(
                    "PES is computed per Pendo account, but the company id field is no longer accountId: set it back to accountId, or delete this mapping",
                ));
            }
            let fields = components
                .iter()
                .map(|c| FieldMetric {
                    field: super::pes::column(*c).to_string(),
                    metric: crate::domain::mapping::pes_metric_name(
                        &mapping.metric_name,
                        components.len(),
                        *c,
                    ),
                })
                .collect();
            let ids = aggregation::IdFields {
                company: "accountId".into(),
                end_user: None,
                email: None,
                object: None,
                name: None,
                surname: None,
            };
            let stages = super::pes::pes_pipeline(*app_id, day, tz, mapping.segment_id.as_deref());
            (stages, Cow::Owned(fields), None, ids, Reader::Pes(*app_id))
        }
        MappingKind::Guide { guide_id, .. } => {
            let guide = planned_object(
                job,
                crate::pendo::ObjectList::Guides,
                guide_id,
                super::guide_source::find,
            )
            .await?;
            let completing = super::guide_source::completing_step(&guide);
            let stages = crate::pendo::pipelines::guide_stages(guide_id, day, tz, fm);
            let fields = Cow::Owned(super::guide_source::fields(mapping));
            let ids = crate::pendo::pipelines::projected_ids(mapping.target, fm);
            activity = Some((0, None));
            (stages, fields, None, ids, Reader::Guide(completing))
        }
        MappingKind::Poll {
            guide_id, poll_id, ..
        } => {
            let guide = planned_object(
                job,
                crate::pendo::ObjectList::Guides,
                guide_id,
                super::guide_source::find,
            )
            .await?;
            let poll = poll_source::poll(&guide, poll_id).ok_or_else(|| {
                invalid(format!(
                    "poll {poll_id} is not among the polls of guide {guide_id}"
                ))
            })?;
            let plan = PollPlan::of(mapping, poll_source::poll_type(poll));
            let ts = window_ending_on(day, tz, plan.days());
            let stages = crate::pendo::pipelines::poll_stages(guide_id, poll_id, ts, fm);
            let (columns, values, today) = poll_source::fields(mapping, plan);
            let fields = columns
                .into_iter()
                .map(|(field, metric)| FieldMetric { field, metric })
                .collect();
            derived = values;
            activity = Some((today, Some(poll_source::column::RESPONSE)));
            let ids = crate::pendo::pipelines::projected_ids(mapping.target, fm);
            (stages, Cow::Owned(fields), None, ids, Reader::Poll(plan))
        }
        MappingKind::Aggregation { pipeline, fields } => {
            let stages = aggregation::unwrap_pipeline(pipeline).map_err(invalid)?;
            let out = aggregation::output(&stages)
                .ok_or_else(|| invalid("the pipeline's output fields cannot be known"))?;
            let ids = aggregation::id_fields(mapping.target, fm, &out).map_err(invalid)?;
            let ts = custom_time_series(source_time_series(&stages), day, tz);
            (
                stages,
                stored_names(mapping, fields),
                Some(ts),
                ids,
                Reader::Rows,
            )
        }
        MappingKind::Report { report_id, columns } => {
            let report = planned_object(
                job,
                crate::pendo::ObjectList::Reports,
                report_id,
                super::report_source::find,
            )
            .await?;
            let src = super::report_source::prepare(&report, columns, mapping.target, fm)
                .map_err(invalid)?;
            let ts = window_ending_on(day, tz, src.window_days);
            (
                src.stages,
                stored_names(mapping, columns),
                Some(ts),
                src.ids,
                Reader::Rows,
            )
        }
        other => {
            return Err(invalid(format!(
                "{} mappings are not fetched per day with a pipeline",
                other.name()
            )))
        }
    };
    let mut stages = match ts {
        Some(ts) => reanchor(&stages, ts)
            .ok_or_else(|| invalid("the pipeline's source stage has no timeSeries"))?,
        None => stages,
    };
    let pes = matches!(reader, Reader::Pes(_));
    if let Some(seg) = mapping.segment_id.as_ref().filter(|_| !pes) {
        let at = stages
            .iter()
            .position(|st| st.get("source").is_some())
            .map_or(0, |i| i + 1);
        stages.insert(at, serde_json::json!({ "segment": { "id": seg } }));
    }
    Ok(DayPipeline {
        stages,
        fields,
        ids,
        reader,
        derived,
        activity,
    })
}

/// Writes a fetched day: its end users created, its values replaced as one chunk, the names
/// and emails its rows fill in, and what no object took.
async fn write_day(
    job: &Job<'_>,
    window: Window,
    acc: DayAccumulator<'_>,
) -> Result<ChunkStats, ChunkError> {
    let Job {
        ports,
        integration,
        mapping,
        ..
    } = *job;
    let t = &integration.tenant;
    let store = &ports.store;
    let st = ChunkError::Store;
    let (rows_read, skipped, fills) = (acc.rows_read, acc.skipped.clone(), acc.fills());
    let unmatched = acc.unmatched.entries();
    let new_users = acc.new_users();
    let (created, users_created) = super::engine::create_users(ports, t, new_users)
        .await
        .map_err(st)?;
    let activities = acc.activities(&created);
    let values = acc.finish(&created);
    let gen = integration.generations().writes(&mapping.id);
    match again("replace the chunk's values", || {
        store.replace_chunk(t, gen, &mapping.id, window, &values, &activities)
    })
    .await
    {
        Err(StoreError::StaleGeneration(_)) => return Err(ChunkError::Stale),
        other => other.map_err(st)?,
    }
    for f in fills {
        again("fill an end user", || {
            store.fill_end_user(
                t,
                &f.user_id,
                f.email.as_deref(),
                f.name.as_deref(),
                f.surname.as_deref(),
            )
        })
        .await
        .map_err(st)?;
    }
    again("replace the unmatched rows", || {
        store.replace_unmatched(t, &mapping.id, gen, window, &unmatched)
    })
    .await
    .map_err(st)?;
    Ok(ChunkStats {
        rows_read,
        values_written: values.len() as u64,
        activities_written: activities.len() as u64,
        users_created,
        rows_skipped: skipped.total(),
        skipped,
    })
}
