//! Request schemas as strict as the handlers: every body and parameter the server refuses
//! is refused by its schema too (unknown fields, types, enums, lengths, ranges, formats),
//! so that a client that follows the spec is not turned away and one that does not is.
//!
//! What no schema can say is left to the server and documented on the operation: whether
//! a phone number is a real number (numbering plans), whether an IANA zone fits the
//! number, whether a template parses, whether a webhook URL resolves to a public address,
//! and the rules that tie one field to another (a campaign's window inside its legal
//! window). Those answer 422 (naming the field), or 400 for an unreadable parameter.
//!
//! The schemas are JSON Schema written here, next to the handlers' rules, and attached to
//! the operations by [`complete`].

use serde_json::{Value, json};
use switchboard_engine::template::{MAX_TEMPLATE_BYTES, MAX_VALUE_BYTES, MAX_VARIABLES};

/// A request body schema: its component name and the JSON Schema.
struct Body {
    name: &'static str,
    schema: fn() -> Value,
}

/// Which body each operation takes (`application/json` unless it says otherwise).
const BODIES: &[(&str, &str, Body)] = &[
    ("post", "/api/v1/campaigns", CAMPAIGN),
    ("put", "/api/v1/campaigns/{id}", CAMPAIGN),
    ("patch", "/api/v1/campaigns/{id}", CAMPAIGN_PATCH),
    ("post", "/api/v1/campaigns/{id}/start", CONTROL),
    ("post", "/api/v1/campaigns/{id}/schedule", CONTROL),
    ("post", "/api/v1/campaigns/{id}/pause", CONTROL),
    ("post", "/api/v1/campaigns/{id}/resume", CONTROL),
    ("post", "/api/v1/campaigns/{id}/stop", CONTROL),
    ("post", "/api/v1/contacts", CONTACT),
    ("put", "/api/v1/contacts/{id}", CONTACT),
    ("post", "/api/v1/lists", NEW_LIST),
    ("post", "/api/v1/lists/{id}/members", MEMBERS),
    ("delete", "/api/v1/lists/{id}/members", MEMBERS),
    ("post", "/api/v1/dnc", DNC_ENTRY),
    (
        "delete",
        "/api/v1/suppressions/{phone}",
        SUPPRESSION_REMOVAL,
    ),
    ("post", "/api/v1/audience/preview", AUDIENCE_PREVIEW),
    ("post", "/api/v1/templates/preview", TEMPLATE_PREVIEW),
    ("post", "/api/v1/webhooks", NEW_WEBHOOK),
    ("post", "/api/v1/agent/outcome", OUTCOME_REPORT),
    ("post", "/api/v1/contacts/{id}/erase", ERASURE),
    ("put", "/admin/tenants/{tenant_id}/livekit", TENANT_LIVEKIT),
];

