//! The tenant's Pendo integration: key, domain, connection status, settings, field mappings,
//! apps and segments tables, generation and the "re-sync required" flag.
//! The integration key never leaves this module in clear text except towards Pendo.

use super::apps::{AppsTable, Segment};
use super::ids::TenantId;
use crate::error::ValidationError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The Pendo API hosts a tenant may choose from. Never a free URL: a tenant must not be able to
/// make the service call arbitrary hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PendoDomain {
    #[serde(rename = "app.pendo.io")]
    Us,
    #[serde(rename = "app.eu.pendo.io")]
    Eu,
    #[serde(rename = "us1.app.pendo.io")]
    Us1,
    #[serde(rename = "app.jpn.pendo.io")]
    Jpn,
    #[serde(rename = "app.au.pendo.io")]
    Au,
}

impl PendoDomain {
    pub const ALL: [PendoDomain; 5] = [Self::Us, Self::Eu, Self::Us1, Self::Jpn, Self::Au];

    pub fn host(self) -> &'static str {
        match self {
            Self::Us => "app.pendo.io",
            Self::Eu => "app.eu.pendo.io",
            Self::Us1 => "us1.app.pendo.io",
            Self::Jpn => "app.jpn.pendo.io",
            Self::Au => "app.au.pendo.io",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let s = raw.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|d| d.host() == s)
            .ok_or_else(|| {
                let list: Vec<&str> = Self::ALL.iter().map(|d| d.host()).collect();
                ValidationError::new("domain", format!("must be one of {}", list.join(", ")))
            })
    }
}

/// A Pendo integration key. Debug and Display show only the last 4 characters.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IntegrationKey(String);

impl IntegrationKey {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let s = raw.trim();
        if s.len() < 8 {
            return Err(ValidationError::new("key", "must be at least 8 characters"));
        }
        if s.len() > 200 || !s.chars().all(|c| c.is_ascii_graphic()) {
            return Err(ValidationError::new(
                "key",
                "must be at most 200 printable ASCII characters without spaces",
            ));
        }
        Ok(Self(s.to_string()))
    }
    /// The key in clear: only for the `X-Pendo-Integration-Key` header.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// `…abcd`: what responses and logs may show.
    pub fn masked(&self) -> String {
        let tail: String = self
            .0
            .chars()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("…{tail}")
    }
}

impl fmt::Debug for IntegrationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IntegrationKey({})", self.masked())
    }
}

/// Days of history fetched by a first sync or a Re-sync all: 1–365, default 90.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct DaysToSync(u32);

impl DaysToSync {
    pub fn new(days: i64) -> Result<Self, ValidationError> {
        if (1..=365).contains(&days) {
            Ok(Self(days as u32))
        } else {
            Err(ValidationError::new(
                "daysToSync",
                "must be between 1 and 365",
            ))
        }
    }
    pub fn get(self) -> u32 {
        self.0
    }
}
impl Default for DaysToSync {
    fn default() -> Self {
        Self(90)
    }
}
impl TryFrom<u32> for DaysToSync {
    type Error = ValidationError;
    fn try_from(v: u32) -> Result<Self, ValidationError> {
        Self::new(i64::from(v))
    }
}
impl From<DaysToSync> for u32 {
    fn from(d: DaysToSync) -> u32 {
        d.0
    }
}

/// An IANA time zone name, validated against the tz database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timezone(pub chrono_tz::Tz);

impl Timezone {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        chrono_tz::Tz::from_str(raw.trim())
            .map(Self)
            .map_err(|_| ValidationError::new("timezone", "must be an IANA time zone name"))
    }
}
impl TryFrom<String> for Timezone {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, ValidationError> {
        Self::parse(&s)
    }
}
impl From<Timezone> for String {
    fn from(t: Timezone) -> String {
        t.0.name().to_string()
    }
}

/// Where a Pendo value comes from: a field of the event row (`accountId`, `visitorId`) or a
/// metadata path of the visitor or account record (`metadata.agent.email`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FieldRef {
    pub record: FieldRecord,
    /// For `Row`: the row field; for metadata: the path below `metadata.` (`agent.email`).
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FieldRecord {
    Row,
    Visitor,
    Account,
}

/// Which record a bare `metadata.…` path reads, by the role of the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldRole {
    EndUser,
    Object,
}

