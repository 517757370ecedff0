//! Settings from environment variables (and `.env` when present), each with
//! a working default. A bad value stops the process with one line naming it.
//!
//! [`Settings`] holds what every process needs (where it listens, NATS,
//! Postgres, the token secret); each crate reads its own from
//! [`Settings::source`] with the helpers of [`SettingSource`] (the edge's
//! rate limits and CORS, the live feed's connection limits, the mailer's).

use std::net::SocketAddr;
use std::sync::Arc;

use crate::RuntimeError;

pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4333";
/// TLS off: on loopback it only costs CPU. Add `sslmode=require` for a remote server.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/?sslmode=disable";
pub const DEFAULT_DATABASE_PREFIX: &str = "taskflow_";
/// Good enough for a laptop, refused nowhere; a warning says to set a real one.
const DEV_JWT_SECRET: &str = "taskflow-development-secret-change-me-0123456789";

#[derive(Clone)]
pub struct Settings {
    /// `TASKFLOW_HTTP_ADDR`: where the edge listens.
    pub http_addr: SocketAddr,
    /// `TASKFLOW_OPS_ADDR`: where a service binary serves `/health` and `/metrics`.
    pub ops_addr: Option<SocketAddr>,
    /// `NATS_URL`, credentials included (`nats://user:password@host:port`).
    pub nats_url: String,
    /// `NATS_CREDS_FILE`: a NATS creds file (JWT and nkey seed), if the server wants one.
    pub nats_creds_file: Option<std::path::PathBuf>,
    /// `DATABASE_URL`: the server; each service appends its own database.
    pub database_url: String,
    /// `TASKFLOW_DATABASE_PREFIX`: `taskflow_` gives `taskflow_tasks`, ...
    pub database_prefix: String,
    /// `TASKFLOW_DATABASE_MAX_CONNECTIONS`, per service.
    pub database_max_connections: u32,
    /// `TASKFLOW_JWT_SECRET`: HS256 key shared by identity (signs) and edge (verifies).
    pub jwt_secret: String,
    /// True when the secret is the built-in development one.
    pub jwt_secret_is_default: bool,
    /// Where every setting was read from, for the crates' own.
    pub source: SettingSource,
}

/// Finds a setting's value by its name.
type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// A lookup of settings by name; blank values count as unset.
#[derive(Clone)]
pub struct SettingSource(Arc<Lookup>);

impl SettingSource {
    pub fn new(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self(Arc::new(lookup))
    }

    /// The value of `name`, unless unset or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|value| !value.trim().is_empty())
    }

    /// A positive integer, or `default` when unset.
    pub fn positive<T: std::str::FromStr + PartialOrd + Default>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, RuntimeError> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > T::default())
                .ok_or_else(|| invalid(name, "must be a positive integer")),
        }
    }

    /// A URL with one of `schemes`, if set.
    pub fn url(
        &self,
        name: &'static str,
        schemes: &[&str],
    ) -> Result<Option<String>, RuntimeError> {
        self.get(name)
            .map(|url| url_setting(name, Some(url), "", schemes))
            .transpose()
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("http_addr", &self.http_addr)
            .field("ops_addr", &self.ops_addr)
            .field("nats_url", &crate::bus::nats::redacted(&self.nats_url))
            .field("nats_creds_file", &self.nats_creds_file)
            .field("database_url", &self.database_url)
            .field("database_prefix", &self.database_prefix)
            .field("jwt_secret", &"<redacted>")
            .finish()
    }
}

