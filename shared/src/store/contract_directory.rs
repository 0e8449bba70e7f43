//! The store contract, directory sentences: end users created once, directory rows matched on
//! the external id. Run against every adapter by `store_contract_tests!`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::contract::tenant;
use super::{Store, StoreError};
use crate::domain::*;

pub async fn end_users_are_created_once_and_never_overwritten(s: &dyn Store) {
    let t = tenant("c-users");
    let input = EndUserInput {
        company_id: "acme".into(),
        external_id: Some("v1".into()),
        email: Some("ann@acme.io".into()),
        name: Some("Ann".into()),
        surname: None,
    };
    let (u1, created1) = s.create_end_user_if_absent(&t, &input).await.unwrap();
    let (u2, created2) = s.create_end_user_if_absent(&t, &input).await.unwrap();
    assert!(created1 && !created2);
    assert_eq!(u1.id, u2.id);
    // Matched by email within the company too.
    let by_email = EndUserInput {
        external_id: None,
        ..input.clone()
    };
    let (u3, created3) = s.create_end_user_if_absent(&t, &by_email).await.unwrap();
    assert!(!created3);
    assert_eq!(u3.id, u1.id);
    // Same external id in another company is another user.
    let other = EndUserInput {
        company_id: "globex".into(),
        email: None,
        ..input.clone()
    };
    let (u4, created4) = s.create_end_user_if_absent(&t, &other).await.unwrap();
    assert!(created4);
    assert_ne!(u4.id, u1.id);
    s.fill_end_user(
        &t,
        &u1.id,
        Some("other@acme.io"),
        Some("Bob"),
        Some("Smith"),
    )
    .await
    .unwrap();
    let users = s.list_end_users(&t).await.unwrap();
    let ann = users.iter().find(|u| u.id == u1.id).cloned();
    assert_eq!(
        ann.as_ref().and_then(|u| u.name.clone()).as_deref(),
        Some("Ann")
    );
    assert_eq!(
        ann.as_ref().and_then(|u| u.email.clone()).as_deref(),
        Some("ann@acme.io")
    );
    assert_eq!(ann.and_then(|u| u.surname).as_deref(), Some("Smith"));
    assert_eq!(users.len(), 2);
    // The list is ordered by id; the unordered one holds the same users.
    assert!(users.windows(2).all(|w| w[0].id < w[1].id));
    let mut unordered = s.list_end_users_unordered(&t).await.unwrap();
    unordered.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(unordered, users);
}

pub async fn directory_upserts_match_on_external_id_and_never_take_an_email(s: &dyn Store) {
    let t = tenant("c-upsert");
    let row = |ext: Option<&str>, email: Option<&str>, name: Option<&str>| EndUserInput {
        company_id: "acme".into(),
        external_id: ext.map(Into::into),
        email: email.map(Into::into),
        name: name.map(Into::into),
        surname: None,
    };
    let ann = s
        .upsert_end_user(&t, &row(Some("v1"), Some("ann@acme.io"), Some("Ann")))
        .await
        .unwrap();
    let bob = s
        .upsert_end_user(&t, &row(Some("v2"), None, None))
        .await
        .unwrap();
    let only_email = s
        .upsert_end_user(&t, &row(None, Some("cy@acme.io"), None))
        .await
        .unwrap();
    let before = s.list_end_users(&t).await.unwrap();
    // A new external id with Ann's email: refused, naming Ann; nothing written.
    let e = s
        .upsert_end_user(&t, &row(Some("dupC"), Some("ann@acme.io"), None))
        .await
        .unwrap_err();
    let StoreError::EmailTaken(taken) = e else {
        panic!("{e}")
    };
    assert_eq!(
        taken,
        crate::store::EmailTaken {
            company: "acme".into(),
            email: "ann@acme.io".into(),
            holder_external_id: Some("v1".into()),
            holder_id: ann.id.clone(),
        }
    );
    // Bob asking for Ann's email, or for the email of a user known only by email: refused.
    let e = s
        .upsert_end_user(&t, &row(Some("v2"), Some("ann@acme.io"), Some("Bob")))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::EmailTaken(x) if x.holder_id == ann.id),
        "{e}"
    );
    let e = s
        .upsert_end_user(&t, &row(Some("v2"), Some("cy@acme.io"), None))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "email cy@acme.io already belongs to end user {} (no external id) of company acme",
            only_email.id
        )
    );
    assert_eq!(s.list_end_users(&t).await.unwrap(), before);
    // Matched on external id: the given fields replace the stored ones, the id stays.
    let ann2 = s
        .upsert_end_user(&t, &row(Some("v1"), Some("ann@new.io"), Some("Anna")))
        .await
        .unwrap();
    assert_eq!(
        ann2,
        EndUser {
            email: Some("ann@new.io".into()),
            name: Some("Anna".into()),
            ..ann.clone()
        }
    );
    // Ann's old email is free again; a row without an external id matches on its email.
    let bob2 = s
        .upsert_end_user(&t, &row(Some("v2"), Some("ann@acme.io"), None))
        .await
        .unwrap();
    assert_eq!(bob2.id, bob.id);
    let cy = s
        .upsert_end_user(&t, &row(None, Some("cy@acme.io"), Some("Cy")))
        .await
        .unwrap();
    assert_eq!(
        (cy.id, cy.name.as_deref()),
        (only_email.id.clone(), Some("Cy"))
    );
    let mut users = s.list_end_users(&t).await.unwrap();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    let got: Vec<(Option<&str>, Option<&str>)> = users
        .iter()
        .map(|u| (u.external_id.as_deref(), u.email.as_deref()))
        .collect();
    let mut want = vec![
        (ann.id.as_str(), (Some("v1"), Some("ann@new.io"))),
        (bob.id.as_str(), (Some("v2"), Some("ann@acme.io"))),
        (only_email.id.as_str(), (None, Some("cy@acme.io"))),
    ];
    want.sort();
    assert_eq!(got, want.into_iter().map(|(_, v)| v).collect::<Vec<_>>());
    // The email moved with its lookup: a new user may not take Ann's new email either.
    let e = s
        .upsert_end_user(&t, &row(Some("v3"), Some("ann@new.io"), None))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::EmailTaken(x) if x.holder_id == ann.id),
        "{e}"
    );
}

