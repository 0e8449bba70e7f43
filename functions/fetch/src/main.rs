//! `fetch`: consumes the fetch queue, one chunk per record, with partial batch failures
//! (`pendo_sync::lambda::handle_fetch_batch`). Wiring only.

use lambda_runtime::{service_fn, Error};
use pendo_sync::{aws_env, lambda};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda::init_tracing();
    // Fails the container's init with the variable's name rather than panicking.
    let (app, settings) = aws_env::app_from_env().await?;
    let (app, batch) = (&app, settings.batch);
    lambda_runtime::run(service_fn(move |event| {
        lambda::handle_fetch_batch(app, batch, event)
    }))
    .await
}