/// A parameter's schema: method, path, parameter name and the schema.
type ParameterSchema = (&'static str, &'static str, &'static str, fn() -> Value);

/// Schemas of query and path parameters, by operation and name.
const PARAMETERS: &[ParameterSchema] = &[
    ("get", "/api/v1/campaigns", "status", campaign_status),
    ("get", "/api/v1/campaigns", "limit", || limit(500)),
    ("get", "/api/v1/campaigns", "cursor", cursor),
    (
        "get",
        "/api/v1/campaigns/{id}/calls",
        "status",
        attempt_status,
    ),
    ("get", "/api/v1/campaigns/{id}/calls", "outcome", outcome),
    ("get", "/api/v1/campaigns/{id}/calls", "since", time),
    ("get", "/api/v1/campaigns/{id}/calls", "until", time),
    ("get", "/api/v1/campaigns/{id}/calls", "limit", || {
        limit(1000)
    }),
    ("get", "/api/v1/campaigns/{id}/calls", "cursor", cursor),
    (
        "get",
        "/api/v1/campaigns/{id}/calls.csv",
        "status",
        attempt_status,
    ),
    (
        "get",
        "/api/v1/campaigns/{id}/calls.csv",
        "outcome",
        outcome,
    ),
    ("get", "/api/v1/campaigns/{id}/calls.csv", "since", time),
    ("get", "/api/v1/campaigns/{id}/calls.csv", "until", time),
    (
        "get",
        "/api/v1/campaigns/{id}/timeseries",
        "bucket_secs",
        || json!({"type": "integer", "minimum": 1, "maximum": 86_400}),
    ),
    ("get", "/api/v1/contacts", "limit", || limit(1000)),
    ("get", "/api/v1/contacts", "cursor", cursor),
    ("post", "/api/v1/contacts/import", "mode", import_mode),
    ("post", "/api/v1/contacts/import", "list", not_blank),
    ("post", "/api/v1/dnc/import", "mode", import_mode),
    ("get", "/api/v1/dnc", "limit", || limit(1000)),
    ("get", "/api/v1/dnc", "cursor", cursor),
    ("get", "/api/v1/suppressions", "limit", || limit(1000)),
    ("get", "/api/v1/webhooks/{id}/deliveries", "limit", || {
        limit(500)
    }),
];

/// Attaches the body and parameter schemas to their operations (in the spec as JSON:
/// utoipa's schema model cannot hold every keyword used here).
pub fn complete(spec: &mut Value) {
    for (_, _, body) in BODIES {
        spec["components"]["schemas"][body.name] = (body.schema)();
    }
    for (method, path, body) in BODIES {
        let Some(operation) = operation(spec, method, path) else {
            continue;
        };
        let mut request = operation
            .get("requestBody")
            .cloned()
            .unwrap_or_else(|| json!({}));
        request["content"] = json!({"application/json": {
            "schema": {"$ref": format!("#/components/schemas/{}", body.name)}
        }});
        request["required"] = json!(body.name != CONTROL.name);
        operation["requestBody"] = request;
    }
    for (method, path, name, parameter_schema) in PARAMETERS {
        let Some(operation) = operation(spec, method, path) else {
            continue;
        };
        let parameters = operation
            .get_mut("parameters")
            .and_then(Value::as_array_mut);
        for parameter in parameters.into_iter().flatten() {
            if parameter["name"] == *name {
                parameter["schema"] = parameter_schema();
            }
        }
    }
    if let Some(operation) = operation(spec, "get", "/api/v1/contacts") {
        for parameter in operation
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if parameter["name"] == "query" {
                // A JSON document in the query string.
                if let Some(p) = parameter.as_object_mut() {
                    p.remove("schema");
                }
                parameter["content"] = json!({"application/json": {"schema": {"type": "object"}}});
            }
        }
    }
    if let Some(operation) = operation(spec, "get", "/api/v1/dnc/check") {
        for parameter in operation
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if parameter["name"] == "number" {
                parameter["schema"] = json!({"type": "string", "minLength": 1});
            }
        }
    }
    if let Some(operation) = operation(spec, "post", "/api/v1/dnc/import") {
        // No lines is an import of nothing.
        operation["requestBody"]["required"] = json!(false);
    }
    spec["components"]["schemas"]["Region"] = region();
    for item in spec["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|p| p.values_mut())
    {
        for operation in item
            .as_object_mut()
            .into_iter()
            .flat_map(|i| i.values_mut())
        {
            for parameter in operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                everywhere(parameter);
            }
        }
    }
}

/// What holds for a parameter of any operation: `region` is a region the server knows,
/// and an empty optional query parameter is the same as none (as forms send them).
fn everywhere(parameter: &mut Value) {
    if parameter["in"] != "query" {
        return;
    }
    if parameter["name"] == "region" {
        parameter["schema"] = json!({"$ref": "#/components/schemas/Region"});
    }
    if parameter["required"] != true
        && let Some(schema) = parameter.get_mut("schema")
    {
        *schema = json!({"anyOf": [schema.take(), {"type": "string", "maxLength": 0}]});
    }
}

/// The regions phone numbers are read in (ISO 3166 codes the server knows, either case).
fn region() -> Value {
    let letters = || (b'A'..=b'Z').map(char::from);
    let codes: Vec<String> = letters()
        .flat_map(|a| letters().map(move |b| format!("{a}{b}")))
        .filter(|code| switchboard_engine::phone::Region::parse(code).is_ok())
        .flat_map(|code| [code.to_ascii_lowercase(), code])
        .collect();
    json!({"type": "string", "enum": codes, "description": "An ISO 3166 region, e.g. US"})
}

/// The operation of this method on this path, if the spec has it.
fn operation<'a>(spec: &'a mut Value, method: &str, path: &str) -> Option<&'a mut Value> {
    spec.get_mut("paths")?.get_mut(path)?.get_mut(method)
}

fn limit(max: u32) -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": max})
}

/// A cursor: the id a previous page ended with.
fn cursor() -> Value {
    json!({"type": "string", "pattern": "^-?[0-9]{1,18}$"})
}

