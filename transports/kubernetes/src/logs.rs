//! Following a container's log through the API server, across the API server going
//! away: the log request is proxied by the API server, so a restart of it (or a
//! dropped connection) ends the stream while the container still runs. The log is
//! then requested again, from its first byte, and the bytes already delivered are
//! skipped: nothing is lost and nothing is repeated. The stream ends for good once
//! the pod's container has ended (as the shared watch tells) or the pod is gone.

use crate::status::{progress, Progress};
use crate::watch::PodState;
use futures::AsyncReadExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use kube::Api;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::watch;

/// How long, after the log stream ended cleanly, the container may take to be
/// reported ended before the log is requested again (a clean end is nearly always
/// the container's: under load its status can lag by seconds).
const END_GRACE: Duration = Duration::from_secs(30);
/// The same after the stream broke (the API server went away).
const BROKEN_GRACE: Duration = Duration::from_secs(1);
/// Pause between failed attempts to request the log again.
const RETRY: Duration = Duration::from_millis(500);
/// Buffer between the pump task and the reader.
const PIPE: usize = 64 * 1024;

/// Has the pod's container ended, or the pod gone?
fn finished(state: &PodState) -> bool {
    state.deleted
        || state
            .pod
            .as_ref()
            .is_some_and(|p| matches!(progress(p), Progress::Ended(_)))
}

/// Waits up to `limit` for the container to end; true if it did.
async fn ended_within(state: &mut watch::Receiver<PodState>, limit: Duration) -> bool {
    let wait = state.wait_for(finished);
    matches!(tokio::time::timeout(limit, wait).await, Ok(Ok(_)))
}

/// The followed log of container `container` of pod `name`: the first request is
/// made here (its error is the caller's to report); the returned reader keeps
/// following across dropped connections.
pub async fn follow(
    api: Api<Pod>,
    name: String,
    container: String,
    state: watch::Receiver<PodState>,
) -> Result<DuplexStream, kube::Error> {
    let params = LogParams {
        container: Some(container),
        follow: true,
        ..LogParams::default()
    };
    let first = api.log_stream(&name, &params).await?;
    let (reader, writer) = tokio::io::duplex(PIPE);
    tokio::spawn(pump(api, name, params, state, Box::pin(first), writer));
    Ok(reader)
}

type LogBody = std::pin::Pin<Box<dyn futures::AsyncBufRead + Send>>;

async fn pump(
    api: Api<Pod>,
    name: String,
    params: LogParams,
    mut state: watch::Receiver<PodState>,
    first: LogBody,
    mut out: DuplexStream,
) {
    let mut delivered: u64 = 0;
    let mut stream = Some(first);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Some(mut body) = stream.take() else {
            return;
        };
        // Bytes of this stream seen so far: a stream after a reconnect starts at the
        // log's first byte again.
        let mut pos: u64 = 0;
        let clean = loop {
            match body.read(&mut buf).await {
                Ok(0) => break true,
                Ok(n) => {
                    let end = pos + n as u64;
                    if end > delivered {
                        let from = usize::try_from(delivered.saturating_sub(pos)).unwrap_or(0);
                        if out.write_all(&buf[from..n]).await.is_err() {
                            return; // the reader is gone
                        }
                        delivered = end;
                    }
                    pos = end;
                }
                Err(e) => {
                    tracing::debug!(pod = %name, error = %e, "log stream broke");
                    break false;
                }
            }
        };
        let grace = if clean { END_GRACE } else { BROKEN_GRACE };
        if ended_within(&mut state, grace).await {
            if clean {
                return;
            }
            // The stream broke as the container ended: read what is left once,
            // without following.
            let rest = LogParams {
                follow: false,
                ..params.clone()
            };
            if let Ok(body) = api.log_stream(&name, &rest).await {
                stream = Some(Box::pin(body));
                // Read it to its end; the next round sees the container ended and
                // a clean end, and returns.
                continue;
            }
            return;
        }
        tracing::debug!(pod = %name, delivered, "the log ended while the container runs; following it again");
        loop {
            if state.borrow().deleted {
                return;
            }
            match api.log_stream(&name, &params).await {
                Ok(body) => {
                    stream = Some(Box::pin(body));
                    break;
                }
                Err(kube::Error::Api(s)) if s.code == 404 => return,
                Err(e) => {
                    tracing::debug!(pod = %name, error = %e, "cannot follow the log yet");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }
}
