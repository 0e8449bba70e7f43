//! Unmatched identities, as stored and read: why a row could not be used, and a Pendo id's rows
//! and value on a day (see `sync::unmatched` for how a chunk tallies them).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// Identities kept per reason (per chunk when recorded, per mapping when read); the others are
/// summed into one entry without an identity.
pub const MAX_IDENTITIES: usize = 1000;

/// Why a row could not be used.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum UnmatchedReason {
    /// The row's company id is not a company of the directory.
    CompanyNotInDirectory,
    /// The row's asset or project id is not in the directory.
    NotInDirectory,
    /// No end user of the company has the row's id or email, and creation is off (the global
    /// auto-detect, or the mapping's "Auto-create users?").
    EndUserNotFound,
    /// The row has no value in the company id field.
    NoCompanyId,
    /// An anonymous visitor (`_PENDO_T_…`).
    AnonymousVisitor,
    /// The row has no value in the id field the mapping's target reads.
    NoId,
}

impl UnmatchedReason {
    pub const ALL: [UnmatchedReason; 6] = [
        Self::CompanyNotInDirectory,
        Self::NotInDirectory,
        Self::EndUserNotFound,
        Self::NoCompanyId,
        Self::AnonymousVisitor,
        Self::NoId,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CompanyNotInDirectory => "companyNotInDirectory",
            Self::NotInDirectory => "notInDirectory",
            Self::EndUserNotFound => "endUserNotFound",
            Self::NoCompanyId => "noCompanyId",
            Self::AnonymousVisitor => "anonymousVisitor",
            Self::NoId => "noId",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// One identity's rows on one day (`identity` `None`: the identities past the bound, summed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnmatchedEntry {
    pub reason: UnmatchedReason,
    pub identity: Option<String>,
    pub day: NaiveDate,
    pub rows: u64,
    pub value: f64,
}

/// One identity over a mapping's stored days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnmatchedIdentity {
    pub reason: UnmatchedReason,
    /// The Pendo id as the field mappings read it (account id, visitor id or email).
    pub identity: String,
    pub rows: u64,
    pub value: f64,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
}

/// A reason's exact totals over a mapping's stored days.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnmatchedTotals {
    pub rows: u64,
    pub value: f64,
    /// Identities listed (at most `MAX_IDENTITIES`).
    pub identities: u64,
    /// Rows and value of the identities past the bound (not listed one by one).
    pub other_rows: u64,
    pub other_value: f64,
}

/// The order entries are read in: by reason, identity (the sum of the identities past the bound
/// last), day.
pub fn sort_entries(entries: &mut [UnmatchedEntry]) {
    entries.sort_by(|a, b| {
        (a.reason, a.identity.is_none(), &a.identity, a.day).cmp(&(
            b.reason,
            b.identity.is_none(),
            &b.identity,
            b.day,
        ))
    });
}
