//! Access tokens: HS256 JWTs that identity signs and the edge verifies with
//! the shared `TASKFLOW_JWT_SECRET`.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use taskflow_schemas::user::{AccessClaims, Role};
use uuid::Uuid;

/// How long a token is good for.
pub const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid or expired token")]
pub struct InvalidToken;

impl Tokens {
    pub fn new(secret: &str) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    pub fn issue(&self, user: Uuid, role: Role) -> String {
        self.issue_for(user, role, TOKEN_TTL)
    }

    /// A token good for `ttl` only.
    pub fn issue_for(&self, user: Uuid, role: Role, ttl: Duration) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            sub: user,
            role,
            iat: now,
            exp: now + ttl.as_secs() as i64,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, InvalidToken> {
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| InvalidToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_with_its_secret_only() {
        let tokens = Tokens::new("a-secret-of-at-least-thirty-two-characters");
        let user = Uuid::now_v7();
        let token = tokens.issue(user, Role::Member);
        let claims = tokens.verify(&token).unwrap();
        assert_eq!(claims.sub, user);
        assert_eq!(claims.role, Role::Member);
        let other = Tokens::new("another-secret-of-thirty-two-characters!");
        assert!(other.verify(&token).is_err());
        assert!(tokens.verify("not.a.token").is_err());
    }
}
