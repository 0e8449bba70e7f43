//! PES is computed per Pendo account: while a PES mapping exists, the company id field cannot
//! leave `accountId` (the change is refused, naming the PES mappings); and a PES chunk never
//! writes with another company id field.

use super::*;
use pendo_sync::domain::{FieldMappingsInput, TenantId};

#[tokio::test]
async fn the_company_id_field_stays_account_id_while_pes_mappings_exist() {
    let a = api().await;
    a.connect(ADMIN_A).await;
    let pes = |name: &str| {
        json!({"source": {"kind": "pes", "appId": -323232, "components": ["score"]},
            "target": "company", "metricName": name})
    };
    let mut ids = vec![];
    for name in ["Engagement", "Engagement 2"] {
        let (s, m) = a
            .call(ADMIN_A, Method::POST, "/v1/mappings", Some(pes(name)))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{m}");
        ids.push(m["id"].as_str().unwrap().to_string());
    }
    let before = a
        .call(ADMIN_A, Method::GET, "/v1/integration", None)
        .await
        .1;
    let change = json!({"fieldMappings": {"companyId": "metadata.custom.region"}});
    let (s, e) = a
        .call(
            ADMIN_A,
            Method::PATCH,
            "/v1/integration/settings",
            Some(change.clone()),
        )
        .await;
    assert_eq!(
        (s, e),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": "invalid", "field": "fieldMappings.companyId",
                "message": format!("PES is computed per Pendo account, so the company id field must stay accountId while PES mappings exist: delete the PES mappings 'Engagement' ({}), 'Engagement 2' ({}) first", ids[0], ids[1])}})
        )
    );
    assert_eq!(
        a.call(ADMIN_A, Method::GET, "/v1/integration", None)
            .await
            .1,
        before,
        "nothing changed (no re-sync required either)"
    );
    // Other fields change as usual, and naming accountId again is no change of it.
    let (s, i) = a
        .call(
            ADMIN_A,
            Method::PATCH,
            "/v1/integration/settings",
            Some(json!({"fieldMappings": {"companyId": "accountId", "email": "metadata.agent.email"}})),
        )
        .await;
    assert_eq!(
        (s, i["fieldMappings"]["email"].as_str()),
        (StatusCode::OK, Some("visitor.metadata.agent.email"))
    );
    // Without PES mappings the change is accepted.
    for id in &ids {
        let (s, _) = a
            .call(ADMIN_A, Method::DELETE, &format!("/v1/mappings/{id}"), None)
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    }
    let (s, i) = a
        .call(
            ADMIN_A,
            Method::PATCH,
            "/v1/integration/settings",
            Some(change),
        )
        .await;
    assert_eq!(
        (s, i["fieldMappings"]["companyId"].as_str()),
        (StatusCode::OK, Some("account.metadata.custom.region"))
    );
}

/// A PES mapping whose company id field changed anyway (a settings write racing its
/// creation, or a store edited by hand) fails its chunks with the reason instead of writing
/// scores onto other companies.
#[tokio::test]
async fn a_pes_chunk_never_writes_with_another_company_id_field() {
    let a = api().await;
    a.connect(ADMIN_A).await;
    let (s, m) = a
        .call(
            ADMIN_A,
            Method::POST,
            "/v1/mappings",
            Some(
                json!({"source": {"kind": "pes", "appId": -323232, "components": ["score"]},
                "target": "company", "metricName": "Engagement"}),
            ),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{m}");
    let id = m["id"].as_str().unwrap().to_string();
    let t = TenantId::parse("tenant-a").unwrap();
    let store = &a.store;
    let mut i = store.get_integration(&t).await.unwrap().unwrap();
    i.settings.field_mappings = FieldMappingsInput {
        company_id: Some("metadata.custom.region".into()),
        ..Default::default()
    }
    .apply(&i.settings.field_mappings)
    .unwrap();
    store.put_integration(&i).await.unwrap();
    a.sync_now(&id).await;
    assert_eq!(a.export().await, vec![], "no score written");
    let st = a
        .call(ADMIN_A, Method::GET, &format!("/v1/mappings/{id}"), None)
        .await
        .1["state"]
        .clone();
    let why = "PES is computed per Pendo account, but the company id field is no longer accountId: set it back to accountId, or delete this mapping";
    assert_eq!(st["lastRun"]["outcome"], "failed");
    assert_eq!(st["lastRun"]["error"], why);
    assert_eq!(st["lastError"]["message"], why);
}
