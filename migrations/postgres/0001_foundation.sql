-- Switchboard foundation schema (PostgreSQL). Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE tenants (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    max_running_campaigns BIGINT,
    max_concurrent_calls BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    scope TEXT NOT NULL CHECK (scope IN ('tenant', 'admin')),
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE contacts (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    phone TEXT NOT NULL,
    name TEXT,
    email TEXT,
    company TEXT,
    timezone TEXT,
    attributes JSONB NOT NULL DEFAULT '{}',
    consent_at BIGINT,
    opted_out_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, phone)
);
-- Audience queries: equality and membership on attributes use this index (@? / @>).
CREATE INDEX contacts_attributes ON contacts USING GIN (attributes jsonb_path_ops);

CREATE TABLE contact_lists (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE contact_list_members (
    list_id BIGINT NOT NULL REFERENCES contact_lists(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    PRIMARY KEY (list_id, contact_id)
);
CREATE INDEX contact_list_members_contact ON contact_list_members (contact_id);

CREATE TABLE dnc_entries (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    pattern TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('exact', 'prefix')),
    reason TEXT,
    source TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, kind, pattern)
);

CREATE TABLE campaigns (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT NOT NULL DEFAULT '',
    config JSONB NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX campaigns_tenant_status ON campaigns (tenant_id, status);

CREATE TABLE campaign_transitions (
    id BIGSERIAL PRIMARY KEY,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    cause TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail JSONB,
    at BIGINT NOT NULL
);
CREATE INDEX campaign_transitions_campaign ON campaign_transitions (campaign_id, id);

CREATE TABLE campaign_contacts (
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    priority INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    last_attempt_at BIGINT,
    last_result TEXT,
    PRIMARY KEY (campaign_id, contact_id)
);
CREATE INDEX campaign_contacts_due ON campaign_contacts (campaign_id, state, priority DESC, next_attempt_at);

CREATE TABLE call_attempts (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    attempt_no INTEGER NOT NULL,
    phone TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    outcome TEXT,
    carrier_call_id TEXT,
    reserved_at BIGINT NOT NULL,
    dialed_at BIGINT,
    answered_at BIGINT,
    ended_at BIGINT,
    detail JSONB NOT NULL DEFAULT '{}',
    UNIQUE (campaign_id, contact_id, attempt_no)
);
CREATE INDEX call_attempts_campaign ON call_attempts (campaign_id, reserved_at);
CREATE INDEX call_attempts_status ON call_attempts (status);
CREATE INDEX call_attempts_carrier ON call_attempts (carrier_call_id);

CREATE TABLE call_events (
    id BIGSERIAL PRIMARY KEY,
    attempt_id BIGINT NOT NULL REFERENCES call_attempts(id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    kind TEXT NOT NULL,
    data JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX call_events_attempt ON call_events (attempt_id, id);

-- Call events are append-only: they are the record of what happened on a call.
CREATE FUNCTION call_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'call_events is append-only';
END;
$$;
CREATE TRIGGER call_events_append_only_update BEFORE UPDATE ON call_events
    FOR EACH ROW EXECUTE FUNCTION call_events_append_only();
