//! sluice: an AI gateway. One process between applications and LLM providers
//! that authenticates, guards, routes, translates and records every call.
//! See `ARCHITECTURE.md` at the repository root for the bird's-eye view.

pub mod admin;
pub mod alerts;
pub mod cache;
pub mod cli;
pub mod config;
pub mod directory;
pub mod dispatch;
pub mod error;
pub mod http;
pub mod jwt;
pub mod mock;
pub mod pipeline;
pub mod policy;
pub mod pricing;
pub mod reload;
pub mod routing;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod telemetry;
pub mod tokens;
