//! Tenants, contacts and contact lists.

use crate::{ContactId, ContactListId, E164, TenantId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A tenant: one call center with its own contacts, campaigns, keys and do-not-call list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tenant {
    /// Id.
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// How many campaigns may run at once (`None`: no limit).
    pub max_running_campaigns: Option<i64>,
    /// How many calls may be live at once across all campaigns (`None`: no limit).
    pub max_concurrent_calls: Option<i64>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// The fields of a contact, as given on create or import. The phone number is the
/// contact's identity within a tenant: importing the same number again updates it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContactFields {
    /// Phone number, E.164.
    pub phone: Option<E164>,
    /// Full name.
    pub name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Company.
    pub company: Option<String>,
    /// IANA timezone (`America/New_York`); validated on the way in.
    pub timezone: Option<String>,
    /// Free-form attributes, queried by audience queries and used by templates.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// When the contact gave consent to be called, if recorded.
    pub consent_at: Option<DateTime<Utc>>,
    /// When the contact opted out; an opted-out contact is never dialed.
    pub opted_out_at: Option<DateTime<Utc>>,
}

/// A new or updated contact with a phone number, ready to be stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewContact {
    /// Phone number, E.164: the contact's key within its tenant.
    pub phone: E164,
    /// Full name.
    pub name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Company.
    pub company: Option<String>,
    /// IANA timezone.
    pub timezone: Option<String>,
    /// Free-form attributes.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// When consent was given.
    pub consent_at: Option<DateTime<Utc>>,
    /// When the contact opted out.
    pub opted_out_at: Option<DateTime<Utc>>,
}

impl NewContact {
    /// A contact with just a phone number.
    pub fn new(phone: E164) -> Self {
        NewContact {
            phone,
            name: None,
            email: None,
            company: None,
            timezone: None,
            attributes: Map::new(),
            consent_at: None,
            opted_out_at: None,
        }
    }
}

/// A stored contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    /// Id.
    pub id: ContactId,
    /// Owner.
    pub tenant_id: TenantId,
    /// Phone number, E.164.
    pub phone: E164,
    /// Full name.
    pub name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Company.
    pub company: Option<String>,
    /// IANA timezone.
    pub timezone: Option<String>,
    /// Free-form attributes.
    pub attributes: Map<String, Value>,
    /// When consent was given.
    pub consent_at: Option<DateTime<Utc>>,
    /// When the contact opted out.
    pub opted_out_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// The contact fields that are columns, not attributes. Audience queries and templates
/// address these by name; any other name is an attribute.
pub const CONTACT_COLUMNS: &[&str] = &["phone", "name", "email", "company", "timezone"];

impl Contact {
    /// The value a field name resolves to, as JSON: a column (`name`, `phone`, ...) or an
    /// attribute path (`unit_type`, `address.city`; `attributes.name` is always the
    /// attribute, never the column). `None` when the field is missing.
    pub fn field(&self, path: &[String]) -> Option<Value> {
        let (first, rest) = match path.split_first()? {
            (first, rest) if first == "attributes" && !rest.is_empty() => rest.split_first()?,
            (first, rest) if rest.is_empty() || first != "attributes" => {
                return self.field_unprefixed(first, rest);
            }
            _ => return None,
        };
        let mut current = self.attributes.get(first)?;
        for key in rest {
            current = current.as_object()?.get(key)?;
        }
        Some(current.clone())
    }

    fn field_unprefixed(&self, first: &String, rest: &[String]) -> Option<Value> {
        let column = |v: Option<&String>| v.map(|s| Value::String(s.clone()));
        if rest.is_empty() {
            match first.as_str() {
                "phone" => return Some(Value::String(self.phone.to_string())),
                "name" => return column(self.name.as_ref()),
                "email" => return column(self.email.as_ref()),
                "company" => return column(self.company.as_ref()),
                "timezone" => return column(self.timezone.as_ref()),
                _ => {}
            }
        }
        let mut current = self.attributes.get(first)?;
        for key in rest {
            current = current.as_object()?.get(key)?;
        }
        Some(current.clone())
    }
}

/// A named list of contacts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactList {
    /// Id.
    pub id: ContactListId,
    /// Owner.
    pub tenant_id: TenantId,
    /// Name, unique per tenant.
    pub name: String,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// Largest a contact's attributes may be, as JSON text: they are rendered into scripts and
/// sent to agents with every call.
pub const MAX_ATTRIBUTES_BYTES: usize = 64 * 1024;

/// Why a contact's attributes are too large, if they are.
pub fn attributes_too_large(attributes: &serde_json::Map<String, Value>) -> Option<String> {
    let len = serde_json::to_string(attributes).map_or(usize::MAX, |t| t.len());
    (len > MAX_ATTRIBUTES_BYTES).then(|| {
        format!("the attributes are {len} bytes of JSON: at most {MAX_ATTRIBUTES_BYTES} allowed")
    })
}

/// Checks an IANA timezone name, returning the parsed zone.
pub fn parse_timezone(name: &str) -> Option<chrono_tz::Tz> {
    name.trim().parse::<chrono_tz::Tz>().ok()
}
