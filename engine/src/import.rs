//! Streaming CSV import of contacts.
//!
//! Each column maps to a contact field (`phone`, `name`, `email`, `company`, `timezone`,
//! `consent_at`, `opted_out_at`), to an attribute, or is ignored. Columns with no explicit
//! mapping are recognised by name (`phone`, `phone_number`, `mobile`, `full_name`, `tz`,
//! ...); every other column becomes an attribute named after its header, lowercased with
//! anything but letters, digits, `_` and `-` turned into `_`.
//!
//! Attribute values are typed by inference unless the column's type is given: `true` /
//! `false` become booleans; plain decimal numbers (no leading zeros, so ZIP codes and
//! account numbers stay text) become numbers; `YYYY-MM-DD` stays a date string; RFC 3339
//! date-times are normalized to UTC (`2024-01-31T09:30:00Z`); a cell with the list
//! separator (`;` by default) or a JSON array becomes a list; an empty cell is left out.
//!
//! Rows are validated as they stream in (phone numbers normalized to E.164 with the
//! default region, timezones checked against the IANA database), written in batches inside
//! one transaction (on SQLite, an uploaded file in one short transaction per batch after a
//! first read checked it: see [`import_csv_file`]), and rejected rows are reported with
//! their row number, column and reason (the first [`MAX_REPORTED_ERRORS`], the rest
//! counted). [`ImportMode::AllOrNothing`] stores nothing if any row is bad;
//! [`ImportMode::SkipBadRows`] stores the good rows.

use crate::contact::{ContactFields, NewContact, parse_timezone};
use crate::phone::{E164, Region};
use crate::store::{Backend, Store, UpsertReport};
use crate::{ContactListId, TenantId};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;

/// What a CSV column feeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The phone number (required: exactly one column).
    Phone,
    /// Full name.
    Name,
    /// Email.
    Email,
    /// Company.
    Company,
    /// IANA timezone.
    Timezone,
    /// When consent was given (RFC 3339 or `YYYY-MM-DD`).
    ConsentAt,
    /// When the contact opted out (RFC 3339 or `YYYY-MM-DD`); any other non-empty value
    /// such as `true` or `yes` means "opted out now".
    OptedOutAt,
    /// An attribute with this key.
    Attribute(String),
    /// Not imported.
    Ignore,
}

/// How attribute values of a column are typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// Inferred per cell (see the module docs).
    #[default]
    Auto,
    /// Always text.
    String,
    /// A number, or the row is rejected.
    Number,
    /// `true/false/yes/no/1/0`, or the row is rejected.
    Bool,
    /// A date or date-time, or the row is rejected.
    Date,
    /// A list split on the separator, each element inferred.
    List,
}

/// Whether one bad row spoils the import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportMode {
    /// Any bad row: nothing is stored (the report lists every bad row).
    #[default]
    AllOrNothing,
    /// Bad rows are reported and left out; good rows are stored.
    SkipBadRows,
}

/// How to read a CSV file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportOptions {
    /// Header name → target, for columns whose name does not say it.
    pub mapping: BTreeMap<String, Target>,
    /// Header name → value type, for attribute columns.
    pub types: BTreeMap<String, ValueType>,
    /// Region for national-format numbers (`US`); without it numbers must be `+...`.
    pub default_region: Option<String>,
    /// Bad rows: all-or-nothing (default) or skip them.
    pub mode: ImportMode,
    /// Field delimiter (default `,`).
    pub delimiter: char,
    /// Separator that turns a cell into a list (default `;`).
    pub list_separator: char,
    /// Most data rows the file may hold; a longer file is refused whole (nothing stored).
    /// `None`: no limit.
    pub max_rows: Option<u64>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            mapping: BTreeMap::new(),
            types: BTreeMap::new(),
            default_region: None,
            mode: ImportMode::AllOrNothing,
            delimiter: ',',
            list_separator: ';',
            max_rows: None,
        }
    }
}

