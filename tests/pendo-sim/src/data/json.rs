//! JSON shapes of the subscription objects as Pendo serves them (rows, metadata, catalogs).

use serde_json::{json, Map, Value};

use super::{
    Account, App, EventRow, EventSource, Feature, Guide, Page, Segment, Subscription, TrackType,
    Visitor,
};
use crate::rng::fnv1a;

/// Stable 32-bit id hash as Pendo's `idhash`.
fn idhash(id: &str) -> u64 {
    fnv1a(id.as_bytes()) & 0xFFFF_FFFF
}

impl EventRow<'_> {
    /// The row as JSON; `hourly` rows carry `hour` in addition to `day`.
    pub fn to_json(&self, hourly: bool) -> Value {
        let mut m = Map::new();
        if let Some(a) = self.account_id {
            m.insert("accountId".into(), Value::from(a));
        }
        m.insert("appId".into(), Value::from(self.app_id));
        m.insert("day".into(), Value::from(self.day));
        if hourly {
            m.insert("hour".into(), Value::from(self.hour));
        }
        if let (Some(field), Some(id)) = (self.source.item_field(), self.item_id) {
            m.insert(field.into(), Value::from(id));
        }
        m.insert("firstTime".into(), Value::from(self.first_time));
        m.insert("lastTime".into(), Value::from(self.last_time));
        m.insert("numEvents".into(), Value::from(self.num_events));
        m.insert("numMinutes".into(), Value::from(self.num_minutes));
        m.insert("remoteIp".into(), Value::from(self.remote_ip.as_str()));
        m.insert("server".into(), Value::from(self.server));
        m.insert("userAgent".into(), Value::from(self.user_agent));
        m.insert("visitorId".into(), Value::from(self.visitor_id));
        if self.source == EventSource::TrackEvents {
            m.insert("properties".into(), json!({}));
        }
        Value::Object(m)
    }
}

impl Subscription {
    /// `metadata` object of a visitor (groups `agent`, `auto`, `auto_<app>`, `custom`).
    pub fn visitor_metadata(&self, v: &Visitor) -> Value {
        let mut md = Map::new();
        if !v.anonymous {
            let mut agent = Map::new();
            if let Some(e) = &v.email {
                agent.insert("email".into(), Value::from(e.as_str()));
            }
            if let Some(f) = &v.first_name {
                agent.insert("firstname".into(), Value::from(f.as_str()));
            }
            if let Some(l) = &v.last_name {
                agent.insert("lastname".into(), Value::from(l.as_str()));
            }
            agent.insert("language".into(), Value::from("en_US"));
            md.insert("agent".into(), Value::Object(agent));
        }
        let mut auto = Map::new();
        let account = self.account_id_of(v);
        if let Some(a) = account {
            auto.insert("accountid".into(), Value::from(a));
            auto.insert("accountids".into(), json!([a]));
        }
        auto.insert("id".into(), Value::from(v.id.as_str()));
        auto.insert("idhash".into(), Value::from(idhash(&v.id)));
        if let Some(f) = v.first_visit {
            auto.insert("firstvisit".into(), Value::from(f));
        }
        if let Some(l) = v.last_visit {
            auto.insert("lastvisit".into(), Value::from(l));
        }
        let updated = v
            .last_visit
            .unwrap_or_else(|| crate::timeutil::day_start_ms(self.timezone, self.first_date));
        auto.insert("lastupdated".into(), Value::from(updated));
        if let Some(&app) = v.apps.first() {
            auto.insert(
                "lastservername".into(),
                Value::from(super::activity::server_for(app)),
            );
        }
        md.insert("auto".into(), Value::Object(auto));
        for app in &v.apps {
            let key = format!("auto_{}", app.to_string().replace('-', "_"));
            md.insert(key, json!({ "firstvisit": v.first_visit }));
        }
        if let (Some(p), Some(r)) = (&v.project_id, &v.role) {
            md.insert("custom".into(), json!({ "projectid": p, "role": r }));
        }
        Value::Object(md)
    }

    /// A `visitors` source row.
    pub fn visitor_json(&self, v: &Visitor) -> Value {
        json!({ "visitorId": v.id, "metadata": self.visitor_metadata(v) })
    }

    /// `metadata` object of an account.
    pub fn account_metadata(&self, a: &Account) -> Value {
        let (first, last) = (a.first_visit, a.last_visit);
        let mut auto = Map::new();
        auto.insert("id".into(), Value::from(a.id.as_str()));
        auto.insert("idhash".into(), Value::from(idhash(&a.id)));
        if let Some(f) = first {
            auto.insert("firstvisit".into(), Value::from(f));
        }
        if let Some(l) = last {
            auto.insert("lastvisit".into(), Value::from(l));
        }
        let updated =
            last.unwrap_or_else(|| crate::timeutil::day_start_ms(self.timezone, self.first_date));
        auto.insert("lastupdated".into(), Value::from(updated));
        json!({
            "agent": { "name": a.name },
            "auto": Value::Object(auto),
            "custom": { "assetid": a.asset_id, "plan": a.plan, "region": a.region },
        })
    }

