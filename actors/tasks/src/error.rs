use taskflow_schemas::{ErrorBody, ErrorCode};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TasksError {
    /// The caller's mistake or a rule of the product; goes back as it is.
    #[error("{0}")]
    Rejected(ErrorBody),
    /// Refused by what the directory knows of users and memberships, which
    /// may be a moment behind a change just made in another service: the
    /// command is tried again as the directory changes, for a moment, before
    /// this goes back as it is.
    #[error("{0}")]
    Unsettled(ErrorBody),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<ErrorBody> for TasksError {
    fn from(body: ErrorBody) -> Self {
        Self::Rejected(body)
    }
}

impl From<TasksError> for ErrorBody {
    fn from(error: TasksError) -> Self {
        error.into_body()
    }
}

impl TasksError {
    pub fn not_found() -> Self {
        Self::Rejected(ErrorBody::new(ErrorCode::NotFound, "task not found"))
    }

    pub fn forbidden(what: &str) -> Self {
        Self::Rejected(Self::forbidden_body(&format!("{what} this task")))
    }

    pub fn forbidden_body(what: &str) -> ErrorBody {
        ErrorBody::new(ErrorCode::Forbidden, format!("you may not {what}"))
    }

    pub fn stale(current: i64) -> Self {
        Self::Rejected(ErrorBody::new(
            ErrorCode::PreconditionFailed,
            format!("the task changed: it is at version {current}"),
        ))
    }

    /// The reply for the caller; internal details stay in the log.
    pub fn into_body(self) -> ErrorBody {
        match self {
            Self::Rejected(body) | Self::Unsettled(body) => body,
            Self::Database(error) => taskflow_runtime::store::postgres::error_body("tasks", &error),
        }
    }
}