fn time() -> Value {
    json!({"description": "RFC 3339, or a date (midnight UTC)",
           "anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]})
}

fn import_mode() -> Value {
    json!({"type": "string", "enum": ["all_or_nothing", "skip_bad_rows"]})
}

fn campaign_status() -> Value {
    json!({"type": "string", "enum": ["draft", "scheduled", "active", "paused", "completed", "failed", "stopped"]})
}

fn attempt_status() -> Value {
    json!({"type": "string", "enum": ["reserved", "dialing", "ringing", "answered", "bridged", "ended"]})
}

fn outcome() -> Value {
    json!({"type": "string", "enum": ["interested", "not_interested", "callback", "do_not_call", "voicemail", "wrong_number"]})
}

/// A string that is not blank (the server trims it).
fn not_blank() -> Value {
    json!({"type": "string", "pattern": "\\S"})
}

/// An optional value: this schema or `null`.
fn nullable(schema: Value) -> Value {
    json!({"anyOf": [schema, {"type": "null"}]})
}

/// Campaign variables or fallbacks: at most 100, keys of at most 128 bytes, values of at
/// most 4 KiB (the caps of `engine::template`; a schema counts characters, so text beyond
/// ASCII may meet the schema and still be refused: 422).
fn template_values() -> Value {
    json!({"type": "object", "maxProperties": MAX_VARIABLES,
           "description": "At most 100 entries; keys of at most 128 bytes, values of at most 4096 bytes",
           "propertyNames": {"maxLength": 128},
           "additionalProperties": {"type": "string", "maxLength": MAX_VALUE_BYTES}})
}

fn time_of_day() -> Value {
    json!({"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"})
}

const CAMPAIGN: Body = Body {
    name: "CampaignConfig",
    schema: campaign,
};

fn campaign() -> Value {
    let rule = json!({"type": "object", "additionalProperties": false, "properties": {
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": 20},
        "delay_minutes": {"type": "integer", "minimum": 1, "maximum": 4_294_967_295_u64}}});
    let rate = json!({"type": "number", "minimum": 0, "maximum": 1});
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["name"],
        "description": "A campaign configuration; every field but `name` has a default. Rules that tie fields together (ends_at after starts_at, the calling window inside the legal window, pacing.agent_sessions at most max_concurrent_calls, quality.window at least quality.min_sample, the abandonment target at most its cap, template variables that exist, a timezone that exists) are checked by the server: 422 naming each field.",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "\\S"},
            "type": {"type": "string", "enum": ["voice"]},
            "objective": {"type": "string", "enum": ["bookings", "renewals", "lead_generation", "up_sell", "re_engagement", "appointment_confirmation", "custom"]},
            "objective_note": nullable(json!({"type": "string"})),
            "starts_at": nullable(json!({"type": "string", "format": "date-time"})),
            "ends_at": nullable(json!({"type": "string", "format": "date-time"})),
            "audience": {"type": "object", "additionalProperties": false, "properties": {
                "query": {"description": "An audience query (see the README); checked by the server (422)"},
                "lists": {"type": "array", "items": {"type": "integer", "format": "int64"}}}},
            "schedule": {"type": "object", "additionalProperties": false, "properties": {
                "days": {"type": "array", "minItems": 1, "uniqueItems": true, "items": {"type": "string",
                    "enum": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]}},
                "start": time_of_day(),
                "end": time_of_day(),
                "do_not_disturb": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                    "required": ["start", "end"], "properties": {"start": time_of_day(), "end": time_of_day()}}}}},
            "timezone": {"type": "object", "additionalProperties": false, "properties": {
                "default_timezone": {"type": "string", "description": "An IANA zone (e.g. America/New_York); checked by the server (422)"},
                "use_number_region": {"type": "boolean", "enum": [true]}}},
            "retry": {"type": "object", "additionalProperties": false, "properties": {
                "max_attempts": {"type": "integer", "minimum": 1, "maximum": 20},
                "min_gap_minutes": {"type": "integer", "minimum": 0, "maximum": 4_294_967_295_u64},
                "no_answer": rule, "busy": rule, "failed": rule, "voicemail": rule}},
            "priority": {"type": "integer", "minimum": 1, "maximum": 10},
            "max_concurrent_calls": {"type": "integer", "minimum": 1, "maximum": 10_000},
            "daily_cap": nullable(json!({"type": "integer", "minimum": 1, "maximum": 4_294_967_295_u64})),
            "max_calls_per_minute": nullable(json!({"type": "integer", "minimum": 1, "maximum": 100_000})),
            "agent": nullable(json!({"oneOf": [
                {"type": "object", "additionalProperties": false, "required": ["mode", "url"], "properties": {
                    "mode": {"type": "string", "enum": ["media_stream"]},
                    "url": {"type": "string", "pattern": "^wss?://[^\\s]+$"}}},
                {"type": "object", "additionalProperties": false, "required": ["mode", "agent_name"], "properties": {
                    "mode": {"type": "string", "enum": ["livekit"]},
                    "agent_name": not_blank()}},
                {"type": "object", "additionalProperties": false, "required": ["mode", "agent_name", "trunk_id"], "properties": {
                    "mode": {"type": "string", "enum": ["sip"]},
                    "agent_name": not_blank(), "trunk_id": not_blank()}}]})),
            "script": {"type": "object", "additionalProperties": false, "properties": {
                "template": {"type": "string", "maxLength": MAX_TEMPLATE_BYTES, "description": "A script template of at most 16 KiB; whether it parses is checked by the server (422)"},
                "variables": template_values(),
                "fallbacks": template_values()}},
            "success": {"type": "object", "additionalProperties": false, "properties": {
                "outcomes": {"type": "array", "minItems": 1, "uniqueItems": true, "items": outcome()}}},
            "quality": {"type": "object", "additionalProperties": false, "properties": {
                "min_success_rate": nullable(rate.clone()),
                "min_connect_rate": nullable(rate),
                "window": {"type": "integer", "minimum": 1, "maximum": 4_294_967_295_u64},
                "min_sample": {"type": "integer", "minimum": 1, "maximum": 4_294_967_295_u64},
                "confidence": {"type": "number", "exclusiveMinimum": 0.5, "exclusiveMaximum": 1}}},
            "abandonment": {"type": "object", "additionalProperties": false, "properties": {
                "target_rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.03},
                "max_rate": {"type": "number", "minimum": 0, "maximum": 0.03},
                "keep_agent_if_late": {"type": "boolean"},
                "message": {"type": "string", "minLength": 1, "maxLength": 300, "pattern": "\\S"}}},
            "pacing": {"type": "object", "additionalProperties": false, "properties": {
                "mode": {"type": "string", "enum": ["predictive", "progressive"]},
                "agent_sessions": nullable(json!({"type": "integer", "minimum": 1, "maximum": 10_000}))}},
            "budget": nullable(json!({"type": "object", "additionalProperties": false, "required": ["cap_cents"], "properties": {
                "cap_cents": {"type": "integer", "minimum": 1, "maximum": i64::MAX},
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}}})),
            "compliance": {"type": "object", "additionalProperties": false, "properties": {
                "consent_required": {"type": "boolean"},
                "legal_window_start": time_of_day(),
                "legal_window_end": time_of_day()}}
        }
    })
}

