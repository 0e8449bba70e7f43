//! The directory on the data table: companies, assets and projects (upserted by external id),
//! and end users with one lookup item per unique key ((company, external id), (company, email)),
//! so that uniqueness is enforced by conditional writes in one transaction.

use super::{get_s, is_condition_failure, key, keys, opt_s, s, unavailable, DynamoStore, Item};
use crate::domain::{DirectoryObject, EndUser, EndUserInput, Target, TenantId};
use crate::store::DirectoryStore;
use crate::store::{merged_user, new_end_user, EmailTaken, StoreError};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
use std::collections::BTreeMap;

fn user_item(t: &TenantId, u: &EndUser) -> Item {
    let mut i = key(keys::users_pk(t), keys::user_sk(&u.id));
    i.insert("id".into(), s(u.id.clone()));
    i.insert("company".into(), s(u.company_id.clone()));
    for (name, v) in [
        ("external_id", &u.external_id),
        ("email", &u.email),
        ("name", &u.name),
        ("surname", &u.surname),
    ] {
        if let Some(v) = v {
            i.insert(name.into(), s(v.clone()));
        }
    }
    i
}

fn user_from(i: &Item) -> Result<EndUser, StoreError> {
    Ok(EndUser {
        id: get_s(i, "id")?.to_string(),
        company_id: get_s(i, "company")?.to_string(),
        external_id: opt_s(i, "external_id"),
        email: opt_s(i, "email"),
        name: opt_s(i, "name"),
        surname: opt_s(i, "surname"),
    })
}

/// A conditional put for a transaction.
fn tx_put(table: &str, item: Item, condition: &str) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(condition)
        .build()
        .map_err(|e| StoreError::unavailable_from("building a put", e))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

fn lookup_item(t: &TenantId, sk: String, user_id: &str) -> Item {
    let mut i = key(keys::users_pk(t), sk);
    i.insert("user_id".into(), s(user_id));
    i
}

impl DynamoStore {
    async fn get_data_item(&self, pk: String, sk: String) -> Result<Option<Item>, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.tables.data)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("read the directory", e))?
            .item)
    }

    async fn get_user(&self, t: &TenantId, id: &str) -> Result<Option<EndUser>, StoreError> {
        self.get_data_item(keys::users_pk(t), keys::user_sk(id))
            .await?
            .map(|i| user_from(&i))
            .transpose()
    }

    /// The user a lookup item points at.
    async fn via_lookup(&self, t: &TenantId, sk: String) -> Result<Option<EndUser>, StoreError> {
        match self.get_data_item(keys::users_pk(t), sk).await? {
            Some(l) => self.get_user(t, get_s(&l, "user_id")?).await,
            None => Ok(None),
        }
    }

    /// Matches on external id, then on email, within the company.
    async fn find_user(
        &self,
        t: &TenantId,
        u: &EndUserInput,
    ) -> Result<Option<EndUser>, StoreError> {
        if let Some(ext) = &u.external_id {
            if let Some(found) = self
                .via_lookup(t, keys::ext_lookup_sk(&u.company_id, ext))
                .await?
            {
                return Ok(Some(found));
            }
        }
        if let Some(email) = &u.email {
            return self
                .via_lookup(t, keys::email_lookup_sk(&u.company_id, email))
                .await;
        }
        Ok(None)
    }

    /// One transaction: the user item and its lookup items, each only if absent. `Ok(false)`
    /// when a condition failed (someone else holds one of the keys).
    async fn insert_user(&self, t: &TenantId, user: &EndUser) -> Result<bool, StoreError> {
        let table = &self.tables.data;
        let absent = "attribute_not_exists(pk)";
        let mut items = vec![tx_put(table, user_item(t, user), absent)?];
        if let Some(ext) = &user.external_id {
            let sk = keys::ext_lookup_sk(&user.company_id, ext);
            items.push(tx_put(table, lookup_item(t, sk, &user.id), absent)?);
        }
        if let Some(email) = &user.email {
            let sk = keys::email_lookup_sk(&user.company_id, email);
            items.push(tx_put(table, lookup_item(t, sk, &user.id), absent)?);
        }
        Ok(self.transact(items, "create end user").await?.is_ok())
    }

    /// One transaction: the merged user item, only if its email is still the one read, and the
    /// email lookup items moved along. `Ok(false)` when a condition failed.
    async fn update_user(
        &self,
        t: &TenantId,
        found: &EndUser,
        merged: &EndUser,
    ) -> Result<bool, StoreError> {
        let table = &self.tables.data;
        let (condition, old) = match &found.email {
            Some(e) => ("attribute_exists(pk) AND #e = :old", Some(e)),
            None => ("attribute_exists(pk) AND attribute_not_exists(#e)", None),
        };
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(user_item(t, merged)))
            .condition_expression(condition)
            .expression_attribute_names("#e", "email")
            .set_expression_attribute_values(
                old.map(|e| std::collections::HashMap::from([(":old".to_string(), s(e.clone()))])),
            )
            .build()
            .map_err(|e| StoreError::unavailable_from("building a put", e))?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        let c = &found.company_id;
        let old_sk = found.email.as_deref().map(|e| keys::email_lookup_sk(c, e));
        let new_sk = merged.email.as_deref().map(|e| keys::email_lookup_sk(c, e));
        if old_sk != new_sk {
            if let Some(sk) = new_sk {
                items.push(tx_put(
                    table,
                    lookup_item(t, sk, &merged.id),
                    "attribute_not_exists(pk)",
                )?);
            }
            if let Some(sk) = old_sk {
                let del = Delete::builder()
                    .table_name(table)
                    .set_key(Some(key(keys::users_pk(t), sk)))
                    .build()
                    .map_err(|e| StoreError::unavailable_from("building a delete", e))?;
                items.push(TransactWriteItem::builder().delete(del).build());
            }
        }
        Ok(self.transact(items, "update end user").await?.is_ok())
    }
}

