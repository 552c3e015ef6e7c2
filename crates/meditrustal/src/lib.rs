//! The MediTrustAl service: configuration, key resolution and wiring.
//!
//! The binary in `main.rs` parses the command line and calls into this
//! library; the API tests start the same service in-process through
//! [`app::start`].

pub mod app;
pub mod audit;
pub mod backup;
pub mod config;
pub mod keys;
pub mod metrics;
pub mod operator;
pub mod progress;
pub mod receipt;
pub mod rotation;
pub mod telemetry;
