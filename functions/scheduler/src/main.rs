//! `scheduler`: runs on the daily EventBridge schedule and plans one run per active tenant
//! (`pendo_sync::lambda::handle_schedule`). Wiring only.

use lambda_runtime::{service_fn, Error};
use pendo_sync::{aws_env, lambda};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda::init_tracing();
    // Fails the container's init with the variable's name rather than panicking.
    let (app, _settings) = aws_env::app_from_env().await?;
    let app = &app;
    lambda_runtime::run(service_fn(move |event| lambda::handle_schedule(app, event))).await
}
