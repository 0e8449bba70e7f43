//! The directory's write rules through the API (issue 32, defect 5): an upload changes only
//! the fields it gives (an absent or empty field keeps the stored one, `-` clears it), an end
//! user needs its company in the directory, a repeated company is refused like a repeated end
//! user, and an admin can delete an entry, told what becomes of its values.

use super::directory::csv;
use super::*;

async fn put(a: &Api, kind: &str, items: Value) -> Value {
    let (s, r) = a
        .call(
            ADMIN_A,
            Method::PUT,
            &format!("/v1/directory/{kind}"),
            Some(json!({ "items": items })),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    r
}

async fn list(a: &Api, kind: &str) -> Value {
    a.call(ADMIN_A, Method::GET, &format!("/v1/directory/{kind}"), None)
        .await
        .1
}

#[tokio::test]
async fn an_upload_changes_only_the_fields_it_gives_and_a_dash_clears_one() {
    let a = api().await;
    put(
        &a,
        "companies",
        json!([{"externalId": "c1", "name": "Acme"}]),
    )
    .await;
    put(
        &a,
        "assets",
        json!([{"externalId": "a1", "name": "Dash", "companyId": "c1"}]),
    )
    .await;
    // A row without a name, with an empty name, and a CSV row with an empty cell: kept.
    put(&a, "companies", json!([{"externalId": "c1"}])).await;
    put(&a, "companies", json!([{"externalId": "c1", "name": ""}])).await;
    let (s, r) = csv(
        &a,
        ADMIN_A,
        "assets",
        "externalId,name,companyId\r\na1,,\r\n".into(),
    )
    .await;
    assert_eq!((s, &r["accepted"]), (StatusCode::OK, &json!(1)), "{r}");
    assert_eq!(
        list(&a, "companies").await,
        json!([{"externalId": "c1", "name": "Acme", "companyId": null}])
    );
    assert_eq!(
        list(&a, "assets").await,
        json!([{"externalId": "a1", "name": "Dash", "companyId": "c1"}])
    );
    // `-` clears: a CSV cell, a JSON string.
    let (s, _) = csv(
        &a,
        ADMIN_A,
        "assets",
        "externalId,name,companyId\r\na1,-,\r\n".into(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    put(
        &a,
        "companies",
        json!([{"externalId": "c1", "name": " - "}]),
    )
    .await;
    assert_eq!(
        list(&a, "companies").await,
        json!([{"externalId": "c1", "name": null, "companyId": null}])
    );
    assert_eq!(
        list(&a, "assets").await,
        json!([{"externalId": "a1", "name": null, "companyId": "c1"}])
    );
    // End users alike: the name kept, the surname cleared.
    let row = json!({"companyId": "c1", "externalId": "v1", "name": "Ann", "surname": "Smith"});
    put(&a, "end-users", json!([row])).await;
    put(
        &a,
        "end-users",
        json!([{"companyId": "c1", "externalId": "v1", "surname": "-"}]),
    )
    .await;
    let users = list(&a, "end-users").await;
    assert_eq!(
        (&users[0]["name"], &users[0]["surname"]),
        (&json!("Ann"), &Value::Null)
    );
}

#[tokio::test]
async fn an_end_user_whose_company_is_not_in_the_directory_is_refused() {
    let a = api().await;
    put(&a, "companies", json!([{"externalId": "c1"}])).await;
    let r = put(
        &a,
        "end-users",
        json!([{"companyId": "c1", "externalId": "v1"}, {"companyId": "c9", "externalId": "v2"}]),
    )
    .await;
    assert_eq!(
        r,
        json!({"accepted": 1, "errors": [{"index": 1, "field": "companyId",
            "message": "company c9 is not in the directory; add it to the companies first"}]})
    );
    let (_, r) = csv(
        &a,
        ADMIN_A,
        "end-users",
        "companyId,externalId\r\nc9,v3\r\nc1,v4\r\n".into(),
    )
    .await;
    assert_eq!(
        (&r["accepted"], &r["errors"][0]["index"]),
        (&json!(1), &json!(0)),
        "{r}"
    );
    let users = list(&a, "end-users").await;
    let ids: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["externalId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["v1", "v4"]);
}

#[tokio::test]
async fn a_repeated_company_is_refused_like_a_repeated_end_user() {
    let a = api().await;
    let r = put(
        &a,
        "companies",
        json!([{"externalId": "c1", "name": "One"}, {"externalId": "c1", "name": "Uno"}]),
    )
    .await;
    assert_eq!(
        r,
        json!({"accepted": 1, "errors": [{"index": 1, "field": "externalId",
            "message": "row 0 of this batch already gives external id c1; a batch names each company once"}]})
    );
    assert_eq!(list(&a, "companies").await[0]["name"], "One");
    // In a CSV file, across its batches of 1,000: line 2 and line 1,502.
    let mut body = "externalId,name\r\n".to_string();
    for i in 0..1500 {
        body += &format!("k{i},Name {i}\r\n");
    }
    body += "k0,Again\r\n";
    let (_, r) = csv(&a, ADMIN_A, "companies", body).await;
    assert_eq!(
        (&r["rows"], &r["accepted"], &r["errors"]),
        (
            &json!(1501),
            &json!(1500),
            &json!([{"index": 1500, "field": "externalId",
                "message": "line 2 of the file already gives external id k0; a file names each company once"}])
        )
    );
}

#[tokio::test]
async fn an_admin_deletes_a_directory_entry_and_is_told_what_becomes_of_its_values() {
    let a = api().await;
    put(
        &a,
        "companies",
        json!([{"externalId": "c1"}, {"externalId": "c2"}]),
    )
    .await;
    put(
        &a,
        "projects",
        json!([{"externalId": "p1", "companyId": "c1"}]),
    )
    .await;
    put(
        &a,
        "end-users",
        json!([{"companyId": "c1", "externalId": "v1", "email": "ann@x.io"}]),
    )
    .await;
    let del = |token: &'static str, path: &'static str| {
        let a = &a;
        async move { a.call(token, Method::DELETE, path, None).await }
    };
    let (s, r) = del(MEMBER_A, "/v1/directory/companies/c2").await;
    assert_eq!(
        (s, r["error"]["message"].as_str()),
        (
            StatusCode::FORBIDDEN,
            Some("only an admin can delete from the directory")
        )
    );
    let (s, r) = del(ADMIN_A, "/v1/directory/companies/c1").await;
    assert_eq!(
        (s, r["error"]["message"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("company c1 still has 1 end user and 1 project; delete them or move them to another company first; nothing was deleted")
        )
    );
    assert_eq!(list(&a, "companies").await.as_array().unwrap().len(), 2);
    let (s, r) = del(ADMIN_A, "/v1/directory/end-users/c1%7Cx:v1").await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        r,
        json!({"deleted": "end user c1|x:v1", "values": pendo_sync::app::DELETED_VALUES})
    );
    assert_eq!(list(&a, "end-users").await, json!([]));
    // Its email is free again for a new end user of the company.
    put(
        &a,
        "end-users",
        json!([{"companyId": "c1", "externalId": "v2", "email": "ann@x.io"}]),
    )
    .await;
    assert_eq!(list(&a, "end-users").await.as_array().unwrap().len(), 1);
    assert_eq!(
        del(ADMIN_A, "/v1/directory/companies/c2").await.0,
        StatusCode::OK
    );
    let (s, r) = del(ADMIN_A, "/v1/directory/companies/c2").await;
    assert_eq!(
        (s, r["error"]["message"].as_str()),
        (StatusCode::NOT_FOUND, Some("company c2 not found"))
    );
    assert_eq!(
        list(&a, "companies").await,
        json!([{"externalId": "c1", "name": null, "companyId": null}])
    );
}
