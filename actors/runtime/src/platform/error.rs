use std::fmt;

use thiserror::Error;

/// The error of a library the runtime does not name in its own types.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a service could not start or lost a dependency.
#[derive(Debug, Error)]
pub enum RuntimeError {
    #[error("{name}: {problem}")]
    Setting { name: &'static str, problem: String },
    #[error("nats, {step}: {source}")]
    Nats {
        step: NatsStep,
        #[source]
        source: BoxError,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("actor: {0}")]
    Spawn(#[from] ractor::SpawnErr),
    #[error("service {0} did not answer as it started")]
    Unresponsive(&'static str),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// What the process was doing with NATS when it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsStep {
    ReadUrl,
    ReadCredentials,
    Connect,
    StartService,
    AddEndpoint,
    EnsureStream(&'static str),
}

impl fmt::Display for NatsStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReadUrl => f.write_str("reading NATS_URL"),
            Self::ReadCredentials => f.write_str("reading NATS_CREDS_FILE"),
            Self::Connect => f.write_str("connecting to NATS_URL"),
            Self::StartService => f.write_str("starting the command service"),
            Self::AddEndpoint => f.write_str("adding a command endpoint"),
            Self::EnsureStream(name) => write!(f, "creating or updating stream {name}"),
        }
    }
}

/// Who must act for the process to start: the operator fixes a setting, the
/// platform brings a dependency back, or a developer fixes a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Misconfigured,
    Unavailable,
    Internal,
}

impl FailureKind {
    /// The `sysexits.h` code, so a supervisor (systemd, Kubernetes) can tell
    /// a restart that may help from one that will not.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Misconfigured => 78,
            Self::Unavailable => 69,
            Self::Internal => 70,
        }
    }
}

impl RuntimeError {
    /// For `map_err`: any of async-nats' error types, with the step it broke.
    pub fn nats<E>(step: NatsStep) -> impl FnOnce(E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |source| Self::Nats {
            step,
            source: Box::new(source),
        }
    }

    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Setting { .. } | Self::Migrate(_) => FailureKind::Misconfigured,
            Self::Nats { step, .. } => match step {
                NatsStep::ReadUrl | NatsStep::ReadCredentials => FailureKind::Misconfigured,
                NatsStep::EnsureStream(_) => FailureKind::Misconfigured,
                NatsStep::Connect | NatsStep::StartService | NatsStep::AddEndpoint => {
                    FailureKind::Unavailable
                }
            },
            Self::Database(error) => match crate::store::postgres::classify(error) {
                crate::store::postgres::DatabaseErrorKind::Unavailable => FailureKind::Unavailable,
                _ => FailureKind::Misconfigured,
            },
            Self::Io(_) => FailureKind::Unavailable,
            Self::Spawn(_) | Self::Unresponsive(_) => FailureKind::Internal,
        }
    }
}