/// One rejected row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    /// Data row number, 1 for the first row after the header.
    pub row: u64,
    /// Line in the file where the row starts (the header is line 1).
    pub line: u64,
    /// The column at fault, if one is.
    pub column: Option<String>,
    /// What is wrong, naming the value.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Data rows read.
    pub rows: u64,
    /// Contacts created.
    pub inserted: u64,
    /// Existing contacts (same phone) updated.
    pub updated: u64,
    /// Rows rejected.
    pub rejected: u64,
    /// Whether anything was stored.
    pub committed: bool,
    /// The rejected rows, the first [`MAX_REPORTED_ERRORS`] of them (`rejected` counts
    /// them all; `errors_omitted` says how many are not listed).
    pub errors: Vec<RowError>,
    /// Rejected rows not listed in `errors`.
    pub errors_omitted: u64,
}

/// Rejected rows a report lists; the rest are counted.
pub const MAX_REPORTED_ERRORS: usize = 1000;

impl ImportReport {
    /// Counts rejected rows, listing them while there is room.
    fn reject(&mut self, errors: Vec<RowError>) {
        self.rejected += errors.len() as u64;
        let room = MAX_REPORTED_ERRORS.saturating_sub(self.errors.len());
        self.errors_omitted += errors.len().saturating_sub(room) as u64;
        self.errors.extend(errors.into_iter().take(room));
    }
}

/// Why an import could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The header is unreadable or the file is not CSV.
    #[error("cannot read the csv header: {0}")]
    Header(String),
    /// No column is the phone number.
    #[error(
        "no phone column: name one `phone` (or map a column to phone); columns are {columns:?}"
    )]
    NoPhoneColumn {
        /// The header as read.
        columns: Vec<String>,
    },
    /// Two columns feed the same field.
    #[error("columns {first:?} and {second:?} both map to {target}")]
    DuplicateTarget {
        /// One column.
        first: String,
        /// The other.
        second: String,
        /// The field.
        target: String,
    },
    /// The options are wrong.
    #[error("invalid import option {option}: {reason}")]
    Option {
        /// Which option.
        option: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The file holds more rows than allowed.
    #[error("the file holds more than {max} data rows, the most one import may; split it")]
    TooManyRows {
        /// The limit.
        max: u64,
    },
    /// Reading the input failed midway.
    #[error("reading the csv failed at line {line}: {reason}")]
    Read {
        /// Line.
        line: u64,
        /// Why.
        reason: String,
    },
}

/// Rows per write batch.
const BATCH: usize = 5_000;

/// What the parsing thread sends to the writer.
enum Parsed {
    /// The header is usable; rows follow.
    Ready,
    /// Contacts to write, rows rejected, rows read.
    Batch {
        contacts: Vec<NewContact>,
        errors: Vec<RowError>,
        rows: u64,
    },
    /// The import cannot go on.
    Fatal(ImportError),
}

/// Imports contacts from CSV into the tenant in one transaction. Fails before touching the
/// database when the header or options are unusable; otherwise returns the report (see
/// the module docs for what is stored).
///
/// Parsing runs on a blocking thread and overlaps with the database writes.
pub async fn import_csv<R: Read + Send + 'static>(
    store: &Store,
    tenant: TenantId,
    input: R,
    options: &ImportOptions,
) -> crate::error::Result<ImportReport> {
    run(store, tenant, input, options, None, Writes::OneTransaction).await
}

/// Imports a CSV file (an upload spooled to disk) into the tenant, adding every stored
/// contact to `list` when one is given (the caller checked it is the tenant's).
///
/// On PostgreSQL the rows are written in one transaction, as [`import_csv`] does: others
/// keep reading and writing meanwhile. SQLite has one writer, so a long transaction would
/// hold back dialing and carrier callbacks for the whole import: there the file is read
/// twice, first to check it (nothing is written when it is unreadable, longer than
/// `max_rows`, or has a bad row in an all-or-nothing import), then to write it in
/// batches of a few thousand rows, each its own short transaction. A crash during the
/// second read leaves the rows of the batches already written; importing the same file
/// again completes it (contacts are upserted by number).
pub async fn import_csv_file(
    store: &Store,
    tenant: TenantId,
    path: &std::path::Path,
    options: &ImportOptions,
    list: Option<ContactListId>,
) -> crate::error::Result<ImportReport> {
    let open = || {
        std::fs::File::open(path).map_err(|e| ImportError::Read {
            line: 0,
            reason: format!("the spooled upload cannot be read: {e}"),
        })
    };
    match store.backend() {
        Backend::Postgres => {
            run(
                store,
                tenant,
                open()?,
                options,
                list,
                Writes::OneTransaction,
            )
            .await
        }
        Backend::Sqlite => {
            let checked = run(store, tenant, open()?, options, None, Writes::Nothing).await?;
            if options.mode == ImportMode::AllOrNothing && checked.rejected > 0 {
                return Ok(checked);
            }
            run(store, tenant, open()?, options, list, Writes::InBatches).await
        }
    }
}

