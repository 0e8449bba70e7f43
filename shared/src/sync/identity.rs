//! Identity resolution against the directory (DESIGN §2), as pure lookups on a snapshot loaded
//! once per chunk: end users matched on email first, then on external id, always within the
//! company; created only when all four conditions hold; never guessed.

use super::user_list::{UserList, UserRef};
use crate::domain::{DirectoryObject, EndUser, EndUserInput};
use rustc_hash::FxHashMap as HashMap;

/// A snapshot of a tenant's directory, indexed for the hot path.
#[derive(Debug, Default)]
pub struct Directory {
    /// Unique within the process: two snapshots never share it (see [`Directory::snapshot`]).
    snapshot: u64,
    ids: [Vec<String>; 3],
    companies: HashMap<String, u32>,
    assets: HashMap<String, u32>,
    projects: HashMap<String, u32>,
    users: UserList,
    /// End users by a hash of (company, external id) and of (company, lower-cased email): a
    /// compact table whose hits are checked against the user itself (a collision falls through
    /// to `collided`).
    by_ext: HashMap<u64, u32>,
    by_email: HashMap<u64, u32>,
    /// Keys whose hash another key of the same table already had.
    collided: HashMap<(bool, String, String), u32>,
    /// Lower-cased emails that differ from the stored one.
    lower_emails: HashMap<u32, String>,
}

fn user_hash(company: &str, id: &str) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = rustc_hash::FxBuildHasher.build_hasher();
    company.hash(&mut h);
    id.hash(&mut h);
    h.finish()
}

static SNAPSHOTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// What the row's end user resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserMatch {
    Existing(u32),
    /// Not in the directory, and all creation conditions hold.
    Create,
    Unresolvable,
}

/// The rules of a mapping for end users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityRules {
    /// The email field is mapped (email matching is tried first).
    pub email_mapped: bool,
    /// The global auto-detect setting AND the mapping's "Auto-create users?".
    pub may_create: bool,
}

impl Directory {
    pub fn new(
        companies: Vec<DirectoryObject>,
        assets: Vec<DirectoryObject>,
        projects: Vec<DirectoryObject>,
        users: Vec<EndUser>,
    ) -> Self {
        let ids = |v: &[DirectoryObject]| -> Vec<String> {
            v.iter().map(|o| o.external_id.clone()).collect()
        };
        let index = |v: Vec<DirectoryObject>| -> HashMap<String, u32> {
            v.into_iter()
                .enumerate()
                .map(|(i, o)| (o.external_id, i as u32))
                .collect()
        };
        let all_ids = [ids(&companies), ids(&assets), ids(&projects)];
        let mut dir = Self {
            snapshot: SNAPSHOTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ids: all_ids,
            companies: index(companies),
            assets: index(assets),
            projects: index(projects),
            users: UserList::new(users),
            by_ext: HashMap::default(),
            by_email: HashMap::default(),
            collided: HashMap::default(),
            lower_emails: HashMap::default(),
        };
        dir.by_ext.reserve(dir.users.len());
        dir.by_email.reserve(dir.users.len());
        for i in 0..dir.users.len() as u32 {
            let Some(u) = dir.users.user(i) else { continue };
            let (company, external_id) =
                (u.company_id.to_string(), u.external_id.map(str::to_string));
            if let Some(e) = u.email {
                let lower = e.to_lowercase();
                if lower != e {
                    dir.lower_emails.insert(i, lower.clone());
                }
                dir.index(true, &company, &lower, i);
            }
            if let Some(x) = external_id {
                dir.index(false, &company, &x, i);
            }
        }
        dir
    }

    /// Indexes user `i` under (company, id); of two users with one key (emails that differ in
    /// case only), the one of the greater id is found, in whatever order the users came.
    fn index(&mut self, email: bool, company: &str, id: &str, i: u32) {
        let h = user_hash(company, id);
        let table = if email { &self.by_email } else { &self.by_ext };
        let same_key = |j: u32| self.key_of(email, j) == Some((company, id));
        let held = table.get(&h).copied();
        match held {
            Some(j) if !same_key(j) => {
                let key = (email, company.to_string(), id.to_string());
                if self.collided.get(&key).is_none_or(|&k| self.outranks(i, k)) {
                    self.collided.insert(key, i);
                }
            }
            _ if held.is_none_or(|j| self.outranks(i, j)) => {
                let table = if email {
                    &mut self.by_email
                } else {
                    &mut self.by_ext
                };
                table.insert(h, i);
            }
            _ => {}
        }
    }

    /// User `i` takes a key user `j` holds: its id is the greater.
    fn outranks(&self, i: u32, j: u32) -> bool {
        let id = |k: u32| self.users.user(k).map(|u| u.id);
        id(i) > id(j)
    }

    /// (company, external id or lower-cased email) of user `i`.
    fn key_of(&self, email: bool, i: u32) -> Option<(&str, &str)> {
        let u = self.users.user(i)?;
        let id = if email {
            self.lower_emails.get(&i).map(String::as_str).or(u.email)
        } else {
            u.external_id
        };
        Some((u.company_id, id?))
    }

