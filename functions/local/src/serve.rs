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

/// Tokens from `--tokens FILE`, else `PENDO_SYNC_TOKENS`, else one fresh admin token for tenant
/// `default` (printed once, kept only hashed).
fn tokens(file: Option<&Path>) -> anyhow::Result<TokenTable> {
    let spec = match file {
        Some(f) => {
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?
        }
        None => std::env::var("PENDO_SYNC_TOKENS").unwrap_or_default(),
    };
    let mut table = TokenTable::parse(&spec).map_err(anyhow::Error::msg)?;
    if table.is_empty() {
        let token = format!("ps-{}", uuid::Uuid::new_v4().simple());
        table.insert(
            &token,
            Caller {
                tenant: TenantId::parse("default")?,
                role: Role::Admin,
            },
        );
        println!("admin token for tenant 'default' (shown once): {token}");
    }
    Ok(table)
}

pub async fn run(
    rt: Local,
    listen: &str,
    token_file: Option<&Path>,
    workers: usize,
) -> anyhow::Result<()> {
    let table = tokens(token_file)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
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