/// How an import's rows reach the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writes {
    /// One transaction, committed at the end (or rolled back).
    OneTransaction,
    /// None: the file is only checked.
    Nothing,
    /// One transaction per batch, suppressions reconciled after the last.
    InBatches,
}

async fn run<R: Read + Send + 'static>(
    store: &Store,
    tenant: TenantId,
    input: R,
    options: &ImportOptions,
    list: Option<ContactListId>,
    writes: Writes,
) -> crate::error::Result<ImportReport> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Parsed>(2);
    let parse_options = options.clone();
    let parsing = tokio::task::spawn_blocking(move || parse_stream(input, &parse_options, &tx));

    match rx.recv().await {
        Some(Parsed::Ready) => {}
        Some(Parsed::Fatal(e)) => return Err(e.into()),
        Some(Parsed::Batch { .. }) | None => {
            return Err(ImportError::Header(
                "the csv parser stopped before reading the header".into(),
            )
            .into());
        }
    }
    // Dropping an open writer rolls its transaction back: every early return below
    // leaves nothing of it behind.
    let mut single = match writes {
        Writes::OneTransaction => Some(store.contact_writer(tenant).await?.adding_to(list)),
        Writes::Nothing | Writes::InBatches => None,
    };
    let mut written = UpsertReport::default();
    let mut report = ImportReport::default();
    while let Some(message) = rx.recv().await {
        match message {
            Parsed::Batch {
                contacts,
                errors,
                rows,
            } => {
                report.rows += rows;
                report.reject(errors);
                let keep = options.mode == ImportMode::SkipBadRows || report.rejected == 0;
                if !keep || contacts.is_empty() {
                    continue;
                }
                match (&mut single, writes) {
                    (Some(writer), _) => writer.write(&contacts).await?,
                    (None, Writes::InBatches) => {
                        let mut writer = store.contact_writer(tenant).await?.adding_to(list);
                        writer.write(&contacts).await?;
                        written += writer.commit_unsynced().await?;
                    }
                    (None, _) => {}
                }
            }
            Parsed::Fatal(e) => return Err(e.into()),
            Parsed::Ready => {}
        }
    }
    if parsing.await.is_err() {
        return Err(ImportError::Read {
            line: report.rows + 1,
            reason: "the csv parser failed".into(),
        }
        .into());
    }
    let commit = options.mode == ImportMode::SkipBadRows || report.rejected == 0;
    match (single, writes) {
        (Some(writer), _) if commit => {
            written = writer.commit().await?;
            report.committed = true;
        }
        (Some(writer), _) => writer.rollback().await?,
        (None, Writes::InBatches) => {
            store.sync_suppressions(tenant).await?;
            report.committed = true;
        }
        (None, _) => {}
    }
    report.inserted = written.inserted;
    report.updated = written.updated;
    Ok(report)
}

