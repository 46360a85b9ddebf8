-- Calls a tenant has live, counted on every dial tick against its concurrent-call limit.
CREATE INDEX call_attempts_tenant_live ON call_attempts (tenant_id) WHERE status <> 'ended';