impl FieldRef {
    /// Parses `accountId`, `visitorId`, `metadata.group.field` (visitor metadata for end-user
    /// fields, account metadata otherwise), `visitor.metadata.…` or `account.metadata.…`.
    pub fn parse(field: &str, raw: &str, role: FieldRole) -> Result<Self, ValidationError> {
        let s = raw.trim();
        let segment_ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 64
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        let meta = |rest: &str, record: FieldRecord| -> Result<Self, ValidationError> {
            let parts: Vec<&str> = rest.split('.').collect();
            if parts.len() < 2 || !parts.iter().all(|p| segment_ok(p)) {
                return Err(ValidationError::new(
                    field,
                    "a metadata path needs a group and a field, e.g. metadata.agent.email",
                ));
            }
            Ok(Self {
                record,
                path: rest.to_string(),
            })
        };
        if let Some(rest) = s.strip_prefix("visitor.metadata.") {
            return meta(rest, FieldRecord::Visitor);
        }
        if let Some(rest) = s.strip_prefix("account.metadata.") {
            return meta(rest, FieldRecord::Account);
        }
        if let Some(rest) = s.strip_prefix("metadata.") {
            let record = match role {
                FieldRole::EndUser => FieldRecord::Visitor,
                FieldRole::Object => FieldRecord::Account,
            };
            return meta(rest, record);
        }
        if s == "accountId" || s == "visitorId" {
            return Ok(Self {
                record: FieldRecord::Row,
                path: s.to_string(),
            });
        }
        Err(ValidationError::new(
            field,
            "must be accountId, visitorId, or a metadata path such as metadata.agent.email",
        ))
    }

    /// The explicit form (`visitor.metadata.agent.email`), as stored and shown.
    pub fn display(&self) -> String {
        String::from(self.clone())
    }
}

impl TryFrom<String> for FieldRef {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, ValidationError> {
        // Stored values always carry an explicit record (`visitor.`/`account.`), so the role
        // only decides a bare `metadata.` path, which is never stored.
        Self::parse("field", &s, FieldRole::Object)
    }
}
impl From<FieldRef> for String {
    fn from(f: FieldRef) -> String {
        match f.record {
            FieldRecord::Row => f.path,
            FieldRecord::Visitor => format!("visitor.metadata.{}", f.path),
            FieldRecord::Account => format!("account.metadata.{}", f.path),
        }
    }
}

/// "Map Custom ID Fields": which Pendo field feeds each directory field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldMappings {
    pub company_id: FieldRef,
    /// `None` is the guide's `-`: end users matched by email only.
    pub end_user_id: Option<FieldRef>,
    pub asset_id: Option<FieldRef>,
    pub project_id: Option<FieldRef>,
    pub email: Option<FieldRef>,
    pub name: Option<FieldRef>,
    pub surname: Option<FieldRef>,
}

impl Default for FieldMappings {
    fn default() -> Self {
        Self {
            company_id: row_field("accountId"),
            end_user_id: Some(row_field("visitorId")),
            asset_id: None,
            project_id: None,
            email: None,
            name: None,
            surname: None,
        }
    }
}

fn row_field(name: &str) -> FieldRef {
    FieldRef {
        record: FieldRecord::Row,
        path: name.to_string(),
    }
}

/// The raw form of field mappings, as a user sends them: strings, `"-"` or empty for "none".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldMappingsInput {
    pub company_id: Option<String>,
    pub end_user_id: Option<String>,
    pub asset_id: Option<String>,
    pub project_id: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub surname: Option<String>,
}

impl FieldMappingsInput {
    /// Validates and applies the given fields over `base` (absent fields keep their value;
    /// `"-"` or `""` clears an optional field).
    pub fn apply(&self, base: &FieldMappings) -> Result<FieldMappings, ValidationError> {
        fn opt(
            name: &str,
            raw: &Option<String>,
            cur: &Option<FieldRef>,
            role: FieldRole,
        ) -> Result<Option<FieldRef>, ValidationError> {
            match raw.as_deref().map(str::trim) {
                None => Ok(cur.clone()),
                Some("") | Some("-") => Ok(None),
                Some(s) => FieldRef::parse(&format!("fieldMappings.{name}"), s, role).map(Some),
            }
        }
        let company_id = match self.company_id.as_deref().map(str::trim) {
            None => base.company_id.clone(),
            Some("") | Some("-") => {
                return Err(ValidationError::new(
                    "fieldMappings.companyId",
                    "the company id field is required",
                ))
            }
            Some(s) => FieldRef::parse("fieldMappings.companyId", s, FieldRole::Object)?,
        };
        let out = FieldMappings {
            company_id,
            end_user_id: opt(
                "endUserId",
                &self.end_user_id,
                &base.end_user_id,
                FieldRole::EndUser,
            )?,
            asset_id: opt("assetId", &self.asset_id, &base.asset_id, FieldRole::Object)?,
            project_id: opt(
                "projectId",
                &self.project_id,
                &base.project_id,
                FieldRole::Object,
            )?,
            email: opt("email", &self.email, &base.email, FieldRole::EndUser)?,
            name: opt("name", &self.name, &base.name, FieldRole::EndUser)?,
            surname: opt("surname", &self.surname, &base.surname, FieldRole::EndUser)?,
        };
        if out.end_user_id.is_none() && out.email.is_none() {
            return Err(ValidationError::new(
                "fieldMappings.endUserId",
                "may be cleared to '-' only when the email field is mapped",
            ));
        }
        Ok(out)
    }
}

