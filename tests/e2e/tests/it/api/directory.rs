//! The directory filled from a CSV file or from Pendo, through the HTTP API (issue 20): CSV rows
//! upserted in batches with the JSON rows' errors, an upload that cannot be read refused with
//! nothing stored, and imports started, followed and isolated per tenant.

use super::*;

pub(super) async fn csv(a: &Api, token: &str, kind: &str, body: String) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(Method::PUT)
        .uri(format!("/v1/directory/{kind}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "text/csv; charset=utf-8")
        .body(Body::from(body))
        .unwrap();
    let resp = a.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn count(a: &Api, token: &str, kind: &str) -> usize {
    let (_, list) = a
        .call(token, Method::GET, &format!("/v1/directory/{kind}"), None)
        .await;
    list.as_array().map_or(0, Vec::len)
}

/// Rows with a bad one every 700th (no company) and a repeat every 1,000th (the previous row's
/// external id).
fn end_user_rows(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            if i % 700 == 699 {
                json!({"externalId": format!("u{i}"), "email": format!("u{i}@x.io")})
            } else if i % 1000 == 999 {
                json!({"companyId": format!("c{}", (i - 1) % 3), "externalId": format!("u{}", i - 1)})
            } else {
                json!({"companyId": format!("c{}", i % 3), "externalId": format!("u{i}"),
                       "email": format!("U{i}@X.io"), "name": format!("Name, {i}")})
            }
        })
        .collect()
}

fn as_csv(rows: &[Value]) -> String {
    let cols = ["companyId", "externalId", "email", "name", "surname"];
    let mut out = cols.join(",") + "\r\n";
    for r in rows {
        let cells: Vec<String> = cols
            .iter()
            .map(|c| match r[*c].as_str() {
                Some(v) if v.contains([',', '"']) => format!("\"{}\"", v.replace('"', "\"\"")),
                Some(v) => v.to_string(),
                None => String::new(),
            })
            .collect();
        out += &(cells.join(",") + "\r\n");
    }
    out
}

#[tokio::test]
async fn a_csv_upload_is_upserted_in_batches_with_the_errors_of_json_rows() {
    let a = api().await;
    // The same rows as JSON batches (tenant A) and as one CSV file (tenant B), the companies
    // in both directories.
    for token in [ADMIN_A, ADMIN_B] {
        let companies =
            json!({"items": [{"externalId": "c0"}, {"externalId": "c1"}, {"externalId": "c2"}]});
        let (s, _) = a
            .call(
                token,
                Method::PUT,
                "/v1/directory/companies",
                Some(companies),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let rows = end_user_rows(2500);
    let mut json_errors = Vec::new();
    let mut json_accepted = 0;
    for (b, batch) in rows.chunks(1000).enumerate() {
        let (s, r) = a
            .call(
                ADMIN_A,
                Method::PUT,
                "/v1/directory/end-users",
                Some(json!({ "items": batch })),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{r}");
        json_accepted += r["accepted"].as_u64().unwrap();
        for mut e in r["errors"].as_array().unwrap().clone() {
            e["index"] = json!(e["index"].as_u64().unwrap() + 1000 * b as u64);
            json_errors.push(e);
        }
    }
    let (s, r) = csv(&a, ADMIN_B, "end-users", as_csv(&rows)).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    // Rows 699, 1399, 2099 lack a company; 999 and 1999 repeat the row before (same batch).
    let indexes: Vec<u64> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, vec![699, 999, 1399, 1999, 2099]);
    // The same errors as the JSON batches', a repeat naming the earlier row as a spreadsheet
    // numbers the file's lines (the header is line 1) instead of its index in the batch.
    let named = |errors: &Value| -> Vec<(Value, Value)> {
        errors
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["index"].clone(), e["field"].clone()))
            .collect()
    };
    assert_eq!(named(&r["errors"]), named(&json!(json_errors)));
    assert_eq!(
        (&r["rows"], &r["accepted"], &r["errorsNotListed"]),
        (&json!(2500), &json!(2495), &json!(0))
    );
    assert_eq!(
        (&json_errors[1]["message"], &r["errors"][1]["message"]),
        (
            &json!("row 998 of this batch already gives external id u998 in company c2; a batch names each end user once"),
            &json!("line 1000 of the file already gives external id u998 in company c2; a file names each end user once")
        )
    );
    assert_eq!(json_accepted, 2495);
    assert_eq!(r["errors"][0]["field"], "companyId");
    assert_eq!(count(&a, ADMIN_B, "end-users").await, 2495);
    let (_, users) = a
        .call(ADMIN_B, Method::GET, "/v1/directory/end-users", None)
        .await;
    let u5 = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["externalId"] == "u5")
        .unwrap();
    assert_eq!(
        (&u5["companyId"], &u5["email"], &u5["name"]),
        (&json!("c2"), &json!("u5@x.io"), &json!("Name, 5"))
    );
    // Uploading it again changes nothing.
    let (s, again) = csv(&a, ADMIN_B, "end-users", as_csv(&rows)).await;
    assert_eq!((s, &again["accepted"]), (StatusCode::OK, &json!(2495)));
    assert_eq!(count(&a, ADMIN_B, "end-users").await, 2495);
    // Companies too, with a byte order mark and a blank line.
    let (s, r) = csv(
        &a,
        ADMIN_B,
        "companies",
        "\u{feff}externalId,name\n\nc1,\"Acme, Inc\"\nc2,\n".into(),
    )
    .await;
    assert_eq!(
        (s, r),
        (
            StatusCode::OK,
            json!({"rows": 2, "accepted": 2, "errors": [], "errorsNotListed": 0})
        )
    );
    let (_, companies) = a
        .call(ADMIN_B, Method::GET, "/v1/directory/companies", None)
        .await;
    assert_eq!(
        (&companies[1]["name"], &companies[2]["name"]),
        (&json!("Acme, Inc"), &Value::Null)
    );
}

