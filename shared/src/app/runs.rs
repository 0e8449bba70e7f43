//! Runs (DESIGN §1 "sync now", "re-sync all", "the daily run"): starting one for a mapping,
//! a rebuild, a Re-sync all or the daily schedule; the messages the workers take; the runs a
//! tenant had.

use crate::app::{App, AppError, Planning};
use crate::domain::*;
use crate::queue::messages::{
    FetchMessage, MessageKind, PlanMessage, PurgeMessage, QueueMessage, ResyncMessage, RunAction,
    RunMessage, MESSAGE_VERSION,
};

/// How long the API waits for Pendo when it checks a mapping's references before queueing a
/// rebuild (API Gateway gives the request 29 s; Pendo's own timeout is minutes).
const API_PENDO_CHECK: std::time::Duration = std::time::Duration::from_secs(8);
use crate::sync::engine;
use crate::sync::plan;
use crate::sync::processed::{ProcessError, Processed};
use crate::sync::resync;

impl App {
    /// Sync now: fetch what is missing since the mapping's last synced day. Deletes nothing.
    /// Queued: the resync worker plans it (`process_run`).
    pub async fn sync_now(&self, t: &TenantId, id: &MappingId) -> Result<RunId, AppError> {
        let i = self.active_integration(t).await?;
        let m = self.mapping(t, id).await?;
        if m.rebuild_required {
            return Err(AppError::RebuildRequired(m.metric_name));
        }
        self.queue_run(&i, &m, RunAction::SyncNow).await
    }

    /// Re-fetches `days_to_sync` days of one mapping from scratch (after an edit) into a
    /// generation of its own, while reads keep showing its current values until the new ones
    /// are whole (`sync::publish`). A mapping whose Pendo object is gone is refused
    /// (`Conflict`), its values kept: they could not be fetched again (checked here, each Pendo
    /// call bounded by `API_PENDO_CHECK`); so is a rebuild while a Re-sync all is pending (it
    /// rebuilds every mapping). The planning is queued (`process_run`): a request does short
    /// work.
    pub async fn rebuild_mapping(&self, t: &TenantId, id: &MappingId) -> Result<RunId, AppError> {
        let i = self.active_integration(t).await?;
        let m = self.mapping(t, id).await?;
        if i.resync_pending() {
            return Err(AppError::Conflict(format!(
                "mapping \"{}\" is rebuilt by the Re-sync all in progress; wait for it to finish, or discard it first",
                m.metric_name
            )));
        }
        let end = tokio::time::Instant::now() + API_PENDO_CHECK;
        let checked = crate::deadline::within(
            end,
            crate::sync::references::plan_checks(&self.ports, &i, std::slice::from_ref(&m)),
        )
        .await;
        if let Some(why) = checked.left_out.get(id) {
            return Err(AppError::Conflict(format!(
                "mapping \"{}\" cannot be rebuilt, its values were kept: {why}",
                m.metric_name
            )));
        }
        self.queue_run(&i, &m, RunAction::Rebuild).await
    }

    /// Stores run `kind` of `m` as not yet planned (its mapping's status shows it at once)
    /// and queues its planning.
    pub(crate) async fn queue_run(
        &self,
        i: &Integration,
        m: &Mapping,
        action: RunAction,
    ) -> Result<RunId, AppError> {
        let store = &self.ports.store;
        let kind = match action {
            RunAction::Recover => RunKind::Recover {
                mapping_id: m.id.clone(),
            },
            RunAction::SyncNow => RunKind::SyncNow {
                mapping_id: m.id.clone(),
            },
            RunAction::Rebuild => RunKind::Rebuild {
                mapping_id: m.id.clone(),
            },
        };
        let now = self.ports.clock.now();
        let run = SyncRun::new(i.tenant.clone(), RunId::random(), kind, i.generation, now);
        store.put_run(&run).await?;
        store.set_last_run(&i.tenant, &m.id, &run.id).await?;
        let msg = RunMessage {
            v: MESSAGE_VERSION,
            tenant: i.tenant.clone(),
            run_id: run.id.clone(),
            mapping_id: m.id.clone(),
            generation: i.generation,
            action,
        };
        self.ports.queue.send_run(&msg).await?;
        Ok(run.id)
    }

