//! The HTTP API as a client sees it: requests, JSON replies, users. The
//! in-process [`crate::TestSystem`] and a system of separate processes are
//! both reached through it.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

/// A registered user and their token.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub token: String,
}

/// A reply: status, headers and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Asserts the contract's error shape, and returns the code.
    pub fn error_code(&self) -> &str {
        assert!(
            self.body["error"].is_string(),
            "not the error shape: {}",
            self.body
        );
        self.body["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no code in {}", self.body))
    }
}

/// An edge's API at `base_url` (`http://host:port`).
#[derive(Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base_url: String,
}

impl Api {
    pub fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let builder = self
            .http
            .request(method, format!("{}{path}", self.base_url));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn send(&self, builder: reqwest::RequestBuilder) -> Reply {
        let response = builder.send().await.expect("the edge answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("a body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut builder = self.request(method, path, token);
        if let Some(body) = body {
            builder = builder.json(&body);
        }
        self.send(builder).await
    }

    pub async fn register(&self, name: &str) -> User {
        let email = format!(
            "{}-{}@example.com",
            name.to_lowercase(),
            Uuid::now_v7().simple()
        );
        let reply = self
            .call(
                Method::POST,
                "/api/v1/auth/register",
                None,
                Some(json!({"email": email, "name": name, "password": "correct horse battery"})),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        User {
            id: reply.body["id"]
                .as_str()
                .expect("an id")
                .parse()
                .expect("a uuid"),
            email,
            token: reply.body["token"].as_str().expect("a token").to_owned(),
        }
    }

    /// Logs the user in again and returns their new token.
    pub async fn login(&self, user: &User) -> String {
        let body = json!({"email": user.email, "password": "correct horse battery"});
        let reply = self
            .call(Method::POST, "/api/v1/auth/login", None, Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body["token"].as_str().expect("a token").to_owned()
    }
}
