//! `App`: the use cases every entry point calls (the local runner, the HTTP API, the Lambda
//! handlers). Validation happens before anything is stored; a refused request changes nothing.

use crate::domain::*;
use crate::error::ValidationError;
use crate::pendo::PendoError;
use crate::queue::messages::{MessageKind, QueueMessage, ResyncMessage, MESSAGE_VERSION};
use crate::store::{optimistic, ActivityOf, StoreError};
use crate::sync::engine::{self, ProcessError, Processed};
use crate::sync::plan::{self, DEFAULT_LOOKBACK_DAYS};
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};

mod directory;
mod discovery;
pub mod imports;
pub mod mappings;
pub mod reads;
pub mod recovery;

pub use crate::ports::Ports;

/// What a run fetches of each mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Planning {
    /// From the cursor (minus the look-back) to the last complete day; with `recover`, also the
    /// earlier days whose unmatched rows the directory now resolves.
    FromCursor { recover: bool },
    /// `days_to_sync` days, the cursor reset (a rebuild).
    FromScratch,
    /// Only the days whose unmatched rows the directory now resolves.
    RecoverOnly,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// An object the tenant does not have: `what` names its kind (mapping, run, …).
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// The route needs a Pendo connection and the tenant has none (never connected, or
    /// disconnected).
    #[error("connect Pendo first")]
    NotConnected,
    /// The mapping was edited in a way its stored values do not follow; it syncs again only
    /// after its rebuild (or a Re-sync all).
    #[error("mapping {0} was edited and needs a rebuild before it syncs again: rebuild it (POST /v1/mappings/{0}/rebuild) or run Re-sync all; until then its stored values stay as they were made")]
    RebuildRequired(MappingId),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    /// The key check failed; nothing was saved.
    #[error("{0}")]
    Connection(ConnectProblem),
    #[error("Pendo: {0}")]
    Pendo(#[from] PendoError),
    /// A reference of a mapping could not be checked because Pendo could not be reached (or
    /// refused the call); nothing was saved.
    #[error("could not check {field} with Pendo ({error}); nothing was saved: try again")]
    PendoCheck {
        field: &'static str,
        error: PendoError,
    },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("queue: {0}")]
    Queue(#[from] crate::queue::QueueError),
    /// A directory upload that cannot be read as it is; nothing of it was stored.
    #[cfg(feature = "api")]
    #[error("{0}")]
    Upload(#[from] crate::directory::csv::CsvError),
}

/// Why a key was not accepted, each with its own message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectProblem {
    #[error("Pendo refused this integration key on {domain}: check that it is copied whole and not revoked")]
    KeyRejected { domain: &'static str },
    #[error("this key belongs to another region: it works on {works_on}, not on {domain}")]
    WrongRegion {
        domain: &'static str,
        works_on: &'static str,
    },
    #[error("this integration key is read-only: Pendo's aggregation API needs a key created with \"Allow Write Access\"")]
    ReadOnly,
    #[error("could not verify the key with Pendo: {0}")]
    Unreachable(String),
}

impl ConnectProblem {
    pub fn code(&self) -> &'static str {
        match self {
            Self::KeyRejected { .. } => "pendo_key_rejected",
            Self::WrongRegion { .. } => "pendo_wrong_region",
            Self::ReadOnly => "pendo_key_read_only",
            Self::Unreachable(_) => "pendo_unreachable",
        }
    }
}

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    Admin,
    Member,
}

/// A settings change; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SettingsUpdate {
    pub days_to_sync: Option<i64>,
    /// `""` clears the timezone.
    pub timezone: Option<String>,
    pub field_mappings: Option<FieldMappingsInput>,
    pub auto_detect_end_users: Option<bool>,
}

/// System metrics of an end user or a company.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemMetrics {
    pub last_seen: Option<NaiveDate>,
    pub last_active: Option<NaiveDate>,
    pub users_active_last_7_days: Option<u64>,
}

pub struct App {
    pub(crate) ports: Ports,
    pub lookback_days: u32,
    /// Directory snapshots shared by this process's chunks (see `sync::directory_cache`).
    directories: crate::sync::directory_cache::DirectoryCache,
}

