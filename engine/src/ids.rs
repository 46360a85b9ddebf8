//! Newtype ids: a campaign id can never be passed where a contact id is expected.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// The raw database value.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }

        impl From<i64> for $name {
            fn from(v: i64) -> Self {
                $name(v)
            }
        }

        impl $name {
            /// The prefix used in actor names and logs, e.g. `campaign`.
            pub const PREFIX: &'static str = $prefix;
        }
    };
}

id_type!(
    /// A tenant: one call center, owning its contacts, campaigns and do-not-call list.
    TenantId,
    "tenant"
);
id_type!(
    /// A contact of a tenant.
    ContactId,
    "contact"
);
id_type!(
    /// A named list of contacts.
    ContactListId,
    "list"
);
id_type!(
    /// A campaign.
    CampaignId,
    "campaign"
);
id_type!(
    /// One call attempt of a campaign to a contact.
    AttemptId,
    "attempt"
);
id_type!(
    /// An API key of a tenant.
    ApiKeyId,
    "key"
);
id_type!(
    /// An operator key: held by whoever runs Switchboard, never by a tenant.
    OperatorKeyId,
    "operator_key"
);
id_type!(
    /// An entry in a tenant's do-not-call list.
    DncEntryId,
    "dnc"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_display_and_parse_round_trip() {
        let id: CampaignId = "42".parse().unwrap();
        assert_eq!(id, CampaignId(42));
        assert_eq!(id.to_string(), "42");
        assert_eq!(serde_json::to_string(&id).unwrap(), "42");
    }
}
id_type!(
    /// A tenant's outbound webhook subscription.
    WebhookId,
    "webhook"
);
id_type!(
    /// One event's delivery to one webhook subscription.
    DeliveryId,
    "delivery"
);