impl DynamoStore {
    /// One object's upsert: its given fields set, its cleared ones (`Some("")`) removed.
    async fn upsert_object(
        &self,
        t: &TenantId,
        kind: Target,
        o: DirectoryObject,
    ) -> Result<(), StoreError> {
        let mut sets = vec!["external_id = :e".to_string()];
        let mut removes = Vec::new();
        let mut u = self
            .client
            .update_item()
            .table_name(&self.tables.data)
            .set_key(Some(key(
                keys::objects_pk(t, kind),
                keys::object_sk(&o.external_id),
            )))
            .expression_attribute_values(":e", s(o.external_id.clone()));
        for (ph, attr, v) in [("n", "name", &o.name), ("c", "company_id", &o.company_id)] {
            match v.as_deref() {
                None => continue,
                Some("") => removes.push(format!("#{ph}")),
                Some(v) => {
                    sets.push(format!("#{ph} = :{ph}"));
                    u = u.expression_attribute_values(format!(":{ph}"), s(v.to_string()));
                }
            }
            u = u.expression_attribute_names(format!("#{ph}"), attr);
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression = format!("{expression} REMOVE {}", removes.join(", "));
        }
        u.update_expression(expression)
            .send()
            .await
            .map_err(|e| unavailable("upsert a directory object", e))?;
        Ok(())
    }
}

#[async_trait]
impl DirectoryStore for DynamoStore {
    async fn upsert_objects(
        &self,
        t: &TenantId,
        kind: Target,
        objects: &[DirectoryObject],
    ) -> Result<(), StoreError> {
        use futures_util::{StreamExt, TryStreamExt};
        // One UpdateItem per object (a field left out stays as stored, which a batch's puts
        // cannot do), 16 at once; two objects with one id are merged in order, as the
        // embedded store's statements apply them.
        let mut by_id: BTreeMap<&str, DirectoryObject> = BTreeMap::new();
        for o in objects {
            let merged = match by_id.remove(o.external_id.as_str()) {
                Some(earlier) => DirectoryObject {
                    external_id: o.external_id.clone(),
                    name: o.name.clone().or(earlier.name),
                    company_id: o.company_id.clone().or(earlier.company_id),
                },
                None => o.clone(),
            };
            by_id.insert(&o.external_id, merged);
        }
        let writes =
            futures_util::stream::iter(by_id.into_values().map(|o| self.upsert_object(t, kind, o)))
                .buffer_unordered(16)
                .try_collect::<Vec<()>>();
        self.directory_write(t, writes).await?;
        Ok(())
    }

