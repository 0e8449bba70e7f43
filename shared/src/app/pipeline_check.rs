//! The one check of a custom aggregation pipeline, shared by the page's live editor and the
//! server's create and edit (issue 32, defects 2 and 3): its stages against the operators and
//! sources Pendo knows, its output against the target's id fields, and — when it is run — the
//! pipeline itself, once, for the tenant's last complete day, so a pipeline Pendo refuses is
//! never saved and the user sees what it returns (rows, fields, a sample) before saving.

use crate::app::{App, AppError};
use crate::domain::aggregation;
use crate::domain::{Target, TenantId};
use crate::error::ValidationError;
use crate::pendo::pipelines::{custom_request, custom_time_series, reanchor, source_time_series};
use crate::pendo::{PendoError, RowError, RowSink};
use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;

/// Rows kept as a sample.
const SAMPLE_ROWS: usize = 5;

/// What a pipeline's check found.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineCheck {
    /// The output fields a mapping may map to metrics (numeric-looking).
    pub fields: Vec<String>,
    /// The run for one day, when the check ran it.
    pub trial: Option<PipelineTrial>,
}

/// The pipeline run once, for one local day.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineTrial {
    pub day: NaiveDate,
    pub rows: u64,
    /// Every field the rows carried, in the order first seen.
    pub output_fields: Vec<String>,
    /// The first rows, as Pendo returned them.
    #[schema(value_type = Vec<Object>)]
    pub sample: Vec<Value>,
}

/// Counts the rows, keeps the first few and the fields seen.
#[derive(Default)]
struct Trial {
    rows: u64,
    fields: Vec<String>,
    sample: Vec<Value>,
}

impl RowSink for Trial {
    fn row(&mut self, raw: &[u8]) -> Result<(), RowError> {
        let row: Value = serde_json::from_slice(raw).map_err(|e| format!("bad row: {e}"))?;
        self.rows += 1;
        if let Value::Object(o) = &row {
            for k in o.keys() {
                if !self.fields.contains(k) {
                    self.fields.push(k.clone());
                }
            }
        }
        if self.sample.len() < SAMPLE_ROWS {
            self.sample.push(row);
        }
        Ok(())
    }
    fn reset(&mut self) {
        *self = Self::default();
    }
}

impl App {
    /// Checks `pipeline` (as a mapping's `source.pipeline`; errors name fields from there): its
    /// stages, and with `target` its output against the target's id fields as the tenant maps
    /// them; with `run`, also runs it once for the last complete local day.
    ///
    /// # Errors
    /// `Validation` for a pipeline refused here or by Pendo (`source.pipeline`, with Pendo's
    /// message); `NotConnected` to run it without a connection; `PendoCheck` when Pendo
    /// cannot be reached.
    pub async fn check_pipeline(
        &self,
        t: &TenantId,
        pipeline: &Value,
        target: Option<Target>,
        run: bool,
    ) -> Result<PipelineCheck, AppError> {
        let stages = aggregation::unwrap_pipeline(pipeline)?;
        let out = aggregation::output(&stages).ok_or_else(aggregation::no_output)?;
        let fields = aggregation::numeric_fields(&out);
        let i = self.integration_or_default(t).await?;
        if let Some(target) = target {
            aggregation::id_fields(target, &i.settings.field_mappings, &out)?;
        }
        if !run {
            return Ok(PipelineCheck {
                fields,
                trial: None,
            });
        }
        let conn = super::active_connection(&i)?;
        let tz = i.settings.timezone.map(|z| z.0);
        let day = crate::time::last_complete_day(self.ports.clock.now(), tz);
        let ts = custom_time_series(source_time_series(&stages), day, tz);
        let stages = reanchor(&stages, ts).ok_or_else(|| {
            ValidationError::new("source.pipeline", "its source stage has no timeSeries")
        })?;
        let request = custom_request(stages, &format!("check-{day}"));
        let mut sink = Trial::default();
        match self.ports.pendo.aggregate(conn, &request, &mut sink).await {
            Ok(_) => {}
            Err(PendoError::BadRequest { message, .. }) => {
                return Err(ValidationError::new(
                    "source.pipeline",
                    format!("Pendo refused the pipeline when it was run for {day}: {message}"),
                )
                .into())
            }
            Err(error) => {
                return Err(AppError::PendoCheck {
                    field: "source.pipeline",
                    error,
                })
            }
        }
        Ok(PipelineCheck {
            fields,
            trial: Some(PipelineTrial {
                day,
                rows: sink.rows,
                output_fields: sink.fields,
                sample: sink.sample,
            }),
        })
    }
}
