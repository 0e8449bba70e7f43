//! The store contract, continued: the directory stamp. Run by `contract::run_all` against every adapter.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::Store;
use crate::domain::*;

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap_or_else(|_| unreachable!())
}

pub async fn run_all(s: &dyn Store) {
    the_directory_stamp_changes_with_every_directory_write(s).await;
}

/// `directory_stamp`: with an adapter that keeps one, every directory write that changes
/// something gives a new stamp; one that changes nothing may keep it. Without one, always
/// `None`.
pub async fn the_directory_stamp_changes_with_every_directory_write(s: &dyn Store) {
    let t = tenant("c-stamp");
    let Some(mut last) = s.directory_stamp(&t).await.unwrap() else {
        let other = tenant("c-stamp-none");
        assert_eq!(s.directory_stamp(&other).await.unwrap(), None);
        return;
    };
    let mut changed = |now: Option<u64>, what: &str| {
        let now = now.unwrap();
        assert_ne!(now, last, "{what} changed the directory: a new stamp");
        last = now;
    };
    let company = DirectoryObject {
        external_id: "acme".into(),
        name: Some("Acme".into()),
        company_id: None,
    };
    s.upsert_objects(&t, Target::Company, &[company])
        .await
        .unwrap();
    changed(s.directory_stamp(&t).await.unwrap(), "upsert_objects");
    let user = EndUserInput {
        company_id: "acme".into(),
        external_id: Some("v1".into()),
        email: None,
        name: None,
        surname: None,
    };
    let stored = s.upsert_end_user(&t, &user).await.unwrap();
    changed(s.directory_stamp(&t).await.unwrap(), "upsert_end_user");
    let other = EndUserInput {
        external_id: Some("v2".into()),
        ..user.clone()
    };
    assert!(s.create_end_user_if_absent(&t, &other).await.unwrap().1);
    changed(s.directory_stamp(&t).await.unwrap(), "a created end user");
    s.fill_end_user(&t, &stored.id, None, Some("Ann"), None)
        .await
        .unwrap();
    changed(s.directory_stamp(&t).await.unwrap(), "a filled name");
    // Another tenant's writes are not this one's.
    let before = s.directory_stamp(&t).await.unwrap();
    s.upsert_end_user(&tenant("c-stamp-other"), &user)
        .await
        .unwrap();
    assert_eq!(s.directory_stamp(&t).await.unwrap(), before);
}
