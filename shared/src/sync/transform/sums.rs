//! The sums a chunk's rows add to: per key, kept aside in short runs of one owner's rows, then
//! added to a hash map (values) or a vector merged by sorting (activity).

use rustc_hash::FxHashMap as HashMap;

/// Sums of one (object, app, day).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Sums {
    pub(super) events: f64,
    pub(super) minutes: f64,
}

impl Sums {
    fn add(&mut self, o: Sums) {
        self.events += o.events;
        self.minutes += o.minutes;
    }
}

/// Sums of consecutive rows of one owner (an object or an end user), kept aside until a row of
/// another owner comes: rows come grouped by visitor, so most rows add to this short list and
/// only each (owner, key) of a run updates the hash map. Any order of rows gives the same
/// sums (`transform::tests::any_row_order_gives_the_plain_sums`).
#[derive(Debug)]
pub(super) struct Run<K> {
    owner: Option<u32>,
    sums: Vec<(K, Sums)>,
}

impl<K> Default for Run<K> {
    fn default() -> Self {
        Self {
            owner: None,
            sums: Vec::new(),
        }
    }
}

/// Longest run kept aside (a run is at most a window's days × apps in practice).
const RUN_LIMIT: usize = 64;

/// Where a run's sums go: a hash map (values), or a vector merged by sorting (activity).
pub(super) trait SumsOf<M> {
    fn add_sums(&mut self, key: M, s: Sums);
}

impl<M: std::hash::Hash + Eq> SumsOf<M> for HashMap<M, Sums> {
    fn add_sums(&mut self, key: M, s: Sums) {
        self.entry(key).or_default().add(s);
    }
}

/// Sums by key as a vector: appended to, then sorted and merged when it has doubled since the
/// last merge (and before it is read), so it holds at most about twice its distinct keys. A
/// chunk's activity (hundreds of thousands of end-user days) costs 24 bytes a record this way,
/// grown in place, where a hash map cost about 40 and twice that while it grew (figure 2).
#[derive(Debug)]
pub(super) struct MergedSums<M> {
    pub(super) entries: Vec<(M, Sums)>,
    merge_at: usize,
}

/// Entries before the first merge.
pub(super) const FIRST_MERGE: usize = 1 << 16;

impl<M> Default for MergedSums<M> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            merge_at: FIRST_MERGE,
        }
    }
}

impl<M: Ord + Copy> MergedSums<M> {
    /// Sorts by key and sums the entries of each key into one.
    pub(super) fn merge(&mut self) {
        self.entries.sort_unstable_by_key(|(k, _)| *k);
        self.entries.dedup_by(|(k, s), (first_k, first_s)| {
            let same = *k == *first_k;
            if same {
                first_s.add(*s);
            }
            same
        });
        self.merge_at = (2 * self.entries.len()).max(FIRST_MERGE);
    }

    /// The merged entries, sorted by key.
    pub(super) fn sorted(&self) -> &[(M, Sums)] {
        &self.entries
    }

    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.merge_at = FIRST_MERGE;
    }
}

impl<M: Ord + Copy> SumsOf<M> for MergedSums<M> {
    fn add_sums(&mut self, key: M, s: Sums) {
        if self.entries.len() >= self.merge_at {
            self.merge();
        }
        self.entries.push((key, s));
    }
}

impl<K: Copy + PartialEq> Run<K> {
    pub(super) fn add<M>(
        &mut self,
        owner: u32,
        key: K,
        s: Sums,
        map: &mut impl SumsOf<M>,
        map_key: fn(u32, K) -> M,
    ) {
        if self.owner != Some(owner) || self.sums.len() >= RUN_LIMIT {
            self.flush(map, map_key);
            self.owner = Some(owner);
        }
        match self.sums.iter_mut().find(|(k, _)| *k == key) {
            Some((_, t)) => t.add(s),
            None => self.sums.push((key, s)),
        }
    }

    pub(super) fn flush<M>(&mut self, map: &mut impl SumsOf<M>, map_key: fn(u32, K) -> M) {
        if let Some(owner) = self.owner.take() {
            for (k, s) in self.sums.drain(..) {
                map.add_sums(map_key(owner, k), s);
            }
        }
    }

    pub(super) fn clear(&mut self) {
        self.owner = None;
        self.sums.clear();
    }
}
