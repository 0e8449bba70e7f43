//! The Re-sync all worker: purge older generations, reset cursors, plan every mapping's window
//! and fan the chunks out.

use super::processed::{ProcessError, Processed};
use super::{plan, waves};
use crate::domain::mapping::LastError;
use crate::domain::{
    ChunkStats, Integration, Mapping, RunFlag, RunId, RunKind, SyncRun, TenantId, Window,
};
use crate::ports::Ports;
use crate::queue::messages::ResyncMessage;
use crate::store::StoreError;

/// Re-sync all, worker side: purge the generations neither shown nor written (a half-built one
/// of an earlier re-sync), reset every cursor to "never synced" for this generation, plan
/// `days_to_sync` days for every enabled mapping. Reads keep showing the current generation
/// until every chunk is done (`publish`).
pub async fn process_resync(
    ports: &Ports,
    msg: &ResyncMessage,
    max_shared: usize,
) -> Result<Processed, ProcessError> {
    let store = &ports.store;
    let t = &msg.tenant;
    let Some(integration) = store.get_integration(t).await? else {
        return Ok(Processed::Superseded);
    };
    if integration.generation != msg.generation {
        return Ok(Processed::Superseded);
    }
    let stored = store.get_run(t, &msg.run_id).await?;
    if stored.as_ref().is_some_and(|r| r.queued) {
        // Redelivered after its chunks were sent: nothing to do again.
        return Ok(Processed::Duplicate);
    }
    // One delivery of the message plans (a run the API stored; a message whose run is gone
    // plans without a hold); a duplicate meanwhile is acknowledged.
    let claim = stored.is_some();
    let run = msg.run_id.clone();
    plan_once(
        ports,
        t,
        &run,
        claim,
        plan_resync(ports, msg, &integration, stored, max_shared),
    )
    .await
}

/// Runs `plan` for one delivery of a run's planning message at a time: with `claim`, only when
/// this delivery takes the run's planning hold (for `RESYNC_PLANNING_LEASE_MINUTES`; a
/// duplicate meanwhile is acknowledged). A failed planning ends the hold, so that its
/// redelivery plans at once. Re-sync all, the daily plans and the runs the API queued.
pub async fn plan_once(
    ports: &Ports,
    t: &TenantId,
    run: &RunId,
    claim: bool,
    plan: impl std::future::Future<Output = Result<Processed, ProcessError>>,
) -> Result<Processed, ProcessError> {
    if claim {
        let now = ports.clock.now();
        let until = now + chrono::Duration::minutes(RESYNC_PLANNING_LEASE_MINUTES);
        let by = uuid::Uuid::new_v4().as_u128();
        let hold = RunFlag::ClaimPlanning { at: now, until, by };
        if !ports.store.set_run_flag(t, run, hold).await? {
            tracing::info!(tenant = %t, run = %run, "another delivery is planning this run; this duplicate is acknowledged");
            return Ok(Processed::Duplicate);
        }
    }
    let planned = plan.await;
    if planned.is_err() {
        ports
            .store
            .set_run_flag(t, run, RunFlag::EndPlanning)
            .await
            .ok();
    }
    planned
}

/// How long a delivery of a Re-sync all message holds its planning: longer than the resync
/// function may run (15 minutes in `infra/template.yaml`), shorter than the resync queue's
/// visibility timeout (90 minutes), so the redelivery of a message whose worker died plans.
const RESYNC_PLANNING_LEASE_MINUTES: i64 = 30;

async fn plan_resync(
    ports: &Ports,
    msg: &ResyncMessage,
    integration: &Integration,
    stored: Option<SyncRun>,
    max_shared: usize,
) -> Result<Processed, ProcessError> {
    let store = &ports.store;
    let t = &msg.tenant;
    let purged = store
        .purge_generations(t, &integration.generations())
        .await?;
    let mut run = stored.unwrap_or_else(|| {
        SyncRun::new(
            t.clone(),
            msg.run_id.clone(),
            RunKind::ResyncAll,
            msg.generation,
            ports.clock.now(),
        )
    });
    let messages = if run.planned {
        // Redelivered after planning but before the send finished: send what can run now.
        waves::pending_now(&run)
    } else {
        let mut mappings = store.list_mappings(t).await?;
        let last = crate::time::last_complete_day(
            ports.clock.now(),
            integration.settings.timezone.map(|z| z.0),
        );
        let checked = super::references::plan_checks(ports, integration, &mappings).await;
        let window = plan::plan_window(None, last, integration.settings.days_to_sync.get(), 0);
        let gens = integration.generations();
        for m in mappings.iter_mut().filter(|m| m.enabled) {
            // The range reads show stays known until the switch (and for a discard).
            let previous = store
                .get_mapping_state(t, &m.id)
                .await?
                .and_then(|s| s.range_in(gens.shows(&m.id)));
            store
                .reset_mapping_state_keeping(t, &m.id, msg.generation, previous)
                .await?;
            if let Some(w) = window.filter(|_| !checked.left_out.contains_key(&m.id)) {
                store
                    .set_synced_from(t, &m.id, msg.generation, w.from)
                    .await?;
            }
            // Rebuilt by this run from its current configuration.
            if m.rebuild_required {
                m.rebuild_required = false;
                store.put_mapping(m).await?;
            }
        }
        let windows: Vec<(&Mapping, Window)> = mappings
            .iter()
            .filter(|m| m.enabled && !checked.left_out.contains_key(&m.id))
            .filter_map(|m| Some((m, window?)))
            .collect();
        let messages = plan::plan_run(
            &mut run,
            &integration.settings,
            &mappings,
            &windows,
            max_shared,
        );
        run.sources = checked.sources;
        run.left_out = checked.left_out;
        run.planned = true;
        store.put_run(&run).await?;
        note_planned(ports, &run).await?;
        messages
    };
    crate::stall::point("resync-fan-out").await;
    ports.queue.send_fetch(&messages).await?;
    store.set_run_flag(t, &msg.run_id, RunFlag::Queued).await?;
    if run.chunks.is_empty() {
        // Nothing to build (no enabled mapping): the empty generation is whole at once.
        super::publish::conclude(ports, t, &msg.run_id).await?;
    }
    tracing::info!(tenant = %t, generation = msg.generation, purged, chunks = messages.len(), "re-sync planned");
    Ok(Processed::Done(ChunkStats::default()))
}

/// After a run is stored: each of its mappings' status now reads this run as its last, and a
/// mapping the run left out shows why as its last error.
pub async fn note_planned(ports: &Ports, run: &SyncRun) -> Result<(), StoreError> {
    let store = &ports.store;
    for m in run.mappings().into_iter().chain(run.left_out.keys()) {
        store.set_last_run(&run.tenant, m, &run.id).await?;
    }
    for (m, why) in &run.left_out {
        let e = LastError {
            at: ports.clock.now(),
            message: why.clone(),
        };
        store.set_mapping_error(&run.tenant, m, Some(e)).await?;
    }
    Ok(())
}
