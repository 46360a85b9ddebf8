-- Several processes on one database. A running campaign is run by the process holding its
-- lease (owner: that process's instance id; expires_at: UTC ms by the database's clock),
-- renewed by heartbeat and taken over by another process only once it has expired.
CREATE TABLE campaign_leases (
    campaign_id BIGINT PRIMARY KEY REFERENCES campaigns(id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL
);

-- A carrier account's calls-per-second limit, shared by every process: one row per dial
-- the account may place in one window; a dial takes a slot last used a whole window ago
-- (used_at: UTC ms by the database's clock), so no window holds more dials than slots.
CREATE TABLE carrier_dial_slots (
    account TEXT NOT NULL,
    slot INTEGER NOT NULL,
    used_at BIGINT NOT NULL,
    PRIMARY KEY (account, slot)
);
