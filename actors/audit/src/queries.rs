//! The audit service's commands: `ListAuditRecords` and `GetAuditRecord`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::PgPool;
use taskflow_schemas::audit::{AuditQuery, AuditRecord, AuditRef};
use taskflow_schemas::commands::{Page, Principal, page_size};
use taskflow_schemas::{ErrorBody, ErrorCode};

use taskflow_runtime::access::Reader;

use crate::store;

pub struct AuditQueries {
    pool: PgPool,
}

impl AuditQueries {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Whose records `actor` sees: their own reading, or all for an admin
    /// (as the directory says now, whatever role their token was signed with).
    async fn reader(&self, actor: Principal) -> Result<Reader, ErrorBody> {
        Reader::of(&self.pool, actor.id)
            .await
            .map_err(database_error)
    }

    pub async fn list(
        &self,
        actor: Principal,
        query: AuditQuery,
    ) -> Result<Page<AuditRecord>, ErrorBody> {
        let limit = page_size(query.limit)?;
        for (field, value, most) in [
            ("event_type", &query.event_type, 64),
            ("correlation_id", &query.correlation_id, 128),
        ] {
            if value
                .as_deref()
                .is_some_and(|value| value.chars().count() > most)
            {
                return Err(ErrorBody::invalid(
                    field,
                    format!("at most {most} characters"),
                ));
            }
        }
        let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
        let reader = self.reader(actor).await?;
        let listed = store::list(&self.pool, &reader, &query, after, i64::from(limit) + 1)
            .await
            .map_err(database_error)?;
        let page = Page::cut(listed, limit as usize, |listed| {
            encode_cursor(listed.recorded_seq)
        });
        Ok(Page {
            items: page.items.into_iter().map(|listed| listed.record).collect(),
            next_cursor: page.next_cursor,
        })
    }

    pub async fn get(
        &self,
        actor: Principal,
        reference: AuditRef,
    ) -> Result<AuditRecord, ErrorBody> {
        let reader = self.reader(actor).await?;
        store::get(&self.pool, &reader, reference.record_id)
            .await
            .map_err(database_error)?
            .ok_or_else(|| ErrorBody::new(ErrorCode::NotFound, "audit record not found"))
    }
}

fn encode_cursor(recorded_seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(recorded_seq.to_be_bytes())
}

fn decode_cursor(cursor: &str) -> Result<i64, ErrorBody> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .map(i64::from_be_bytes)
        .ok_or_else(|| ErrorBody::refused("cursor", "is not a cursor this API gave out"))
}

fn database_error(error: sqlx::Error) -> ErrorBody {
    taskflow_runtime::store::postgres::error_body("audit", &error)
}
