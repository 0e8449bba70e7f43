//! The key schema: the one place where DynamoDB keys are built. Every variable component is
//! escaped with [`esc`] so that it never contains the separator `#`; keys are fixed sequences of
//! components, so two different inputs never give the same key (ids may contain `#`, `/`, `%`,
//! spaces or anything else a user types). Keys are only ever *encoded*: every item also carries
//! its fields as plain attributes, and reads decode those, never a key.
//!
//! Ordering tricks rely on two facts: a day is fixed-width `YYYY-MM-DD`, and `$` sorts right after
//! `#`, so `PREFIX$` is an upper bound of every `PREFIX#…`.

use crate::domain::{MappingId, ObjectRef, RunId, TenantId};
use chrono::NaiveDate;

/// The component separator.
pub const SEP: char = '#';

/// Escapes one key component: `%` → `%25`, `#` → `%23`, control characters → `%XX`.
/// Injective, and the output never contains `#`.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' | '#' => out.push_str(&format!("%{:02X}", c as u32)),
            // Control characters are all below U+00A0, so two hex digits suffice.
            c if c.is_control() => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A generation as a fixed-width number, so that generations sort numerically.
pub fn gen(g: u64) -> String {
    format!("{g:020}")
}

pub fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Upper bound of every sort key that starts with `prefix#`.
pub fn upper(prefix: &str) -> String {
    format!("{prefix}$")
}

// ---- config table: pk = tenant, sk = item kind ----

pub fn tenant_pk(t: &TenantId) -> String {
    format!("T#{}", esc(t.as_str()))
}
pub const INTEGRATION_SK: &str = "INTEGRATION";
/// GSI1 partition listing every tenant with an integration (the scheduler's read).
pub const TENANTS_GPK: &str = "TENANTS";
pub fn tenants_gsk(t: &TenantId) -> String {
    esc(t.as_str())
}
pub const MAPPING_PREFIX: &str = "MAPPING#";
pub fn mapping_sk(m: &MappingId) -> String {
    format!("{MAPPING_PREFIX}{}", esc(m.as_str()))
}
pub fn state_sk(m: &MappingId) -> String {
    format!("STATE#{}", esc(m.as_str()))
}
/// Every item of one run (its header and its chunks) starts with this.
/// The sort keys of a tenant's directory imports begin with this.
pub const IMPORT_PREFIX: &str = "IMPORT#";

pub fn import_sk(id: &crate::domain::ImportId) -> String {
    format!("{IMPORT_PREFIX}{}", esc(id.as_str()))
}

pub fn run_prefix(r: &RunId) -> String {
    format!("RUN#{}#", esc(r.as_str()))
}
pub fn run_header_sk(r: &RunId) -> String {
    format!("{}H", run_prefix(r))
}
pub fn run_chunk_sk(r: &RunId, index: usize) -> String {
    format!("{}C#{index:08}", run_prefix(r))
}
/// A run's counters of one mapping.
pub fn run_mapping_sk(r: &RunId, m: &MappingId) -> String {
    format!("{}M#{}", run_prefix(r), esc(m.as_str()))
}
/// What a run's planning read from Pendo for one mapping.
pub fn run_source_sk(r: &RunId, m: &MappingId) -> String {
    format!("{}S#{}", run_prefix(r), esc(m.as_str()))
}
/// GSI1 partition of a tenant's runs, sorted by start time.
pub fn runs_gpk(t: &TenantId) -> String {
    format!("RUNS#{}", esc(t.as_str()))
}
pub fn runs_gsk(started_at: &str, r: &RunId) -> String {
    format!("{started_at}#{}", esc(r.as_str()))
}

// ---- data table: values and activity (per generation), directory ----

