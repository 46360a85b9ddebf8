-- Operator keys: whoever runs Switchboard holds them; no tenant does. Kept apart from
-- api_keys so that no tenant-scoped query can ever meet a key without a tenant.
CREATE TABLE operator_keys (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- What a tenant may use of the shared LiveKit project, set by the operator: outbound
-- SIP trunk ids and agent names. No row of a kind: nothing of that kind is allowed.
CREATE TABLE tenant_livekit_allowlist (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('trunk', 'agent_name')),
    value TEXT NOT NULL,
    PRIMARY KEY (tenant_id, kind, value)
);