    /// The user of `company` whose external id (or, with `email`, lower-cased email) is `id`.
    fn find(&self, email: bool, company: &str, id: &str) -> Option<u32> {
        let table = if email { &self.by_email } else { &self.by_ext };
        let i = *table.get(&user_hash(company, id))?;
        if self.key_of(email, i) == Some((company, id)) {
            return Some(i);
        }
        self.collided
            .get(&(email, company.to_string(), id.to_string()))
            .copied()
    }

    /// This snapshot's number, unique within the process: indexes of end users (and objects)
    /// of two snapshots with one number mean the same users.
    pub fn snapshot(&self) -> u64 {
        self.snapshot
    }

    /// The external id of a company, asset or project by its index.
    pub fn object_id(&self, kind: crate::domain::Target, idx: u32) -> Option<&str> {
        let list = match kind {
            crate::domain::Target::Company => &self.ids[0],
            crate::domain::Target::Asset => &self.ids[1],
            crate::domain::Target::Project => &self.ids[2],
            crate::domain::Target::EndUser => return self.user(idx).map(|u| u.id),
        };
        list.get(idx as usize).map(String::as_str)
    }

    pub fn company(&self, id: &str) -> Option<u32> {
        self.companies.get(id).copied()
    }
    pub fn asset(&self, id: &str) -> Option<u32> {
        self.assets.get(id).copied()
    }
    pub fn project(&self, id: &str) -> Option<u32> {
        self.projects.get(id).copied()
    }
    pub fn user(&self, idx: u32) -> Option<UserRef<'_>> {
        self.users.user(idx)
    }
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    /// Resolves a row's end user. `email` must already be lower-cased.
    pub fn match_user(
        &self,
        rules: IdentityRules,
        company: Option<&str>,
        external_id: Option<&str>,
        email: Option<&str>,
    ) -> UserMatch {
        let Some(company) = company.filter(|c| !c.is_empty()) else {
            return UserMatch::Unresolvable;
        };
        let email = email.filter(|e| rules.email_mapped && !e.is_empty());
        let external_id = external_id.filter(|x| !x.is_empty());
        if let Some(i) = email.and_then(|e| self.find(true, company, e)) {
            return UserMatch::Existing(i);
        }
        if let Some(i) = external_id.and_then(|x| self.find(false, company, x)) {
            return UserMatch::Existing(i);
        }
        if rules.may_create
            && self.companies.contains_key(company)
            && (external_id.is_some() || email.is_some())
        {
            UserMatch::Create
        } else {
            UserMatch::Unresolvable
        }
    }
}

/// End users a chunk will create, each once per (company, email or external id): their slots
/// follow the directory's users (`user_count() + index`), so values can be keyed by slot before
/// the users exist.
#[derive(Debug, Default)]
pub struct NewUsers {
    list: Vec<EndUserInput>,
    index: HashMap<(String, String), u32>,
}

impl NewUsers {
    /// The slot of the user to create for this row (a new one or the one already pending), or
    /// `None` when the row has neither an external id nor an email to create it by. With the
    /// email mapped, the email identifies the user; otherwise the external id does.
    pub fn slot(
        &mut self,
        dir: &Directory,
        rules: IdentityRules,
        company: &str,
        external_id: Option<&str>,
        email: Option<&str>,
        names: impl FnOnce() -> (Option<String>, Option<String>),
    ) -> Option<u32> {
        let ext = external_id.filter(|x| !x.is_empty());
        let email = email.filter(|e| !e.is_empty());
        let key = match (email, ext) {
            (Some(e), _) if rules.email_mapped => format!("e:{e}"),
            (_, Some(x)) => format!("x:{x}"),
            (Some(e), None) => format!("e:{e}"),
            (None, None) => return None,
        };
        let base = dir.user_count() as u32;
        let k = (company.to_string(), key);
        if let Some(p) = self.index.get(&k) {
            return Some(base + p);
        }
        let (name, surname) = names();
        self.list.push(EndUserInput {
            company_id: company.to_string(),
            external_id: ext.map(str::to_string),
            email: email.filter(|_| rules.email_mapped).map(str::to_string),
            name,
            surname,
        });
        let p = (self.list.len() - 1) as u32;
        self.index.insert(k, p);
        Some(base + p)
    }

    /// The users to create, in slot order.
    pub fn list(&self) -> &[EndUserInput] {
        &self.list
    }