impl Settings {
    /// Reads `.env` (if any) and then the process environment.
    pub fn from_env() -> Result<Self, RuntimeError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Result<Self, RuntimeError> {
        let source = SettingSource::new(lookup);
        let get = |name: &str| source.get(name);
        let jwt_secret = get("TASKFLOW_JWT_SECRET");
        if let Some(secret) = &jwt_secret
            && secret.len() < 32
        {
            return Err(invalid(
                "TASKFLOW_JWT_SECRET",
                "must be at least 32 characters",
            ));
        }
        let http_addr = parse_addr("TASKFLOW_HTTP_ADDR", get("TASKFLOW_HTTP_ADDR"))?
            .unwrap_or_else(|| DEFAULT_HTTP_ADDR.parse().expect("valid default"));
        let ops_addr = parse_addr("TASKFLOW_OPS_ADDR", get("TASKFLOW_OPS_ADDR"))?;
        // The development secret is public: anyone could sign tokens with it.
        let beyond_loopback = std::iter::once(http_addr)
            .chain(ops_addr)
            .find(|addr| !addr.ip().is_loopback());
        if let (None, Some(addr)) = (&jwt_secret, beyond_loopback) {
            return Err(invalid(
                "TASKFLOW_JWT_SECRET",
                format!(
                    "must be set when a listener is reachable beyond this machine ({addr}); the development secret is public"
                ),
            ));
        }
        let database_prefix =
            get("TASKFLOW_DATABASE_PREFIX").unwrap_or(DEFAULT_DATABASE_PREFIX.into());
        if !database_prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(invalid(
                "TASKFLOW_DATABASE_PREFIX",
                "may hold only a-z, 0-9 and _",
            ));
        }
        Ok(Self {
            http_addr,
            ops_addr,
            nats_url: url_setting(
                "NATS_URL",
                get("NATS_URL"),
                DEFAULT_NATS_URL,
                &["nats://", "tls://"],
            )?,
            database_url: url_setting(
                "DATABASE_URL",
                get("DATABASE_URL"),
                DEFAULT_DATABASE_URL,
                &["postgres://", "postgresql://"],
            )?,
            nats_creds_file: get("NATS_CREDS_FILE").map(std::path::PathBuf::from),
            database_prefix,
            jwt_secret_is_default: jwt_secret.is_none(),
            jwt_secret: jwt_secret.unwrap_or_else(|| DEV_JWT_SECRET.into()),
            database_max_connections: source.positive("TASKFLOW_DATABASE_MAX_CONNECTIONS", 24)?,
            source,
        })
    }

    /// The database a service owns, e.g. `taskflow_tasks`.
    pub fn database_name(&self, service: &str) -> String {
        format!("{}{service}", self.database_prefix)
    }
}

/// The error of a bad setting: stops the process with one line naming it.
pub fn invalid(name: &'static str, problem: impl Into<String>) -> RuntimeError {
    RuntimeError::Setting {
        name,
        problem: problem.into(),
    }
}

/// An address like `127.0.0.1:8080`, if set.
pub fn parse_addr(
    name: &'static str,
    value: Option<String>,
) -> Result<Option<SocketAddr>, RuntimeError> {
    value
        .map(|text| {
            text.parse().map_err(|_| {
                invalid(
                    name,
                    format!("`{text}` is not an address like 127.0.0.1:8080"),
                )
            })
        })
        .transpose()
}

fn url_setting(
    name: &'static str,
    value: Option<String>,
    default: &str,
    schemes: &[&str],
) -> Result<String, RuntimeError> {
    let url = value.unwrap_or_else(|| default.to_owned());
    if schemes.iter().any(|scheme| url.starts_with(scheme)) {
        Ok(url)
    } else {
        Err(invalid(
            name,
            format!("`{url}` must start with {}", schemes.join(" or ")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, RuntimeError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_work_with_nothing_set() {
        let settings = settings(&[]).unwrap();
        assert_eq!(settings.http_addr.to_string(), DEFAULT_HTTP_ADDR);
        assert_eq!(settings.database_name("tasks"), "taskflow_tasks");
        assert!(settings.jwt_secret_is_default);
    }

    #[test]
    fn the_development_secret_serves_loopback_only() {
        assert!(settings(&[("TASKFLOW_HTTP_ADDR", "127.0.0.1:8080")]).is_ok());
        let error = settings(&[("TASKFLOW_HTTP_ADDR", "0.0.0.0:8080")])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("TASKFLOW_JWT_SECRET:"), "{error}");
        let error = settings(&[("TASKFLOW_OPS_ADDR", "0.0.0.0:9101")])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("TASKFLOW_JWT_SECRET:"), "{error}");
        let secret = "a-real-secret-of-at-least-thirty-two-chars";
        assert!(
            settings(&[
                ("TASKFLOW_HTTP_ADDR", "0.0.0.0:8080"),
                ("TASKFLOW_JWT_SECRET", secret)
            ])
            .is_ok()
        );
    }

    #[test]
    fn nats_credentials_stay_out_of_what_settings_print() {
        let settings = settings(&[("NATS_URL", "nats://taskflow:s3cret@nats:4222")]).unwrap();
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("nats://***@nats:4222"), "{shown}");
    }

    #[test]
    fn a_bad_setting_is_named() {
        let error = settings(&[("TASKFLOW_HTTP_ADDR", "eight")])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("TASKFLOW_HTTP_ADDR:"), "{error}");
        let error = settings(&[("NATS_URL", "http://x")])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("NATS_URL:"), "{error}");
        let error = settings(&[("TASKFLOW_JWT_SECRET", "short")])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("TASKFLOW_JWT_SECRET:"), "{error}");
    }
}
