//! `configurator`: the configurator API behind API Gateway's HTTP API (payload v2), the same
//! router as `pendo-sync serve`, with the tenant and role taken from the JWT authorizer's claims
//! (`JWT_TENANT_CLAIM`, `JWT_ROLE_CLAIM`; see `pendo_sync::api::claims`). Wiring only.

use lambda_http::Error;
use pendo_sync::api::claims::ClaimNames;
use pendo_sync::{aws_env, lambda};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda::init_tracing();
    // Fails the container's init with the variable's name rather than panicking.
    let (app, _settings) = aws_env::app_from_env().await?;
    let router = lambda::configurator_router(app, ClaimNames::from_env());
    lambda_http::run(router).await
}
