//! A campaign's audience: its query and/or its contact lists, resolved by the database,
//! and the template coverage report shown before a campaign is scheduled.
//!
//! Semantics: with only a query, every contact of the tenant that matches it; with only
//! lists, every member of any of the lists; with both, the members that match the query;
//! with neither, nobody. Opt-outs and the do-not-call list are applied before each dial,
//! not here, so that the preview shows the audience as defined.

use super::contacts::{CONTACT_SELECT, ContactRow};
use super::{Store, with_db};
use crate::audience::{Query, SqlParam, compile};
use crate::campaign::{AudienceSpec, ScriptConfig};
use crate::contact::Contact;
use crate::error::{Error, Result};
use crate::template::Template;
use crate::{ContactId, TenantId};
use serde::Serialize;
use std::collections::BTreeMap;

/// A parsed audience, ready to run.
#[derive(Debug, Clone)]
pub struct Audience {
    query: Query,
    lists: Vec<i64>,
    empty: bool,
}

impl Audience {
    /// Parses a campaign's audience; a bad query is an error naming where it is wrong.
    pub fn from_spec(spec: &AudienceSpec) -> Result<Audience> {
        let query = match &spec.query {
            Some(q) => Query::parse(q)?,
            None => Query::match_all(),
        };
        Ok(Audience {
            query,
            lists: spec.lists.iter().map(|l| l.0).collect(),
            empty: spec.query.is_none() && spec.lists.is_empty(),
        })
    }

    /// The WHERE clause (after `c.tenant_id = $1`) and its parameters, numbered from
    /// `first_param`.
    fn filter(&self, store: &Store, first_param: usize) -> (String, Vec<SqlParam>) {
        if self.empty {
            return ("1 = 0".to_owned(), Vec::new());
        }
        let compiled = compile(&self.query, store.backend(), first_param);
        let mut sql = format!("({})", compiled.sql);
        let mut params = compiled.params;
        if !self.lists.is_empty() {
            let start = first_param + params.len();
            let placeholders: Vec<String> = (0..self.lists.len())
                .map(|i| format!("${}", start + i))
                .collect();
            sql.push_str(&format!(
                " AND c.id IN (SELECT m.contact_id FROM contact_list_members m \
                 JOIN contact_lists l ON l.id = m.list_id WHERE l.tenant_id = c.tenant_id AND m.list_id IN ({}))",
                placeholders.join(", ")
            ));
            params.extend(self.lists.iter().map(|id| SqlParam::Int(*id)));
        }
        (sql, params)
    }
}

/// How a campaign's script renders over its audience.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TemplateCoverage {
    /// Contacts in the audience.
    pub audience: u64,
    /// Contacts for which at least one placeholder has no value (no data, no fallback).
    pub with_missing: u64,
    /// Placeholder name → how many contacts lack it.
    pub missing_by_placeholder: BTreeMap<String, u64>,
    /// A few contacts with missing values, to look at.
    pub examples: Vec<ContactId>,
}

const PAGE: u32 = 2000;

impl Store {
    /// How many contacts the audience holds.
    pub async fn count_audience(&self, tenant: TenantId, audience: &Audience) -> Result<u64> {
        let (filter, params) = audience.filter(self, 2);
        let sql = format!(
            "SELECT COUNT(*) FROM contacts c WHERE c.tenant_id = $1 AND c.erased_at IS NULL AND {filter}"
        );
        let n: i64 = with_db!(self, |pool| {
            let q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .persistent(false)
                .bind(tenant.0);
            super::bind_sql_params!(q, params).fetch_one(pool).await
        })?;
        Ok(super::count(n))
    }

    /// Audience contacts with an id greater than `after`, by id, at most `limit`.
    pub async fn audience_page(
        &self,
        tenant: TenantId,
        audience: &Audience,
        after: Option<ContactId>,
        limit: u32,
    ) -> Result<Vec<Contact>> {
        let (filter, params) = audience.filter(self, 4);
        let sql = format!(
            "SELECT {CONTACT_SELECT} FROM contacts c WHERE c.tenant_id = $1 AND c.id > $2 AND c.erased_at IS NULL AND {filter} \
             ORDER BY c.id LIMIT $3"
        );
        let rows: Vec<ContactRow> = with_db!(self, |pool| {
            let q = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .persistent(false)
                .bind(tenant.0)
                .bind(after.map_or(0, |a| a.0))
                .bind(i64::from(limit.clamp(1, 10_000)));
            super::bind_sql_params!(q, params).fetch_all(pool).await
        })?;
        rows.into_iter().map(ContactRow::into_contact).collect()
    }

    /// Renders the script for every audience contact (page by page) and counts the
    /// contacts that would hear a placeholder with no value.
    pub async fn template_coverage(
        &self,
        tenant: TenantId,
        audience: &Audience,
        script: &ScriptConfig,
    ) -> Result<TemplateCoverage> {
        let template = Template::parse(&script.template)?;
        let mut coverage = TemplateCoverage::default();
        let mut after = None;
        loop {
            let page = self.audience_page(tenant, audience, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for contact in &page {
                coverage.audience += 1;
                let rendered = template.render(contact, &script.variables, &script.fallbacks);
                if rendered.missing.is_empty() {
                    continue;
                }
                coverage.with_missing += 1;
                if coverage.examples.len() < 10 {
                    coverage.examples.push(contact.id);
                }
                for name in rendered.missing {
                    *coverage.missing_by_placeholder.entry(name).or_default() += 1;
                }
            }
        }
        Ok(coverage)
    }

    /// Checks that every list of the audience belongs to the tenant.
    pub async fn check_audience_lists(&self, tenant: TenantId, spec: &AudienceSpec) -> Result<()> {
        for (i, list) in spec.lists.iter().enumerate() {
            if let Err(Error::NotFound { .. }) = self.list(tenant, *list).await {
                return Err(Error::invalid(
                    "campaign",
                    format!("audience.lists[{i}]"),
                    format!("no contact list {list}"),
                ));
            }
        }
        Ok(())
    }
}
