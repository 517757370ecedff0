//! Settings from environment variables (and `.env` when present), each with
//! a working default. A bad value stops the process with one line naming it.

use std::net::SocketAddr;

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
    /// `TASKFLOW_SMTP_URL`, e.g. `smtp://127.0.0.1:1025`; none disables email.
    pub smtp_url: Option<String>,
    /// `TASKFLOW_SMTP_FROM`: the sender of notification emails.
    pub smtp_from: String,
    /// `TASKFLOW_CORS_ORIGINS`: comma-separated origins, or `*`.
    pub cors_origins: Vec<String>,
    /// `TASKFLOW_RATE_LIMIT_*`: what the edge lets through per client.
    pub rate_limits: RateLimits,
    /// `TASKFLOW_WS_MAX_PER_USER` (default 10): live-feed connections one user may hold.
    pub ws_max_per_user: usize,
    /// `TASKFLOW_WS_MAX_CONNECTIONS` (default 10000): live-feed connections of one process.
    pub ws_max_connections: usize,
}

/// A rate: `count` requests per `period`, up to `count` at once. Written
/// `100/s`, `20/min` or `500/h`; `off` disables the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: std::time::Duration,
}

impl Rate {
    pub const fn per_second(count: u32) -> Self {
        Self {
            count,
            period: std::time::Duration::from_secs(1),
        }
    }

    pub const fn per_minute(count: u32) -> Self {
        Self {
            count,
            period: std::time::Duration::from_secs(60),
        }
    }

    fn parse(text: &str) -> Option<Option<Self>> {
        if text.eq_ignore_ascii_case("off") {
            return Some(None);
        }
        let (count, unit) = text.split_once('/')?;
        let count: u32 = count.trim().parse().ok().filter(|n| *n > 0)?;
        let seconds = match unit.trim() {
            "s" => 1,
            "min" => 60,
            "h" => 3600,
            _ => return None,
        };
        Some(Some(Self {
            count,
            period: std::time::Duration::from_secs(seconds),
        }))
    }
}

/// The edge's limits, each per key; `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `TASKFLOW_RATE_LIMIT_IP` (default `200/s`): every request, per client address.
    pub per_ip: Option<Rate>,
    /// `TASKFLOW_RATE_LIMIT_USER` (default `50/s`): authenticated requests, per user.
    pub per_user: Option<Rate>,
    /// `TASKFLOW_RATE_LIMIT_AUTH_IP` (default `30/min`): login and register, per client address.
    pub auth_per_ip: Option<Rate>,
    /// `TASKFLOW_RATE_LIMIT_AUTH_ACCOUNT` (default `10/min`): login and register, per email.
    pub auth_per_account: Option<Rate>,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            per_ip: Some(Rate::per_second(200)),
            per_user: Some(Rate::per_second(50)),
            auth_per_ip: Some(Rate::per_minute(30)),
            auth_per_account: Some(Rate::per_minute(10)),
        }
    }
}

impl RateLimits {
    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, RuntimeError> {
        let defaults = Self::default();
        let rate = |name: &'static str, default: Option<Rate>| match get(name) {
            None => Ok(default),
            Some(text) => Rate::parse(&text).ok_or_else(|| {
                invalid(
                    name,
                    format!("`{text}` is not a rate like 100/s, 20/min, 500/h or off"),
                )
            }),
        };
        Ok(Self {
            per_ip: rate("TASKFLOW_RATE_LIMIT_IP", defaults.per_ip)?,
            per_user: rate("TASKFLOW_RATE_LIMIT_USER", defaults.per_user)?,
            auth_per_ip: rate("TASKFLOW_RATE_LIMIT_AUTH_IP", defaults.auth_per_ip)?,
            auth_per_account: rate(
                "TASKFLOW_RATE_LIMIT_AUTH_ACCOUNT",
                defaults.auth_per_account,
            )?,
        })
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
            .field("smtp_url", &self.smtp_url)
            .field("smtp_from", &self.smtp_from)
            .field("cors_origins", &self.cors_origins)
            .field("rate_limits", &self.rate_limits)
            .field("ws_max_per_user", &self.ws_max_per_user)
            .field("ws_max_connections", &self.ws_max_connections)
            .finish()
    }
}

impl Settings {
    /// Reads `.env` (if any) and then the process environment.
    pub fn from_env() -> Result<Self, RuntimeError> {
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, RuntimeError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
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
            database_max_connections: positive(get, "TASKFLOW_DATABASE_MAX_CONNECTIONS", 24)?,
            jwt_secret_is_default: jwt_secret.is_none(),
            jwt_secret: jwt_secret.unwrap_or_else(|| DEV_JWT_SECRET.into()),
            smtp_url: match get("TASKFLOW_SMTP_URL") {
                None => None,
                Some(url) => Some(url_setting(
                    "TASKFLOW_SMTP_URL",
                    Some(url),
                    "",
                    &["smtp://", "smtps://"],
                )?),
            },
            smtp_from: match get("TASKFLOW_SMTP_FROM") {
                None => "TaskFlow <taskflow@localhost>".into(),
                Some(from) if from.contains('@') && !from.chars().any(char::is_control) => from,
                Some(_) => {
                    return Err(RuntimeError::Setting {
                        name: "TASKFLOW_SMTP_FROM",
                        problem: "must be an address, e.g. `TaskFlow <taskflow@example.com>`"
                            .into(),
                    });
                }
            },
            cors_origins: get("TASKFLOW_CORS_ORIGINS")
                .map(|text| {
                    text.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            ws_max_per_user: positive(get, "TASKFLOW_WS_MAX_PER_USER", 10)?,
            ws_max_connections: positive(get, "TASKFLOW_WS_MAX_CONNECTIONS", 10_000)?,
            rate_limits: RateLimits::from_lookup(get)?,
        })
    }

    /// The database a service owns, e.g. `taskflow_tasks`.
    pub fn database_name(&self, service: &str) -> String {
        format!("{}{service}", self.database_prefix)
    }
}

fn invalid(name: &'static str, problem: impl Into<String>) -> RuntimeError {
    RuntimeError::Setting {
        name,
        problem: problem.into(),
    }
}

/// A positive integer setting, or its default when unset.
fn positive<T: std::str::FromStr + PartialOrd + Default>(
    get: impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, RuntimeError> {
    match get(name) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > T::default())
            .ok_or_else(|| invalid(name, "must be a positive integer")),
    }
}

fn parse_addr(
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
        assert_eq!(settings.rate_limits, RateLimits::default());
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
    fn rates_are_read_per_unit_or_turned_off() {
        let settings = settings(&[
            ("TASKFLOW_RATE_LIMIT_IP", "off"),
            ("TASKFLOW_RATE_LIMIT_AUTH_ACCOUNT", "5/h"),
        ])
        .unwrap();
        assert_eq!(settings.rate_limits.per_ip, None);
        assert_eq!(
            settings.rate_limits.auth_per_account,
            Some(Rate {
                count: 5,
                period: std::time::Duration::from_secs(3600)
            })
        );
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
        let error = settings(&[("TASKFLOW_RATE_LIMIT_USER", "lots")])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("TASKFLOW_RATE_LIMIT_USER:"), "{error}");
        let error = settings(&[("TASKFLOW_JWT_SECRET", "short")])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("TASKFLOW_JWT_SECRET:"), "{error}");
    }
}
