//! CSV export of contacts, in the form [`import`](crate::import) reads back: the contact
//! columns, then one column per attribute key (sorted). Text is written as is, lists are
//! joined with `;`, other values as JSON.
//!
//! Every CSV Switchboard writes is opened in spreadsheets, and a cell that starts with
//! `=`, `+`, `-`, `@`, a tab or a carriage return is a formula there (`=HYPERLINK(…)` from
//! a contact's name, say). Such a cell is written with a leading `'` ([`neutralize`]),
//! unless it is a plain number (`+14155550123`, `-5`, `2.5`); the import takes the `'`
//! off again ([`unneutralize`]), so an export reads back as it was.

use crate::TenantId;
use crate::contact::Contact;
use crate::error::Result;
use crate::store::{ContactFilter, Store};
use chrono::SecondsFormat;
use serde_json::Value;
use std::io::Write;

/// The fixed columns, before the attribute columns.
pub const CONTACT_EXPORT_COLUMNS: [&str; 7] = [
    "phone",
    "name",
    "email",
    "company",
    "timezone",
    "consent_at",
    "opted_out_at",
];

/// Writes every contact of the tenant as CSV, page by page. Returns how many were written.
pub async fn export_contacts_csv<W: Write>(store: &Store, tenant: TenantId, out: W) -> Result<u64> {
    let keys = store.contact_attribute_keys(tenant).await?;
    let mut writer = csv::Writer::from_writer(out);
    let mut header: Vec<&str> = CONTACT_EXPORT_COLUMNS.to_vec();
    header.extend(keys.iter().map(String::as_str));
    writer.write_record(&header).map_err(io)?;
    let mut filter = ContactFilter {
        limit: Some(1000),
        ..Default::default()
    };
    let mut written = 0;
    loop {
        let page = store.list_contacts(tenant, &filter).await?;
        let Some(last) = page.last() else { break };
        filter.after = Some(last.id);
        for contact in &page {
            let row = record(contact, &keys);
            writer
                .write_record(row.iter().map(|c| neutralize(c).into_owned()))
                .map_err(io)?;
            written += 1;
        }
    }
    writer.flush().map_err(|e| io(e.into()))?;
    Ok(written)
}

/// One contact as a CSV record.
pub fn record(contact: &Contact, keys: &[String]) -> Vec<String> {
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
            .unwrap_or_default()
    };
    let mut row = vec![
        contact.phone.to_string(),
        contact.name.clone().unwrap_or_default(),
        contact.email.clone().unwrap_or_default(),
        contact.company.clone().unwrap_or_default(),
        contact.timezone.clone().unwrap_or_default(),
        time(contact.consent_at),
        time(contact.opted_out_at),
    ];
    row.extend(
        keys.iter()
            .map(|k| contact.attributes.get(k).map(cell).unwrap_or_default()),
    );
    row
}

/// An attribute value as a CSV cell.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items)
            if items
                .iter()
                .all(|v| matches!(v, Value::String(s) if !s.contains(';'))) =>
        {
            items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(";")
        }
        other => other.to_string(),
    }
}

/// The cell as a spreadsheet shows it as text: a leading `'` before anything that would
/// start a formula, plain numbers left alone.
pub fn neutralize(cell: &str) -> std::borrow::Cow<'_, str> {
    let formula = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula && !is_plain_number(cell) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// The cell as it was before [`neutralize`].
pub fn unneutralize(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest)
            if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) && !is_plain_number(rest) =>
        {
            rest
        }
        _ => cell,
    }
}

/// `+14155550123`, `-5`, `2.50`: an optional sign, digits, at most one decimal point.
fn is_plain_number(cell: &str) -> bool {
    let digits = cell.strip_prefix(['+', '-']).unwrap_or(cell);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

fn io(e: csv::Error) -> crate::error::Error {
    crate::error::Error::Database(sqlx::Error::Io(std::io::Error::other(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralized_and_numbers_are_not() {
        for (cell, written) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\r=1", "'\r=1"),
            ("+14155550123", "+14155550123"),
            ("-5", "-5"),
            ("2.50", "2.50"),
            ("Ada", "Ada"),
            ("'quoted", "'quoted"),
            ("", ""),
        ] {
            assert_eq!(neutralize(cell), written, "{cell:?}");
            assert_eq!(unneutralize(&neutralize(cell)), cell, "{cell:?} reads back");
        }
    }
}
