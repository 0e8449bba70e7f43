mod faults;
mod identity;
mod multi_app;
mod runs;
mod time;
