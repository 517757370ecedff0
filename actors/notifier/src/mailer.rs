//! Email over SMTP with lettre: one pooled transport per process.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use taskflow_runtime::RuntimeError;
use taskflow_runtime::consumer::effector::EffectError;
use taskflow_runtime::platform::settings::{Settings, invalid};

/// How long one SMTP conversation may take before it counts as failed.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error("TASKFLOW_SMTP_URL: {0}")]
    Url(#[from] lettre::transport::smtp::Error),
    #[error("TASKFLOW_SMTP_FROM: {0}")]
    From(#[from] lettre::address::AddressError),
}

/// The mailer's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    /// `TASKFLOW_SMTP_URL`, e.g. `smtp://127.0.0.1:1025`; none disables email.
    pub url: Option<String>,
    /// `TASKFLOW_SMTP_FROM`: the sender of notification emails.
    pub from: String,
}

impl MailSettings {
    pub fn read(settings: &Settings) -> Result<Self, RuntimeError> {
        let source = &settings.source;
        let from = match source.get("TASKFLOW_SMTP_FROM") {
            None => "TaskFlow <taskflow@localhost>".into(),
            Some(from) if from.contains('@') && !from.chars().any(char::is_control) => from,
            Some(_) => {
                return Err(invalid(
                    "TASKFLOW_SMTP_FROM",
                    "must be an address, e.g. `TaskFlow <taskflow@example.com>`",
                ));
            }
        };
        Ok(Self {
            url: source.url("TASKFLOW_SMTP_URL", &["smtp://", "smtps://"])?,
            from,
        })
    }
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// One email to send.
pub struct Mail<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub body: String,
    /// The `Message-ID`, stable across retries: a receiver can tell a
    /// retried email from a new one.
    pub message_id: String,
}

impl Mailer {
    /// `url` as `smtp://host:port` (plain, for a local catcher) or
    /// `smtps://host:port` (TLS).
    pub fn new(url: &str, from: &str) -> Result<Self, MailerError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(Self {
            transport,
            from: from.parse()?,
        })
    }

    /// Sends `mail`: an address or message the server refuses for good is
    /// `Permanent`; a server that is down or busy is `Retry`.
    pub async fn send(&self, mail: Mail<'_>) -> Result<(), EffectError> {
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|error| EffectError::Permanent(format!("recipient {}: {error}", mail.to)))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .message_id(Some(mail.message_id))
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body)
            .map_err(|error| EffectError::Permanent(format!("message: {error}")))?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(error) if error.is_permanent() => {
                Err(EffectError::Permanent(format!("smtp: {error}")))
            }
            Err(error) => Err(EffectError::Retry(format!("smtp: {error}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &'static [(&'static str, &'static str)]) -> Result<MailSettings, RuntimeError> {
        let settings = Settings::from_lookup(|name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })?;
        MailSettings::read(&settings)
    }

    #[test]
    fn email_is_off_unless_a_url_is_set_and_a_bad_one_is_named() {
        assert_eq!(read(&[]).unwrap().url, None);
        let on = read(&[("TASKFLOW_SMTP_URL", "smtp://127.0.0.1:1025")]).unwrap();
        assert_eq!(on.url.as_deref(), Some("smtp://127.0.0.1:1025"));
        let error = read(&[("TASKFLOW_SMTP_URL", "http://mail")]).unwrap_err();
        assert!(
            error.to_string().starts_with("TASKFLOW_SMTP_URL:"),
            "{error}"
        );
        let error = read(&[("TASKFLOW_SMTP_FROM", "nobody")]).unwrap_err();
        assert!(
            error.to_string().starts_with("TASKFLOW_SMTP_FROM:"),
            "{error}"
        );
    }
}