/// Reads the whole input, sending batches of parsed rows. Stops early only if the
/// receiver is gone.
fn parse_stream<R: Read>(
    input: R,
    options: &ImportOptions,
    tx: &tokio::sync::mpsc::Sender<Parsed>,
) {
    let send = |m: Parsed| tx.blocking_send(m).is_ok();
    let delimiter = match ascii(options.delimiter, "delimiter") {
        Ok(d) => d,
        Err(e) => {
            send(Parsed::Fatal(e));
            return;
        }
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').to_owned())
            .collect(),
        Err(e) => {
            send(Parsed::Fatal(ImportError::Header(e.to_string())));
            return;
        }
    };
    let parser = match RowParser::new(&headers, options) {
        Ok(p) => p,
        Err(e) => {
            send(Parsed::Fatal(e));
            return;
        }
    };
    if !send(Parsed::Ready) {
        return;
    }
    let all_or_nothing = options.mode == ImportMode::AllOrNothing;
    let mut failed = false;
    let mut row = 0u64;
    let mut contacts = Vec::with_capacity(BATCH);
    let mut errors = Vec::new();
    let mut rows_in_batch = 0u64;
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                send(Parsed::Fatal(ImportError::Read {
                    line,
                    reason: e.to_string(),
                }));
                return;
            }
        }
        row += 1;
        if options.max_rows.is_some_and(|max| row > max) {
            send(Parsed::Fatal(ImportError::TooManyRows {
                max: options.max_rows.unwrap_or_default(),
            }));
            return;
        }
        rows_in_batch += 1;
        let line = record.position().map_or(line, |p| p.line());
        match parser.parse(&record) {
            // After a bad row, an all-or-nothing import only validates the rest.
            Ok(contact) if !(all_or_nothing && failed) => contacts.push(contact),
            Ok(_) => {}
            Err((column, reason)) => {
                failed = true;
                errors.push(RowError {
                    row,
                    line,
                    column,
                    reason,
                });
            }
        }
        if rows_in_batch as usize >= BATCH {
            let batch = Parsed::Batch {
                contacts: std::mem::replace(&mut contacts, Vec::with_capacity(BATCH)),
                errors: std::mem::take(&mut errors),
                rows: std::mem::take(&mut rows_in_batch),
            };
            if !send(batch) {
                return;
            }
        }
    }
    send(Parsed::Batch {
        contacts,
        errors,
        rows: rows_in_batch,
    });
}

fn ascii(c: char, option: &'static str) -> Result<u8, ImportError> {
    u8::try_from(c)
        .ok()
        .filter(u8::is_ascii)
        .ok_or(ImportError::Option {
            option,
            reason: format!("{c:?} is not a single ASCII character"),
        })
}

/// Turns one CSV record into a contact.
struct RowParser {
    columns: Vec<(String, Target, ValueType)>,
    region: Option<Region>,
    separator: char,
}

type CellError = (Option<String>, String);

impl RowParser {
    fn new(headers: &[String], options: &ImportOptions) -> Result<Self, ImportError> {
        let region = match &options.default_region {
            Some(code) => Some(Region::parse(code).map_err(|e| ImportError::Option {
                option: "default_region",
                reason: e.to_string(),
            })?),
            None => None,
        };
        for name in options.mapping.keys().chain(options.types.keys()) {
            if !headers.iter().any(|h| h == name) {
                return Err(ImportError::Option {
                    option: "mapping",
                    reason: format!("column {name:?} is not in the header {headers:?}"),
                });
            }
        }
        let mut columns: Vec<(String, Target, ValueType)> = Vec::with_capacity(headers.len());
        for header in headers {
            let target = options
                .mapping
                .get(header)
                .cloned()
                .unwrap_or_else(|| recognise(header));
            let ty = options.types.get(header).copied().unwrap_or_default();
            if target != Target::Ignore
                && let Some((first, _, _)) = columns.iter().find(|(_, t, _)| *t == target)
            {
                return Err(ImportError::DuplicateTarget {
                    first: first.clone(),
                    second: header.clone(),
                    target: describe(&target),
                });
            }
            columns.push((header.clone(), target, ty));
        }
        if !columns.iter().any(|(_, t, _)| *t == Target::Phone) {
            return Err(ImportError::NoPhoneColumn {
                columns: headers.to_vec(),
            });
        }
        Ok(RowParser {
            columns,
            region,
            separator: options.list_separator,
        })
    }

