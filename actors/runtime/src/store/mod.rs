//! Each service's own Postgres database: created when missing, migrated
//! (the runtime's tables first, then the service's), pooled; and what a
//! database error means, decided once.

pub mod cursor;
pub mod migrations;
pub mod postgres;
