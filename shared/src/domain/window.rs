//! A closed range of local days: what a chunk fetches and replaces.

use chrono::{Duration, NaiveDate};

/// A closed range of local days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Window {
    pub fn days(&self) -> u32 {
        crate::time::days_inclusive(self.from, self.to)
    }
    /// Splits in two halves (the first gets the extra day); `None` for a single day.
    pub fn halves(&self) -> Option<(Window, Window)> {
        let n = self.days();
        if n < 2 {
            return None;
        }
        let mid = self.from + Duration::days(i64::from(n.div_ceil(2)) - 1);
        Some((
            Window {
                from: self.from,
                to: mid,
            },
            Window {
                from: mid + Duration::days(1),
                to: self.to,
            },
        ))
    }
}
