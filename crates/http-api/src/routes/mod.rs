//! Route handlers: each parses its input, calls one service method and maps
//! the result.

pub mod audit;
pub mod auth;
pub mod health;
pub mod records;
pub mod users;
