//! The tenant's integration (DESIGN §1 "connect", "settings"): connecting and disconnecting
//! Pendo (the key is checked with Pendo before anything is saved), the settings, the apps table
//! and the segments. Every change is an optimistic write retried on a lost race.

use crate::app::{App, AppError, ConnectProblem};
use crate::domain::*;
use crate::pendo::PendoError;
use crate::store::optimistic;
use crate::sync::references::Reference;
use serde::{Deserialize, Serialize};

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

impl App {
    pub async fn integration(&self, t: &TenantId) -> Result<Integration, AppError> {
        self.ports
            .store
            .get_integration(t)
            .await?
            .ok_or(AppError::NotConnected)
    }

    /// The tenant's integration, or the defaults of one that never connected.
    pub async fn integration_or_default(&self, t: &TenantId) -> Result<Integration, AppError> {
        let stored = self.ports.store.get_integration(t).await?;
        Ok(stored.unwrap_or_else(|| Integration::new(t.clone())))
    }

    /// Reads, changes and writes the integration, retrying a lost optimistic write.
    pub(super) async fn update_integration<F>(
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
    ) -> Result<Integration, AppError> {
        let days = u.days_to_sync.map(DaysToSync::new).transpose()?;
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
        let synced = self.synced_anything(t).await?;
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
            if i.settings != before && synced {
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
        let i = self.integration(t).await?;
        if let (false, Ok(id)) = (
            i.apps.rows().iter().any(|r| r.app_id == app_id),
            app_id.parse::<i64>(),
        ) {
            // A row added must name an app Pendo lists; rows already in the table are not
            // re-checked (one Pendo no longer lists can still be renamed or removed).
            self.refuse_unlisted(&i, &[Reference::App(id)], |_| "appId")
                .await?;
        }
        let synced = self.synced_anything(t).await?;
        self.update_integration(t, false, |i| {
            let before = i.apps.clone();
            i.apps.upsert(app_id, prefix).map_err(apps_error)?;
            i.resync_required |= i.apps != before && synced;
            Ok(())
        })
        .await
    }

    /// Whether any mapping has synced a day in the current generation: a change of settings or
    /// apps asks for a Re-sync all only then (values made under the old settings exist).
    async fn synced_anything(&self, t: &TenantId) -> Result<bool, AppError> {
        let store = &self.ports.store;
        let Some(i) = store.get_integration(t).await? else {
            return Ok(false);
        };
        for m in store.list_mappings(t).await? {
            if let Some(st) = store.get_mapping_state(t, &m.id).await? {
                if st.generation == i.generations().writes(&m.id) && st.last_synced_day.is_some() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    pub async fn remove_app(&self, t: &TenantId, app_id: &str) -> Result<Integration, AppError> {
        let synced = self.synced_anything(t).await?;
        self.update_integration(t, false, |i| {
            i.apps.remove(app_id).map_err(apps_error)?;
            i.resync_required |= synced;
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
        let i = self.integration(t).await?;
        if !i.segments.iter().any(|s| s.id == seg.id) {
            let r = [Reference::Segment(seg.id.clone())];
            self.refuse_unlisted(&i, &r, |_| "segmentId").await?;
        }
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
        let users: Vec<String> = self
            .ports
            .store
            .list_mappings(t)
            .await?
            .into_iter()
            .filter(|m| m.segment_id.as_deref() == Some(id))
            .map(|m| m.metric_name)
            .collect();
        if let Some(m) = users.first() {
            return Err(AppError::Conflict(format!(
                "segment {id} is used by mapping \"{m}\"; change or delete that mapping first"
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
