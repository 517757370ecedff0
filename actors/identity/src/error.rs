use taskflow_schemas::{ErrorBody, ErrorCode};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum IdentityError {
    /// The caller's mistake or a rule of the product; goes back as it is.
    #[error("{0}")]
    Rejected(ErrorBody),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("password hashing: {0}")]
    Hashing(String),
    /// Too many sign-ins wait for the password hashing pool.
    #[error("too many sign-ins at once")]
    Busy,
    /// Saved, but not every service applied it within the bound.
    #[error("the change is not yet in effect everywhere")]
    NotInEffect,
}

impl From<ErrorBody> for IdentityError {
    fn from(body: ErrorBody) -> Self {
        Self::Rejected(body)
    }
}

impl IdentityError {
    pub fn bad_credentials() -> Self {
        Self::Rejected(ErrorBody::new(
            ErrorCode::Unauthorized,
            "invalid email or password",
        ))
    }

    pub fn user_not_found() -> Self {
        Self::Rejected(ErrorBody::new(ErrorCode::NotFound, "user not found"))
    }
}

impl From<IdentityError> for ErrorBody {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::Rejected(body) => body,
            IdentityError::Database(error) => {
                taskflow_runtime::store::postgres::error_body("identity", &error)
            }
            IdentityError::Busy => ErrorBody::new(
                ErrorCode::ServiceUnavailable,
                "too many sign-ins at once, try again shortly",
            ),
            IdentityError::NotInEffect => taskflow_runtime::in_effect::not_yet_body(),
            IdentityError::Hashing(error) => {
                tracing::error!(service = "identity", %error, "password hashing failed");
                ErrorBody::new(ErrorCode::Internal, "internal error")
            }
        }
    }
}
