//! The live feed's own settings: how many connections it holds.

use taskflow_runtime::RuntimeError;
use taskflow_runtime::platform::settings::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedSettings {
    /// `TASKFLOW_WS_MAX_PER_USER` (default 10): connections one user may hold.
    pub max_per_user: usize,
    /// `TASKFLOW_WS_MAX_CONNECTIONS` (default 10000): connections of one process.
    pub max_connections: usize,
}

impl FeedSettings {
    pub fn read(settings: &Settings) -> Result<Self, RuntimeError> {
        let source = &settings.source;
        Ok(Self {
            max_per_user: source.positive("TASKFLOW_WS_MAX_PER_USER", 10)?,
            max_connections: source.positive("TASKFLOW_WS_MAX_CONNECTIONS", 10_000)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_and_a_bad_one_is_named() {
        let read = |value: &'static str| {
            let settings = Settings::from_lookup(move |name| {
                (name == "TASKFLOW_WS_MAX_PER_USER").then(|| value.to_owned())
            })
            .expect("settings");
            FeedSettings::read(&settings)
        };
        assert_eq!(read("").unwrap().max_per_user, 10);
        assert_eq!(read("3").unwrap().max_per_user, 3);
        let error = read("0").unwrap_err().to_string();
        assert!(error.starts_with("TASKFLOW_WS_MAX_PER_USER:"), "{error}");
    }
}