    async fn list_objects(
        &self,
        t: &TenantId,
        kind: Target,
    ) -> Result<Vec<DirectoryObject>, StoreError> {
        let q = self
            .data_query()
            .key_condition_expression("pk = :p")
            .expression_attribute_values(":p", s(keys::objects_pk(t, kind)))
            // Read with the stamp: a snapshot between two equal stamps must hold every write.
            .consistent_read(true);
        let mut out = self
            .query_all(q, "list objects")
            .await?
            .iter()
            .map(|i| {
                Ok(DirectoryObject {
                    external_id: get_s(i, "external_id")?.to_string(),
                    name: opt_s(i, "name"),
                    company_id: opt_s(i, "company_id"),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| a.external_id.cmp(&b.external_id));
        Ok(out)
    }

    async fn list_end_users(&self, t: &TenantId) -> Result<Vec<EndUser>, StoreError> {
        let q = self
            .data_query()
            .key_condition_expression("pk = :p AND begins_with(sk, :u)")
            .expression_attribute_values(":p", s(keys::users_pk(t)))
            .expression_attribute_values(":u", s(keys::USER_PREFIX))
            .consistent_read(true);
        let mut out = self
            .query_all(q, "list end users")
            .await?
            .iter()
            .map(user_from)
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// The stamp item, `None` while a directory write is under way (see `directory_stamp.rs`).
    async fn directory_stamp(&self, t: &TenantId) -> Result<Option<u64>, StoreError> {
        self.read_directory_stamp(t).await
    }

    async fn create_end_user_if_absent(
        &self,
        t: &TenantId,
        u: &EndUserInput,
    ) -> Result<(EndUser, bool), StoreError> {
        // A user found costs no write (and no stamp raise).
        if let Some(found) = self.find_user(t, u).await? {
            return Ok((found, false));
        }
        self.directory_write(t, self.create_end_user(t, u)).await
    }

    async fn upsert_end_user(&self, t: &TenantId, u: &EndUserInput) -> Result<EndUser, StoreError> {
        self.directory_write(t, self.upsert_user(t, u)).await
    }

    async fn delete_object(
        &self,
        t: &TenantId,
        kind: Target,
        external_id: &str,
    ) -> Result<bool, StoreError> {
        self.directory_write(t, self.delete_object_item(t, kind, external_id))
            .await
    }

    async fn delete_end_user(&self, t: &TenantId, id: &str) -> Result<bool, StoreError> {
        self.directory_write(t, self.delete_user(t, id)).await
    }

    async fn fill_end_user(
        &self,
        t: &TenantId,
        id: &str,
        email: Option<&str>,
        name: Option<&str>,
        surname: Option<&str>,
    ) -> Result<(), StoreError> {
        self.directory_write(t, self.fill_user(t, id, email, name, surname))
            .await
    }
}

/// The directory's writes, each called inside [`DynamoStore::directory_write`].
impl DynamoStore {
    async fn create_end_user(
        &self,
        t: &TenantId,
        u: &EndUserInput,
    ) -> Result<(EndUser, bool), StoreError> {
        // A lost race is resolved by reading the winner's user.
        for _ in 0..3 {
            let user = new_end_user(u);
            if self.insert_user(t, &user).await? {
                return Ok((user, true));
            }
            if let Some(found) = self.find_user(t, u).await? {
                return Ok((found, false));
            }
        }
        Err(StoreError::Conflict(
            "end user clashes with another (same id, external id or email in the company)".into(),
        ))
    }

    async fn upsert_user(&self, t: &TenantId, u: &EndUserInput) -> Result<EndUser, StoreError> {
        let c = &u.company_id;
        // A lost race (another writer took a key or changed the user in between) reads again.
        for _ in 0..3 {
            let by_email = match &u.email {
                Some(e) => self.via_lookup(t, keys::email_lookup_sk(c, e)).await?,
                None => None,
            };
            let found = match &u.external_id {
                Some(ext) => self.via_lookup(t, keys::ext_lookup_sk(c, ext)).await?,
                None => by_email.clone(),
            };
            if let (Some(email), Some(holder)) = (&u.email, &by_email) {
                if found.as_ref().map(|f| &f.id) != Some(&holder.id) {
                    return Err(EmailTaken::new(email, holder).into());
                }
            }
            let Some(found) = found else {
                let user = new_end_user(u);
                if self.insert_user(t, &user).await? {
                    return Ok(user);
                }
                continue;
            };
            let merged = merged_user(found.clone(), u);
            if self.update_user(t, &found, &merged).await? {
                return Ok(merged);
            }
        }
        Err(StoreError::Conflict(format!(
            "end user {} of company {c} changed concurrently; try again",
            u.external_id
                .as_deref()
                .or(u.email.as_deref())
                .unwrap_or("?")
        )))
    }

    async fn delete_object_item(
        &self,
        t: &TenantId,
        kind: Target,
        external_id: &str,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.tables.data)
            .set_key(Some(key(
                keys::objects_pk(t, kind),
                keys::object_sk(external_id),
            )))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| unavailable("delete a directory object", e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }

    async fn delete_user(&self, t: &TenantId, id: &str) -> Result<bool, StoreError> {
        // The user item and its lookups in one transaction, only while its email is the one
        // read (a concurrent change of email reads again).
        for _ in 0..3 {
            let Some(user) = self.get_user(t, id).await? else {
                return Ok(false);
            };
            let table = &self.tables.data;
            let (condition, old) = match &user.email {
                Some(e) => ("attribute_exists(pk) AND #e = :old", Some(e)),
                None => ("attribute_exists(pk) AND attribute_not_exists(#e)", None),
            };
            let delete = |sk: String, condition: Option<&str>| {
                let mut d = Delete::builder()
                    .table_name(table)
                    .set_key(Some(key(keys::users_pk(t), sk)));
                if let Some(c) = condition {
                    d = d
                        .condition_expression(c)
                        .expression_attribute_names("#e", "email")
                        .set_expression_attribute_values(old.map(|e| {
                            std::collections::HashMap::from([(":old".to_string(), s(e.clone()))])
                        }));
                }
                d.build()
                    .map(|d| TransactWriteItem::builder().delete(d).build())
                    .map_err(|e| StoreError::unavailable_from("building a delete", e))
            };
            let c = &user.company_id;
            let mut items = vec![delete(keys::user_sk(id), Some(condition))?];
            if let Some(ext) = &user.external_id {
                items.push(delete(keys::ext_lookup_sk(c, ext), None)?);
            }
            if let Some(e) = &user.email {
                items.push(delete(keys::email_lookup_sk(c, e), None)?);
            }
            if self.transact(items, "delete end user").await?.is_ok() {
                return Ok(true);
            }
        }
        Err(StoreError::Conflict(format!(
            "end user {id} changed concurrently; try again"
        )))
    }

    async fn fill_user(
        &self,
        t: &TenantId,
        id: &str,
        email: Option<&str>,
        name: Option<&str>,
        surname: Option<&str>,
    ) -> Result<(), StoreError> {
        let k = key(keys::users_pk(t), keys::user_sk(id));
        let mut sets = Vec::new();
        let mut u = self
            .client
            .update_item()
            .table_name(&self.tables.data)
            .set_key(Some(k.clone()))
            .condition_expression("attribute_exists(pk)");
        for (ph, attr, v) in [("n", "name", name), ("s", "surname", surname)] {
            if let Some(v) = v {
                sets.push(format!("#{ph} = if_not_exists(#{ph}, :{ph})"));
                u = u
                    .expression_attribute_names(format!("#{ph}"), attr)
                    .expression_attribute_values(format!(":{ph}"), s(v));
            }
        }
        if !sets.is_empty() {
            match u
                .update_expression(format!("SET {}", sets.join(", ")))
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if is_condition_failure(&e) => return Ok(()),
                Err(e) => return Err(unavailable("fill end user", e)),
            }
        }
        let Some(email) = email else { return Ok(()) };
        let Some(user) = self.get_user(t, id).await? else {
            return Ok(());
        };
        if user.email.is_some() {
            return Ok(());
        }
        // The email is unique within the company: a clash leaves the stored user as it is.
        let set_email = Update::builder()
            .table_name(&self.tables.data)
            .set_key(Some(k))
            .update_expression("SET #e = :e")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(#e)")
            .expression_attribute_names("#e", "email")
            .expression_attribute_values(":e", s(email))
            .build()
            .map_err(|e| StoreError::unavailable_from("building an update", e))?;
        let lookup = lookup_item(t, keys::email_lookup_sk(&user.company_id, email), id);
        let items = vec![
            TransactWriteItem::builder().update(set_email).build(),
            tx_put(&self.tables.data, lookup, "attribute_not_exists(pk)")?,
        ];
        // A failed condition: filled meanwhile, or the email taken: nothing to do.
        let _filled = self.transact(items, "fill end user email").await?;
        Ok(())
    }
}
