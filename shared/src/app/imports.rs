//! Imports of the directory from Pendo, the use cases: a dry run (every page read, nothing
//! written: what an import would do, counted, with a sample), the start of an import (recorded,
//! its first page queued), one page's work (a queue message each: read the page from Pendo, plan
//! it against the directory, write, record the outcome and the cursor, queue the next page), and
//! the reads. An import goes on after a crash from the last page it recorded: a page's message is
//! delivered again, and a page done twice writes nothing new (creations are "if absent", fills
//! only touch empty fields).

use crate::directory::import::{
    accounts_page, companies_from_accounts, plan_companies, plan_end_users, visitors_page, Action,
    PendoRow, SampleRow, UserDirectory, PAGE_ROWS,
};

/// The fewest rows per Pendo call an import may ask for.
pub const MIN_PAGE_ROWS: u32 = 10;
use crate::app::{App, AppError};
use crate::domain::{
    Connection, DirectoryImport, DirectoryObject, FieldRecord, FieldRef, FieldRole, ImportCounts,
    ImportId, ImportOptions, ImportStage, ImportState, Integration, Target, TenantId,
};
use crate::error::ValidationError;
use crate::pendo::{PendoError, RowError, RowSink};
use crate::queue::messages::{ImportMessage, MESSAGE_VERSION};
use crate::store::StoreError;
use crate::sync::persist::again;
use crate::sync::processed::{ProcessError, Processed};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Sample rows a dry run shows per kind: changes, then skips.
const SAMPLE_CHANGES: usize = 10;
const SAMPLE_SKIPS: usize = 5;

/// What to import; absent fields take their defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportRequest {
    /// Read everything and say what would change, writing nothing (default false).
    #[serde(default)]
    pub dry_run: bool,
    /// Companies from the subscription's accounts (default true).
    pub companies: Option<bool>,
    /// End users from its identified visitors (default true).
    pub end_users: Option<bool>,
    /// The account field that names a company, e.g. `metadata.agent.name` (default: none, the
    /// companies get no name).
    pub company_name_field: Option<String>,
    /// Rows per Pendo call, 10 to 5,000 (default 5,000).
    pub page_rows: Option<u32>,
}

impl ImportRequest {
    /// The options, checked against the integration's field mappings.
    pub fn options(&self, integration: &Integration) -> Result<ImportOptions, ValidationError> {
        let companies = self.companies.unwrap_or(true);
        let end_users = self.end_users.unwrap_or(true);
        if !companies && !end_users {
            return Err(ValidationError::new(
                "companies",
                "choose companies, end users or both",
            ));
        }
        if companies && !companies_from_accounts(&integration.settings.field_mappings) {
            return Err(ValidationError::new(
                "companies",
                "the company id field reads visitor metadata, so companies cannot be read from Pendo's accounts: import end users only, and load companies through the directory API or a CSV",
            ));
        }
        let company_name_field = match self.company_name_field.as_deref() {
            None | Some("") => None,
            Some(raw) => {
                let f = FieldRef::parse("companyNameField", raw, FieldRole::Object)?;
                if f.record != FieldRecord::Account {
                    return Err(ValidationError::new(
                        "companyNameField",
                        "must be a path into account metadata, e.g. metadata.agent.name",
                    ));
                }
                Some(f)
            }
        };
        let page_rows = self.page_rows.unwrap_or(PAGE_ROWS);
        if !(MIN_PAGE_ROWS..=PAGE_ROWS).contains(&page_rows) {
            return Err(ValidationError::new(
                "pageRows",
                format!("must be from {MIN_PAGE_ROWS} to {PAGE_ROWS}"),
            ));
        }
        Ok(ImportOptions {
            companies,
            end_users,
            company_name_field,
            page_rows,
        })
    }
}

/// What an import would do, from a dry run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportPreview {
    pub companies: ImportCounts,
    pub end_users: ImportCounts,
    /// Some of the rows that would change, then some that would be skipped, companies first.
    pub sample: Vec<SampleRow>,
    /// Pendo calls the dry run made.
    pub pendo_calls: u32,
}

