pub mod audit;
pub mod auth;
pub mod connections;
pub mod notifications;
pub mod projects;
pub mod schedules;
pub mod tasks;
pub mod users;
