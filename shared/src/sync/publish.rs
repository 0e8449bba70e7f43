//! The end of a Re-sync all, or of one mapping's rebuild: reads keep showing the last complete
//! generation while the re-sync (or the rebuild) writes the next; once the new generation is
//! whole, reads move to it in one conditional write of the integration (`Integration::publish`,
//! `Integration::publish_rebuild`), and the values no longer written or shown are purged in the
//! background (a purge message on the resync queue), resumably.
//!
//! The new generation is whole when a run of it is over and every enabled mapping (but those
//! the run left out: a reference Pendo no longer lists) is synced in it to the last day that run
//! planned. Usually that run is the re-sync itself, every chunk done. A re-sync with a chunk
//! that failed for good is not whole: the old values stay shown, and the next run of the new
//! generation (the daily run, or Sync now, from each mapping's cursor) fills what failed and
//! publishes it; or the user discards it.
//!
//! A rebuild's generation is whole when a run's chunks of that mapping are all done (a rebuild,
//! Sync now or a daily run: each goes from the mapping's cursor to the last complete day), or
//! its cursor in that generation reached the end of that run's chunks of it.

use super::processed::ProcessError;
use crate::domain::{ChunkStatus, Integration, MappingId, RunId, RunKind, SyncRun, TenantId};
use crate::ports::Ports;
use crate::queue::messages::{PurgeMessage, MESSAGE_VERSION};
use crate::queue::QueueError;
use crate::store::{optimistic, StoreError};

/// After the last open chunk of run `run` is over: when the run's generation is the one a
/// Re-sync all is building and it is whole, reads switch to it; likewise for each mapping the
/// run wrote in the generation its rebuild is building. The delivery that switched queues the
/// purge of the older values. Safe to repeat (a duplicate delivery of a finished chunk repeats
/// it) and cheap: with nothing pending, one read of the integration. A crash between the switch
/// and the send leaves `purge_pending`, which the tenant's next daily planning sees and queues
/// the purge for (`App::process_plan`).
pub async fn conclude(ports: &Ports, t: &TenantId, run: &RunId) -> Result<(), ProcessError> {
    let store = &ports.store;
    let Some(i) = store.get_integration(t).await? else {
        return Ok(());
    };
    let gens = i.generations();
    if !i.resync_pending() && gens.rebuilds().next().is_none() {
        return Ok(());
    }
    let Some(stored) = store.get_run(t, run).await? else {
        return Ok(());
    };
    let generation = stored.generation;
    let mut switched = false;
    if i.resync_pending() && i.generation == generation && whole(ports, &stored).await? {
        switched = switch(ports, t, |i| i.publish(generation)).await?;
        if switched {
            tracing::info!(tenant = %t, run = %run, generation, "re-sync complete: reads now show its generation");
        }
    }
    for (m, &g) in &stored.own {
        if gens.rebuilding(m) == Some(g)
            && rebuilt(ports, &stored, m, g).await?
            && switch(ports, t, |i| i.publish_rebuild(m, g)).await?
        {
            tracing::info!(tenant = %t, run = %run, mapping = %m, generation = g, "rebuild complete: reads of the mapping now show its generation");
            switched = true;
        }
    }
    if !switched {
        return Ok(());
    }
    crate::stall::point("publish-switched").await;
    Ok(queue_purge(ports, t).await?)
}

/// Whether mapping `m`'s rebuild generation `g` is whole once `run` is over: the run's chunks of
/// `m` are all done and went from its cursor (not a recovery), or its cursor in `g` reached
/// their end.
async fn rebuilt(ports: &Ports, run: &SyncRun, m: &MappingId, g: u64) -> Result<bool, StoreError> {
    let mine: Vec<_> = run.chunks.iter().filter(|c| &c.mapping_id == m).collect();
    let Some(end) = mine.iter().map(|c| c.to).max() else {
        return Ok(false);
    };
    let from_cursor = !matches!(run.kind, RunKind::Recover { .. });
    if from_cursor && mine.iter().all(|c| c.status == ChunkStatus::Done) {
        return Ok(true);
    }
    let state = ports.store.get_mapping_state(&run.tenant, m).await?;
    Ok(state.is_some_and(|s| s.generation == g && s.last_synced_day.is_some_and(|d| d >= end)))
}