    fn parse(&self, record: &csv::StringRecord) -> Result<NewContact, CellError> {
        if record.len() > self.columns.len() {
            return Err((
                None,
                format!(
                    "{} fields, but the header has {}",
                    record.len(),
                    self.columns.len()
                ),
            ));
        }
        let mut contact_fields = ContactFields::default();
        for (i, (header, target, ty)) in self.columns.iter().enumerate() {
            let cell = crate::export::unneutralize(record.get(i).unwrap_or(""));
            let err = |reason: String| (Some(header.clone()), reason);
            if cell.is_empty() {
                continue;
            }
            let text = || Some(cell.to_owned());
            match target {
                Target::Phone => {
                    contact_fields.phone =
                        Some(E164::parse(cell, self.region).map_err(|e| err(e.to_string()))?)
                }
                Target::Name => contact_fields.name = text(),
                Target::Email => {
                    if !is_plausible_email(cell) {
                        return Err(err(format!("{cell:?} is not an email address")));
                    }
                    contact_fields.email = text();
                }
                Target::Company => contact_fields.company = text(),
                Target::Timezone => {
                    let tz = parse_timezone(cell).ok_or_else(|| {
                        err(format!(
                            "{cell:?} is not an IANA timezone (e.g. America/New_York)"
                        ))
                    })?;
                    contact_fields.timezone = Some(tz.name().to_owned());
                }
                Target::ConsentAt => {
                    contact_fields.consent_at = Some(
                        parse_instant(cell)
                            .ok_or_else(|| err(format!("{cell:?} is not a date or date-time")))?,
                    )
                }
                Target::OptedOutAt => {
                    contact_fields.opted_out_at = match parse_instant(cell) {
                        Some(at) => Some(at),
                        None if is_false(cell) => None,
                        None => Some(crate::time::now()),
                    }
                }
                Target::Attribute(key) => {
                    let value = typed(cell, *ty, self.separator).map_err(err)?;
                    contact_fields.attributes.insert(key.clone(), value);
                }
                Target::Ignore => {}
            }
        }
        let ContactFields {
            phone,
            name,
            email,
            company,
            timezone,
            attributes,
            consent_at,
            opted_out_at,
        } = contact_fields;
        if let Some(reason) = crate::contact::attributes_too_large(&attributes) {
            return Err((None, reason));
        }
        let phone = phone.ok_or_else(|| {
            let column = self
                .columns
                .iter()
                .find(|(_, t, _)| *t == Target::Phone)
                .map(|(h, _, _)| h.clone());
            (column, "the phone number is empty".to_owned())
        })?;
        if let Some(reason) = timezone
            .as_deref()
            .and_then(|tz| crate::window::zone_mismatch(tz, &phone))
        {
            let column = self
                .columns
                .iter()
                .find(|(_, t, _)| *t == Target::Timezone)
                .map(|(h, _, _)| h.clone());
            return Err((column, reason));
        }
        Ok(NewContact {
            phone,
            name,
            email,
            company,
            timezone,
            attributes,
            consent_at,
            opted_out_at,
        })
    }
}

/// The target a header names without a mapping.
fn recognise(header: &str) -> Target {
    let key = attribute_key(header);
    match key.as_str() {
        "phone" | "phone_number" | "phonenumber" | "mobile" | "mobile_number" | "number"
        | "msisdn" | "tel" | "telephone" => Target::Phone,
        "name" | "full_name" | "fullname" | "contact_name" => Target::Name,
        "email" | "email_address" | "e_mail" => Target::Email,
        "company" | "company_name" | "organization" | "organisation" => Target::Company,
        "timezone" | "time_zone" | "tz" => Target::Timezone,
        "consent_at" | "consented_at" => Target::ConsentAt,
        "opted_out_at" | "opted_out" | "opt_out" => Target::OptedOutAt,
        "" => Target::Ignore,
        _ => Target::Attribute(key),
    }
}

/// The attribute key for a header: lowercase, other characters as `_`.
pub fn attribute_key(header: &str) -> String {
    header
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn describe(target: &Target) -> String {
    match target {
        Target::Attribute(k) => format!("attribute {k:?}"),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
    }
}

fn is_plausible_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

fn is_false(s: &str) -> bool {
    matches!(s.to_ascii_lowercase().as_str(), "false" | "no" | "0" | "n")
}

/// A date (midnight UTC) or an RFC 3339 date-time.
fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc())
}

