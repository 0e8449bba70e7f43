mod economy;
mod faults;
mod identity;
mod multi_app;
mod pipelines;
mod reliability;
mod runs;
mod time;