impl App {
    /// The ports, for tests that check what a use case stored (feature `testing`): entry points
    /// go through the use cases.
    #[cfg(any(test, feature = "testing"))]
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    pub fn new(ports: Ports) -> Self {
        Self {
            ports,
            lookback_days: DEFAULT_LOOKBACK_DAYS,
            directories: Default::default(),
        }
    }

    pub async fn integration(&self, t: &TenantId) -> Result<Integration, AppError> {
        self.ports
            .store
            .get_integration(t)
            .await?
            .ok_or(AppError::NotConnected)
    }

    /// Reads, changes and writes the integration, retrying a lost optimistic write.
    async fn update_integration<F>(
        &self,
        t: &TenantId,
        create: bool,
        mut f: F,
    ) -> Result<Integration, AppError>
    where
        F: FnMut(&mut Integration) -> Result<(), AppError>,
    {
        let start = |stored: Option<Integration>| match stored {
            Some(i) => Ok(i),
            None if create => Ok(Integration::new(t.clone())),
            None => Err(AppError::NotConnected),
        };
        optimistic::update_integration(&*self.ports.store, t, start, &mut f)
            .await?
            .ok_or_else(|| {
                AppError::Conflict("the integration changed concurrently; try again".into())
            })
    }

    /// Verifies the key against Pendo, then stores key and domain. Nothing is stored when the
    /// check fails.
    pub async fn connect(
        &self,
        t: &TenantId,
        key: &str,
        domain: &str,
    ) -> Result<Integration, AppError> {
        let conn = Connection {
            domain: PendoDomain::parse(domain)?,
            key: IntegrationKey::parse(key)?,
        };
        match self.ports.pendo.verify(&conn).await {
            Ok(check) if check.valid && check.write_access => {}
            Ok(check) if check.valid => return Err(AppError::Connection(ConnectProblem::ReadOnly)),
            Ok(_) | Err(PendoError::Unauthorized { .. }) => {
                return Err(AppError::Connection(self.explain_refused_key(&conn).await))
            }
            Err(e) => {
                return Err(AppError::Connection(ConnectProblem::Unreachable(
                    e.to_string(),
                )))
            }
        }
        self.update_integration(t, true, |i| {
            let first = i.connection.is_none();
            i.connection = Some(conn.clone());
            i.status = ConnectionStatus::Active;
            if first {
                i.settings.field_mappings = FieldMappings::default();
            }
            Ok(())
        })
        .await
    }

    /// A refused key: tell a wrong region apart from a bad key by trying the other domains.
    async fn explain_refused_key(&self, conn: &Connection) -> ConnectProblem {
        for other in PendoDomain::ALL.into_iter().filter(|d| *d != conn.domain) {
            let probe = Connection {
                domain: other,
                key: conn.key.clone(),
            };
            if let Ok(c) = self.ports.pendo.verify(&probe).await {
                if c.valid {
                    return ConnectProblem::WrongRegion {
                        domain: conn.domain.host(),
                        works_on: other.host(),
                    };
                }
            }
        }
        ConnectProblem::KeyRejected {
            domain: conn.domain.host(),
        }
    }

    pub async fn disconnect(&self, t: &TenantId) -> Result<Integration, AppError> {
        self.update_integration(t, false, |i| {
            i.connection = None;
            i.status = ConnectionStatus::NotConnected;
            Ok(())
        })
        .await
    }

