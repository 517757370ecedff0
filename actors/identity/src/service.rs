//! The identity service's commands. Registration commits the user and its
//! `user.registered` event together (the outbox).

use std::time::SystemTime;

use chrono::{SubsecRound, Utc};
use serde_json::json;
use sqlx::PgPool;
use taskflow_runtime::http::tokens::Tokens;
use taskflow_runtime::in_effect;
use taskflow_runtime::outbox::{self, RelayHandle};
use taskflow_runtime::store::postgres;
use taskflow_schemas::commands::{Credentials, ProfilePatch, Registration, Session, UserRef};
use taskflow_schemas::events::{self, Changes, FieldChange, RoleChangePayload, UserEventPayload};
use taskflow_schemas::subjects::audit_subject;
use taskflow_schemas::user::{PublicProfile, Role, UserProfile};
use taskflow_schemas::{ErrorBody, ErrorCode, EventEnvelope};
use uuid::Uuid;

use crate::error::IdentityError;
use crate::passwords::HashSlot;
use crate::rules;
use crate::store::{self, UserRow};

#[derive(Clone)]
pub struct IdentityService {
    pool: PgPool,
    relay: RelayHandle,
    tokens: Tokens,
    jetstream: async_nats::jetstream::Context,
}

impl IdentityService {
    pub fn new(
        pool: PgPool,
        relay: RelayHandle,
        tokens: Tokens,
        jetstream: async_nats::jetstream::Context,
    ) -> Self {
        Self {
            pool,
            relay,
            tokens,
            jetstream,
        }
    }

    pub async fn register(
        &self,
        request_id: &str,
        deadline: Option<SystemTime>,
        slot: HashSlot,
        registration: Registration,
    ) -> Result<Session, IdentityError> {
        let email = rules::email(&registration.email)?;
        let name = rules::name(&registration.name)?;
        rules::password(&registration.password)?;
        if store::by_email(&self.pool, &email).await?.is_some() {
            return Err(email_taken());
        }
        let now = Utc::now().trunc_subsecs(6);
        let user = UserRow {
            id: Uuid::now_v7(),
            email,
            name,
            password_hash: slot.hash(registration.password).await?,
            role: "member".into(),
            timezone: "UTC".into(),
            email_notifications: true,
            created_at: now,
            updated_at: now,
            profile_version: 1,
        };
        let mut tx = postgres::begin_until(&self.pool, deadline).await?;
        if !store::insert(&mut tx, &user).await? {
            return Err(email_taken());
        }
        let event = user_event(events::USER_REGISTERED, &user, Changes::new(), request_id);
        outbox::enqueue::<IdentityError>(&mut tx, &audit_subject(events::USER_REGISTERED), &event)
            .await?;
        tx.commit().await?;
        self.relay.wake();
        tracing::info!(service = "identity", user_id = %user.id, event_id = %event.event_id, "user registered");
        Ok(self.session(&user))
    }

    pub async fn login(
        &self,
        slot: HashSlot,
        credentials: Credentials,
    ) -> Result<Session, IdentityError> {
        let user = match rules::email(&credentials.email) {
            Ok(email) => store::by_email(&self.pool, &email).await?,
            Err(_) => None,
        };
        let stored = user.as_ref().map(|user| user.password_hash.clone());
        if !slot.verify(credentials.password, stored).await? {
            return Err(IdentityError::bad_credentials());
        }
        let user = user.expect("a verified password has a user");
        Ok(self.session(&user))
    }

    pub async fn profile(&self, actor: Uuid) -> Result<UserProfile, IdentityError> {
        let user = store::by_id(&self.pool, actor)
            .await?
            .ok_or_else(IdentityError::user_not_found)?;
        Ok(user.profile())
    }

    /// Changes the profile and, when something changed, publishes
    /// `user.updated` with the same commit.
    pub async fn update_profile(
        &self,
        actor: Uuid,
        request_id: &str,
        deadline: Option<SystemTime>,
        patch: ProfilePatch,
    ) -> Result<UserProfile, IdentityError> {
        let name = patch.name.as_deref().map(rules::name).transpose()?;
        let timezone = patch.timezone.as_deref().map(rules::timezone).transpose()?;
        let mut tx = postgres::begin_until(&self.pool, deadline).await?;
        let before = store::by_id_for_update(&mut tx, actor)
            .await?
            .ok_or_else(IdentityError::user_not_found)?;
        let user = store::update_profile(
            &mut tx,
            actor,
            name.as_deref(),
            timezone.as_deref(),
            patch.email_notifications,
        )
        .await?
        .ok_or_else(IdentityError::user_not_found)?;
        let changes = profile_changes(&before, &user);
        if changes.is_empty() {
            // Nothing changed: no event, and the row keeps its updated_at;
            // an earlier change answered 503 may still be on its way.
            tx.rollback().await?;
            self.in_effect(deadline).await?;
            return Ok(before.profile());
        }
        let event = user_event(events::USER_UPDATED, &user, changes, request_id);
        outbox::enqueue::<IdentityError>(&mut tx, &audit_subject(events::USER_UPDATED), &event)
            .await?;
        tx.commit().await?;
        self.relay.wake();
        // A time zone the scheduler has not applied yet would set the next
        // recurring task's time of day from the old one.
        self.in_effect(deadline).await?;
        Ok(user.profile())
    }

