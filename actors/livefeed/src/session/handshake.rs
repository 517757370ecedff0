//! Who a connection is: a token from `?token=` or a first `authenticate`
//! frame within [`AUTH_TIMEOUT`], and until when it is good; a fresh token
//! for the same user extends the session.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use serde::Deserialize;
use taskflow_runtime::http::tokens::Tokens;
use taskflow_schemas::feed::FeedErrorCode;
use tokio::time::Instant;

use super::FeedContext;
use super::state::{Refusal, first_frame};
use crate::hub::Viewer;

/// How long a client has to send its authenticate frame.
const AUTH_TIMEOUT: Duration = Duration::from_secs(5);

/// `?token=` and `?cursor=` of `GET /ws`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handshake {
    pub token: Option<String>,
    pub cursor: Option<u64>,
}

/// Who is connected, and until when their token is good.
pub struct Session {
    pub viewer: Viewer,
    pub expires_at: Instant,
}

impl Session {
    pub fn from_token(tokens: &Tokens, token: &str) -> Result<Self, Refusal> {
        let claims = tokens
            .verify(token)
            .map_err(|_| Refusal::new(FeedErrorCode::Unauthorized, "invalid or expired token"))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        let left = (claims.exp - now).max(0) as u64;
        Ok(Self {
            viewer: Viewer { user: claims.sub },
            expires_at: Instant::now() + Duration::from_secs(left),
        })
    }
}

pub async fn authenticate(
    socket: &mut WebSocket,
    context: &FeedContext,
    handshake: Handshake,
) -> Result<(Session, Option<u64>), Refusal> {
    let (token, cursor) = match handshake.token {
        Some(token) => (token, handshake.cursor),
        None => {
            let text = match tokio::time::timeout(AUTH_TIMEOUT, socket.recv()).await {
                Ok(Some(Ok(Message::Text(text)))) => text,
                // Larger than MAX_CLIENT_FRAME, say: refused before it was read.
                Ok(Some(Err(error))) => {
                    return Err(Refusal::new(
                        FeedErrorCode::BadFrame,
                        format!("unreadable frame: {error}"),
                    ));
                }
                Ok(Some(Ok(Message::Binary(_)))) => {
                    return Err(Refusal::new(
                        FeedErrorCode::BadFirstFrame,
                        r#"the first frame must be {"type":"authenticate","token":"..."} as JSON text"#,
                    ));
                }
                _ => {
                    return Err(Refusal::new(
                        FeedErrorCode::Unauthorized,
                        format!("no authenticate frame came within {AUTH_TIMEOUT:?}"),
                    ));
                }
            };
            let (token, cursor) = first_frame(&text)?;
            (token, cursor.or(handshake.cursor))
        }
    };
    Ok((Session::from_token(&context.tokens, &token)?, cursor))
}

/// A fresh token for the same user extends the session.
pub fn refresh(session: &mut Session, tokens: &Tokens, token: &str) -> Result<(), Refusal> {
    let fresh = Session::from_token(tokens, token)?;
    if fresh.viewer.user != session.viewer.user {
        return Err(Refusal::new(
            FeedErrorCode::Unauthorized,
            "a token for another user; open another connection",
        ));
    }
    session.expires_at = fresh.expires_at;
    Ok(())
}