    pub async fn update_settings(
        &self,
        t: &TenantId,
        u: &SettingsUpdate,
        role: Role,
    ) -> Result<Integration, AppError> {
        let days = u.days_to_sync.map(DaysToSync::new).transpose()?;
        if days.is_some() && role != Role::Admin {
            return Err(AppError::Forbidden(
                "only an admin may change days to sync".into(),
            ));
        }
        let tz = match u.timezone.as_deref().map(str::trim) {
            None => None,
            Some("") => Some(None),
            Some(z) => Some(Some(Timezone::parse(z)?)),
        };
        // PES mappings need the company id field to stay accountId.
        let pes = match &u.field_mappings {
            Some(f) if f.company_id.is_some() => self
                .ports
                .store
                .list_mappings(t)
                .await?
                .into_iter()
                .filter(|m| matches!(m.source, MappingKind::Pes { .. }))
                .collect(),
            _ => Vec::new(),
        };
        self.update_integration(t, false, |i| {
            let before = i.settings.clone();
            if let Some(d) = days {
                i.settings.days_to_sync = d;
            }
            if let Some(z) = tz {
                i.settings.timezone = z;
            }
            if let Some(f) = &u.field_mappings {
                let fm = f.apply(&i.settings.field_mappings)?;
                crate::app::mappings::check_pes_company_field(&fm, &pes)?;
                i.settings.field_mappings = fm;
            }
            if let Some(a) = u.auto_detect_end_users {
                i.settings.auto_detect_end_users = a;
            }
            if i.settings != before {
                i.resync_required = true;
            }
            Ok(())
        })
        .await
    }

    pub async fn upsert_app(
        &self,
        t: &TenantId,
        app_id: &str,
        prefix: &str,
    ) -> Result<Integration, AppError> {
        self.update_integration(t, false, |i| {
            let before = i.apps.clone();
            i.apps.upsert(app_id, prefix).map_err(apps_error)?;
            i.resync_required |= i.apps != before;
            Ok(())
        })
        .await
    }

    pub async fn remove_app(&self, t: &TenantId, app_id: &str) -> Result<Integration, AppError> {
        self.update_integration(t, false, |i| {
            i.apps.remove(app_id).map_err(apps_error)?;
            i.resync_required = true;
            Ok(())
        })
        .await
    }

    pub async fn upsert_segment(
        &self,
        t: &TenantId,
        id: &str,
        name: &str,
    ) -> Result<Integration, AppError> {
        let seg = Segment::parse(id, name)?;
        self.update_integration(t, false, |i| {
            match i.segments.iter_mut().find(|s| s.id == seg.id) {
                Some(s) => s.name = seg.name.clone(),
                None => i.segments.push(seg.clone()),
            }
            Ok(())
        })
        .await
    }

    pub async fn remove_segment(&self, t: &TenantId, id: &str) -> Result<Integration, AppError> {
        let users: Vec<MappingId> = self
            .ports
            .store
            .list_mappings(t)
            .await?
            .into_iter()
            .filter(|m| m.segment_id.as_deref() == Some(id))
            .map(|m| m.id)
            .collect();
        if let Some(m) = users.first() {
            return Err(AppError::Conflict(format!(
                "segment {id} is used by mapping {m}"
            )));
        }
        self.update_integration(t, false, |i| {
            let before = i.segments.len();
            i.segments.retain(|s| s.id != id);
            if i.segments.len() == before {
                return Err(AppError::NotFound {
                    what: "segment",
                    id: id.to_string(),
                });
            }
            Ok(())
        })
        .await
    }

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

    pub async fn delete_mapping(&self, t: &TenantId, id: &MappingId) -> Result<(), AppError> {
        if self.ports.store.delete_mapping(t, id).await? {
            self.ports.store.delete_unmatched(t, id).await?;
            Ok(())
        } else {
            Err(AppError::NotFound {
                what: "mapping",
                id: id.to_string(),
            })
        }
    }

    /// Sync now: fetch what is missing since the mapping's last synced day. Deletes nothing.
    pub async fn sync_now(&self, t: &TenantId, id: &MappingId) -> Result<RunId, AppError> {
        let i = self.active_integration(t).await?;
        let m = self.mapping(t, id).await?;
        if m.rebuild_required {
            return Err(AppError::RebuildRequired(m.id));
        }
        let kind = RunKind::SyncNow {
            mapping_id: m.id.clone(),
        };
        self.start_run(&i, &[m], kind, Planning::FromCursor { recover: false })
            .await
    }