/// A cell typed as its column says.
fn typed(cell: &str, ty: ValueType, separator: char) -> Result<Value, String> {
    match ty {
        ValueType::Auto => Ok(infer(cell, separator)),
        ValueType::String => Ok(Value::String(cell.to_owned())),
        ValueType::Number => number(cell).ok_or_else(|| format!("{cell:?} is not a number")),
        ValueType::Bool => match cell.to_ascii_lowercase().as_str() {
            "true" | "yes" | "y" | "1" => Ok(Value::Bool(true)),
            "false" | "no" | "n" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!(
                "{cell:?} is not a boolean (true/false, yes/no, 1/0)"
            )),
        },
        ValueType::Date => date(cell)
            .ok_or_else(|| format!("{cell:?} is not a date (YYYY-MM-DD) or RFC 3339 date-time")),
        ValueType::List => Ok(list(cell, separator)),
    }
}

/// Infers a cell's JSON value (see the module docs).
pub fn infer(cell: &str, separator: char) -> Value {
    if cell.starts_with('[')
        && let Ok(Value::Array(items)) = serde_json::from_str::<Value>(cell)
    {
        return Value::Array(items);
    }
    if cell.contains(separator) {
        return list(cell, separator);
    }
    scalar(cell)
}

fn scalar(cell: &str) -> Value {
    match cell {
        "true" | "TRUE" | "True" => return Value::Bool(true),
        "false" | "FALSE" | "False" => return Value::Bool(false),
        _ => {}
    }
    number(cell)
        .or_else(|| date(cell))
        .unwrap_or_else(|| Value::String(cell.to_owned()))
}

fn list(cell: &str, separator: char) -> Value {
    Value::Array(
        cell.split(separator)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(scalar)
            .collect(),
    )
}

/// A plain decimal number without leading zeros (`007` and `+1` stay text).
fn number(cell: &str) -> Option<Value> {
    let digits = cell.strip_prefix('-').unwrap_or(cell);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let int_ok = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && (int == "0" || !int.starts_with('0'));
    let frac_ok = frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    if !int_ok || !frac_ok || cell.len() > 24 {
        return None;
    }
    if frac.is_none()
        && let Ok(i) = cell.parse::<i64>()
    {
        return Some(Value::from(i));
    }
    cell.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Value::from)
}

