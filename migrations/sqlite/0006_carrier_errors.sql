-- What the carrier said about a call that failed (Twilio ErrorCode, the final SIP status),
-- and the highest SequenceNumber of its status callbacks applied so far (callbacks arrive
-- twice and out of order: one at or below it changes nothing).
ALTER TABLE call_attempts ADD COLUMN error_code INTEGER;
ALTER TABLE call_attempts ADD COLUMN sip_response_code INTEGER;
ALTER TABLE call_attempts ADD COLUMN carrier_seq INTEGER;
