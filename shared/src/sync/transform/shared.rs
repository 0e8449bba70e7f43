//! The rows of a shared call (one Pendo call for several Feature or Page mappings, see
//! `pendo::pipelines::event_request`), each routed to the accumulator of its page or feature.

use super::ChunkAccumulator;
use crate::pendo::event_row::EventRow;
use crate::pendo::{RowError, RowSink};
use rustc_hash::FxHashMap as HashMap;

/// Rows a shared call may hand its accumulators (a row read by two mappings counts twice)
/// before it is given up as too large for this process: about 24 bytes each are held until the
/// call ends (an end user's day of activity), so 500,000 keep a call's accumulators near
/// 12 MiB. The caller then splits the call as on Pendo's "Query exceeded memory limit" (the
/// window, then the mappings). A call of one mapping is never cut: its memory is bounded by
/// its own rows, as before calls were shared.
pub const MAX_ROUTED_ROWS: u64 = 500_000;

/// Routes each row by its `item` column to the accumulator of that id. Several mappings may
/// read the same id (two metrics of one feature): each of them gets the row.
pub struct SharedSink<'d> {
    routes: HashMap<String, Vec<usize>>,
    accumulators: Vec<ChunkAccumulator<'d>>,
    /// Rows whose id is none of the call's (Pendo's filter keeps none such; counted, dropped).
    pub stray: u64,
    routed: u64,
    max_routed: u64,
    /// Set when the call was given up past `max_routed` rows.
    pub over_budget: bool,
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
            routed: 0,
            max_routed: MAX_ROUTED_ROWS,
            over_budget: false,
        }
    }

    /// The same with another bound on the rows routed (tests).
    pub fn with_max_routed(mut self, max: u64) -> Self {
        self.max_routed = max;
        self
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
        self.routed += targets.map_or(0, |t| t.len() as u64);
        if self.routed > self.max_routed {
            self.over_budget = true;
            return Err(RowError(format!(
                "a shared call's rows passed {} for its mappings; it is split",
                self.max_routed
            )));
        }
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
        self.routed = 0;
        self.over_budget = false;
        for a in &mut self.accumulators {
            a.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MappingId, Target};
    use crate::sync::identity::Directory;
    use crate::sync::transform::TransformSpec;

    fn spec(id: &str) -> TransformSpec {
        TransformSpec {
            mapping_id: MappingId::parse(id).unwrap(),
            metric: id.into(),
            ..super::super::tests::spec(Target::Company)
        }
    }

    fn row(item: &str) -> Vec<u8> {
        format!(
            r#"{{"day":1793534400000,"appId":1,"numEvents":2,"company":"acme","item":"{item}"}}"#
        )
        .into_bytes()
    }

    /// Rows go to every mapping of their id, none to another's; past the bound on rows routed
    /// the call is given up (and the sink says so); a retry starts from nothing.
    #[test]
    fn rows_are_routed_by_id_within_a_bound() {
        let dir = Directory::new(Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let members = vec![
            ("f1".to_string(), ChunkAccumulator::new(spec("a"), &dir)),
            ("f1".to_string(), ChunkAccumulator::new(spec("b"), &dir)),
            ("f2".to_string(), ChunkAccumulator::new(spec("c"), &dir)),
        ];
        let mut sink = SharedSink::new(members).with_max_routed(5);
        sink.row(&row("f1")).unwrap();
        sink.row(&row("f2")).unwrap();
        sink.row(&row("other")).unwrap();
        assert_eq!((sink.stray, sink.over_budget), (1, false));
        // Two more for f1 would make 5 + 1 routed rows.
        sink.row(&row("f2")).unwrap();
        let e = sink.row(&row("f1")).unwrap_err();
        assert!(e.0.contains("split"), "{e}");
        assert!(sink.over_budget);
        sink.reset();
        assert!(!sink.over_budget);
        sink.row(&row("f1")).unwrap();
        let read: Vec<u64> = sink
            .into_accumulators()
            .iter()
            .map(|a| a.rows_read)
            .collect();
        assert_eq!(read, vec![1, 1, 0]);
    }
}
