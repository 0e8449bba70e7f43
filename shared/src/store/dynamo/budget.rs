//! Pendo subscriptions' request budgets on the config table: one item per subscription
//! (`pk` = `BUDGET#{subscription}`, `sk` = `BUDGET`), its JSON body written with a conditional
//! put on its version. A take that waits writes nothing; a grant or a settle is one strongly
//! consistent read (0.5 read unit) and one put (1 write unit) per call to Pendo.

use super::{from_json, get_n, get_s, key, keys, n, s, to_json, DynamoStore};
use crate::domain::Budget;
use crate::store::{BudgetStore, StoreError};
use async_trait::async_trait;

fn budget_key(subscription: &str) -> (String, String) {
    (
        format!("BUDGET{}{}", keys::SEP, keys::esc(subscription)),
        "BUDGET".to_string(),
    )
}

#[async_trait]
impl BudgetStore for DynamoStore {
    async fn read_budget(&self, subscription: &str) -> Result<(Option<Budget>, u64), StoreError> {
        let (pk, sk) = budget_key(subscription);
        match self.get_config_item(pk, sk, "get a request budget").await? {
            None => Ok((None, 0)),
            Some(item) => {
                let budget: Budget = from_json(get_s(&item, "body")?)?;
                Ok((Some(budget), get_n(&item, "version")?))
            }
        }
    }

    async fn write_budget(
        &self,
        subscription: &str,
        budget: &Budget,
        version: u64,
    ) -> Result<(), StoreError> {
        let (pk, sk) = budget_key(subscription);
        let mut item = key(pk, sk);
        item.insert("body".into(), s(to_json(budget)?));
        item.insert("version".into(), n(version + 1));
        self.put_versioned(item, version, "the request budget".into())
            .await
    }
}
