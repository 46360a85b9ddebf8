//! The schemas of the main answers: a campaign, a contact, and the pages of them, attached
//! to the operations that return them (JSON Schema, like [`super::requests`]).

use serde_json::{Value, json};

/// Which answer of which operation is which schema.
const ANSWERS: &[(&str, &str, &str, &str)] = &[
    ("post", "/api/v1/campaigns", "201", "Campaign"),
    ("get", "/api/v1/campaigns", "200", "CampaignPage"),
    ("get", "/api/v1/campaigns/{id}", "200", "Campaign"),
    ("put", "/api/v1/campaigns/{id}", "200", "Campaign"),
    ("patch", "/api/v1/campaigns/{id}", "200", "Campaign"),
    (
        "post",
        "/api/v1/campaigns/{id}/duplicate",
        "201",
        "Campaign",
    ),
    ("post", "/api/v1/campaigns/{id}/start", "200", "Campaign"),
    ("post", "/api/v1/campaigns/{id}/schedule", "200", "Campaign"),
    ("post", "/api/v1/campaigns/{id}/pause", "200", "Campaign"),
    ("post", "/api/v1/campaigns/{id}/resume", "200", "Campaign"),
    ("post", "/api/v1/campaigns/{id}/stop", "200", "Campaign"),
    ("post", "/api/v1/contacts", "200", "Contact"),
    ("post", "/api/v1/contacts", "201", "Contact"),
    ("get", "/api/v1/contacts", "200", "ContactPage"),
    ("get", "/api/v1/contacts/{id}", "200", "Contact"),
    ("put", "/api/v1/contacts/{id}", "200", "Contact"),
];

/// Adds the answer schemas and points the operations' answers at them.
pub fn complete(spec: &mut Value) {
    let schemas = &mut spec["components"]["schemas"];
    schemas["Campaign"] = campaign();
    schemas["Contact"] = contact();
    schemas["CampaignPage"] = page("Campaign");
    schemas["ContactPage"] = page("Contact");
    for (method, path, status, name) in ANSWERS {
        let content = spec
            .get_mut("paths")
            .and_then(|p| p.get_mut(*path))
            .and_then(|i| i.get_mut(*method))
            .and_then(|o| o.get_mut("responses"))
            .and_then(|r| r.get_mut(*status))
            .and_then(|r| r.get_mut("content"))
            .and_then(|c| c.get_mut("application/json"));
        if let Some(content) = content {
            content["schema"] = json!({"$ref": format!("#/components/schemas/{name}")});
        }
    }
}

fn time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn optional(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "null"}]})
}

fn campaign() -> Value {
    json!({
        "type": "object",
        "required": ["id", "tenant_id", "status", "status_reason", "config", "created_at", "updated_at"],
        "properties": {
            "id": {"type": "integer"},
            "tenant_id": {"type": "integer"},
            "status": {"type": "string", "enum": ["draft", "scheduled", "active", "paused", "completed", "failed", "stopped"]},
            "status_reason": {"type": "string"},
            "config": {"type": "object", "description": "The configuration, every field filled (see CampaignConfig)"},
            "created_at": time(),
            "updated_at": time()
        }
    })
}

fn contact() -> Value {
    let text = || optional(json!({"type": "string"}));
    json!({
        "type": "object",
        "required": ["id", "tenant_id", "phone", "name", "email", "company", "timezone", "attributes", "consent_at", "opted_out_at", "created_at", "updated_at"],
        "properties": {
            "id": {"type": "integer"},
            "tenant_id": {"type": "integer"},
            "phone": {"type": "string", "pattern": "^\\+[0-9]+$", "description": "E.164"},
            "name": text(), "email": text(), "company": text(), "timezone": text(),
            "attributes": {"type": "object"},
            "consent_at": optional(time()),
            "opted_out_at": optional(time()),
            "created_at": time(),
            "updated_at": time()
        }
    })
}

/// A page of a collection: the items and the cursor of the next page (`null`: the last).
fn page(item: &str) -> Value {
    json!({
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
            "next_cursor": optional(json!({"type": "string"}))
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_main_answers_have_their_schemas() {
        let spec = crate::openapi::spec();
        for (method, path, status, name) in super::ANSWERS {
            let schema = &spec["paths"][path][method]["responses"][status]["content"]["application/json"]
                ["schema"];
            assert_eq!(
                schema["$ref"],
                format!("#/components/schemas/{name}"),
                "{method} {path} {status}"
            );
            assert!(spec["components"]["schemas"].get(name).is_some());
        }
    }
}
