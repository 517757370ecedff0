pub mod audit;
pub mod auth;
pub mod tasks;
pub mod users;