    /// A queued run of one mapping, worker side: once (one delivery at a time holds its
    /// planning; a delivery after its chunks were sent is a duplicate; one after planning
    /// re-sends what can run). A rebuild first gives the mapping a generation of its own and
    /// resets its cursor there (its shown values and their range stay); a message of an older
    /// generation (a Re-sync all since) is dropped.
    pub(crate) async fn process_run(&self, msg: &RunMessage) -> Result<Processed, ProcessError> {
        let store = &self.ports.store;
        let t = &msg.tenant;
        let Some(i) = store.get_integration(t).await? else {
            return Ok(Processed::Superseded);
        };
        if i.generation != msg.generation || !i.is_active() {
            return Ok(Processed::Superseded);
        }
        let Some(m) = store.get_mapping(t, &msg.mapping_id).await? else {
            return Ok(Processed::Superseded);
        };
        let Some(stored) = store.get_run(t, &msg.run_id).await? else {
            return Ok(Processed::Superseded);
        };
        if stored.queued {
            return Ok(Processed::Duplicate);
        }
        let plan = self.plan_queued_run(&i, m, stored, msg.action);
        resync::plan_once(&self.ports, t, &msg.run_id, true, plan).await
    }

    /// A deleted mapping's values, activity and unmatched entries, or the tenant's generations
    /// no longer written or shown, purged (resumably: what is deleted stays deleted; a
    /// redelivery deletes what is left, or nothing).
    pub(crate) async fn process_purge(&self, m: &PurgeMessage) -> Result<Processed, ProcessError> {
        let store = &self.ports.store;
        let Some(mapping) = &m.mapping_id else {
            crate::sync::publish::purge_dead(&self.ports, &m.tenant).await?;
            return Ok(Processed::Done(ChunkStats::default()));
        };
        let items = store.delete_mapping_data(&m.tenant, mapping, &[]).await?;
        store.delete_unmatched(&m.tenant, mapping).await?;
        // Its own generation, if a rebuild gave it one, names nothing any more.
        crate::sync::publish::switch(&self.ports, &m.tenant, |i| i.own.remove(mapping).is_some())
            .await?;
        tracing::info!(tenant = %m.tenant, mapping = %mapping, items, "a deleted mapping's data purged");
        Ok(Processed::Done(ChunkStats::default()))
    }

    async fn plan_queued_run(
        &self,
        i: &Integration,
        mut m: Mapping,
        stored: SyncRun,
        action: RunAction,
    ) -> Result<Processed, ProcessError> {
        let (store, t) = (&self.ports.store, &i.tenant);
        let id = stored.id.clone();
        let messages = if stored.planned {
            crate::sync::waves::pending_now(&stored)
        } else {
            let (planning, i) = match action {
                RunAction::SyncNow => (Planning::FromCursor { recover: false }, i.clone()),
                RunAction::Recover => (Planning::RecoverOnly, i.clone()),
                RunAction::Rebuild => {
                    let Some(i) = self.begin_rebuild(t, &m.id).await? else {
                        return Ok(Processed::Superseded);
                    };
                    m.rebuild_required = false;
                    store.put_mapping(&m).await?;
                    (Planning::FromScratch, i)
                }
            };
            self.plan_and_store(&i, std::slice::from_ref(&m), stored, planning, false)
                .await?
                .1
        };
        self.ports.queue.send_fetch(&messages).await?;
        store.set_run_flag(t, &id, RunFlag::Queued).await?;
        tracing::info!(tenant = %t, run = %id, chunks = messages.len(), "run planned");
        Ok(Processed::Done(ChunkStats::default()))
    }