/// A page of import rows as Pendo streams them.
#[derive(Default)]
struct PageSink {
    rows: Vec<PendoRow>,
    /// Rows Pendo gave, with or without an id (a page is full when it gave `page_rows`).
    given: usize,
}

impl RowSink for PageSink {
    fn row(&mut self, raw: &[u8]) -> Result<(), RowError> {
        self.given += 1;
        if let Some(r) = PendoRow::read(raw)? {
            self.rows.push(r);
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.rows.clear();
        self.given = 0;
    }
}

/// One page of the stage after `cursor`.
async fn read_page(
    app: &App,
    integration: &Integration,
    conn: &Connection,
    options: &ImportOptions,
    stage: ImportStage,
    cursor: Option<&str>,
    request_id: &str,
) -> Result<PageSink, PendoError> {
    let fields = &integration.settings.field_mappings;
    let page = (cursor, options.page_rows);
    let request = match stage {
        ImportStage::Companies => accounts_page(
            fields,
            options.company_name_field.as_ref(),
            page,
            request_id,
        ),
        ImportStage::EndUsers => Some(visitors_page(fields, page, request_id)),
        ImportStage::Done => None,
    };
    let mut sink = PageSink::default();
    if let Some(request) = request {
        app.ports.pendo.aggregate(conn, &request, &mut sink).await?;
    }
    Ok(sink)
}

fn sample(
    out: &mut Vec<SampleRow>,
    plan: &[(String, Action)],
    changes: &mut usize,
    skips: &mut usize,
) {
    for (key, action) in plan {
        let Some(row) = SampleRow::of(key, action) else {
            continue;
        };
        let room = if row.action == "skip" {
            &mut *skips
        } else {
            &mut *changes
        };
        let limit = if row.action == "skip" {
            SAMPLE_SKIPS
        } else {
            SAMPLE_CHANGES
        };
        if *room < limit {
            *room += 1;
            out.push(row);
        }
    }
}

impl App {
    /// What an import with `request`'s options would do: every page read, nothing written.
    pub async fn preview_import(
        &self,
        t: &TenantId,
        request: &ImportRequest,
    ) -> Result<ImportPreview, AppError> {
        let integration = self.integration(t).await?;
        let options = request.options(&integration)?;
        let conn = super::active_connection(&integration)?;
        let store = &self.ports.store;
        let mut companies = store.list_objects(t, Target::Company).await?;
        let mut preview = ImportPreview {
            companies: ImportCounts::default(),
            end_users: ImportCounts::default(),
            sample: Vec::new(),
            pendo_calls: 0,
        };
        let stages = [
            (ImportStage::Companies, options.companies),
            (ImportStage::EndUsers, options.end_users),
        ];
        let users = if options.end_users {
            store.list_end_users(t).await?
        } else {
            Vec::new()
        };
        let mut created_companies = Vec::new();
        for (stage, wanted) in stages {
            if !wanted {
                continue;
            }
            if stage == ImportStage::EndUsers {
                // The companies the import would create come before its end users.
                companies.append(&mut created_companies);
            }
            let known: HashMap<String, Option<String>> = companies
                .iter()
                .map(|c| (c.external_id.clone(), c.name.clone()))
                .collect();
            let dir = UserDirectory::new(&companies, &users);
            let (mut changes, mut skips) = (0, 0);
            let mut cursor: Option<String> = None;
            loop {
                let page = read_page(
                    self,
                    &integration,
                    conn,
                    &options,
                    stage,
                    cursor.as_deref(),
                    "pendo-sync-import-preview",
                )
                .await?;
                preview.pendo_calls += 1;
                let plan = match stage {
                    ImportStage::Companies => {
                        plan_companies(&page.rows, &known, &mut preview.companies)
                    }
                    _ => plan_end_users(&page.rows, &dir, &mut preview.end_users),
                };
                for (_, a) in &plan {
                    if let Action::CreateCompany(o) = a {
                        created_companies.push(o.clone());
                    }
                }
                sample(&mut preview.sample, &plan, &mut changes, &mut skips);
                match page.rows.last() {
                    Some(last) if page.given >= options.page_rows as usize => {
                        cursor = Some(last.key.clone())
                    }
                    _ => break,
                }
            }
        }
        Ok(preview)
    }

