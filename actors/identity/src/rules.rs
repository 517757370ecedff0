//! What a valid registration and profile are; no IO.

use taskflow_schemas::ErrorBody;

pub const MAX_EMAIL: usize = 254;
pub const MAX_NAME: usize = 100;
pub const MIN_PASSWORD: usize = 8;
/// Argon2 takes any length; this bounds the work one request can ask for.
pub const MAX_PASSWORD: usize = 256;

/// The email, trimmed and lower-cased, if it looks deliverable.
pub fn email(raw: &str) -> Result<String, ErrorBody> {
    let email = raw.trim().to_lowercase();
    let valid = email.len() <= MAX_EMAIL
        && !email.chars().any(char::is_whitespace)
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if valid {
        Ok(email)
    } else {
        Err(ErrorBody::invalid("email", "is not a valid email address"))
    }
}

pub fn name(raw: &str) -> Result<String, ErrorBody> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(ErrorBody::invalid(
            "name",
            format!("1 to {MAX_NAME} characters"),
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
        .map_err(|_| ErrorBody::invalid("timezone", format!("`{raw}` is not an IANA time zone")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_or_refused() {
        assert_eq!(email("  Ada@Example.COM ").unwrap(), "ada@example.com");
        for bad in [
            "",
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