/// A directory write changes only the fields it gives: `None` keeps the stored field,
/// `Some("")` clears it; objects and end users alike.
pub async fn a_directory_write_keeps_what_it_leaves_out_and_clears_what_it_blanks(s: &dyn Store) {
    let t = tenant("c-fields");
    let o = |name: Option<&str>, company: Option<&str>| DirectoryObject {
        external_id: "a1".into(),
        name: name.map(Into::into),
        company_id: company.map(Into::into),
    };
    let stored = |name: Option<&str>, company: Option<&str>| {
        vec![DirectoryObject {
            external_id: "a1".into(),
            name: name.map(Into::into),
            company_id: company.map(Into::into),
        }]
    };
    s.upsert_objects(&t, Target::Asset, &[o(Some(""), None)])
        .await
        .unwrap();
    assert_eq!(
        s.list_objects(&t, Target::Asset).await.unwrap(),
        stored(None, None),
        "a new object's cleared field is absent"
    );
    s.upsert_objects(&t, Target::Asset, &[o(Some("Dash"), Some("acme"))])
        .await
        .unwrap();
    s.upsert_objects(&t, Target::Asset, &[o(None, None)])
        .await
        .unwrap();
    assert_eq!(
        s.list_objects(&t, Target::Asset).await.unwrap(),
        stored(Some("Dash"), Some("acme"))
    );
    s.upsert_objects(
        &t,
        Target::Asset,
        &[o(Some(""), None), o(None, Some("beta"))],
    )
    .await
    .unwrap();
    assert_eq!(
        s.list_objects(&t, Target::Asset).await.unwrap(),
        stored(None, Some("beta")),
        "two writes of one object in one call apply in order"
    );
    s.upsert_objects(&t, Target::Asset, &[o(Some("Dash 2"), Some(""))])
        .await
        .unwrap();
    assert_eq!(
        s.list_objects(&t, Target::Asset).await.unwrap(),
        stored(Some("Dash 2"), None)
    );
    let row = |name: Option<&str>, surname: Option<&str>| EndUserInput {
        company_id: "acme".into(),
        external_id: Some("v1".into()),
        email: None,
        name: name.map(Into::into),
        surname: surname.map(Into::into),
    };
    let new = s
        .upsert_end_user(&t, &row(Some("Ann"), Some("")))
        .await
        .unwrap();
    assert_eq!((new.name.as_deref(), new.surname), (Some("Ann"), None));
    s.upsert_end_user(&t, &row(None, Some("Smith")))
        .await
        .unwrap();
    let kept = s.upsert_end_user(&t, &row(None, None)).await.unwrap();
    assert_eq!(
        (kept.name.as_deref(), kept.surname.as_deref()),
        (Some("Ann"), Some("Smith"))
    );
    s.upsert_end_user(&t, &row(Some(""), None)).await.unwrap();
    let users = s.list_end_users(&t).await.unwrap();
    assert_eq!(
        users
            .iter()
            .map(|u| (u.name.as_deref(), u.surname.as_deref()))
            .collect::<Vec<_>>(),
        [(None, Some("Smith"))]
    );
}
