//! What a valid registration and profile are; no IO.

use taskflow_schemas::ErrorBody;
use taskflow_schemas::limits::TRIMMED;

pub const MAX_EMAIL: usize = 254;
pub const MAX_NAME: usize = 100;
pub const MIN_PASSWORD: usize = 8;
/// Argon2 takes any length; this bounds the work one request can ask for.
pub const MAX_PASSWORD: usize = 256;

/// The email, lower-cased, if it looks deliverable: at most 254
/// characters, no space or control character, one `@` with something
/// before it and a domain after it that has a dot, neither first nor last.
pub fn email(raw: &str) -> Result<String, ErrorBody> {
    let plain = |c: char| c > ' ' && c != '\u{7f}' && c != '@';
    let valid = raw.chars().count() <= MAX_EMAIL
        && match raw.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && local.chars().all(plain)
                    && domain.chars().all(|c| plain(c) || c == '.')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if valid {
        Ok(raw.to_lowercase())
    } else {
        Err(ErrorBody::invalid("email", "is not a valid email address"))
    }
}

/// The name without the spaces around it: 1 to 100 characters as sent.
pub fn name(raw: &str) -> Result<String, ErrorBody> {
    let name = raw.trim_matches(TRIMMED);
    if name.is_empty() || raw.chars().count() > MAX_NAME {
        return Err(ErrorBody::invalid(
            "name",
            format!("1 to {MAX_NAME} characters, not only spaces"),
        ));
    }
    Ok(name.to_owned())
}

pub fn password(raw: &str) -> Result<(), ErrorBody> {
    let length = raw.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&length) {
        return Err(ErrorBody::invalid(
            "password",
            format!("{MIN_PASSWORD} to {MAX_PASSWORD} characters"),
        ));
    }
    Ok(())
}

/// An IANA time zone name such as `Europe/Paris`.
pub fn timezone(raw: &str) -> Result<String, ErrorBody> {
    raw.parse::<chrono_tz::Tz>()
        .map(|tz| tz.name().to_owned())
        .map_err(|_| ErrorBody::refused("timezone", format!("`{raw}` is not an IANA time zone")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_or_refused() {
        assert_eq!(email("Ada@Example.COM").unwrap(), "ada@example.com");
        for bad in [
            "",
            " ada@example.com",
            "ada@example.com.",
            "ada\u{7f}@example.com",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@c.com",
        ] {
            assert_eq!(
                email(bad).unwrap_err().field.as_deref(),
                Some("email"),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_passwords_and_time_zones_are_checked() {
        assert!(name("   ").is_err());
        assert_eq!(name(" Ada ").unwrap(), "Ada");
        assert!(password("short").is_err());
        assert!(password("long enough").is_ok());
        assert_eq!(timezone("Europe/Paris").unwrap(), "Europe/Paris");
        assert_eq!(
            timezone("Mars/Olympus").unwrap_err().field.as_deref(),
            Some("timezone")
        );
    }
}