#[tokio::test]
async fn a_csv_upload_that_cannot_be_read_is_refused_with_nothing_stored() {
    let a = api().await;
    let good = as_csv(&end_user_rows(1500));
    let cases: Vec<(String, StatusCode, &str, Option<&str>)> = vec![
        (
            "companyId,externalId,plan\nc1,u1,gold\n".into(),
            StatusCode::BAD_REQUEST,
            "unknown column 'plan'; the columns of this directory are companyId, externalId, email, name, surname",
            Some("header"),
        ),
        (
            "externalId,email\nu1,a@x.io\n".into(),
            StatusCode::BAD_REQUEST,
            "the header needs a column 'companyId'",
            Some("header"),
        ),
        (
            // A short row after a whole first batch: the first 1,000 rows are not stored either.
            format!("{good}c1,u-short\n"),
            StatusCode::BAD_REQUEST,
            "row 1500: has 2 cells; the header has 5",
            None,
        ),
        (
            format!("companyId,externalId\n{}", "c1,u\n".repeat(100_001)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "at most 100000 rows per upload; split the file",
            None,
        ),
        (
            String::new(),
            StatusCode::BAD_REQUEST,
            "the upload has no header row",
            Some("header"),
        ),
    ];
    for (body, status, message, field) in cases {
        let (s, r) = csv(&a, ADMIN_A, "end-users", body).await;
        assert_eq!(s, status, "{r}");
        assert_eq!(r["error"]["message"], message);
        assert_eq!(r["error"]["field"].as_str(), field, "{message}");
    }
    let mut latin1 = b"companyId,externalId,name\nc1,u1,Caf".to_vec();
    latin1.extend([0xe9, b'\n']);
    let req = Request::builder()
        .method(Method::PUT)
        .uri("/v1/directory/end-users")
        .header("authorization", format!("Bearer {ADMIN_A}"))
        .header("content-type", "text/csv")
        .body(Body::from(latin1))
        .unwrap();
    let resp = a.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(count(&a, ADMIN_A, "end-users").await, 0);
}

#[tokio::test]
async fn an_import_from_pendo_runs_in_the_background_and_is_read_per_tenant() {
    let a = api().await;
    a.connect(ADMIN_A).await;
    let body = json!({"dryRun": true, "companyNameField": "metadata.agent.name"});
    let (s, preview) = a
        .call(ADMIN_A, Method::POST, "/v1/imports", Some(body))
        .await;
    assert_eq!(s, StatusCode::OK, "{preview}");
    let accounts = a.sim.subscription().accounts.len() as u64;
    assert_eq!(preview["companies"]["created"], accounts);
    assert_eq!(preview["pendoCalls"], 2);
    assert_eq!(
        count(&a, ADMIN_A, "companies").await,
        0,
        "a dry run writes nothing"
    );

    let body = json!({"companyNameField": "metadata.agent.name"});
    let (s, started) = a
        .call(ADMIN_A, Method::POST, "/v1/imports", Some(body))
        .await;
    assert_eq!(
        (s, &started["state"]),
        (StatusCode::ACCEPTED, &json!("running"))
    );
    let id = started["id"].as_str().unwrap().to_string();
    a.drain().await;
    let (s, done) = a
        .call(ADMIN_A, Method::GET, &format!("/v1/imports/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (
            &done["state"],
            &done["pages"],
            &done["companies"],
            &done["endUsers"]
        ),
        (
            &json!("finished"),
            &json!(2),
            &preview["companies"],
            &preview["endUsers"]
        )
    );
    assert_eq!(count(&a, ADMIN_A, "companies").await as u64, accounts);
    let (_, listed) = a.call(ADMIN_A, Method::GET, "/v1/imports", None).await;
    assert_eq!(listed[0]["id"], json!(id));
    // Another tenant sees none of it.
    let (s, _) = a
        .call(ADMIN_B, Method::GET, &format!("/v1/imports/{id}"), None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, none) = a.call(ADMIN_B, Method::GET, "/v1/imports", None).await;
    assert_eq!(none, json!([]));
    let (s, e) = a
        .call(
            ADMIN_A,
            Method::POST,
            "/v1/imports",
            Some(json!({"pageRows": 5})),
        )
        .await;
    assert_eq!(
        (s, &e["error"]["field"]),
        (StatusCode::BAD_REQUEST, &json!("pageRows"))
    );
}
