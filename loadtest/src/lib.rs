//! The simulated Twilio carrier, the scripted agent and the load driver.
#![warn(missing_docs)]
