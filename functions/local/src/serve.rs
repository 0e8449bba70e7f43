//! `pendo-sync serve`: the configurator API on a local port, the same router the Lambda serves,
//! plus a worker pool that drains the in-process queue whenever work arrives.

use crate::runtime::Local;
use anyhow::Context;
use pendo_sync::api::auth::{Caller, TokenTable};
use pendo_sync::app::Role;
use pendo_sync::domain::TenantId;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Tokens from `--tokens FILE`, else `PENDO_SYNC_TOKENS`, else one fresh admin token for
/// `tenant` (returned so the sign-in link can carry it; kept only hashed in the table).
pub fn tokens(file: Option<&Path>, tenant: &str) -> anyhow::Result<(TokenTable, Option<String>)> {
    let spec = match file {
        Some(f) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        None => std::env::var("PENDO_SYNC_TOKENS").unwrap_or_default(),
    };
    let table = TokenTable::parse(&spec).map_err(anyhow::Error::msg)?;
    if !table.is_empty() {
        return Ok((table, None));
    }
    fresh_admin(tenant)
}

/// A table with one fresh admin token for `tenant`, and the token.
pub fn fresh_admin(tenant: &str) -> anyhow::Result<(TokenTable, Option<String>)> {
    let mut table = TokenTable::default();
    let token = format!("ps-{}", uuid::Uuid::new_v4().simple());
    table.insert(
        &token,
        Caller {
            tenant: TenantId::parse(tenant)?,
            role: Role::Admin,
        },
    );
    Ok((table, Some(token)))
}

/// The page's address, with the token in the fragment (never sent to the server or logged by
/// it; the page moves it to session storage and clears the address bar).
pub fn signin_link(addr: &str, token: &str) -> String {
    format!("http://{addr}/#token={token}")
}

/// Serves until Ctrl-C. With `signin` (a token made for this run), prints the sign-in link.
pub async fn run(
    rt: Local,
    listen: &str,
    table: TokenTable,
    signin: Option<String>,
    workers: usize,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?.to_string();
    println!("listening on http://{addr} (API under /v1, the configurator page at /)");
    match &signin {
        Some(token) => println!(
            "configurator page, signed in as admin (this link holds a token made for this run; keep it private):\n  {}",
            signin_link(&addr, token)
        ),
        None => println!("configurator page: http://{addr}/ (sign in with one of your tokens)"),
    }
    println!("serving until interrupted (Ctrl-C)");
    let router = pendo_sync::api::router(rt.app.clone(), Arc::new(table));
    let (app, queue) = (rt.app.clone(), rt.queue.clone());
    tokio::spawn(async move {
        loop {
            if !queue.is_empty() {
                let stats = Arc::new(pendo_sync::worker::DrainStats::default());
                pendo_sync::worker::drain(
                    app.clone(),
                    queue.clone(),
                    crate::runtime::MAX_RECEIVES,
                    workers,
                    stats,
                )
                .await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
