//! Queue message bodies: versioned JSON. Every fetch message carries the generation it was
//! planned for; a message of an older generation is dropped by the worker.

use crate::domain::{ImportId, MappingId, RunId, TenantId};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub const MESSAGE_VERSION: u32 = 1;

/// Fetch one chunk of one mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FetchMessage {
    pub v: u32,
    pub tenant: TenantId,
    pub mapping_id: MappingId,
    pub run_id: RunId,
    pub chunk_index: usize,
    pub generation: u64,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The other chunks of the run fetched by the same Pendo call (a shared call: same source,
    /// segment, window and wave; see `sync::share`). Each is recorded, leased and finished as
    /// its own chunk; a redelivery fetches again only those not yet over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<Rider>,
}

/// A chunk that rides on another chunk's fetch message (see [`FetchMessage::also`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rider {
    pub mapping_id: MappingId,
    pub chunk_index: usize,
    /// The generation the rider's chunk writes when it is not the message's (a rebuilt
    /// mapping's: see `domain::generations`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
}

impl FetchMessage {
    /// The chunks of the message, each as the message of that chunk alone: its own first.
    pub fn members(&self) -> Vec<FetchMessage> {
        let head = FetchMessage {
            also: Vec::new(),
            ..self.clone()
        };
        let alone = |mapping_id: &MappingId, chunk_index: usize, generation: u64| FetchMessage {
            mapping_id: mapping_id.clone(),
            chunk_index,
            generation,
            ..head.clone()
        };
        std::iter::once(alone(&self.mapping_id, self.chunk_index, self.generation))
            .chain(self.also.iter().map(|r| {
                let generation = r.generation.unwrap_or(self.generation);
                alone(&r.mapping_id, r.chunk_index, generation)
            }))
            .collect()
    }
}

/// Purge and rebuild a tenant (Re-sync all), for the generation already bumped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResyncMessage {
    pub v: u32,
    pub tenant: TenantId,
    pub run_id: RunId,
    pub generation: u64,
}

/// Read page `page` of a directory import (it travels on the resync queue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportMessage {
    pub v: u32,
    pub tenant: TenantId,
    pub import_id: ImportId,
    pub page: u32,
}

/// Plan the daily run of one tenant for the schedule's `day` (the scheduler fans these out, one
/// per tenant, on the resync queue). Planning is idempotent per tenant and day: the run's id
/// is `RunId::daily(day)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanMessage {
    pub v: u32,
    pub tenant: TenantId,
    pub day: NaiveDate,
}

/// Plan run `run_id` of one mapping, queued by the API so that a request does only short
/// work: Sync now, a rebuild (whose purge of the mapping's values happens here, not in the
/// request) or a recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunMessage {
    pub v: u32,
    pub tenant: TenantId,
    pub run_id: RunId,
    pub mapping_id: MappingId,
    pub generation: u64,
    pub action: RunAction,
}

/// What a queued run of one mapping does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunAction {
    /// From the cursor to the last complete day.
    SyncNow,
    /// Purge the mapping's values, then `days_to_sync` days from scratch.
    Rebuild,
    /// Only the days whose unmatched rows the directory now resolves.
    Recover,
}

/// Delete what no read will show again (queued, so that neither a request nor a fetch purges):
/// the values, activity and unmatched entries a deleted mapping left, or, without a mapping,
/// the tenant's generations it neither writes nor shows (after a Re-sync all is published or
/// discarded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PurgeMessage {
    pub v: u32,
    pub tenant: TenantId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping_id: Option<MappingId>,
}

/// Any message, as it travels on a queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum QueueMessage {
    Fetch(FetchMessage),
    Resync(ResyncMessage),
    Import(ImportMessage),
    Plan(PlanMessage),
    Run(RunMessage),
    Purge(PurgeMessage),
}

/// The kinds of message: the fetch function takes fetch messages, the resync function resync,
/// import, plan, run and purge messages (all on the resync queue), the local worker all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Fetch,
    Resync,
    Import,
    Plan,
    Run,
    Purge,
}

