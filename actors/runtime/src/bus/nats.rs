//! The NATS connection and the contract's streams.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use async_nats::ServerAddr;
use async_nats::jetstream::{self, stream};
use taskflow_schemas::subjects::{STREAMS, StreamSpec};

use crate::{NatsStep, RuntimeError};

/// How long a JetStream publish or API call may take before it counts as failed.
pub const JETSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// Messages kept this long let a reconnecting client or a restarted consumer catch up.
const STREAM_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Connects, retrying for up to `patience` while the server comes up; once
/// connected the client reconnects by itself forever.
///
/// The returned counter grows at every (re)connection: outbox relays watch it
/// to re-publish what a restarted server may not have synced to disk.
///
/// Credentials come from the URL (`nats://user:password@host:port`, or
/// `nats://token@host:port`) or from a creds file (`NATS_CREDS_FILE`).
pub async fn connect(
    url: &str,
    creds_file: Option<&Path>,
    name: &str,
    patience: Duration,
) -> Result<(async_nats::Client, watch::Receiver<u64>), RuntimeError> {
    let address: ServerAddr = url.parse().map_err(RuntimeError::nats(NatsStep::ReadUrl))?;
    let shown = redacted(url);
    let (connections, connected) = watch::channel(0u64);
    let connections = Arc::new(connections);
    let deadline = tokio::time::Instant::now() + patience;
    let mut delay = Duration::from_millis(100);
    loop {
        let mut options = async_nats::ConnectOptions::new();
        match (address.username(), address.password()) {
            (Some(user), Some(password)) => {
                options = options.user_and_password(user.into(), password.into());
            }
            (Some(token), None) => options = options.token(token.into()),
            _ => {}
        }
        if let Some(path) = creds_file {
            options = options
                .credentials_file(path)
                .await
                .map_err(RuntimeError::nats(NatsStep::ReadCredentials))?;
        }
        let attempt = options
            .name(name)
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            // Come back quickly after a server restart: 100 ms doubling to 2 s.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis(100u64.saturating_mul(1 << attempts.min(5)))
                    .min(Duration::from_secs(2))
            })
            .event_callback({
                let connections = connections.clone();
                move |event| {
                    let connections = connections.clone();
                    async move {
                        match event {
                            async_nats::Event::Connected => {
                                connections.send_modify(|count| *count += 1)
                            }
                            async_nats::Event::Disconnected => tracing::warn!("nats disconnected"),
                            other => tracing::debug!(event = %other, "nats event"),
                        }
                    }
                }
            })
            .connect(address.clone())
            .await;
        match attempt {
            Ok(client) => return Ok((client, connected)),
            Err(error) if tokio::time::Instant::now() + delay < deadline => {
                tracing::warn!(url = %shown, %error, "waiting for nats");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(error) => {
                tracing::error!(url = %shown, %error, "cannot connect to nats");
                return Err(RuntimeError::nats(NatsStep::Connect)(error));
            }
        }
    }
}

/// `url` with its password or token hidden, for logs and errors.
pub fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

pub fn jetstream(client: &async_nats::Client) -> jetstream::Context {
    let mut context = jetstream::new(client.clone());
    context.set_timeout(JETSTREAM_TIMEOUT);
    context
}

/// The stream configuration for one of the contract's streams; the files in
/// `nats/streams/` say the same (a test keeps them in step).
pub fn stream_config(spec: &StreamSpec) -> stream::Config {
    stream::Config {
        name: spec.name.to_owned(),
        description: Some(spec.description.to_owned()),
        subjects: spec.subjects.iter().map(|s| s.to_string()).collect(),
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        max_age: STREAM_MAX_AGE,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: 1,
        ..Default::default()
    }
}

/// Creates the contract's streams, or brings their configuration up to date.
pub async fn ensure_streams(js: &jetstream::Context) -> Result<(), RuntimeError> {
    for spec in &STREAMS {
        let config = stream_config(spec);
        let failed = RuntimeError::nats(NatsStep::EnsureStream(spec.name));
        match js.get_stream(spec.name).await {
            Ok(_) => {
                js.update_stream(config).await.map_err(failed)?;
            }
            Err(_) => {
                js.create_stream(config).await.map_err(failed)?;
            }
        }
    }
    Ok(())
}

/// The first of the contract's streams that is missing, if any.
pub async fn missing_stream(js: &jetstream::Context) -> Option<&'static str> {
    for spec in &STREAMS {
        if js.get_stream(spec.name).await.is_err() {
            return Some(spec.name);
        }
    }
    None
}

/// The message `stream` holds at `seq`, `None` when it holds none there
/// (aged out, deleted, lost with an unsynced tail, or not written yet).
pub async fn message_at<I>(
    stream: &jetstream::stream::Stream<I>,
    seq: u64,
) -> Result<Option<jetstream::message::StreamMessage>, jetstream::stream::RawMessageError> {
    use jetstream::stream::LastRawMessageErrorKind;
    match stream.get_raw_message(seq).await {
        Ok(message) => Ok(Some(message)),
        Err(error) => match error.kind() {
            LastRawMessageErrorKind::NoMessageFound => Ok(None),
            LastRawMessageErrorKind::JetStream(api)
                if api.error_code() == jetstream::ErrorCode::NO_MESSAGE_FOUND =>
            {
                Ok(None)
            }
            _ => Err(error),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `nats stream add --config nats/streams/<name>.json` must make the same stream.
    #[test]
    fn stream_files_match_the_code() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../nats/streams");
        for spec in &STREAMS {
            let path = folder.join(format!("{}.json", spec.name.to_lowercase()));
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let file: serde_json::Value = serde_json::from_str(&text).unwrap();
            let code = stream_config(spec);
            assert_eq!(file["name"], code.name);
            assert_eq!(file["subjects"], serde_json::json!(code.subjects));
            assert_eq!(file["storage"], "file");
            assert_eq!(file["retention"], "limits");
            assert_eq!(
                file["max_age"].as_u64(),
                Some(code.max_age.as_nanos() as u64)
            );
            assert_eq!(
                file["duplicate_window"].as_u64(),
                Some(code.duplicate_window.as_nanos() as u64)
            );
        }
    }
}