/// Partition of one object's values in one generation.
pub fn object_pk(t: &TenantId, generation: u64, o: &ObjectRef) -> String {
    format!(
        "T#{}#G#{}#O#{}#{}",
        esc(t.as_str()),
        gen(generation),
        o.kind.as_str(),
        esc(&o.id)
    )
}
/// Values of one metric sort by day, then app.
pub fn metric_prefix(metric: &str) -> String {
    format!("V#{}#", esc(metric))
}
pub fn value_sk(metric: &str, d: NaiveDate, app: &str) -> String {
    format!("{}{}#{}", metric_prefix(metric), day(d), esc(app))
}
/// Range of a metric's values from `from` to `to` (inclusive), every app.
pub fn value_range(metric: &str, from: NaiveDate, to: NaiveDate) -> (String, String) {
    let p = metric_prefix(metric);
    (
        format!("{p}{}", day(from)),
        upper(&format!("{p}{}", day(to))),
    )
}

/// Partition of one end user's activity in one generation.
pub fn user_pk(t: &TenantId, generation: u64, user: &str) -> String {
    format!(
        "T#{}#G#{}#U#{}",
        esc(t.as_str()),
        gen(generation),
        esc(user)
    )
}
pub fn activity_sk(d: NaiveDate, m: &MappingId) -> String {
    format!("A#{}#{}", day(d), esc(m.as_str()))
}
/// Activity of a user from `from` on.
pub fn activity_range(from: NaiveDate) -> (String, String) {
    (format!("A#{}", day(from)), upper("A"))
}

/// Partition of a tenant's manifests (what each mapping wrote, per generation and day): serves
/// "replace a mapping's window", "delete a mapping's data", "purge older generations" and
/// "export" without a scan and without an index entry per value.
pub fn manifests_pk(t: &TenantId) -> String {
    format!("T#{}#MF", esc(t.as_str()))
}
/// A manifest's head: the mapping, the generation, the day.
pub fn manifest_sk(m: &MappingId, generation: u64, d: NaiveDate) -> String {
    format!(
        "{}{}#{}",
        mapping_manifest_prefix(m),
        gen(generation),
        day(d)
    )
}
/// Part `index` (from 1) of the manifest version `token` (parts sort right after their head).
pub fn manifest_part_sk(head_sk: &str, token: &str, index: usize) -> String {
    format!("{head_sk}#P#{}#{index:06}", esc(token))
}
/// Every manifest item of one mapping (all generations and days) starts with this.
pub fn mapping_manifest_prefix(m: &MappingId) -> String {
    format!("{}#", esc(m.as_str()))
}

/// GSI2 of the data table (activity only): a company's activity in one generation, by day.
pub fn company_gpk(t: &TenantId, generation: u64, company: &str) -> String {
    format!(
        "T#{}#G#{}#C#{}",
        esc(t.as_str()),
        gen(generation),
        esc(company)
    )
}
pub fn company_gsk(d: NaiveDate, user: &str, m: &MappingId) -> String {
    format!("{}#{}#{}", day(d), esc(user), esc(m.as_str()))
}

/// Partition of a tenant's companies, assets or projects.
pub fn objects_pk(t: &TenantId, kind: crate::domain::Target) -> String {
    format!("T#{}#D#{}", esc(t.as_str()), kind.as_str())
}
pub fn object_sk(external_id: &str) -> String {
    format!("O#{}", esc(external_id))
}

