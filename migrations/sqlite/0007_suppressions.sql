-- What a callee asked for, kept by phone number per tenant: it outlives the contact (deletion,
-- re-import) and is removed only by an audited act. source: agent (a do_not_call outcome),
-- contact (an opt-out set on a contact through the API or an import), sms (a STOP).
CREATE TABLE suppressions (
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    phone TEXT NOT NULL,
    source TEXT NOT NULL,
    reason TEXT,
    requested_by TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, phone)
);

-- Every addition and removal, append-only: who, when, why.
CREATE TABLE suppression_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    phone TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('added', 'removed')),
    source TEXT NOT NULL,
    actor TEXT,
    reason TEXT,
    at INTEGER NOT NULL
);
CREATE INDEX suppression_events_phone ON suppression_events (tenant_id, phone, id);

-- What callees asked for before this table existed.
INSERT INTO suppressions (tenant_id, phone, source, reason, requested_by, created_at)
SELECT tenant_id, pattern, 'agent', reason, NULL, created_at FROM dnc_entries
WHERE kind = 'exact' AND source = 'agent'
ON CONFLICT (tenant_id, phone) DO NOTHING;
INSERT INTO suppressions (tenant_id, phone, source, reason, requested_by, created_at)
SELECT tenant_id, phone, 'contact', 'contact opted out', NULL, opted_out_at FROM contacts
WHERE opted_out_at IS NOT NULL
ON CONFLICT (tenant_id, phone) DO NOTHING;
INSERT INTO suppression_events (tenant_id, phone, action, source, actor, reason, at)
SELECT tenant_id, phone, 'added', source, requested_by, reason, created_at FROM suppressions;
