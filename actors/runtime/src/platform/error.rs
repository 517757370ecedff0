use thiserror::Error;

/// Why a service could not start or lost a dependency.
#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("{name}: {problem}")]
    Setting { name: &'static str, problem: String },
    #[error("nats: {0}")]
    Nats(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stream {stream}: {problem}")]
    Stream { stream: String, problem: String },
    #[error("actor: {0}")]
    Actor(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl RuntimeError {
    pub fn nats(error: impl std::fmt::Display) -> Self {
        Self::Nats(error.to_string())
    }
}

impl From<ractor::SpawnErr> for RuntimeError {
    fn from(error: ractor::SpawnErr) -> Self {
        Self::Actor(error.to_string())
    }
}
