//! Pendo subscriptions' request budgets (`pendo_budgets`): a versioned JSON body per
//! subscription, written with a compare-and-set on its version.

use super::{write_tx, EmbeddedStore, StoreError};
use crate::domain::Budget;
use crate::store::BudgetStore;
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

#[async_trait]
impl BudgetStore for EmbeddedStore {
    async fn read_budget(&self, subscription: &str) -> Result<(Option<Budget>, u64), StoreError> {
        let row: Option<(i64, String)> = self.with(|c| {
            Ok(
                c.prepare_cached("SELECT version, body FROM pendo_budgets WHERE subscription=?1")?
                    .query_row([subscription], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?,
            )
        })?;
        match row {
            None => Ok((None, 0)),
            Some((version, body)) => {
                let budget = serde_json::from_str(&body)
                    .map_err(|e| StoreError::corrupt_from("a stored request budget", e))?;
                Ok((Some(budget), version as u64))
            }
        }
    }

    async fn write_budget(
        &self,
        subscription: &str,
        budget: &Budget,
        version: u64,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(budget)
            .map_err(|e| StoreError::corrupt_from("a request budget to store", e))?;
        self.with(|c| {
            let tx = write_tx(c)?;
            let stored: Option<i64> = tx
                .query_row(
                    "SELECT version FROM pendo_budgets WHERE subscription=?1",
                    [subscription],
                    |r| r.get(0),
                )
                .optional()?;
            if stored.unwrap_or(0) as u64 != version {
                return Err(StoreError::Conflict(format!(
                    "the request budget is at version {}, not {version}",
                    stored.unwrap_or(0)
                )));
            }
            tx.execute(
                "INSERT INTO pendo_budgets (subscription, version, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT(subscription) DO UPDATE SET version=excluded.version, body=excluded.body",
                params![subscription, version as i64 + 1, body],
            )?;
            tx.commit()?;
            Ok(())
        })
    }
}
