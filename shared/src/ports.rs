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

#[cfg(any(test, feature = "testing"))]
impl Ports {
    /// The ports of a test, part by part: `build` fails loudly naming a part not given.
    pub fn builder() -> PortsBuilder {
        PortsBuilder::default()
    }
}

/// Builds the ports of a test (see [`Ports::builder`]). A test keeps its own handles of the parts
/// it looks into afterwards (the store it reads, the queue it drains, the clock it moves).
#[cfg(any(test, feature = "testing"))]
#[derive(Default)]
pub struct PortsBuilder {
    store: Option<Arc<dyn Store>>,
    queue: Option<Arc<dyn Queue>>,
    pendo: Option<Arc<dyn PendoApi>>,
    clock: Option<Arc<dyn Clock>>,
}

// Test setup fails loudly: a missing part or a client that cannot be built is a bug of the test.
#[cfg(any(test, feature = "testing"))]
#[allow(clippy::panic, clippy::expect_used)]
impl PortsBuilder {
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    pub fn queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.queue = Some(queue);
        self
    }

    pub fn pendo(mut self, pendo: Arc<dyn PendoApi>) -> Self {
        self.pendo = Some(pendo);
        self
    }

    /// Pendo at one base URL for every region (the simulator), retrying at once.
    pub fn pendo_at(self, base_url: &str) -> Self {
        self.pendo_with(base_url, |_| {})
    }

    /// [`PortsBuilder::pendo_at`], with the client's configuration changed by `edit` (another
    /// host for a region, fewer attempts, a shorter timeout).
    ///
    /// # Panics
    /// When the HTTP client cannot be built (test setup).
    pub fn pendo_with(
        self,
        base_url: &str,
        edit: impl FnOnce(&mut crate::pendo::http::HttpPendoConfig),
    ) -> Self {
        self.pendo(Arc::new(simulator_pendo(base_url, edit)))
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// # Panics
    /// When a part was not given (test setup).
    pub fn build(self) -> Ports {
        let missing = |what: &str| -> ! { panic!("Ports::builder(): no {what} given") };
        Ports {
            store: self.store.unwrap_or_else(|| missing("store")),
            queue: self.queue.unwrap_or_else(|| missing("queue")),
            pendo: self.pendo.unwrap_or_else(|| missing("pendo")),
            clock: self.clock.unwrap_or_else(|| missing("clock")),
        }
    }
}

/// A Pendo client of a test: one base URL for every region (the simulator), retrying at once,
/// its configuration changed by `edit`.
///
/// # Panics
/// When the HTTP client cannot be built (test setup).
#[cfg(any(test, feature = "testing"))]
#[allow(clippy::expect_used)]
pub fn simulator_pendo(
    base_url: &str,
    edit: impl FnOnce(&mut crate::pendo::http::HttpPendoConfig),
) -> crate::pendo::http::HttpPendo {
    use crate::pendo::http::{HttpPendo, HttpPendoConfig};
    use crate::pendo::retry::RetryPolicy;
    use crate::pendo::PendoEndpoints;
    let mut config = HttpPendoConfig {
        endpoints: PendoEndpoints {
            all: Some(base_url.to_string()),
            ..Default::default()
        },
        retry: RetryPolicy::fast(),
        ..HttpPendoConfig::default()
    };
    edit(&mut config);
    HttpPendo::new(config).expect("a Pendo client for the test")
}
