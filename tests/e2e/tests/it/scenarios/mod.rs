mod faults;
mod identity;
mod multi_app;
mod pipelines;
mod runs;
mod time;
