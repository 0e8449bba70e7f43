//! Why rows were not used, as the user reads it (issue 32, defect 9): an anonymous visitor is
//! its own reason on every target, never "no company id" (which the page would advise adding
//! to the directory: impossible for a visitor Pendo never identified).

use super::*;

#[tokio::test]
async fn anonymous_visitors_are_their_own_reason_on_a_company_mapping() {
    let a = &api().await;
    let id = super::runs::tenant(a).await;
    let (s, _) = a
        .call(
            ADMIN_A,
            Method::POST,
            &format!("/v1/mappings/{id}/sync"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    a.drain().await;
    let (s, u) = a
        .call(
            ADMIN_A,
            Method::GET,
            &format!("/v1/mappings/{id}/unmatched?limit=1000"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{u}");
    let identities = u["identities"].as_array().unwrap();
    let of = |reason: &str| -> Vec<&str> {
        identities
            .iter()
            .filter(|i| i["reason"] == reason)
            .map(|i| i["identity"].as_str().unwrap())
            .collect()
    };
    let anonymous = of("anonymousVisitor");
    assert!(
        !anonymous.is_empty(),
        "the simulator's anonymous visitors click: {u}"
    );
    assert!(
        anonymous.iter().all(|v| v.starts_with("_PENDO_T_")),
        "{anonymous:?}"
    );
    let rows: u64 = identities
        .iter()
        .filter(|i| i["reason"] == "anonymousVisitor")
        .map(|i| i["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(u["totals"]["anonymousVisitor"]["rows"].as_u64(), Some(rows));
    assert!(
        of("noCompanyId")
            .iter()
            .all(|v| !v.starts_with("_PENDO_T_")),
        "{u}"
    );
}
