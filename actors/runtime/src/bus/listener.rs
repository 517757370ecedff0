//! A service's commands on NATS, with the NATS service API, so that
//! `nats micro ls` lists them and any number of instances share the load
//! (the API's queue group): each request becomes a [`Job`], or is refused
//! with the error shape if its headers or body are not acceptable.

use std::sync::Arc;

use async_nats::service::{Service, ServiceExt};
use futures::stream::{BoxStream, SelectAll, StreamExt};
use taskflow_schemas::ErrorBody;

use super::CommandContext;
use super::endpoints::{Endpoints, Job, encode_reply};
use crate::{NatsStep, RuntimeError};

/// Registers every subject of `endpoints` under the service `name`; returns
/// the service (keep it alive) and one stream of the jobs of every request.
pub(crate) async fn serve<S: Send + Sync + 'static>(
    client: &async_nats::Client,
    name: &str,
    description: &str,
    endpoints: Arc<Endpoints<S>>,
    state: Arc<S>,
) -> Result<(Service, BoxStream<'static, Job>), RuntimeError> {
    let service = client
        .service_builder()
        .description(description)
        .start(name, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|error| RuntimeError::Nats {
            step: NatsStep::StartService,
            source: error,
        })?;
    let mut streams = SelectAll::new();
    for subject in endpoints.subjects() {
        let short = subject.rsplit('.').next().unwrap_or(subject);
        let endpoint = service
            .endpoint_builder()
            .name(short)
            .add(subject)
            .await
            .map_err(|error| RuntimeError::Nats {
                step: NatsStep::AddEndpoint,
                source: error,
            })?;
        let (endpoints, state) = (endpoints.clone(), state.clone());
        let jobs = endpoint.filter_map(move |request| {
            let job = match CommandContext::from_headers(request.message.headers.as_ref()) {
                Ok(context) => endpoints.job_from_nats(&state, subject, context, Box::new(request)),
                Err(error) => Err((Box::new(request), error)),
            };
            async move {
                match job {
                    Ok(job) => Some(job),
                    Err((request, error)) => {
                        refuse(request, error).await;
                        None
                    }
                }
            }
        });
        streams.push(jobs.boxed());
    }
    Ok((service, streams.boxed()))
}

async fn refuse(request: Box<async_nats::service::Request>, error: ErrorBody) {
    if let Err(failed) = request.respond(Ok(encode_reply::<()>(Err(error)))).await {
        tracing::warn!(error = %failed, "could not refuse a command");
    }
}