    pub fn clear(&mut self) {
        self.list.clear();
        self.index.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(id: &str) -> DirectoryObject {
        DirectoryObject {
            external_id: id.into(),
            name: None,
            company_id: None,
        }
    }

    fn user(id: &str, company: &str, ext: Option<&str>, email: Option<&str>) -> EndUser {
        EndUser {
            id: id.into(),
            company_id: company.into(),
            external_id: ext.map(Into::into),
            email: email.map(Into::into),
            name: None,
            surname: None,
        }
    }

    fn dir() -> Directory {
        Directory::new(
            vec![obj("acme"), obj("globex")],
            vec![],
            vec![],
            vec![
                user("u0", "acme", Some("v1"), Some("ann@acme.io")),
                user("u1", "acme", Some("v2"), None),
                user("u2", "globex", Some("v1"), None),
            ],
        )
    }

    const WITH_EMAIL: IdentityRules = IdentityRules {
        email_mapped: true,
        may_create: false,
    };

    #[test]
    fn email_first_then_external_id_within_the_company() {
        let d = dir();
        // Email points at u0 although the external id is u1's: email wins.
        assert_eq!(
            d.match_user(WITH_EMAIL, Some("acme"), Some("v2"), Some("ann@acme.io")),
            UserMatch::Existing(0)
        );
        assert_eq!(
            d.match_user(WITH_EMAIL, Some("acme"), Some("v2"), Some("x@acme.io")),
            UserMatch::Existing(1)
        );
        // Without the email field mapped, the email is ignored.
        let no_email = IdentityRules {
            email_mapped: false,
            may_create: false,
        };
        assert_eq!(
            d.match_user(no_email, Some("acme"), Some("v2"), Some("ann@acme.io")),
            UserMatch::Existing(1)
        );
        // Same external id, other company: that company's user.
        assert_eq!(
            d.match_user(WITH_EMAIL, Some("globex"), Some("v1"), None),
            UserMatch::Existing(2)
        );
        // No company: never matched.
        assert_eq!(
            d.match_user(WITH_EMAIL, None, Some("v1"), None),
            UserMatch::Unresolvable
        );
    }

    #[test]
    fn creation_needs_every_condition() {
        let d = dir();
        let create = IdentityRules {
            email_mapped: true,
            may_create: true,
        };
        assert_eq!(
            d.match_user(create, Some("acme"), Some("v9"), None),
            UserMatch::Create
        );
        assert_eq!(
            d.match_user(WITH_EMAIL, Some("acme"), Some("v9"), None),
            UserMatch::Unresolvable
        );
        assert_eq!(
            d.match_user(create, Some("initech"), Some("v9"), None),
            UserMatch::Unresolvable
        );
        assert_eq!(
            d.match_user(create, None, Some("v9"), None),
            UserMatch::Unresolvable
        );
        assert_eq!(
            d.match_user(create, Some("acme"), None, None),
            UserMatch::Unresolvable
        );
    }

    #[test]
    fn emails_match_lower_cased_and_the_greater_id_of_two_users_with_one_key_is_found() {
        let d = Directory::new(
            vec![obj("acme")],
            vec![],
            vec![],
            vec![
                user("u0", "acme", Some("v1"), Some("Ann@Acme.io")),
                user("u1", "acme", Some("v1"), None),
            ],
        );
        assert_eq!(
            d.match_user(WITH_EMAIL, Some("acme"), None, Some("ann@acme.io")),
            UserMatch::Existing(0)
        );
        assert_eq!(
            d.match_user(WITH_EMAIL, Some("acme"), Some("v1"), None),
            UserMatch::Existing(1)
        );
        // The sync lists users in any order (`list_end_users_unordered`): emails that differ
        // in case only, in both orders, find the user of the greater id.
        for users in [["u0", "u1"], ["u1", "u0"]] {
            let d = Directory::new(
                vec![obj("acme")],
                vec![],
                vec![],
                users
                    .iter()
                    .zip(["ann@acme.io", "ANN@acme.io"])
                    .map(|(id, e)| user(id, "acme", None, Some(e)))
                    .collect(),
            );
            let found = match d.match_user(WITH_EMAIL, Some("acme"), None, Some("ann@acme.io")) {
                UserMatch::Existing(i) => d.user(i).map(|u| u.id),
                _ => None,
            };
            assert_eq!(found, Some("u1"), "{users:?}");
        }
    }

    /// A key whose hash another key took is found in `collided`; a key whose hash points at a
    /// user with another key is not taken for it.
    #[test]
    fn a_key_whose_hash_another_key_took_is_still_found() {
        let mut d = dir();
        // As if v1's hash were v2's: its table entry points at u1 (v2), v1 is in `collided`.
        d.by_ext.insert(user_hash("acme", "v1"), 1);
        assert_eq!(
            d.match_user(WITH_EMAIL, Some("acme"), Some("v1"), None),
            UserMatch::Unresolvable
        );
        d.collided.insert((false, "acme".into(), "v1".into()), 0);
        assert_eq!(
            d.match_user(WITH_EMAIL, Some("acme"), Some("v1"), None),
            UserMatch::Existing(0)
        );
        assert_eq!(
            d.match_user(WITH_EMAIL, Some("acme"), Some("v2"), None),
            UserMatch::Existing(1)
        );
        // Indexing a user under a taken hash puts it in `collided`.
        d.collided.clear();
        d.index(false, "acme", "v1", 0);
        assert_eq!(
            d.collided
                .get(&(false, "acme".to_string(), "v1".to_string())),
            Some(&0)
        );
    }
}