    /// Waits until every service that follows profiles has this service's
    /// changes so far, within `deadline` and [`in_effect::WITHIN`].
    async fn in_effect(&self, deadline: Option<SystemTime>) -> Result<(), IdentityError> {
        let until = in_effect::until(deadline, in_effect::WITHIN);
        in_effect::everywhere(&self.pool, &self.jetstream, in_effect::PROFILES, until)
            .await
            .map_err(|error| match error {
                in_effect::NotInEffect::Database(error) => IdentityError::Database(error),
                in_effect::NotInEffect::TimedOut => IdentityError::NotInEffect,
            })
    }

    pub async fn public_profile(&self, user: UserRef) -> Result<PublicProfile, IdentityError> {
        let user = store::by_id(&self.pool, user.user_id)
            .await?
            .ok_or_else(IdentityError::user_not_found)?;
        Ok(PublicProfile {
            id: user.id,
            name: user.name,
        })
    }

    fn session(&self, user: &UserRow) -> Session {
        Session {
            id: user.id,
            email: user.email.clone(),
            name: user.name.clone(),
            token: self.tokens.issue(user.id, user.role()),
        }
    }
}

/// `user.registered` or `user.updated` for `user` as it now is.
fn user_event(
    event_type: &str,
    user: &UserRow,
    changes: Changes,
    request_id: &str,
) -> EventEnvelope {
    let payload = UserEventPayload {
        user_id: user.id,
        email: user.email.clone(),
        name: user.name.clone(),
        timezone: user.timezone.clone(),
        email_notifications: user.email_notifications,
        version: user.profile_version,
        changes,
    };
    EventEnvelope::new(
        event_type,
        None,
        Some(user.id),
        request_id,
        serde_json::to_value(payload).expect("a payload serializes"),
    )
}

/// The profile fields that differ between `before` and `after`.
fn profile_changes(before: &UserRow, after: &UserRow) -> Changes {
    let fields = [
        ("name", json!(before.name), json!(after.name)),
        ("timezone", json!(before.timezone), json!(after.timezone)),
        (
            "email_notifications",
            json!(before.email_notifications),
            json!(after.email_notifications),
        ),
    ];
    fields
        .into_iter()
        .filter(|(_, old, new)| old != new)
        .map(|(field, old, new)| (field.to_owned(), FieldChange { old, new }))
        .collect()
}

fn email_taken() -> IdentityError {
    IdentityError::Rejected(ErrorBody {
        error: "email: is already registered".into(),
        code: ErrorCode::Conflict,
        field: Some("email".into()),
    })
}

/// `taskflow-identity make-admin EMAIL` (`Role::Admin`) and `revoke-admin
/// EMAIL` (`Role::Member`): sets the role and records `user.role_changed`
/// in the outbox (a running relay publishes it). Every service decides who
/// is an admin from that event, not from the role a token was signed with,
/// so the change takes effect as soon as it is processed.
pub async fn set_role(pool: &PgPool, email: &str, role: Role) -> Result<Uuid, IdentityError> {
    let email = rules::email(email)?;
    let mut tx = pool.begin().await?;
    let (user, version) = store::set_role(&mut tx, &email, role)
        .await?
        .ok_or_else(IdentityError::user_not_found)?;
    let command = match role {
        Role::Admin => "make-admin",
        Role::Member => "revoke-admin",
    };
    let event = EventEnvelope::new(
        events::USER_ROLE_CHANGED,
        None,
        None,
        format!("{command}-{}", Uuid::now_v7()),
        serde_json::to_value(RoleChangePayload {
            user_id: user,
            role,
            version,
        })
        .expect("a role change serializes"),
    );
    outbox::enqueue::<IdentityError>(&mut tx, &audit_subject(events::USER_ROLE_CHANGED), &event)
        .await?;
    tx.commit().await?;
    Ok(user)
}
