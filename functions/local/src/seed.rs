//! The directory of a simulated subscription, as the demo and `bench setup` load it: accounts as
//! companies and identified visitors as end users, through the directory use case (the rows are
//! validated as an upload's are).

use pendo_sim::data::Subscription;
use pendo_sync::domain::{DirectoryObject, EndUserInput, Target, TenantId};
use pendo_sync::App;
use serde::Serialize;

/// Which part of the subscription goes into the directory.
pub struct Pick {
    /// Accounts left out at the end of the list (so that some rows find no company).
    pub accounts_left_out: usize,
    /// Every n-th identified visitor (1: all).
    pub every_nth_visitor: usize,
    /// At most this many end users.
    pub max_end_users: usize,
    /// End users with the visitor's email, first and last name.
    pub with_names: bool,
}

/// What was loaded.
pub struct Seeded {
    pub companies: Vec<DirectoryObject>,
    pub end_users: usize,
}

pub async fn directory(
    app: &App,
    t: &TenantId,
    sub: &Subscription,
    pick: &Pick,
) -> anyhow::Result<Seeded> {
    let kept = sub.accounts.len().saturating_sub(pick.accounts_left_out);
    let companies: Vec<DirectoryObject> = sub.accounts[..kept]
        .iter()
        .map(|a| DirectoryObject {
            external_id: a.id.clone(),
            name: Some(a.name.clone()),
            company_id: None,
        })
        .collect();
    upsert(app, t, Target::Company, &companies).await?;
    let users: Vec<EndUserInput> = sub
        .visitors
        .iter()
        .filter(|v| !v.anonymous)
        .step_by(pick.every_nth_visitor.max(1))
        .filter_map(|v| {
            // An end user's company must be in the directory: the left-out companies' users
            // stay out too (their rows show as unmatched, by company).
            let acc = v
                .account
                .filter(|i| *i < kept)
                .and_then(|i| sub.accounts.get(i))?;
            let names = |s: &Option<String>| s.clone().filter(|_| pick.with_names);
            Some(EndUserInput {
                company_id: acc.id.clone(),
                external_id: Some(v.id.clone()),
                email: names(&v.email),
                name: names(&v.first_name),
                surname: names(&v.last_name),
            })
        })
        .take(pick.max_end_users)
        .collect();
    upsert(app, t, Target::EndUser, &users).await?;
    Ok(Seeded {
        companies,
        end_users: users.len(),
    })
}

/// Upserts `rows` in batches; any refused row is an error.
async fn upsert<T: Serialize>(
    app: &App,
    t: &TenantId,
    kind: Target,
    rows: &[T],
) -> anyhow::Result<()> {
    for batch in rows.chunks(pendo_sync::directory::MAX_BATCH) {
        let values = batch
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<Vec<_>, _>>()?;
        let done = app.upsert_directory(t, kind, &values).await?;
        if let Some(e) = done.errors.first() {
            anyhow::bail!(
                "the simulator's {} row {} was refused: {}",
                kind.as_str(),
                e.index,
                e.message
            );
        }
    }
    Ok(())
}