/// Partition of a tenant's end users and their two unique lookups.
pub fn users_pk(t: &TenantId) -> String {
    format!("T#{}#EU", esc(t.as_str()))
}
pub const USER_PREFIX: &str = "U#";
pub fn user_sk(id: &str) -> String {
    format!("{USER_PREFIX}{}", esc(id))
}
/// Lookup item: (company, external id) → user id. Its existence is the uniqueness guarantee.
pub fn ext_lookup_sk(company: &str, external_id: &str) -> String {
    format!("X#{}#{}", esc(company), esc(external_id))
}
/// Lookup item: (company, email) → user id.
pub fn email_lookup_sk(company: &str, email: &str) -> String {
    format!("E#{}#{}", esc(company), esc(email))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Target;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn escaping_removes_the_separator_and_keeps_plain_ids() {
        assert_eq!(esc("acme"), "acme");
        assert_eq!(esc("a#b"), "a%23b");
        assert_eq!(esc("a%23b"), "a%2523b");
        assert_eq!(esc("a\nb/c"), "a%0Ab/c");
        assert!(!esc("#%#\u{1}").contains('#'));
    }

    #[test]
    fn ids_with_separators_never_collide() {
        let t = TenantId::parse("t").unwrap();
        let o1 = ObjectRef {
            kind: Target::Company,
            id: "a#G#1".into(),
        };
        let o2 = ObjectRef {
            kind: Target::Company,
            id: "a".into(),
        };
        assert_ne!(object_pk(&t, 1, &o1), object_pk(&t, 1, &o2));
        // metric "x#2026-11-01" + app "" vs metric "x" + day + app
        assert_ne!(
            value_sk("x#2026-11-01", d("2026-11-01"), ""),
            value_sk("x", d("2026-11-01"), "2026-11-01#")
        );
        let a = TenantId::parse("a#b").unwrap();
        let b = TenantId::parse("a").unwrap();
        assert_ne!(tenant_pk(&a), tenant_pk(&b));
        assert_ne!(ext_lookup_sk("c#x", "y"), ext_lookup_sk("c", "x#y"));
    }

    #[test]
    fn ranges_cover_exactly_their_days_and_metric() {
        let (lo, hi) = value_range("Clicks", d("2026-11-01"), d("2026-11-03"));
        let inside = [
            value_sk("Clicks", d("2026-11-01"), ""),
            value_sk("Clicks", d("2026-11-03"), "zzz\u{10FFFF}"),
            value_sk("Clicks", d("2026-11-02"), "-323232"),
        ];
        for k in inside {
            assert!(lo <= k && k <= hi, "{k} in [{lo}, {hi}]");
        }
        let outside = [
            value_sk("Clicks", d("2026-10-31"), "zzz"),
            value_sk("Clicks", d("2026-11-04"), ""),
            value_sk("Clicks2", d("2026-11-02"), ""),
            value_sk("Click", d("2026-11-02"), ""),
            value_sk("Clicks#2026-11-02", d("2026-11-02"), ""),
        ];
        for k in outside {
            assert!(!(lo <= k && k <= hi), "{k} outside [{lo}, {hi}]");
        }
    }

    #[test]
    fn manifest_keys_of_one_mapping_share_a_prefix_no_other_mapping_has() {
        let m = MappingId::parse("m").unwrap();
        let m2 = MappingId::parse("m#00000000000000000002").unwrap();
        let head = manifest_sk(&m, 2, d("2026-11-02"));
        assert_eq!(head, "m#00000000000000000002#2026-11-02");
        assert!(head.starts_with(&mapping_manifest_prefix(&m)));
        let other = manifest_sk(&m2, 2, d("2026-11-02"));
        assert!(!other.starts_with(&mapping_manifest_prefix(&m)));
        let part = manifest_part_sk(&head, "tok", 1);
        assert_eq!(part, "m#00000000000000000002#2026-11-02#P#tok#000001");
        assert!(part.starts_with(&mapping_manifest_prefix(&m)));
        let t = TenantId::parse("t").unwrap();
        assert_eq!(manifests_pk(&t), "T#t#MF");
        assert_ne!(manifests_pk(&t), users_pk(&t));
    }

    #[test]
    fn generations_sort_numerically() {
        assert!(gen(9) < gen(10));
        assert!(gen(u64::MAX).len() == 20);
    }

    proptest! {
        #[test]
        fn escaping_is_injective(a in ".{0,12}", b in ".{0,12}") {
            prop_assert!(!esc(&a).contains(SEP));
            if a != b {
                prop_assert_ne!(esc(&a), esc(&b));
            }
        }

        #[test]
        fn two_component_keys_never_collide(a in "[a#%x]{0,6}", b in "[a#%x]{0,6}", c in "[a#%x]{0,6}", e in "[a#%x]{0,6}") {
            if (a.clone(), b.clone()) != (c.clone(), e.clone()) {
                prop_assert_ne!(ext_lookup_sk(&a, &b), ext_lookup_sk(&c, &e));
            }
        }
    }
}