    /// Gives mapping `id` a fresh generation to rebuild into (`Integration::begin_rebuild`),
    /// deletes what an earlier rebuild of it left half-built, and resets its state there keeping
    /// the range reads show. `None` when a Re-sync all began meanwhile (it rebuilds the mapping).
    async fn begin_rebuild(
        &self,
        t: &TenantId,
        id: &MappingId,
    ) -> Result<Option<Integration>, AppError> {
        let store = &self.ports.store;
        let mut written = None;
        let i = self
            .update_integration(t, false, |i| {
                written = i.begin_rebuild(id);
                Ok(())
            })
            .await?;
        let Some(g) = written else {
            return Ok(None);
        };
        let shown = i.generations().shows(id);
        let purged = store.delete_mapping_data(t, id, &[shown]).await?;
        let previous = store
            .get_mapping_state(t, id)
            .await?
            .and_then(|s| s.range_in(shown));
        store
            .reset_mapping_state_keeping(t, id, g, previous)
            .await?;
        tracing::info!(tenant = %t, mapping = %id, generation = g, shown, purged, "rebuild: the mapping writes a generation of its own");
        Ok(Some(i))
    }

    async fn active_integration(&self, t: &TenantId) -> Result<Integration, AppError> {
        let i = self.integration(t).await?;
        if !i.is_active() {
            return Err(AppError::NotConnected);
        }
        Ok(i)
    }

    /// Plans `run` (its id, kind and start kept) over `mappings`, stores it and notes it on
    /// its mappings; returns it with the fetch messages of the chunks that can run now.
    async fn plan_and_store(
        &self,
        i: &Integration,
        mappings: &[Mapping],
        mut run: SyncRun,
        planning: Planning,
        queued: bool,
    ) -> Result<(SyncRun, Vec<FetchMessage>), AppError> {
        let from_scratch = planning == Planning::FromScratch;
        let store = &self.ports.store;
        let now = self.ports.clock.now();
        let last = crate::time::last_complete_day(now, i.settings.timezone.map(|z| z.0));
        run.generation = i.generation;
        run.planned = true;
        let checked = crate::sync::references::plan_checks(&self.ports, i, mappings).await;
        let mut windows = Vec::new();
        let mut lists = crate::app::recovery::DirectoryLists::default();
        let gens = i.generations();
        for m in mappings
            .iter()
            .filter(|m| m.enabled && !checked.left_out.contains_key(&m.id))
        {
            let g = gens.writes(&m.id);
            if g != run.generation {
                run.own.insert(m.id.clone(), g);
            }
            let state = store.get_mapping_state(&i.tenant, &m.id).await?;
            let kept = state
                .as_ref()
                .and_then(|s| s.previous)
                .filter(|p| p.generation == g && p.to.is_some() && !from_scratch);
            let cursor = match state {
                Some(s) if s.generation == g && !from_scratch => s.last_synced_day,
                Some(s) if s.generation == g => None,
                _ => match kept {
                    // Back from a discarded Re-sync all: the shown generation's range again.
                    Some(p) => self.restore_range(&i.tenant, &m.id, p).await?,
                    None => {
                        store.reset_mapping_state(&i.tenant, &m.id, g).await?;
                        None
                    }
                },
            };
            let window = plan::plan_window(
                cursor,
                last,
                i.settings.days_to_sync.get(),
                self.lookback_days,
            )
            .filter(|_| planning != Planning::RecoverOnly);
            if let (None, Some(w)) = (cursor, window) {
                // A sync from scratch: its window is where the synced range starts.
                store.set_synced_from(&i.tenant, &m.id, g, w.from).await?;
            }
            windows.extend(window.map(|w| (m, w)));
            if matches!(
                planning,
                Planning::RecoverOnly | Planning::FromCursor { recover: true }
            ) {
                let before = window.map(|w| w.from);
                for w in self.recovery_windows(i, m, before, &mut lists).await? {
                    windows.push((m, w));
                }
            }
        }
        let messages = plan::plan_run(&mut run, &i.settings, mappings, &windows, self.max_shared);
        if planning == Planning::RecoverOnly && run.chunks.is_empty() {
            return Err(AppError::Conflict(
                crate::app::recovery::NOTHING_TO_RECOVER.into(),
            ));
        }
        run.sources = checked.sources;
        run.left_out = checked.left_out;
        run.queued = queued;
        store.put_run(&run).await?;
        resync::note_planned(&self.ports, &run).await?;
        Ok((run, messages))
    }

