-- Switchboard foundation schema (SQLite). Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE tenants (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    max_running_campaigns INTEGER,
    max_concurrent_calls INTEGER,
    created_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL CHECK (scope IN ('tenant', 'admin')),
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE contacts (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    phone TEXT NOT NULL,
    name TEXT,
    email TEXT,
    company TEXT,
    timezone TEXT,
    attributes TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(attributes)),
    consent_at INTEGER,
    opted_out_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (tenant_id, phone)
);

CREATE TABLE contact_lists (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE contact_list_members (
    list_id INTEGER NOT NULL REFERENCES contact_lists(id) ON DELETE CASCADE,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    PRIMARY KEY (list_id, contact_id)
);
CREATE INDEX contact_list_members_contact ON contact_list_members (contact_id);

CREATE TABLE dnc_entries (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    pattern TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('exact', 'prefix')),
    reason TEXT,
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (tenant_id, kind, pattern)
);

CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT NOT NULL DEFAULT '',
    config TEXT NOT NULL CHECK (json_valid(config)),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX campaigns_tenant_status ON campaigns (tenant_id, status);

CREATE TABLE campaign_transitions (
    id INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    cause TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT CHECK (detail IS NULL OR json_valid(detail)),
    at INTEGER NOT NULL
);
CREATE INDEX campaign_transitions_campaign ON campaign_transitions (campaign_id, id);

CREATE TABLE campaign_contacts (
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    priority INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    last_attempt_at INTEGER,
    last_result TEXT,
    PRIMARY KEY (campaign_id, contact_id)
);
CREATE INDEX campaign_contacts_due ON campaign_contacts (campaign_id, state, priority DESC, next_attempt_at);

CREATE TABLE call_attempts (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    attempt_no INTEGER NOT NULL,
    phone TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    outcome TEXT,
    carrier_call_id TEXT,
    reserved_at INTEGER NOT NULL,
    dialed_at INTEGER,
    answered_at INTEGER,
    ended_at INTEGER,
    detail TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(detail)),
    UNIQUE (campaign_id, contact_id, attempt_no)
);
CREATE INDEX call_attempts_campaign ON call_attempts (campaign_id, reserved_at);
CREATE INDEX call_attempts_status ON call_attempts (status);
CREATE INDEX call_attempts_carrier ON call_attempts (carrier_call_id);

CREATE TABLE call_events (
    id INTEGER PRIMARY KEY,
    attempt_id INTEGER NOT NULL REFERENCES call_attempts(id) ON DELETE CASCADE,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(data))
);
CREATE INDEX call_events_attempt ON call_events (attempt_id, id);

-- Call events are append-only: they are the record of what happened on a call.
CREATE TRIGGER call_events_append_only_update BEFORE UPDATE ON call_events
BEGIN
    SELECT RAISE(ABORT, 'call_events is append-only');
END;
