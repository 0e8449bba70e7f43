//! The rows of a shared call (one Pendo call for several Feature or Page mappings, see
//! `pendo::pipelines::event_request`), each routed to the accumulator of its page or feature.

use super::ChunkAccumulator;
use crate::pendo::event_row::EventRow;
use crate::pendo::{RowError, RowSink};
use rustc_hash::FxHashMap as HashMap;

/// Routes each row by its `item` column to the accumulator of that id. Several mappings may
/// read the same id (two metrics of one feature): each of them gets the row.
pub struct SharedSink<'d> {
    routes: HashMap<String, Vec<usize>>,
    accumulators: Vec<ChunkAccumulator<'d>>,
    /// Rows whose id is none of the call's (Pendo's filter keeps none such; counted, dropped).
    pub stray: u64,
}

impl<'d> SharedSink<'d> {
    /// One accumulator per mapping, with the id its rows carry.
    pub fn new(members: Vec<(String, ChunkAccumulator<'d>)>) -> Self {
        let mut routes: HashMap<String, Vec<usize>> = HashMap::default();
        let mut accumulators = Vec::with_capacity(members.len());
        for (i, (id, acc)) in members.into_iter().enumerate() {
            routes.entry(id).or_default().push(i);
            accumulators.push(acc);
        }
        Self {
            routes,
            accumulators,
            stray: 0,
        }
    }

    /// The accumulators, in the order given to [`SharedSink::new`].
    pub fn into_accumulators(self) -> Vec<ChunkAccumulator<'d>> {
        self.accumulators
    }

    fn route(&mut self, row: EventRow<'_>) -> Result<(), RowError> {
        let targets = row
            .item
            .as_ref()
            .and_then(|id| self.routes.get(id.0.as_ref()));
        match targets.map(Vec::as_slice) {
            Some([one]) => self.accumulators[*one].add_parsed(row),
            Some(many) => {
                for &i in many {
                    self.accumulators[i].add_parsed(row.clone())?;
                }
                Ok(())
            }
            None => {
                self.stray += 1;
                Ok(())
            }
        }
    }
}

impl RowSink for SharedSink<'_> {
    fn row(&mut self, raw: &[u8]) -> Result<(), RowError> {
        let row = EventRow::parse(raw)?;
        self.route(row)
    }
    fn row_prefix(&mut self, rest: &[u8]) -> Option<Result<usize, RowError>> {
        let (row, len) = EventRow::parse_prefix(rest)?;
        Some(self.route(row).map(|()| len))
    }
    fn reset(&mut self) {
        self.stray = 0;
        for a in &mut self.accumulators {
            a.reset();
        }
    }
}