const CAMPAIGN_PATCH: Body = Body {
    name: "CampaignPatch",
    schema: campaign_patch,
};

/// A merge patch (RFC 7396) of a campaign: the campaign's fields, `null` removing one.
/// Whether the merged configuration is valid is the server's to say (422).
fn campaign_patch() -> Value {
    let full = campaign();
    let properties: serde_json::Map<String, Value> = full["properties"]
        .as_object()
        .map(|p| p.keys().map(|k| (k.clone(), json!({}))).collect())
        .unwrap_or_default();
    json!({"type": "object", "additionalProperties": false, "properties": properties,
           "description": "The fields to change (RFC 7396 merge patch: null removes a field, objects merge). The merged configuration must be valid (422 naming each field)."})
}

const CONTROL: Body = Body {
    name: "ControlReason",
    schema: || {
        json!({"type": "object", "additionalProperties": false,
               "properties": {"reason": nullable(json!({"type": "string"}))}})
    },
};

const CONTACT: Body = Body {
    name: "ContactInput",
    schema: || {
        let text = || nullable(json!({"type": "string"}));
        let time = || nullable(json!({"type": "string", "format": "date-time"}));
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["phone"],
            "description": "A contact. Whether `phone` is a real number and `timezone` a real IANA zone that fits it is checked by the server (422).",
            "properties": {
                "phone": {"type": "string", "minLength": 1, "examples": ["+14155550101"],
                    "description": "E.164 (+14155550101), or a formatted international number (+1 415-555-0101); national numbers with the server's default region"},
                "name": text(), "email": text(), "company": text(),
                "timezone": nullable(json!({"type": "string", "description": "An IANA zone, e.g. America/New_York"})),
                "attributes": {"type": "object", "description": "Free-form; at most 64 KiB of JSON"},
                "consent_at": time(), "opted_out_at": time()
            }
        })
    },
};

