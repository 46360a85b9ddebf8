-- Retention and erasure.
--
-- An erased contact keeps its row as an anonymous tombstone (so its calls still count in
-- its campaigns' figures): its personal fields are cleared, its phone is replaced by
-- 'erased:<id>', and erased_at says when. Every contact read skips it.
ALTER TABLE contacts ADD COLUMN erased_at BIGINT;

-- Every erasure: who, when, why, and how much it touched. The number is kept only as its
-- keyed hash (the same one a suppression of it is kept under).
CREATE TABLE contact_erasures (
    id BIGSERIAL PRIMARY KEY,
    tenant_id BIGINT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    contact_id BIGINT NOT NULL,
    phone_hash TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    suppressed BOOLEAN NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX contact_erasures_tenant ON contact_erasures (tenant_id, id);

-- A suppression's history also records the erasure of its number (action 'erased').
ALTER TABLE suppression_events DROP CONSTRAINT suppression_events_action_check;
ALTER TABLE suppression_events ADD CONSTRAINT suppression_events_action_check
    CHECK (action IN ('added', 'removed', 'erased'));

-- What the purge job and erasure look rows up by.
CREATE INDEX call_attempts_contact ON call_attempts (contact_id);
CREATE INDEX call_attempts_ended ON call_attempts (ended_at) WHERE status = 'ended';
CREATE INDEX call_events_at ON call_events (at);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at) WHERE status <> 'pending';