    /// Starts an import: recorded, its first page queued. Pages then run one at a time.
    pub async fn start_import(
        &self,
        t: &TenantId,
        request: &ImportRequest,
    ) -> Result<DirectoryImport, AppError> {
        let integration = self.integration(t).await?;
        let options = request.options(&integration)?;
        super::active_connection(&integration)?;
        let mut job = DirectoryImport::new(t.clone(), options, self.ports.clock.now());
        job.version = self.ports.store.put_import(&job).await?;
        self.queue_next(&mut job).await?;
        Ok(job)
    }

    pub async fn import(&self, t: &TenantId, id: &ImportId) -> Result<DirectoryImport, AppError> {
        self.ports
            .store
            .get_import(t, id)
            .await?
            .ok_or_else(|| AppError::NotFound {
                what: "import",
                id: id.to_string(),
            })
    }

    pub async fn imports(&self, t: &TenantId) -> Result<Vec<DirectoryImport>, AppError> {
        Ok(self.ports.store.list_imports(t, 20).await?)
    }

    /// Sends the message of page `job.pages` and records that it was sent.
    async fn queue_next(&self, job: &mut DirectoryImport) -> Result<(), AppError> {
        self.ports
            .queue
            .send_import(&ImportMessage {
                v: MESSAGE_VERSION,
                tenant: job.tenant.clone(),
                import_id: job.id.clone(),
                page: job.pages,
            })
            .await?;
        job.next_queued = true;
        match self.ports.store.put_import(job).await {
            Ok(v) => job.version = v,
            // Another delivery moved the import on; it queues what follows.
            Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// One page of an import (a queue message).
    pub async fn process_import(
        &self,
        msg: &ImportMessage,
        final_attempt: bool,
    ) -> Result<Processed, ProcessError> {
        let store = &self.ports.store;
        let t = &msg.tenant;
        let Some(mut job) = store.get_import(t, &msg.import_id).await? else {
            return Ok(Processed::Superseded);
        };
        if job.state != ImportState::Running || msg.page != job.pages {
            // A delivery of a page already done. If the crash came between recording it and
            // queueing the next, queue it now.
            if job.state == ImportState::Running && msg.page + 1 == job.pages && !job.next_queued {
                self.queue_next(&mut job).await.map_err(retry)?;
            }
            return Ok(Processed::Duplicate);
        }
        // Take the page (one delivery reads it from Pendo; a duplicate meanwhile is
        // acknowledged), as a chunk is taken.
        let now = self.ports.clock.now();
        if job.leased_until.is_some_and(|l| l > now) {
            return Ok(Processed::Duplicate);
        }
        job.leased_until =
            Some(now + chrono::Duration::minutes(crate::domain::CHUNK_LEASE_MINUTES));
        match store.put_import(&job).await {
            Ok(v) => job.version = v,
            Err(StoreError::Conflict(_)) => return Ok(Processed::Duplicate),
            Err(e) => return Err(e.into()),
        }
        let mut next = job.clone();
        match self.import_page(&mut next).await {
            Ok(()) => job = next,
            Err(AppError::Store(StoreError::Conflict(_))) => return Ok(Processed::Duplicate),
            Err(AppError::Pendo(e)) if e.is_retryable() && !final_attempt => {
                self.release_import(job).await;
                return Err(ProcessError::Retryable(e.into()));
            }
            Err(AppError::Store(e)) if !final_attempt => {
                self.release_import(job).await;
                return Err(e.into());
            }
            Err(e) => {
                let message = crate::error::chain(&e);
                self.fail_import(job, &message).await;
                return Err(ProcessError::Permanent(e.into()));
            }
        }
        if job.state == ImportState::Running {
            self.queue_next(&mut job).await.map_err(retry)?;
        }
        Ok(Processed::Done(Default::default()))
    }

    /// Reads, plans and writes the page `job` is at, and records it.
    async fn import_page(&self, job: &mut DirectoryImport) -> Result<(), AppError> {
        let store = &self.ports.store;
        let t = job.tenant.clone();
        let integration = self.integration(&t).await?;
        let conn = super::active_connection(&integration)?;
        let request_id = format!("{}-{}", job.id, job.pages);
        let page = read_page(
            self,
            &integration,
            conn,
            &job.options,
            job.stage,
            job.cursor.as_deref(),
            &request_id,
        )
        .await?;
        crate::stall::point("import-page-read").await;
        // The page's writes: each tried again inside the invocation when the store is
        // unavailable (`sync::persist`), so that a throttled write does not cost the page's
        // Pendo call again. The counts come from the plan, made once.
        let companies = again("read the companies", || {
            store.list_objects(&t, Target::Company)
        })
        .await?;
        let mut counts = ImportCounts::default();
        if job.stage == ImportStage::Companies {
            let known: HashMap<String, Option<String>> = companies
                .iter()
                .map(|c| (c.external_id.clone(), c.name.clone()))
                .collect();
            let plan = plan_companies(&page.rows, &known, &mut counts);
            let writes: Vec<DirectoryObject> = plan
                .into_iter()
                .filter_map(|(_, a)| match a {
                    Action::CreateCompany(o) | Action::NameCompany(o) => Some(o),
                    _ => None,
                })
                .collect();
            if !writes.is_empty() {
                again("write the page's companies", || {
                    store.upsert_objects(&t, Target::Company, &writes)
                })
                .await?;
            }
            job.companies.add(&counts);
        } else {
            let users = again("read the end users", || store.list_end_users(&t)).await?;
            let dir = UserDirectory::new(&companies, &users);
            let plan = plan_end_users(&page.rows, &dir, &mut counts);
            for (_, action) in plan {
                match action {
                    Action::CreateUser(input) => {
                        let create = again("create an end user", || {
                            store.create_end_user_if_absent(&t, &input)
                        });
                        match create.await {
                            Ok(_) => {}
                            Err(StoreError::EmailTaken(_)) => {
                                counts.created -= 1;
                                *counts.skipped.entry("emailTaken".into()).or_default() += 1;
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                    Action::FillUser {
                        user,
                        email,
                        name,
                        surname,
                    } => {
                        again("fill an end user", || {
                            store.fill_end_user(
                                &t,
                                &user.id,
                                email.as_deref(),
                                name.as_deref(),
                                surname.as_deref(),
                            )
                        })
                        .await?;
                    }
                    _ => {}
                }
            }
            job.end_users.add(&counts);
        }
        let last = page.rows.last().map(|r| r.key.clone());
        job.advance(page.given, last, self.ports.clock.now());
        let recorded = &*job;
        job.version = again("record the import's page", || store.put_import(recorded)).await?;
        tracing::info!(tenant = %t, import = %job.id, page = job.pages, rows = page.given, "import page done");
        Ok(())
    }

    /// Ends a delivery's hold on its page, so the redelivery takes it at once (best effort: else
    /// the hold ends with its lease).
    async fn release_import(&self, mut job: DirectoryImport) {
        job.leased_until = None;
        self.ports.store.put_import(&job).await.ok();
    }

    /// Records an import as failed (best effort: a lost write leaves it running, and its next
    /// delivery fails it again).
    async fn fail_import(&self, mut job: DirectoryImport, message: &str) {
        job.state = ImportState::Failed;
        job.error = Some(message.to_string());
        job.leased_until = None;
        let now = self.ports.clock.now();
        job.updated_at = now;
        job.finished_at = Some(now);
        if let Err(e) = self.ports.store.put_import(&job).await {
            tracing::warn!(tenant = %job.tenant, import = %job.id, error = %crate::error::Chain(&e), "could not record a failed import");
        }
    }
}

fn retry(e: AppError) -> ProcessError {
    ProcessError::Retryable(e.into())
}