/// A date kept as `YYYY-MM-DD`, or a date-time normalized to UTC.
fn date(cell: &str) -> Option<Value> {
    if cell.len() == 10 && NaiveDate::parse_from_str(cell, "%Y-%m-%d").is_ok() {
        return Some(Value::String(cell.to_owned()));
    }
    let dt = DateTime::parse_from_rfc3339(cell).ok()?;
    Some(Value::String(
        dt.with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::AutoSi, true),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inference_types_cells_and_keeps_leading_zeros_as_text() {
        assert_eq!(infer("42", ';'), json!(42));
        assert_eq!(infer("1250000.50", ';'), json!(1250000.5));
        assert_eq!(infer("-3", ';'), json!(-3));
        assert_eq!(infer("02134", ';'), json!("02134"));
        assert_eq!(infer("+1", ';'), json!("+1"));
        assert_eq!(infer("true", ';'), json!(true));
        assert_eq!(infer("2024-01-05", ';'), json!("2024-01-05"));
        assert_eq!(
            infer("2024-01-05T10:00:00+02:00", ';'),
            json!("2024-01-05T08:00:00Z")
        );
        assert_eq!(infer("2024-13-05", ';'), json!("2024-13-05"));
        assert_eq!(infer("mlaqa; taadhi", ';'), json!(["mlaqa", "taadhi"]));
        assert_eq!(infer(r#"["a", 1]"#, ';'), json!(["a", 1]));
        assert_eq!(infer("pending", ';'), json!("pending"));
    }

    #[test]
    fn headers_are_recognised_or_become_attribute_keys() {
        assert_eq!(recognise("Phone Number"), Target::Phone);
        assert_eq!(recognise("E-mail"), Target::Attribute("e-mail".into()));
        assert_eq!(recognise("Email"), Target::Email);
        assert_eq!(
            recognise("Unit Type"),
            Target::Attribute("unit_type".into())
        );
        assert_eq!(recognise("TZ"), Target::Timezone);
    }

    #[test]
    fn typed_columns_reject_values_of_the_wrong_type() {
        assert_eq!(typed("12", ValueType::Number, ';'), Ok(json!(12)));
        assert!(
            typed("twelve", ValueType::Number, ';')
                .unwrap_err()
                .contains("twelve")
        );
        assert_eq!(typed("yes", ValueType::Bool, ';'), Ok(json!(true)));
        assert!(
            typed("soon", ValueType::Date, ';')
                .unwrap_err()
                .contains("soon")
        );
        assert_eq!(typed("007", ValueType::String, ';'), Ok(json!("007")));
        assert_eq!(typed("a", ValueType::List, ';'), Ok(json!(["a"])));
    }

    fn parser(headers: &[&str], options: &ImportOptions) -> Result<RowParser, ImportError> {
        RowParser::new(
            &headers.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            options,
        )
    }

    #[test]
    fn a_header_without_a_phone_column_is_refused() {
        let err = parser(&["name", "email"], &ImportOptions::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("no phone column"), "{err}");
    }

    #[test]
    fn two_columns_for_one_field_are_refused() {
        let err = parser(&["phone", "mobile"], &ImportOptions::default())
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("\"phone\" and \"mobile\""),
            "{err}"
        );
    }

    #[test]
    fn a_mapping_for_a_missing_column_is_refused() {
        let mut options = ImportOptions::default();
        options.mapping.insert("cell".into(), Target::Phone);
        let err = parser(&["phone"], &options).err().unwrap();
        assert!(err.to_string().contains("\"cell\""), "{err}");
    }

    #[test]
    fn rows_are_parsed_with_the_default_region() {
        let options = ImportOptions {
            default_region: Some("US".into()),
            ..Default::default()
        };
        let p = parser(&["Phone", "Name", "Neighborhoods", "TZ"], &options).unwrap();
        let rec = csv::StringRecord::from(vec![
            "(415) 555-2671",
            "Ada",
            "mlaqa;taadhi",
            "America/Chicago",
        ]);
        let c = p.parse(&rec).unwrap();
        assert_eq!(c.phone.as_str(), "+14155552671");
        assert_eq!(c.name.as_deref(), Some("Ada"));
        assert_eq!(c.timezone.as_deref(), Some("America/Chicago"));
        assert_eq!(c.attributes["neighborhoods"], json!(["mlaqa", "taadhi"]));
    }

    #[test]
    fn bad_cells_name_the_column_and_value() {
        let p = parser(&["phone", "email", "timezone"], &ImportOptions::default()).unwrap();
        let (col, reason) = p
            .parse(&csv::StringRecord::from(vec!["555", "", ""]))
            .unwrap_err();
        assert_eq!(col.as_deref(), Some("phone"));
        assert!(reason.contains("555"), "{reason}");
        let (col, reason) = p
            .parse(&csv::StringRecord::from(vec!["+14155552671", "nope", ""]))
            .unwrap_err();
        assert_eq!(col.as_deref(), Some("email"));
        assert!(reason.contains("nope"));
        let (col, _) = p
            .parse(&csv::StringRecord::from(vec![
                "+14155552671",
                "",
                "Mars/Base",
            ]))
            .unwrap_err();
        assert_eq!(col.as_deref(), Some("timezone"));
        let (col, reason) = p
            .parse(&csv::StringRecord::from(vec![
                "+12125550123",
                "",
                "Asia/Tokyo",
            ]))
            .unwrap_err();
        assert_eq!(col.as_deref(), Some("timezone"));
        assert!(reason.contains("outside the country"), "{reason}");
        let (col, reason) = p
            .parse(&csv::StringRecord::from(vec!["", "", ""]))
            .unwrap_err();
        assert_eq!(col.as_deref(), Some("phone"));
        assert!(reason.contains("empty"));
    }
}