    /// Purges one mapping's values and re-fetches `days_to_sync` days of it (after an edit).
    /// A mapping whose Pendo object is gone is refused (`Conflict`) before anything is purged:
    /// its values could not be fetched again.
    pub async fn rebuild_mapping(&self, t: &TenantId, id: &MappingId) -> Result<RunId, AppError> {
        let i = self.active_integration(t).await?;
        let mut m = self.mapping(t, id).await?;
        let checked =
            crate::sync::references::plan_checks(&self.ports, &i, std::slice::from_ref(&m)).await;
        if let Some(why) = checked.left_out.get(id) {
            return Err(AppError::Conflict(format!(
                "mapping {id} cannot be rebuilt, its values were kept: {why}"
            )));
        }
        self.ports.store.delete_mapping_data(t, id).await?;
        self.ports
            .store
            .reset_mapping_state(t, id, i.generation)
            .await?;
        m.rebuild_required = false;
        self.ports.store.put_mapping(&m).await?;
        self.start_run(
            &i,
            &[m.clone()],
            RunKind::SyncNow { mapping_id: m.id },
            Planning::FromScratch,
        )
        .await
    }

    async fn active_integration(&self, t: &TenantId) -> Result<Integration, AppError> {
        let i = self.integration(t).await?;
        if !i.is_active() {
            return Err(AppError::NotConnected);
        }
        Ok(i)
    }

    /// Plans a run over `mappings` and queues its chunks.
    pub(crate) async fn start_run(
        &self,
        i: &Integration,
        mappings: &[Mapping],
        kind: RunKind,
        planning: Planning,
    ) -> Result<RunId, AppError> {
        let from_scratch = planning == Planning::FromScratch;
        let store = &self.ports.store;
        let now = self.ports.clock.now();
        let last = crate::time::last_complete_day(now, i.settings.timezone.map(|z| z.0));
        let mut run = SyncRun::new(i.tenant.clone(), RunId::random(), kind, i.generation, now);
        run.planned = true;
        let checked = crate::sync::references::plan_checks(&self.ports, i, mappings).await;
        let mut windows = Vec::new();
        for m in mappings
            .iter()
            .filter(|m| m.enabled && !checked.left_out.contains_key(&m.id))
        {
            let state = store.get_mapping_state(&i.tenant, &m.id).await?;
            let cursor = match state {
                Some(s) if s.generation == i.generation && !from_scratch => s.last_synced_day,
                Some(s) if s.generation == i.generation => None,
                _ => {
                    store
                        .reset_mapping_state(&i.tenant, &m.id, i.generation)
                        .await?;
                    None
                }
            };
            let window = plan::plan_window(
                cursor,
                last,
                i.settings.days_to_sync.get(),
                self.lookback_days,
            )
            .filter(|_| planning != Planning::RecoverOnly);
            windows.extend(window.map(|w| (m, w)));
            if matches!(
                planning,
                Planning::RecoverOnly | Planning::FromCursor { recover: true }
            ) {
                let before = window.map(|w| w.from);
                for w in self.recovery_windows(i, m, before).await? {
                    windows.push((m, w));
                }
            }
        }
        let messages = plan::plan_run(&mut run, &i.settings, mappings, &windows);
        if planning == Planning::RecoverOnly && run.chunks.is_empty() {
            return Err(AppError::Conflict(
                "nothing to recover: no row this mapping could not use belongs to a company or end user the directory holds now".into(),
            ));
        }
        run.sources = checked.sources;
        run.left_out = checked.left_out;
        // Sent right below; only a Re-sync all's redelivered plan reads this flag.
        run.queued = true;
        store.put_run(&run).await?;
        engine::note_planned(&self.ports, &run).await?;
        self.ports.queue.send_fetch(&messages).await?;
        Ok(run.id)
    }

    /// Re-sync all: bump the generation (older values become invisible at once), then let the
    /// resync worker purge, reset and fan out.
    pub async fn resync_all(&self, t: &TenantId) -> Result<RunId, AppError> {
        self.active_integration(t).await?;
        let i = self
            .update_integration(t, false, |i| {
                i.generation += 1;
                i.resync_required = false;
                Ok(())
            })
            .await?;
        let run = SyncRun::new(
            t.clone(),
            RunId::random(),
            RunKind::ResyncAll,
            i.generation,
            self.ports.clock.now(),
        );
        self.ports.store.put_run(&run).await?;
        let msg = ResyncMessage {
            v: MESSAGE_VERSION,
            tenant: t.clone(),
            run_id: run.id.clone(),
            generation: i.generation,
        };
        self.ports.queue.send_resync(&msg).await?;
        Ok(run.id)
    }

