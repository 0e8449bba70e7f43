//! The directory from Pendo (pure parts): the requests that read a page of the subscription's
//! accounts or identified visitors through the field mappings, the rows they give, and what an
//! import does with each row against the directory as it stands.
//!
//! - Companies come from accounts: external id from the company id field (`accountId` or an
//!   account metadata path), name from the chosen account field. A company id field that reads
//!   visitor metadata has no account to read: companies are then left to the API or a CSV.
//! - End users come from identified visitors: external id, email, name and surname through the
//!   field mappings, company from the company id field (a visitor's account is
//!   `metadata.auto.accountid`). A visitor is matched within its company on its external id
//!   (on its email when it has none), like a directory batch.
//! - Nothing non-empty is ever overwritten: a known company gets a name only where it has none,
//!   a known end user an email, name or surname only where that field is empty (an email only
//!   when no other end user of the company has it).
//!
//! Pages are read in the order of the Pendo id (keyset: `filter id > last`, `sort`, `limit`), so
//! an import can stop after any page and go on from the last id it recorded.
//!
//! `pages` holds the requests and the rows they give, `plan` what an import does with a row.

mod pages;
mod plan;
#[cfg(test)]
mod tests;

pub use pages::{accounts_page, companies_from_accounts, visitors_page, PendoRow, PAGE_ROWS};
pub use plan::{plan_companies, plan_end_users, Action, SampleRow, UserDirectory};