/// Settings of the configuration panel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub days_to_sync: DaysToSync,
    pub timezone: Option<Timezone>,
    pub field_mappings: FieldMappings,
    pub auto_detect_end_users: bool,
}

/// Whether the stored key works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum ConnectionStatus {
    NotConnected,
    Active,
    Disconnected { message: String },
}

/// Where and how to reach Pendo for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub domain: PendoDomain,
    pub key: IntegrationKey,
}

/// The whole integration record of a tenant (one config item, written with optimistic
/// concurrency through `version`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Integration {
    pub tenant: TenantId,
    pub connection: Option<Connection>,
    pub status: ConnectionStatus,
    pub settings: Settings,
    pub apps: AppsTable,
    pub segments: Vec<Segment>,
    /// The generation runs write: bumped by every Re-sync all; messages of another generation
    /// are dead.
    pub generation: u64,
    /// The generation reads show (`None` in a record from before it existed: `generation`).
    /// It stays on the last complete generation while a Re-sync all builds the next one, and
    /// moves to it in one write when every chunk of the re-sync is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<u64>,
    /// The highest generation ever given (`None`: `generation`): a discarded re-sync's number is
    /// never given again, so none of its late messages can pass for current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued: Option<u64>,
    /// Generations neither written nor shown may be stored: set by the publish or the discard of
    /// a re-sync, cleared by the purge that deletes them (so a crash between the two is
    /// purged on the next try).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub purge_pending: bool,
    /// The mappings whose values live in a generation of their own (a rebuild's; see
    /// `domain::generations`), until the next Re-sync all is published.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub own: std::collections::BTreeMap<super::MappingId, super::generations::OwnGeneration>,
    pub resync_required: bool,
    /// Optimistic-concurrency version, bumped by every write.
    pub version: u64,
}

impl Integration {
    pub fn new(tenant: TenantId) -> Self {
        Self {
            tenant,
            connection: None,
            status: ConnectionStatus::NotConnected,
            settings: Settings::default(),
            apps: AppsTable::default(),
            segments: Vec::new(),
            generation: 1,
            published: None,
            issued: None,
            purge_pending: false,
            own: Default::default(),
            resync_required: false,
            version: 0,
        }
    }

    /// The generation reads show.
    pub fn read_generation(&self) -> u64 {
        self.published.unwrap_or(self.generation)
    }

    /// Whether a Re-sync all is building a generation that reads do not show yet.
    pub fn resync_pending(&self) -> bool {
        self.read_generation() != self.generation
    }

    /// Starts a Re-sync all: runs write a new generation, reads keep showing the current one.
    pub fn begin_resync(&mut self) {
        self.published = Some(self.read_generation());
        self.generation = self.issue();
    }

    /// Ends a Re-sync all of `generation`: reads show it. False (nothing changed) when runs no
    /// longer write it (discarded, or a later re-sync) or reads already show it.
    pub fn publish(&mut self, generation: u64) -> bool {
        if self.generation != generation || self.read_generation() == generation {
            return false;
        }
        self.published = Some(generation);
        // Every mapping is rebuilt in it: none keeps a generation of its own.
        self.own.clear();
        self.purge_pending = true;
        true
    }

    /// Abandons the Re-sync all in progress: runs write the shown generation again. False when
    /// none is pending.
    pub fn discard_resync(&mut self) -> bool {
        if !self.resync_pending() {
            return false;
        }
        self.issued = Some(self.issued.unwrap_or(self.generation).max(self.generation));
        self.generation = self.read_generation();
        self.purge_pending = true;
        true
    }