    /// The daily schedule: one run per active tenant over its enabled mappings.
    pub async fn run_schedule(&self) -> Result<Vec<RunId>, AppError> {
        let mut runs = Vec::new();
        for t in self.ports.store.list_tenants().await? {
            let Some(i) = self.ports.store.get_integration(&t).await? else {
                continue;
            };
            if !i.is_active() {
                continue;
            }
            // A mapping edited since its values were made waits for its rebuild: syncing it
            // with the edit would split its series between the old and the new configuration.
            let (waiting, mappings): (Vec<Mapping>, Vec<Mapping>) = self
                .ports
                .store
                .list_mappings(&t)
                .await?
                .into_iter()
                .partition(|m| m.rebuild_required);
            for m in &waiting {
                tracing::warn!(tenant = %t, mapping = %m.id, "not synced by the daily run: edited, waiting for its rebuild");
            }
            let planning = Planning::FromCursor { recover: true };
            runs.push(
                self.start_run(&i, &mappings, RunKind::Daily, planning)
                    .await?,
            );
        }
        Ok(runs)
    }

    /// Processes one queue message body of any kind (the local worker). `final_attempt`: the
    /// queue will not redeliver it.
    pub async fn process_message(
        &self,
        body: &str,
        final_attempt: bool,
    ) -> Result<Processed, ProcessError> {
        self.process_message_of(MessageKind::ALL, body, final_attempt)
            .await
    }

    /// [`App::process_message`] for a consumer that takes only the kinds `accepts` (a Lambda
    /// function). A message of another kind is not processed and fails as retryable, so that
    /// after its last receive the queue keeps it as a dead letter (a queue wired to the wrong
    /// function loses nothing).
    pub async fn process_message_of(
        &self,
        accepts: &[MessageKind],
        body: &str,
        final_attempt: bool,
    ) -> Result<Processed, ProcessError> {
        let message = QueueMessage::decode(body);
        if let Ok(m) = &message {
            if !accepts.contains(&m.kind()) {
                let takes: Vec<&str> = accepts.iter().map(|k| k.name()).collect();
                return Err(ProcessError::Retryable(format!(
                    "a {} message reached a consumer that takes only {} messages (is the queue \
                     wired to the right function?): not processed, left for the dead-letter queue",
                    m.kind().name(),
                    takes.join(" and ")
                )));
            }
        }
        match message {
            Err(e) => Err(ProcessError::Permanent(e.to_string())),
            Ok(QueueMessage::Fetch(m)) => {
                engine::process_fetch(&self.ports, &self.directories, &m, final_attempt).await
            }
            Ok(QueueMessage::Resync(m)) => engine::process_resync(&self.ports, &m).await,
            Ok(QueueMessage::Import(m)) => self.process_import(&m, final_attempt).await,
        }
    }

    /// The tenant's most recent runs, newest first.
    pub async fn runs(&self, t: &TenantId, limit: usize) -> Result<Vec<SyncRun>, AppError> {
        Ok(self.ports.store.list_runs(t, limit).await?)
    }

    /// The time by the app's clock (what runs and reads measure "now" against).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.ports.clock.now()
    }

    pub async fn run(&self, t: &TenantId, id: &RunId) -> Result<SyncRun, AppError> {
        self.ports
            .store
            .get_run(t, id)
            .await?
            .ok_or_else(|| AppError::NotFound {
                what: "run",
                id: id.to_string(),
            })
    }

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
}

fn apps_error(e: AppsError) -> AppError {
    match e {
        AppsError::Invalid(v) => AppError::Validation(v),
        AppsError::Permanent(id) => {
            AppError::Conflict(format!("app {id} is a permanent row and cannot be deleted"))
        }
        AppsError::NotFound(id) => AppError::NotFound {
            what: "app",
            id: id.to_string(),
        },
    }
}
