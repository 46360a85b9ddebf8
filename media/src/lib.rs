//! How bytes move between Switchboard, the carrier and the AI agent: the Twilio REST
//! client, TwiML, request signatures, the Media Streams codec and agent transports.
#![warn(missing_docs)]
