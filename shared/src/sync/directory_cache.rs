//! Directory snapshots shared by a process's chunks. A chunk resolves identities against the
//! directory as the store holds it when the chunk starts (`engine::load_directory`). Reading
//! and indexing a directory of 50,000 end users took a fifth of a large re-sync's CPU when every
//! chunk did it; a snapshot is now reused while the store's directory stamp
//! (`DirectoryStore::directory_stamp`) is the one it was read under, which makes it the same as a fresh
//! read. An adapter without a stamp is read every time, as before.

use super::identity::Directory;
use crate::domain::{Target, TenantId};
use std::sync::{Arc, Mutex};

/// Snapshots kept at most (a process serves few tenants at once; each snapshot is the size of
/// a tenant's directory).
const MAX_ENTRIES: usize = 4;

/// Which lists a snapshot holds: companies always; assets or projects when they are the
/// target; end users when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub objects: Option<Target>,
    pub users: bool,
}

impl Shape {
    pub fn of(target: Target, users: bool) -> Self {
        Self {
            objects: matches!(target, Target::Asset | Target::Project).then_some(target),
            users,
        }
    }
}

struct Entry {
    tenant: TenantId,
    shape: Shape,
    stamp: u64,
    dir: Arc<Directory>,
}

/// The snapshots, newest last.
#[derive(Default)]
pub struct DirectoryCache {
    entries: Mutex<Vec<Entry>>,
    /// Held while a snapshot is read: chunks that start together read the directory once (the
    /// others wait and find it kept), instead of each holding a copy at once.
    reading: tokio::sync::Mutex<()>,
}

impl DirectoryCache {
    /// Waits until no other chunk of this process is reading a directory.
    pub async fn reading(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.reading.lock().await
    }

    /// The snapshot read under `stamp`, if kept.
    pub fn get(&self, t: &TenantId, shape: Shape, stamp: u64) -> Option<Arc<Directory>> {
        let entries = self.entries.lock().ok()?;
        entries
            .iter()
            .find(|e| e.tenant == *t && e.shape == shape && e.stamp == stamp)
            .map(|e| e.dir.clone())
    }

    /// Keeps a snapshot read under `stamp` (replacing the tenant's older one of that shape).
    pub fn put(&self, t: &TenantId, shape: Shape, stamp: u64, dir: Arc<Directory>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        entries.retain(|e| !(e.tenant == *t && e.shape == shape));
        if entries.len() >= MAX_ENTRIES {
            entries.remove(0);
        }
        entries.push(Entry {
            tenant: t.clone(),
            shape,
            stamp,
            dir,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_found_only_under_its_tenant_shape_and_stamp() {
        let cache = DirectoryCache::default();
        let (a, b) = (TenantId::parse("a").unwrap(), TenantId::parse("b").unwrap());
        let companies = Shape::of(Target::Company, true);
        cache.put(&a, companies, 3, Arc::new(Directory::default()));
        assert!(cache.get(&a, companies, 3).is_some());
        assert!(cache.get(&a, companies, 4).is_none());
        assert!(cache.get(&b, companies, 3).is_none());
        assert!(cache
            .get(&a, Shape::of(Target::Company, false), 3)
            .is_none());
        assert!(cache.get(&a, Shape::of(Target::Asset, true), 3).is_none());
        // A newer stamp replaces the tenant's snapshot of that shape.
        cache.put(&a, companies, 4, Arc::new(Directory::default()));
        assert!(cache.get(&a, companies, 3).is_none());
        assert!(cache.get(&a, companies, 4).is_some());
        // At most MAX_ENTRIES are kept: the oldest goes.
        for i in 0..MAX_ENTRIES {
            let t = TenantId::parse(&format!("t{i}")).unwrap();
            cache.put(&t, companies, 1, Arc::new(Directory::default()));
        }
        assert!(cache.get(&a, companies, 4).is_none());
        assert!(cache
            .get(&TenantId::parse("t0").unwrap(), companies, 1)
            .is_some());
    }
}
