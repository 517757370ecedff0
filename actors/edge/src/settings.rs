//! The edge's own settings: its rate limits (`TASKFLOW_RATE_LIMIT_*`) and
//! the origins CORS lets in (`TASKFLOW_CORS_ORIGINS`).

use taskflow_runtime::RuntimeError;
use taskflow_runtime::platform::settings::{SettingSource, Settings, invalid};

#[derive(Debug, Clone, Default)]
pub struct EdgeSettings {
    /// `TASKFLOW_CORS_ORIGINS`: comma-separated origins, or `*`.
    pub cors_origins: Vec<String>,
    /// `TASKFLOW_RATE_LIMIT_*`: what the edge lets through per client.
    pub rate_limits: RateLimits,
}

impl EdgeSettings {
    pub fn read(settings: &Settings) -> Result<Self, RuntimeError> {
        let source = &settings.source;
        Ok(Self {
            cors_origins: source
                .get("TASKFLOW_CORS_ORIGINS")
                .map(|text| {
                    text.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            rate_limits: RateLimits::read(source)?,
        })
    }
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
    fn read(source: &SettingSource) -> Result<Self, RuntimeError> {
        let defaults = Self::default();
        let rate = |name: &'static str, default: Option<Rate>| match source.get(name) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<EdgeSettings, RuntimeError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let settings = Settings::from_lookup(move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })?;
        EdgeSettings::read(&settings)
    }

    #[test]
    fn defaults_limit_every_client() {
        assert_eq!(settings(&[]).unwrap().rate_limits, RateLimits::default());
    }

    #[test]
    fn rates_are_read_per_unit_or_turned_off() {
        let settings = settings(&[
            ("TASKFLOW_RATE_LIMIT_IP", "off"),
            ("TASKFLOW_RATE_LIMIT_AUTH_ACCOUNT", "5/h"),
            (
                "TASKFLOW_CORS_ORIGINS",
                "https://a.example, https://b.example",
            ),
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
        assert_eq!(
            settings.cors_origins,
            ["https://a.example", "https://b.example"]
        );
    }

    #[test]
    fn a_bad_rate_is_named() {
        let error = settings(&[("TASKFLOW_RATE_LIMIT_USER", "lots")])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("TASKFLOW_RATE_LIMIT_USER:"), "{error}");
    }
}