/// Whether `run`'s generation is whole once the run is over: every enabled mapping the run did
/// not leave out is synced in it to the last day the run planned (a re-sync whose chunks are
/// all done; a later run that filled what failed). A run without chunks plans no day: then
/// every such mapping must merely have been synced in the generation.
async fn whole(ports: &Ports, run: &SyncRun) -> Result<bool, StoreError> {
    if run.kind == RunKind::ResyncAll
        && run.chunks.iter().all(|c| c.status == ChunkStatus::Done)
        && run.planned
    {
        // Its cursors were all reset and its chunks cover every planned mapping: done is whole
        // (a mapping's cursor moves in the same follow-up, so it is not read here).
        return Ok(true);
    }
    let end = run.chunks.iter().map(|c| c.to).max();
    for m in ports.store.list_mappings(&run.tenant).await? {
        if !m.enabled || run.left_out.contains_key(&m.id) {
            continue;
        }
        let state = ports.store.get_mapping_state(&run.tenant, &m.id).await?;
        let synced = state.is_some_and(|s| {
            s.generation == run.generation
                && s.last_synced_day
                    .is_some_and(|d| end.is_none_or(|end| d >= end))
        });
        if !synced {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Applies `change` to the integration with a compare-and-set (`optimistic::update_integration`,
/// again on each conflict); false when `change` says there is nothing to do (or the integration
/// is gone).
pub async fn switch(
    ports: &Ports,
    t: &TenantId,
    change: impl Fn(&mut Integration) -> bool,
) -> Result<bool, StoreError> {
    /// Why the update stopped without writing.
    enum Stop {
        Unchanged,
        Store(StoreError),
    }
    impl From<StoreError> for Stop {
        fn from(e: StoreError) -> Self {
            Stop::Store(e)
        }
    }
    let updated = optimistic::update_integration(
        &*ports.store,
        t,
        |stored| stored.ok_or(Stop::Unchanged),
        |i| change(i).then_some(()).ok_or(Stop::Unchanged),
    )
    .await;
    match updated {
        Ok(Some(_)) => Ok(true),
        Ok(None) => Err(StoreError::unavailable(
            "the integration kept changing while switching generations",
        )),
        Err(Stop::Unchanged) => Ok(false),
        Err(Stop::Store(e)) => Err(e),
    }
}

/// Queues the purge of the tenant's generations neither written nor shown.
pub async fn queue_purge(ports: &Ports, t: &TenantId) -> Result<(), QueueError> {
    let purge = PurgeMessage {
        v: MESSAGE_VERSION,
        tenant: t.clone(),
        mapping_id: None,
    };
    ports.queue.send_purge(&purge).await
}

/// The purge message's work: deletes the values and activity of every generation the tenant
/// neither writes nor shows, then clears `purge_pending` (unless the live generations changed
/// meanwhile: the purge that change queued clears it). Resumable: a redelivery deletes what is
/// left, or nothing.
pub async fn purge_dead(ports: &Ports, t: &TenantId) -> Result<u64, ProcessError> {
    let Some(i) = ports.store.get_integration(t).await? else {
        return Ok(0);
    };
    let live = i.generations();
    let purged = ports.store.purge_generations(t, &live).await?;
    crate::stall::point("purge-generations-deleted").await;
    switch(ports, t, |i| {
        let done = i.purge_pending && i.generations() == live;
        if done {
            i.purge_pending = false;
        }
        done
    })
    .await?;
    tracing::info!(tenant = %t, purged, kept = ?live.live(), "generations no longer shown purged");
    Ok(purged)
}