const NEW_LIST: Body = Body {
    name: "NewList",
    schema: || {
        json!({"type": "object", "additionalProperties": false, "required": ["name"],
               "properties": {"name": not_blank()}})
    },
};

const MEMBERS: Body = Body {
    name: "ListMembers",
    schema: || {
        json!({"type": "object", "additionalProperties": false, "required": ["contact_ids"],
               "properties": {"contact_ids": {"type": "array", "items": {"type": "integer", "format": "int64"}}}})
    },
};

const DNC_ENTRY: Body = Body {
    name: "NewDncEntry",
    schema: || {
        json!({"type": "object", "additionalProperties": false, "required": ["pattern"],
               "description": "Whether `pattern` is a real number or prefix is checked by the server (422).",
               "properties": {
                   "pattern": {"type": "string", "description": "A number (+14155550123) or a prefix ending in * (+1900*)"},
                   "reason": nullable(json!({"type": "string"}))}})
    },
};

const SUPPRESSION_REMOVAL: Body = Body {
    name: "SuppressionRemoval",
    schema: || {
        json!({"type": "object", "additionalProperties": false, "required": ["reason"],
               "properties": {"reason": {"type": "string", "pattern": "\\S", "maxLength": 500,
                   "description": "Why the callee may be called again"}}})
    },
};

const ERASURE: Body = Body {
    name: "Erasure",
    schema: || {
        json!({"type": "object", "additionalProperties": false, "required": ["reason"],
               "properties": {"reason": {"type": "string", "pattern": "\\S", "maxLength": 500,
                   "description": "Why the contact's data is erased (e.g. the callee's request)"}}})
    },
};

const TENANT_LIVEKIT: Body = Body {
    name: "TenantLivekit",
    schema: || {
        let names = |what: &str| {
            json!({"type": "array", "maxItems": 100, "description": what,
                   "items": {"type": "string", "maxLength": 128,
                             "pattern": "^[A-Za-z0-9_.:@/-]+$"}})
        };
        json!({"type": "object", "additionalProperties": false,
               "properties": {
                   "trunks": names("Outbound SIP trunk ids the tenant's SIP agents may use"),
                   "agent_names": names("LiveKit agent names the tenant's agents may dispatch")}})
    },
};

const AUDIENCE_PREVIEW: Body = Body {
    name: "AudiencePreview",
    schema: || {
        json!({"type": "object", "additionalProperties": false,
               "description": "Whether `query` is a valid audience query is checked by the server (422, naming where).",
               "properties": {
                   "query": {"description": "An audience query (see the README)"},
                   "lists": {"type": "array", "items": {"type": "integer", "format": "int64"}},
                   "sample": nullable(json!({"type": "integer", "minimum": 0, "maximum": 100}))}})
    },
};

const TEMPLATE_PREVIEW: Body = Body {
    name: "TemplatePreview",
    schema: || {
        json!({"type": "object", "additionalProperties": false, "required": ["template", "contact_id"],
               "description": "Whether `template` parses, and renders to at most 32 KiB, is checked by the server (422).",
               "properties": {
                   "template": {"type": "string", "maxLength": MAX_TEMPLATE_BYTES},
                   "contact_id": {"type": "integer", "format": "int64"},
                   "variables": template_values(),
                   "fallbacks": template_values()}})
    },
};

const NEW_WEBHOOK: Body = Body {
    name: "NewWebhook",
    schema: || {
        json!({"type": "object", "additionalProperties": false, "required": ["url", "events"],
               "description": "Whether `url` resolves to a public address is checked by the server (422).",
               "properties": {
                   "url": {"type": "string", "maxLength": 2048, "pattern": "^https?://[^/\\s][^\\s]*$"},
                   "events": {"type": "array", "minItems": 1, "uniqueItems": true, "items": {"type": "string",
                       "enum": ["call.completed", "campaign.status_changed", "campaign.auto_paused", "contact.opted_out"]}},
                   "description": {"type": "string", "maxLength": 500, "description": "At most 500 bytes"}}})
    },
};

const OUTCOME_REPORT: Body = Body {
    name: "OutcomeReport",
    schema: || {
        json!({"type": "object", "additionalProperties": false, "required": ["outcome"],
               "description": "A `callback` needs `callback_at` (422 without).",
               "properties": {
                   "outcome": outcome(),
                   "call_id": nullable(json!({"type": "string", "description": "The token's call; 422 for another"})),
                   "notes": nullable(json!({"type": "string"})),
                   "callback_at": nullable(json!({"type": "string", "format": "date-time"})),
                   "transcript": {"description": "Text or structured turns"}}})
    },
};
