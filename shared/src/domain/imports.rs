//! An import of the directory from Pendo, as it is recorded while it runs page by page (see
//! `directory::import` for what a page does).

use super::{FieldRef, ImportId, TenantId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What an import reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportOptions {
    pub companies: bool,
    pub end_users: bool,
    /// The account field that names a company (`agent.name` for `metadata.agent.name`).
    #[schema(value_type = Option<String>)]
    pub company_name_field: Option<FieldRef>,
    /// Rows per Pendo call.
    pub page_rows: u32,
}

/// Which records an import is reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ImportStage {
    Companies,
    EndUsers,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ImportState {
    Running,
    Finished,
    Failed,
}

/// What an import did (or, on a dry run, would do) with the rows of one kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportCounts {
    /// Rows Pendo gave.
    pub read: u64,
    pub created: u64,
    /// Known records that got a field they had empty.
    pub filled: u64,
    pub unchanged: u64,
    /// Rows not used, by reason: `noCompanyId`, `companyNotInDirectory`, `noIdOrEmail`,
    /// `emailTaken`, `repeated`, `invalid`.
    pub skipped: BTreeMap<String, u64>,
}

impl ImportCounts {
    pub fn add(&mut self, o: &ImportCounts) {
        self.read += o.read;
        self.created += o.created;
        self.filled += o.filled;
        self.unchanged += o.unchanged;
        for (k, n) in &o.skipped {
            *self.skipped.entry(k.clone()).or_default() += n;
        }
    }
}

/// An import and where it stands. Written with a version: a page's outcome is recorded only by
/// the delivery that read the import at the version it writes over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryImport {
    #[schema(value_type = String)]
    pub tenant: TenantId,
    #[schema(value_type = String)]
    pub id: ImportId,
    pub options: ImportOptions,
    pub state: ImportState,
    pub stage: ImportStage,
    /// The last Pendo id of the stage read so far (the next page starts after it).
    pub cursor: Option<String>,
    /// Pages done; the next page's message carries this number.
    pub pages: u32,
    /// Whether the message of page `pages` was sent (a delivery that finds it was not, sends it).
    pub next_queued: bool,
    /// A delivery at work on page `pages` holds it until then: a duplicate of its message
    /// meanwhile is acknowledged without calling Pendo (see `CHUNK_LEASE_MINUTES`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leased_until: Option<DateTime<Utc>>,
    pub companies: ImportCounts,
    pub end_users: ImportCounts,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// The stored version (0 before the first write).
    pub version: u64,
}

impl DirectoryImport {
    /// A new import, before its first page.
    pub fn new(tenant: TenantId, options: ImportOptions, now: DateTime<Utc>) -> Self {
        let stage = if options.companies {
            ImportStage::Companies
        } else {
            ImportStage::EndUsers
        };
        Self {
            tenant,
            id: ImportId::random(),
            options,
            state: ImportState::Running,
            stage,
            cursor: None,
            pages: 0,
            next_queued: false,
            leased_until: None,
            companies: ImportCounts::default(),
            end_users: ImportCounts::default(),
            started_at: now,
            updated_at: now,
            finished_at: None,
            error: None,
            version: 0,
        }
    }

    /// After a page of `rows` rows ending at `last`: the next page of the stage (the page was
    /// full), the next stage, or the end.
    pub fn advance(&mut self, rows: usize, last: Option<String>, now: DateTime<Utc>) {
        self.pages += 1;
        self.next_queued = false;
        self.leased_until = None;
        self.updated_at = now;
        if rows >= self.options.page_rows as usize && last.is_some() {
            self.cursor = last;
            return;
        }
        self.cursor = None;
        self.stage = match self.stage {
            ImportStage::Companies if self.options.end_users => ImportStage::EndUsers,
            _ => ImportStage::Done,
        };
        if self.stage == ImportStage::Done {
            self.state = ImportState::Finished;
            self.finished_at = Some(now);
        }
    }
}
