-- Retention and erasure.
--
-- An erased contact keeps its row as an anonymous tombstone (so its calls still count in
-- its campaigns' figures): its personal fields are cleared, its phone is replaced by
-- 'erased:<id>', and erased_at says when. Every contact read skips it.
ALTER TABLE contacts ADD COLUMN erased_at INTEGER;

-- Every erasure: who, when, why, and how much it touched. The number is kept only as its
-- keyed hash (the same one a suppression of it is kept under).
CREATE TABLE contact_erasures (
    id INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    contact_id INTEGER NOT NULL,
    phone_hash TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    suppressed INTEGER NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX contact_erasures_tenant ON contact_erasures (tenant_id, id);

-- A suppression's history also records the erasure of its number (action 'erased'). SQLite
-- cannot change a CHECK constraint in place: the table is rebuilt.
CREATE TABLE suppression_events_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    phone TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('added', 'removed', 'erased')),
    source TEXT NOT NULL,
    actor TEXT,
    reason TEXT,
    at INTEGER NOT NULL
);
INSERT INTO suppression_events_new (id, tenant_id, phone, action, source, actor, reason, at)
SELECT id, tenant_id, phone, action, source, actor, reason, at FROM suppression_events;
DROP TABLE suppression_events;
ALTER TABLE suppression_events_new RENAME TO suppression_events;
CREATE INDEX suppression_events_phone ON suppression_events (tenant_id, phone, id);

-- What the purge job and erasure look rows up by.
CREATE INDEX call_attempts_contact ON call_attempts (contact_id);
CREATE INDEX call_attempts_ended ON call_attempts (ended_at) WHERE status = 'ended';
CREATE INDEX call_events_at ON call_events (at);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at) WHERE status <> 'pending';
