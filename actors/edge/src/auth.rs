//! The bearer token check: the edge verifies tokens itself.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use taskflow_schemas::commands::{AsUser, Principal};
use taskflow_schemas::user::Role;
use uuid::Uuid;

use crate::EdgeState;
use crate::error::ApiError;

/// The signed-in user of a request.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    pub id: Uuid,
    pub role: Role,
}

impl AuthUser {
    /// Who the commands of this request act for.
    pub fn principal(&self) -> Principal {
        Principal {
            id: self.id,
            role: self.role,
        }
    }

    /// `body` as a request made on this user's behalf.
    pub fn acting<B>(&self, body: B) -> AsUser<B> {
        AsUser::new(self.principal(), body)
    }
}

impl FromRequestParts<EdgeState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &EdgeState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        let claims = state
            .tokens
            .verify(token.trim())
            .map_err(|_| ApiError::unauthorized("invalid or expired token"))?;
        state.limits.check_user(claims.sub)?;
        Ok(AuthUser {
            id: claims.sub,
            role: claims.role,
        })
    }
}
