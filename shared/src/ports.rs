//! The ports the core runs on, as one bundle: the use cases (`app`) and the workers (`sync`)
//! take it. It sits above the ports and below both, so neither reaches up to the other.

use crate::clock::Clock;
use crate::pendo::PendoApi;
use crate::queue::Queue;
use crate::store::Store;
use std::sync::Arc;

/// The ports the core runs on, built once per process or container.
#[derive(Clone)]
pub struct Ports {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub pendo: Arc<dyn PendoApi>,
    pub clock: Arc<dyn Clock>,
}
