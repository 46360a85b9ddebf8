-- Server-wide values that must survive restarts and be shared by every process
-- (e.g. the secret that signs per-call agent tokens).
CREATE TABLE server_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
