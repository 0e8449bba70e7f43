//! One integration-test binary: whole flows of the core against the Pendo simulator, with
//! exact expectations computed independently of the engine (direct pipelines over the
//! simulator's data, converted with chrono-tz).

mod api;
mod aws_bill;
mod aws_deadline;
mod aws_faults;
mod aws_gapless;
mod aws_handlers;
mod aws_iam;
mod aws_imports;
mod aws_local;
mod aws_purge;
mod aws_schedule;
mod bill;
mod binaries;
mod configurator;
mod fault_proxy;
mod handlers;
mod helpers;
mod iam_gate;
mod lambda_rt;
mod scenarios;