    /// An `accounts` source row.
    pub fn account_json(&self, a: &Account) -> Value {
        json!({ "accountId": a.id, "metadata": self.account_metadata(a) })
    }

    /// An app object (`apps` source).
    pub fn app_json(&self, a: &App) -> Value {
        json!({ "id": a.id, "displayName": a.name, "platform": a.platform })
    }

    /// A page object as in `GET /api/v1/page`.
    pub fn page_json(&self, p: &Page) -> Value {
        json!({
            "id": p.id, "appId": p.app_id, "name": p.name, "kind": "Page",
            "group": { "id": "_PENDO_DEFAULTGROUP_01_", "name": "Ungrouped" },
            "rules": [{ "rule": format!("//*/{}", p.name.to_lowercase().replace(' ', "-")),
                        "designerHint": p.name }],
            "isCoreEvent": p.is_core_event,
            "createdAt": p.created_at, "lastUpdatedAt": p.created_at,
            "rootVersionId": p.id, "stableVersionId": format!("{}-{}", p.id, p.created_at),
            "dirty": false,
        })
    }

    /// A feature object as in `GET /api/v1/feature`.
    pub fn feature_json(&self, f: &Feature) -> Value {
        json!({
            "id": f.id, "appId": f.app_id, "name": f.name, "kind": "Feature",
            "pageId": f.page_id, "appWide": false,
            "elementPathRules": [format!("#{}", f.name.to_lowercase().replace(' ', "-"))],
            "isCoreEvent": f.is_core_event,
            "createdAt": f.created_at, "lastUpdatedAt": f.created_at,
            "rootVersionId": f.id, "stableVersionId": format!("{}-{}", f.id, f.created_at),
            "dirty": false,
        })
    }

    /// A track type object.
    pub fn track_type_json(&self, t: &TrackType) -> Value {
        json!({
            "id": t.id, "appId": t.app_id, "name": t.name, "kind": "TrackType",
            "trackTypeRules": [t.name], "isCoreEvent": t.is_core_event,
        })
    }

    /// A guide object as in `GET /api/v1/guide` (and the `guides` source).
    pub fn guide_json(&self, g: &Guide) -> Value {
        let steps: Vec<Value> = g
            .steps
            .iter()
            .map(|s| json!({ "id": s, "guideId": g.id, "type": "lightbox", "pageId": null }))
            .collect();
        let polls: Vec<Value> = g
            .polls
            .iter()
            .map(|p| {
                json!({ "id": p.id, "question": p.question,
                        "attributes": { "type": p.kind.as_str() } })
            })
            .collect();
        json!({
            "id": g.id, "appId": g.app_id, "name": g.name, "state": g.state,
            "launchMethod": "auto", "isMultiStep": g.multi_step,
            "steps": steps, "polls": polls,
            "createdAt": g.created_at, "lastUpdatedAt": g.created_at,
        })
    }

    /// A segment object as in `GET /api/v1/segment`.
    pub fn segment_json(&self, s: &Segment) -> Value {
        json!({
            "id": s.id, "name": s.name, "description": s.description,
            "rootVersionId": s.id, "visitorCount": s.visitors.len(),
            "accountCount": s.accounts.len(),
        })
    }

    /// `GET /api/v1/metadata/schema/visitor|account`.
    pub fn metadata_schema(&self, kind: &str) -> Option<Value> {
        fn f(ty: &str, name: &str) -> Value {
            json!({ "Type": ty, "DisplayName": name, "ElementType": "", "ElementFormat": "",
                    "Dirty": false, "isHidden": false, "isDeleted": false,
                    "isCalculated": false, "isPerApp": false, "neverIndex": false })
        }
        match kind {
            "visitor" => Some(json!({
                "agent": { "email": f("string", "Email"), "firstname": f("string", "First Name"),
                           "lastname": f("string", "Last Name"), "language": f("string", "Language") },
                "auto": { "accountid": f("string", "Account ID"), "firstvisit": f("time", "First Visit"),
                          "lastvisit": f("time", "Last Visit"), "lastupdated": f("time", "Last Updated"),
                          "id": f("string", "Visitor ID"), "idhash": f("integer", "ID Hash"),
                          "lastservername": f("string", "Last Server Name") },
                "custom": { "projectid": f("string", "Project ID"), "role": f("string", "Role") },
            })),
            "account" => Some(json!({
                "agent": { "name": f("string", "Name") },
                "auto": { "id": f("string", "Account ID"), "firstvisit": f("time", "First Visit"),
                          "lastvisit": f("time", "Last Visit"), "lastupdated": f("time", "Last Updated"),
                          "idhash": f("integer", "ID Hash") },
                "custom": { "assetid": f("string", "Asset ID"), "plan": f("string", "Plan"),
                            "region": f("string", "Region") },
            })),
            _ => None,
        }
    }
}
