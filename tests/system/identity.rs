//! Registration, login and profiles.

use reqwest::{Method, StatusCode};
use serde_json::json;
use taskflow_system_tests::TestSystem;

#[tokio::test]
async fn registration_returns_a_working_token_and_emits_user_registered() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let me = system
        .call(Method::GET, "/api/v1/users/me", Some(&ada.token), None)
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], ada.email);
    assert_eq!(me.body["role"], "member");
    assert_eq!(me.body["timezone"], "UTC");
    assert_eq!(me.body["email_notifications"], true);
    assert!(me.body.get("password_hash").is_none());

    let events = system.wait_for_events("AUDIT", 1).await;
    assert_eq!(events[0].subject, "audit.user.registered");
    assert_eq!(events[0].envelope.event_type, "user.registered");
    assert_eq!(events[0].envelope.payload["user_id"], ada.id.to_string());
    system.stop().await;
}

#[tokio::test]
async fn registration_refuses_bad_input_and_taken_emails() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let cases = [
        (
            json!({"email": "nope", "name": "X", "password": "long enough"}),
            StatusCode::BAD_REQUEST,
            "email",
        ),
        (
            json!({"email": "x@example.com", "name": " ", "password": "long enough"}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            json!({"email": "x@example.com", "name": "X", "password": "short"}),
            StatusCode::BAD_REQUEST,
            "password",
        ),
        (
            json!({"email": "x@example.com", "name": "X"}),
            StatusCode::BAD_REQUEST,
            "password",
        ),
        (
            json!({"email": ada.email.to_uppercase(), "name": "Ada again", "password": "long enough"}),
            StatusCode::CONFLICT,
            "email",
        ),
    ];
    for (body, status, field) in cases {
        let reply = system
            .call(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(body.clone()),
            )
            .await;
        assert_eq!(reply.status, status, "{body} → {}", reply.body);
        assert_eq!(reply.body["field"], field, "{body} → {}", reply.body);
    }
    system.stop().await;
}

#[tokio::test]
async fn login_accepts_the_password_only() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let login = |email: String, password: &str| {
        system.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": email, "password": password})),
        )
    };
    let ok = login(ada.email.to_uppercase(), "correct horse battery").await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body["id"], ada.id.to_string());
    let token = ok.body["token"].as_str().unwrap();
    assert_eq!(
        system
            .call(Method::GET, "/api/v1/users/me", Some(token), None)
            .await
            .status,
        StatusCode::OK
    );

    let wrong = login(ada.email.clone(), "wrong horse battery").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let unknown = login("nobody@example.com".into(), "correct horse battery").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.body, unknown.body,
        "no hint which of the two was wrong"
    );
    system.stop().await;
}

#[tokio::test]
async fn eight_sign_ins_at_the_same_moment_are_all_answered() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let attempts = (0..8).map(|_| {
        system.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": ada.email, "password": "wrong horse battery"})),
        )
    });
    let answers = futures::future::join_all(attempts).await;
    let statuses: Vec<StatusCode> = answers.iter().map(|answer| answer.status).collect();
    assert_eq!(
        statuses,
        [StatusCode::UNAUTHORIZED; 8],
        "each waits for a core rather than being refused"
    );
    system.stop().await;
}

#[tokio::test]
async fn a_profile_changes_name_timezone_and_notifications() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let bob = system.register("Bob").await;
    let token = Some(ada.token.as_str());
    let patched = system
        .call(
            Method::PATCH,
            "/api/v1/users/me",
            token,
            Some(
                json!({"name": "Ada L.", "timezone": "Europe/Paris", "email_notifications": false}),
            ),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["timezone"], "Europe/Paris");
    assert_eq!(patched.body["email_notifications"], false);

    let bad = system
        .call(
            Method::PATCH,
            "/api/v1/users/me",
            token,
            Some(json!({"timezone": "Mars/Olympus"})),
        )
        .await;
    assert_eq!(
        bad.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a zone the database does not know"
    );
    assert_eq!(bad.body["field"], "timezone");

    let public = system
        .call(
            Method::GET,
            &format!("/api/v1/users/{}", ada.id),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(public.body, json!({"id": ada.id, "name": "Ada L."}));
    let missing = system
        .call(
            Method::GET,
            &format!("/api/v1/users/{}", uuid::Uuid::now_v7()),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    system.stop().await;
}

#[tokio::test]
async fn make_admin_grants_the_role_at_the_next_login() {
    let system = TestSystem::spawn().await;
    let ada = system.register("Ada").await;
    let ada = system.make_admin(ada).await;
    let me = system
        .call(Method::GET, "/api/v1/users/me", Some(&ada.token), None)
        .await;
    assert_eq!(me.body["role"], "admin");
    let events = system.wait_for_events("AUDIT", 2).await;
    assert_eq!(events[1].envelope.event_type, "user.role_changed");
    system.stop().await;
}