    pub fn is_active(&self) -> bool {
        self.connection.is_some() && self.status == ConnectionStatus::Active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_a_closed_list() {
        assert_eq!(
            PendoDomain::parse("APP.EU.pendo.io").unwrap(),
            PendoDomain::Eu
        );
        let e = PendoDomain::parse("evil.example.com").unwrap_err();
        assert_eq!(e.field, "domain");
        assert!(PendoDomain::parse("https://app.pendo.io").is_err());
    }

    #[test]
    fn key_is_masked_everywhere_but_expose() {
        let k = IntegrationKey::parse("abcdef-123456-wxyz").unwrap();
        assert_eq!(k.masked(), "…wxyz");
        assert_eq!(format!("{k:?}"), "IntegrationKey(…wxyz)");
        assert_eq!(k.expose(), "abcdef-123456-wxyz");
        assert!(IntegrationKey::parse("short").is_err());
        assert!(IntegrationKey::parse("has space inside").is_err());
    }

    #[test]
    fn days_to_sync_bounds() {
        assert!(DaysToSync::new(0).is_err());
        assert_eq!(DaysToSync::new(1).unwrap().get(), 1);
        assert_eq!(DaysToSync::new(365).unwrap().get(), 365);
        assert_eq!(DaysToSync::new(366).unwrap_err().field, "daysToSync");
        assert_eq!(DaysToSync::default().get(), 90);
    }

    #[test]
    fn timezone_must_be_iana() {
        assert!(Timezone::parse("Europe/Paris").is_ok());
        assert_eq!(Timezone::parse("Mars/Base").unwrap_err().field, "timezone");
    }

    #[test]
    fn field_refs_parse_by_role() {
        let f = FieldRef::parse("f", "metadata.agent.email", FieldRole::EndUser).unwrap();
        assert_eq!(f.record, FieldRecord::Visitor);
        assert_eq!(f.path, "agent.email");
        let f = FieldRef::parse("f", "metadata.custom.assetid", FieldRole::Object).unwrap();
        assert_eq!(f.record, FieldRecord::Account);
        let f =
            FieldRef::parse("f", "visitor.metadata.custom.projectid", FieldRole::Object).unwrap();
        assert_eq!(f.record, FieldRecord::Visitor);
        assert!(FieldRef::parse("f", "metadata.agent", FieldRole::Object).is_err());
        assert!(FieldRef::parse("f", "foo", FieldRole::Object).is_err());
        assert!(FieldRef::parse("f", "metadata.a b.c", FieldRole::Object).is_err());
        let stored: String = FieldRef::parse("f", "metadata.agent.email", FieldRole::EndUser)
            .unwrap()
            .into();
        assert_eq!(stored, "visitor.metadata.agent.email");
        let back: FieldRef = serde_json::from_str(&format!("\"{stored}\"")).unwrap();
        assert_eq!(
            back,
            FieldRef::parse("f", "metadata.agent.email", FieldRole::EndUser).unwrap()
        );
    }

    #[test]
    fn end_user_id_may_be_cleared_only_with_email() {
        let base = FieldMappings::default();
        let clear = FieldMappingsInput {
            end_user_id: Some("-".into()),
            ..Default::default()
        };
        assert_eq!(
            clear.apply(&base).unwrap_err().field,
            "fieldMappings.endUserId"
        );
        let with_email = FieldMappingsInput {
            end_user_id: Some("-".into()),
            email: Some("metadata.agent.email".into()),
            ..Default::default()
        };
        let m = with_email.apply(&base).unwrap();
        assert!(m.end_user_id.is_none());
        assert_eq!(m.email.unwrap().path, "agent.email");
        let no_company = FieldMappingsInput {
            company_id: Some("-".into()),
            ..Default::default()
        };
        assert_eq!(
            no_company.apply(&base).unwrap_err().field,
            "fieldMappings.companyId"
        );
    }

    /// A Re-sync all writes a new generation while reads keep the shown one; publishing moves
    /// reads to it; a discard goes back to writing the shown one, and the next re-sync never
    /// reuses the discarded number (its late messages must stay dead).
    #[test]
    fn generations_of_resyncs_published_and_discarded() {
        let mut i = Integration::new(TenantId::parse("t").unwrap());
        assert_eq!((i.generation, i.read_generation()), (1, 1));
        assert!(!i.resync_pending());
        i.begin_resync();
        assert_eq!((i.generation, i.read_generation()), (2, 1));
        assert_eq!(i.generations().live(), vec![1, 2]);
        assert!(!i.publish(3));
        assert!(i.publish(2));
        assert!(!i.publish(2));
        assert_eq!((i.generation, i.read_generation()), (2, 2));
        assert_eq!(i.generations().live(), vec![2]);
        i.begin_resync();
        i.begin_resync(); // a second re-sync over a pending one
        assert_eq!((i.generation, i.read_generation()), (4, 2));
        assert!(i.discard_resync());
        assert!(!i.discard_resync());
        assert_eq!((i.generation, i.read_generation()), (2, 2));
        assert!(!i.publish(4));
        i.begin_resync();
        assert_eq!((i.generation, i.read_generation()), (5, 2));
        // A record from before `published` and `issued` reads as its one generation.
        let old: Integration = serde_json::from_value({
            let mut v =
                serde_json::to_value(Integration::new(TenantId::parse("t").unwrap())).unwrap();
            v["generation"] = 7.into();
            v
        })
        .unwrap();
        assert_eq!((old.generation, old.read_generation()), (7, 7));
    }
}
