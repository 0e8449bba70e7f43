//! Directory upserts that never rewrite another end user, and per-row errors in the product's
//! words.

use super::*;

async fn end_users(a: &Api, token: &str, items: Value) -> Value {
    let (s, r) = a
        .call(
            token,
            Method::PUT,
            "/v1/directory/end-users",
            Some(json!({ "items": items })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    r
}

async fn listed(a: &Api) -> Vec<(String, Option<String>, Option<String>)> {
    let (_, list) = a
        .call(ADMIN_A, Method::GET, "/v1/directory/end-users", None)
        .await;
    list.as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let s = |k: &str| u[k].as_str().map(str::to_string);
            (s("id").unwrap(), s("externalId"), s("email"))
        })
        .collect()
}

#[tokio::test]
async fn a_directory_upsert_never_rewrites_another_end_user() {
    let a = api().await;
    let r = end_users(
        &a,
        ADMIN_A,
        json!([{"companyId": "acct-0001", "externalId": "v00001", "email": "ann@x.io"}]),
    )
    .await;
    assert_eq!(r, json!({"accepted": 1, "errors": []}));
    let before = listed(&a).await;
    assert_eq!(
        before,
        vec![(
            "acct-0001|x:v00001".to_string(),
            Some("v00001".to_string()),
            Some("ann@x.io".to_string())
        )]
    );
    // Another external id with v00001's email (any case): refused, naming both; nothing changes.
    let r = end_users(
        &a,
        ADMIN_A,
        json!([{"companyId": "acct-0001", "externalId": "dupC", "email": "Ann@X.io"}]),
    )
    .await;
    assert_eq!(
        r,
        json!({"accepted": 0, "errors": [{"index": 0, "field": "email",
            "message": "email ann@x.io already belongs to end user v00001 of company acct-0001, not to end user dupC; nothing was changed"}]})
    );
    assert_eq!(listed(&a).await, before);
    // The same email in another company is another user's.
    let r = end_users(
        &a,
        ADMIN_A,
        json!([{"companyId": "acct-0002", "externalId": "dupC", "email": "ann@x.io"}]),
    )
    .await;
    assert_eq!(r["accepted"], 1);
    // Matched on the external id: its fields are replaced, its id stays.
    let r = end_users(
        &a,
        ADMIN_A,
        json!([{"companyId": "acct-0001", "externalId": "v00001", "email": "ann@new.io", "name": "Ann"}]),
    )
    .await;
    assert_eq!(r, json!({"accepted": 1, "errors": []}));
    let (_, list) = a
        .call(ADMIN_A, Method::GET, "/v1/directory/end-users", None)
        .await;
    assert_eq!(
        list[0],
        json!({"id": "acct-0001|x:v00001", "companyId": "acct-0001", "externalId": "v00001",
            "email": "ann@new.io", "name": "Ann", "surname": null})
    );
}

#[tokio::test]
async fn a_batch_names_each_end_user_once_and_every_row_error_names_its_field() {
    let a = api().await;
    let r = end_users(
        &a,
        ADMIN_A,
        json!([
            {"companyId": "c1", "externalId": "v1", "email": "bo@x.io"},
            {"companyId": "c1", "externalId": "v2", "email": "bo@x.io"},
            {"externalId": "v3"},
            {"companyId": null, "externalId": "v4"},
            {"companyId": "c1"},
            {"companyId": "c1", "externalId": "v1", "name": "Bo"},
            {"companyId": "c1", "externalId": 7},
            {"companyId": "c1", "externalId": "v5", "colour": "red"},
            "v6",
            {"companyId": "c1", "email": "cy@x.io"},
        ]),
    )
    .await;
    let same = |row: usize, what: &str, v: &str| {
        format!("row {row} of this batch already gives {what} {v} in company c1; a batch names each end user once")
    };
    assert_eq!(
        r,
        json!({"accepted": 2, "errors": [
            {"index": 1, "field": "email", "message": same(0, "email", "bo@x.io")},
            {"index": 2, "field": "companyId", "message": "is required"},
            {"index": 3, "field": "companyId", "message": "must be a string"},
            {"index": 4, "field": "externalId", "message": "an external id or an email is required"},
            {"index": 5, "field": "externalId", "message": same(0, "external id", "v1")},
            {"index": 6, "field": "externalId", "message": "must be a string"},
            {"index": 7, "field": "colour", "message": "unknown field 'colour'"},
            {"index": 8, "field": null, "message": "each item must be a JSON object"},
        ]})
    );
    assert_eq!(
        listed(&a).await,
        vec![
            (
                "c1|e:cy@x.io".to_string(),
                None,
                Some("cy@x.io".to_string())
            ),
            (
                "c1|x:v1".to_string(),
                Some("v1".to_string()),
                Some("bo@x.io".to_string())
            ),
        ]
    );
    // Rows apply in order: v2 cannot take bo@x.io before a later row moves v1 off it.
    let r = end_users(
        &a,
        ADMIN_A,
        json!([
            {"companyId": "c1", "externalId": "v2", "email": "bo@x.io"},
            {"companyId": "c1", "externalId": "v1", "email": "bo@y.io"},
            {"companyId": "c1", "externalId": "v2", "email": "bo@x.io"},
        ]),
    )
    .await;
    assert_eq!(r["accepted"], 1);
    assert_eq!(r["errors"][0]["index"], 0);
    assert_eq!(
        r["errors"][0]["message"],
        "email bo@x.io already belongs to end user v1 of company c1, not to end user v2; nothing was changed"
    );
    assert_eq!(r["errors"][1]["message"], same(0, "external id", "v2"));
    let text = a
        .raw(
            Some(ADMIN_A),
            Method::PUT,
            "/v1/directory/end-users",
            Some(
                json!({"items": [{"companyId": "c1", "externalId": "v9", "email": "bo@y.io"}]})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await
        .1;
    assert!(
        !text.contains("UNIQUE") && !text.contains("constraint"),
        "{text}"
    );
    assert!(text.contains("already belongs to end user v1"), "{text}");
}
