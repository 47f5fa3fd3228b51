//! Integration tests of the store against real databases: every behaviour
//! runs on SQLite (a temp file) and on Postgres (a private schema in
//! `SLUICE_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/test`).
//! One module per entity; `common` holds the harness.

mod apps;
mod audit;
mod common;
mod connect;
mod directory;
mod keys;
mod request_log;
mod spend;
mod subscriptions;
mod tenants;
mod users;
