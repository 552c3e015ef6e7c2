//! Route handlers: each parses its input, calls one service method and maps
//! the result.

pub mod auth;
pub mod health;
pub mod mfa;
pub mod passwords;
pub mod records;
pub mod sessions;
pub mod users;
