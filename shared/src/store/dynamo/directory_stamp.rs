//! The directory stamp on DynamoDB: one small item per tenant, beside its end users, that every
//! directory write raises, so a chunk reads one item (1 read unit) instead of the whole directory
//! (tens of units on a large tenant) when nothing changed since its process last read it.
//!
//! DynamoDB cannot raise the stamp in the same atomic write as a `BatchWriteItem` or an
//! `UpdateItem` without a transaction (two units per item, and every directory write of a tenant
//! contending for one item), so the stamp brackets the write instead:
//!
//! - before its first item, a writer raises `stamp` and `writers` and sets `busy_until` to now
//!   plus [`WRITE_LEASE_MS`] (a Lambda invocation's longest run: no write call lasts longer);
//! - after its last item, it raises `stamp` again and lowers `writers`.
//!
//! A reader ([`DynamoStore::directory_stamp`]) sees `writers > 0` while a write is under way and
//! then answers `None` (read the directory every time, cache nothing), so no cached directory
//! can miss a write that was under way while it was read: a write that starts later raises the
//! stamp, and the caller re-reads the stamp after its read. A writer that died between its two
//! raises leaves `writers` above 0; once `busy_until` has passed, the next reader sets `writers`
//! back to 0 (conditionally on what it read), and the stamp works again. Each directory write
//! call costs two extra write units; a chunk whose process holds the directory costs one
//! strongly consistent read.

use super::{is_condition_failure, key, keys, n, unavailable, DynamoStore, Item};
use crate::domain::TenantId;
use crate::store::StoreError;
use aws_sdk_dynamodb::types::AttributeValue;

/// How long a directory write may take (Lambda's maximum duration, 15 minutes).
pub(super) const WRITE_LEASE_MS: i64 = 15 * 60 * 1000;

const STAMP_SK: &str = "STAMP";

fn number(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn read_i64(item: &Item, name: &str) -> i64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// What a reader decides from the stamp item (pure; `now` in ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StampRead {
    /// No write under way: the stamp.
    Stamp(u64),
    /// A write is under way: read the directory, cache nothing.
    Busy,
    /// A writer died half-way and its lease has passed: clear `writers` (was this many), then
    /// read the directory without caching this once.
    Stale { writers: i64, busy_until: i64 },
}

pub(super) fn decide(item: Option<&Item>, now: i64) -> StampRead {
    let Some(item) = item else {
        return StampRead::Stamp(0);
    };
    let writers = read_i64(item, "writers");
    let busy_until = read_i64(item, "busy_until");
    match writers {
        w if w <= 0 => StampRead::Stamp(read_i64(item, "stamp").max(0) as u64),
        _ if busy_until > now => StampRead::Busy,
        w => StampRead::Stale {
            writers: w,
            busy_until,
        },
    }
}

impl DynamoStore {
    fn stamp_key(t: &TenantId) -> Item {
        key(keys::users_pk(t), STAMP_SK)
    }

    /// Reads the stamp item (strongly consistent) and decides.
    pub(super) async fn read_directory_stamp(
        &self,
        t: &TenantId,
    ) -> Result<Option<u64>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.data)
            .set_key(Some(Self::stamp_key(t)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("read the directory stamp", e))?;
        self.meter.read(out.item.iter(), true);
        match decide(out.item.as_ref(), now_ms()) {
            StampRead::Stamp(s) => Ok(Some(s)),
            StampRead::Busy => Ok(None),
            StampRead::Stale {
                writers,
                busy_until,
            } => {
                let cleared = self
                    .client
                    .update_item()
                    .table_name(&self.tables.data)
                    .set_key(Some(Self::stamp_key(t)))
                    .update_expression("SET writers = :zero ADD stamp :one")
                    .condition_expression("writers = :w AND busy_until = :b")
                    .expression_attribute_values(":zero", n(0))
                    .expression_attribute_values(":one", n(1))
                    .expression_attribute_values(":w", number(writers))
                    .expression_attribute_values(":b", number(busy_until))
                    .send()
                    .await;
                match cleared {
                    Ok(_) => self.meter.update(1),
                    Err(e) if is_condition_failure(&e) => {}
                    Err(e) => return Err(unavailable("clear a dead directory write", e)),
                }
                Ok(None)
            }
        }
    }

    /// Raises the stamp around `write` (see the module's header). The closing raise happens
    /// whether the write succeeded or not (a failed batch may have written part of its items).
    pub(super) async fn directory_write<T>(
        &self,
        t: &TenantId,
        write: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.client
            .update_item()
            .table_name(&self.tables.data)
            .set_key(Some(Self::stamp_key(t)))
            .update_expression("ADD stamp :one, writers :one SET busy_until = :until")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":until", number(now_ms() + WRITE_LEASE_MS))
            .send()
            .await
            .map_err(|e| unavailable("mark a directory write", e))?;
        self.meter.update(1);
        let out = write.await;
        self.end_directory_write(t).await?;
        out
    }

    async fn end_directory_write(&self, t: &TenantId) -> Result<(), StoreError> {
        let lowered = self
            .client
            .update_item()
            .table_name(&self.tables.data)
            .set_key(Some(Self::stamp_key(t)))
            .update_expression("ADD stamp :one, writers :minus")
            .condition_expression("writers > :zero")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":minus", number(-1))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match lowered {
            Ok(_) => {}
            // A reader cleared it meanwhile (this write outlived its lease): raise the stamp alone.
            Err(e) if is_condition_failure(&e) => {
                self.client
                    .update_item()
                    .table_name(&self.tables.data)
                    .set_key(Some(Self::stamp_key(t)))
                    .update_expression("ADD stamp :one")
                    .expression_attribute_values(":one", n(1))
                    .send()
                    .await
                    .map_err(|e| unavailable("mark a directory write done", e))?;
            }
            Err(e) => return Err(unavailable("mark a directory write done", e)),
        }
        self.meter.update(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(fields: &[(&str, i64)]) -> Item {
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), number(*v)))
            .collect()
    }

    #[test]
    fn a_reader_caches_only_while_no_write_is_under_way() {
        assert_eq!(decide(None, 10), StampRead::Stamp(0));
        let idle = item(&[("stamp", 4), ("writers", 0), ("busy_until", 50)]);
        assert_eq!(decide(Some(&idle), 10), StampRead::Stamp(4));
        let busy = item(&[("stamp", 5), ("writers", 1), ("busy_until", 50)]);
        assert_eq!(decide(Some(&busy), 10), StampRead::Busy);
        assert_eq!(decide(Some(&busy), 49), StampRead::Busy);
        // The writer died: its lease has passed.
        assert_eq!(
            decide(Some(&busy), 50),
            StampRead::Stale {
                writers: 1,
                busy_until: 50
            }
        );
    }
}