impl MessageKind {
    pub const ALL: &'static [MessageKind] = &[
        MessageKind::Fetch,
        MessageKind::Resync,
        MessageKind::Import,
        MessageKind::Plan,
        MessageKind::Run,
        MessageKind::Purge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MessageKind::Fetch => "fetch",
            MessageKind::Resync => "resync",
            MessageKind::Import => "import",
            MessageKind::Plan => "plan",
            MessageKind::Run => "run",
            MessageKind::Purge => "purge",
        }
    }
}

impl QueueMessage {
    pub fn kind(&self) -> MessageKind {
        match self {
            QueueMessage::Fetch(_) => MessageKind::Fetch,
            QueueMessage::Resync(_) => MessageKind::Resync,
            QueueMessage::Import(_) => MessageKind::Import,
            QueueMessage::Plan(_) => MessageKind::Plan,
            QueueMessage::Run(_) => MessageKind::Run,
            QueueMessage::Purge(_) => MessageKind::Purge,
        }
    }
}

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message body is not a valid message: {0}")]
    Invalid(String),
    #[error("message version {0} is not supported (expected {MESSAGE_VERSION})")]
    Version(u32),
}

impl QueueMessage {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
    pub fn decode(body: &str) -> Result<Self, DecodeError> {
        let m: QueueMessage =
            serde_json::from_str(body).map_err(|e| DecodeError::Invalid(e.to_string()))?;
        let v = match &m {
            QueueMessage::Fetch(f) => f.v,
            QueueMessage::Resync(r) => r.v,
            QueueMessage::Import(i) => i.v,
            QueueMessage::Plan(p) => p.v,
            QueueMessage::Run(r) => r.v,
            QueueMessage::Purge(p) => p.v,
        };
        if v != MESSAGE_VERSION {
            return Err(DecodeError::Version(v));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shared call's riders write the message's generation, or their own when they carry one
    /// (a rebuilt mapping's chunk); a rider without the field (an older message) writes the
    /// message's.
    #[test]
    fn members_write_their_own_generation() {
        let id = |s: &str| MappingId::parse(s).unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let lead = FetchMessage {
            v: MESSAGE_VERSION,
            tenant: TenantId::parse("t").unwrap(),
            mapping_id: id("a"),
            run_id: RunId::parse("r").unwrap(),
            chunk_index: 0,
            generation: 2,
            from: day,
            to: day,
            also: vec![
                Rider {
                    mapping_id: id("b"),
                    chunk_index: 1,
                    generation: Some(5),
                },
                Rider {
                    mapping_id: id("c"),
                    chunk_index: 2,
                    generation: None,
                },
            ],
        };
        let got: Vec<_> = lead
            .members()
            .into_iter()
            .map(|m| (m.mapping_id.to_string(), m.chunk_index, m.generation))
            .collect();
        assert_eq!(
            got,
            vec![("a".into(), 0, 2), ("b".into(), 1, 5), ("c".into(), 2, 2)]
        );
        let old = r#"{"mappingId":"c","chunkIndex":2}"#;
        let rider: Rider = serde_json::from_str(old).unwrap();
        assert_eq!(rider.generation, None);
    }

    #[test]
    fn round_trip_and_rejects() {
        let m = QueueMessage::Resync(ResyncMessage {
            v: 1,
            tenant: TenantId::parse("t").unwrap(),
            run_id: RunId::parse("r").unwrap(),
            generation: 3,
        });
        let body = m.encode();
        assert_eq!(
            body,
            r#"{"type":"resync","v":1,"tenant":"t","runId":"r","generation":3}"#
        );
        assert_eq!(QueueMessage::decode(&body).unwrap(), m);
        assert!(matches!(
            QueueMessage::decode(&body.replace("\"v\":1", "\"v\":2")),
            Err(DecodeError::Version(2))
        ));
        assert!(QueueMessage::decode("{}").is_err());
        assert!(QueueMessage::decode(&body.replace("\"t\"", "\"\"")).is_err());
    }
}