    /// Sets a mapping's state to `range` (of the generation it writes, kept while a discarded
    /// Re-sync all had reset it); returns the cursor.
    async fn restore_range(
        &self,
        t: &TenantId,
        id: &MappingId,
        range: SyncedRange,
    ) -> Result<Option<chrono::NaiveDate>, AppError> {
        let (store, g) = (&self.ports.store, range.generation);
        store.reset_mapping_state(t, id, g).await?;
        if let Some(from) = range.from {
            store.set_synced_from(t, id, g, from).await?;
        }
        if let Some(to) = range.to {
            store.advance_cursor(t, id, g, to, None).await?;
        }
        Ok(range.to)
    }

    /// Re-sync all: runs write a new generation while reads keep showing the current one
    /// (until every chunk of the re-sync is done: `sync::publish`); the resync worker purges a
    /// half-built generation of an earlier re-sync, resets the cursors and fans out.
    pub async fn resync_all(&self, t: &TenantId) -> Result<RunId, AppError> {
        self.active_integration(t).await?;
        let i = self
            .update_integration(t, false, |i| {
                i.begin_resync();
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

    /// Discards the Re-sync all in progress, or one that failed: runs write the shown generation
    /// again (its values were never hidden), and the half-built generation is purged in the
    /// background. Each mapping's next run goes on from the cursor it had in the shown
    /// generation (the re-sync kept it beside its own: `MappingState::previous`).
    ///
    /// # Errors
    /// `Conflict` when no Re-sync all is pending.
    pub async fn discard_resync(&self, t: &TenantId) -> Result<(), AppError> {
        self.integration(t).await?;
        if !crate::sync::publish::switch(&self.ports, t, Integration::discard_resync).await? {
            return Err(AppError::Conflict(
                "no Re-sync all is in progress: there is nothing to discard".into(),
            ));
        }
        crate::sync::publish::queue_purge(&self.ports, t).await?;
        Ok(())
    }

    /// The daily schedule, fan-out side: one planning message per tenant for today's date
    /// (UTC), sent in batches; each tenant is then planned on its own (`process_plan`), so one
    /// tenant's failure never stops another's and the schedule's cost does not grow with the
    /// tenants' mappings. Sending again (EventBridge's retry of a failed invocation, a
    /// duplicate event) plans nothing twice. Returns the tenants messaged.
    pub async fn run_schedule(&self) -> Result<Vec<TenantId>, AppError> {
        let day = self.ports.clock.now().date_naive();
        let tenants = self.ports.store.list_tenants().await?;
        let messages: Vec<PlanMessage> = tenants
            .iter()
            .map(|t| PlanMessage {
                v: MESSAGE_VERSION,
                tenant: t.clone(),
                day,
            })
            .collect();
        self.ports.queue.send_plans(&messages).await?;
        Ok(tenants)
    }

    /// One tenant's daily run for the schedule's day, over its enabled mappings: once per
    /// tenant and day (`RunId::daily`, created only if absent; one delivery at a time holds
    /// its planning). A delivery after the chunks were sent is a duplicate; one after the run
    /// was planned but before its chunks were all sent sends them again (a chunk sent twice
    /// is taken once).
    pub(crate) async fn process_plan(&self, m: &PlanMessage) -> Result<Processed, ProcessError> {
        let store = &self.ports.store;
        let t = &m.tenant;
        let Some(i) = store.get_integration(t).await? else {
            return Ok(Processed::Superseded);
        };
        if i.purge_pending {
            // A switch or a discard whose purge was not queued (a crash in between).
            crate::sync::publish::queue_purge(&self.ports, t).await?;
        }
        if !i.is_active() {
            tracing::info!(tenant = %t, "not planned: the integration is not connected");
            return Ok(Processed::Superseded);
        }
        let now = self.ports.clock.now();
        let id = RunId::daily(m.day);
        let placeholder = SyncRun::new(t.clone(), id.clone(), RunKind::Daily, i.generation, now);
        store.create_run(&placeholder).await?;
        let Some(stored) = store.get_run(t, &id).await? else {
            return Err(ProcessError::Retryable(
                format!("the daily run {id} of {t} was not found after its creation").into(),
            ));
        };
        if stored.queued {
            return Ok(Processed::Duplicate);
        }
        resync::plan_once(&self.ports, t, &id, true, self.plan_daily(&i, stored)).await
    }

    async fn plan_daily(
        &self,
        i: &Integration,
        stored: SyncRun,
    ) -> Result<Processed, ProcessError> {
        let t = &i.tenant;
        let (id, messages) = if stored.planned {
            (stored.id.clone(), crate::sync::waves::pending_now(&stored))
        } else {
            // A mapping edited since its values were made waits for its rebuild: syncing it
            // with the edit would split its series between the old and the new configuration.
            let (waiting, mappings): (Vec<Mapping>, Vec<Mapping>) = self
                .ports
                .store
                .list_mappings(t)
                .await?
                .into_iter()
                .partition(|m| m.rebuild_required);
            for m in &waiting {
                tracing::warn!(tenant = %t, mapping = %m.id, "not synced by the daily run: edited, waiting for its rebuild");
            }
            let planning = Planning::FromCursor { recover: true };
            let (run, messages) = self
                .plan_and_store(i, &mappings, stored, planning, false)
                .await?;
            (run.id, messages)
        };
        self.ports.queue.send_fetch(&messages).await?;
        self.ports
            .store
            .set_run_flag(t, &id, RunFlag::Queued)
            .await?;
        tracing::info!(tenant = %t, run = %id, chunks = messages.len(), "daily run planned");
        Ok(Processed::Done(ChunkStats::default()))
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
                return Err(ProcessError::Retryable(
                    format!(
                    "a {} message reached a consumer that takes only {} messages (is the queue \
                     wired to the right function?): not processed, left for the dead-letter queue",
                    m.kind().name(),
                    takes.join(" and ")
                )
                    .into(),
                ));
            }
        }
        match message {
            Err(e) => Err(ProcessError::Permanent(e.into())),
            Ok(QueueMessage::Fetch(m)) => {
                engine::process_fetch(&self.ports, &self.directories, &m, final_attempt).await
            }
            Ok(QueueMessage::Resync(m)) => {
                resync::process_resync(&self.ports, &m, self.max_shared).await
            }
            Ok(QueueMessage::Import(m)) => self.process_import(&m, final_attempt).await,
            Ok(QueueMessage::Plan(m)) => self.process_plan(&m).await,
            Ok(QueueMessage::Run(m)) => self.process_run(&m).await,
            Ok(QueueMessage::Purge(m)) => self.process_purge(&m).await,
        }
    }

    /// The tenant's most recent runs, newest first.
    pub async fn runs(&self, t: &TenantId, limit: usize) -> Result<Vec<SyncRun>, AppError> {
        Ok(self.ports.store.list_runs(t, limit).await?)
    }

    /// The tenant's generation (0 when it never connected): what a run's state is read
    /// against (a run of an older generation was replaced by a Re-sync all).
    pub async fn generation(&self, t: &TenantId) -> Result<u64, AppError> {
        let i = self.ports.store.get_integration(t).await?;
        Ok(i.map_or(0, |i| i.generation))
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
}
