//! The API's routes: what each path does with the run's [`Control`].

use crate::server::{full, json_response};
use crate::wire::{
    ErrorAnswer, GroupsRequest, IdsAnswer, ReloadRequest, RunDescriptor, RunStatus, ScaleRequest,
    TargetsRequest, API_PREFIX,
};
use bytes::Bytes;
use distarch_core::{
    format_json, format_text, Config, Control, ControlError, Event, FeedEvent, Followed, LogFilter,
};
use http_body_util::channel::Channel;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Limited};
use hyper::body::Frame;
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

/// Response bodies.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// Reads the configuration sources again (for `reload` without a body, SIGHUP).
/// The error is a human text listing what is wrong.
pub type Reloader = Arc<dyn Fn() -> Result<Config, String> + Send + Sync>;

/// Largest request body (a whole configuration).
const MAX_REQUEST: usize = 8 * 1024 * 1024;
/// Frames a follow stream may hold for a client that is not reading.
const STREAM_FRAMES: usize = 16;
/// Events already waiting are sent to a follower together, up to about this many
/// bytes per frame.
const FRAME_BATCH: usize = 64 * 1024;
/// How long a follower may keep a full stream before it is dropped.
const STALLED_FOLLOWER: Duration = Duration::from_secs(5);

/// What every request of one listener shares.
pub(crate) struct Ctx {
    pub(crate) control: Control,
    pub(crate) descriptor: RunDescriptor,
    pub(crate) reload: Option<Reloader>,
    pub(crate) token: Option<String>,
}

/// True when the request carries `Authorization: Bearer <expected>`.
pub(crate) fn token_ok<B>(req: &Request<B>, expected: &str) -> bool {
    let Some(value) = req.headers().get(hyper::header::AUTHORIZATION) else {
        return false;
    };
    let Some(given) = value.as_bytes().strip_prefix(b"Bearer ") else {
        return false;
    };
    given.ct_eq(expected.as_bytes()).into()
}

/// An error answer.
pub(crate) fn error(status: StatusCode, message: String) -> Response<Body> {
    json_response(status, &ErrorAnswer { error: message })
}

fn control_error(e: ControlError) -> Response<Body> {
    let status = match e {
        ControlError::NotFound(_) => StatusCode::NOT_FOUND,
        ControlError::Invalid(_) => StatusCode::BAD_REQUEST,
        ControlError::Config(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ControlError::Stopping => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

async fn body<T: serde::de::DeserializeOwned + Default>(
    req: Request<hyper::body::Incoming>,
) -> Result<T, Response<Body>> {
    let bytes = Limited::new(req.into_body(), MAX_REQUEST)
        .collect()
        .await
        .map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request: {e}"),
            )
        })?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("bad request body: {e}")))
}

fn ok<T: serde::Serialize>(value: &T) -> Response<Body> {
    json_response(StatusCode::OK, value)
}

/// Answers one request.
pub(crate) async fn route(req: Request<hyper::body::Incoming>, ctx: Arc<Ctx>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let Some(path) = path.strip_prefix(API_PREFIX) else {
        return error(StatusCode::NOT_FOUND, format!("no such path {path}"));
    };
    let c = &ctx.control;
    match (req.method().clone(), path) {
        (Method::GET, "/run") => {
            let (instances, running) = c.counts();
            ok(&RunStatus {
                descriptor: ctx.descriptor.clone(),
                instances,
                running,
            })
        }
        (Method::GET, "/instances") => ok(&c.snapshot()),
        // Job pools' counters (issue 12): done, failed, in flight, rate, ETA.
        (Method::GET, "/jobs") => ok(&c.jobs()),
        (Method::GET, "/logs") => match LogQuery::parse(req.uri().query()) {
            Ok(q) => logs(c, q),
            Err(e) => error(StatusCode::BAD_REQUEST, e),
        },
        (Method::GET, "/events") => follow_from(c.events(), None, Formatter::Json),
        (Method::POST, "/stop") => match body::<TargetsRequest>(req).await {
            Ok(r) if r.targets.is_empty() => {
                c.stop_run();
                ok(&IdsAnswer {
                    ids: c.snapshot().iter().map(|i| i.id).collect(),
                })
            }
            Ok(r) => ids(c.stop(r.targets).await),
            Err(resp) => resp,
        },
        (Method::POST, "/suspend") => match body::<GroupsRequest>(req).await {
            Ok(r) => ids(c.suspend(r.groups).await),
            Err(resp) => resp,
        },
        (Method::POST, "/resume") => match body::<GroupsRequest>(req).await {
            Ok(r) => ids(c.resume(r.groups).await),
            Err(resp) => resp,
        },
        (Method::POST, "/scale") => match body::<Option<ScaleRequest>>(req).await {
            Ok(Some(r)) => match c.scale(r.group, r.placement, r.count).await {
                Ok(o) => ok(&o),
                Err(e) => control_error(e),
            },
            Ok(None) => error(StatusCode::BAD_REQUEST, "scale needs a body".into()),
            Err(resp) => resp,
        },
        (Method::POST, "/restart") => match body::<TargetsRequest>(req).await {
            Ok(r) => ids(c.restart(r.targets, r.rolling).await),
            Err(resp) => resp,
        },
        (Method::POST, "/reload") => match body::<ReloadRequest>(req).await {
            Ok(r) => {
                let config = match (r.config, &ctx.reload) {
                    (Some(config), _) => config,
                    (None, Some(reload)) => match reload() {
                        Ok(config) => config,
                        Err(e) => {
                            return control_error(ControlError::Config(e));
                        }
                    },
                    (None, None) => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "this run cannot read its configuration again; send one".into(),
                        )
                    }
                };
                match c.reload(config).await {
                    Ok(o) => ok(&o),
                    Err(e) => control_error(e),
                }
            }
            Err(resp) => resp,
        },
        (_, p) => error(
            StatusCode::NOT_FOUND,
            format!("no such path {API_PREFIX}{p}"),
        ),
    }
}

fn ids(result: Result<Vec<u64>, ControlError>) -> Response<Body> {
    match result {
        Ok(ids) => ok(&IdsAnswer { ids }),
        Err(e) => control_error(e),
    }
}

/// `GET /v1/logs?group=G&id=N&since=RFC3339&tail=N&follow=true`.
struct LogQuery {
    filter: LogFilter,
    follow: bool,
    format: Formatter,
}

/// How a stream shows events.
#[derive(Clone, Copy)]
enum Formatter {
    Json,
    Text,
}

impl Formatter {
    fn write(self, buf: &mut Vec<u8>, event: &Event) {
        match self {
            Formatter::Json => format_json(buf, event),
            Formatter::Text => format_text(buf, event),
        }
    }

    fn live(self, event: &FeedEvent) -> &[u8] {
        match self {
            Formatter::Json => event.json(),
            Formatter::Text => event.text(),
        }
    }
}

impl LogQuery {
    fn parse(query: Option<&str>) -> Result<LogQuery, String> {
        let mut q = LogQuery {
            filter: LogFilter::default(),
            follow: false,
            format: Formatter::Json,
        };
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*k {
                "group" => q.filter.groups.push(v.into_owned()),
                "id" => q
                    .filter
                    .ids
                    .push(v.parse().map_err(|_| format!("id `{v}` is not a number"))?),
                "tail" => {
                    q.filter.tail = Some(
                        v.parse()
                            .map_err(|_| format!("tail `{v}` is not a number"))?,
                    )
                }
                "since" => {
                    q.filter.since = Some(
                        humantime::parse_rfc3339_weak(&v)
                            .map_err(|e| format!("since `{v}` is not a time: {e}"))?,
                    )
                }
                "follow" => q.follow = v == "true" || v == "1",
                "format" => {
                    q.format = match &*v {
                        "json" => Formatter::Json,
                        "text" => Formatter::Text,
                        other => return Err(format!("format `{other}` is not json or text")),
                    }
                }
                other => return Err(format!("unknown parameter `{other}`")),
            }
        }
        Ok(q)
    }
}

fn logs(c: &Control, q: LogQuery) -> Response<Body> {
    if !q.follow {
        let mut buf = Vec::new();
        for e in c.logs(&q.filter) {
            q.format.write(&mut buf, &e);
        }
        return ndjson(full(buf));
    }
    follow_from(c.follow(&q.filter), Some(q.filter), q.format)
}

fn ndjson(body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

/// A stream of lines: the buffered events first, then every live event the filter
/// wants (every event when `filter` is `None`), until the run's last event. A
/// client that stops reading is dropped.
fn follow_from(followed: Followed, filter: Option<LogFilter>, format: Formatter) -> Response<Body> {
    let Followed {
        buffered,
        mut live,
        ended,
    } = followed;
    let (mut tx, body) = Channel::<Bytes, Infallible>::new(STREAM_FRAMES);
    tokio::spawn(async move {
        // The buffer goes out in frames of about FRAME_BATCH bytes, so that a client
        // that does not read holds at most STREAM_FRAMES of them in memory.
        let mut buf = Vec::new();
        for e in buffered {
            format.write(&mut buf, &e);
            if buf.len() >= FRAME_BATCH && !push(&mut tx, std::mem::take(&mut buf)).await {
                return;
            }
        }
        // A client that came after the run stopped gets what is left and the end
        // at once, instead of waiting for the master to close.
        if let Some(last) = ended {
            if filter.as_ref().is_none_or(|f| f.wants(&last)) {
                format.write(&mut buf, &last);
            }
            if !buf.is_empty() {
                push(&mut tx, buf).await;
            }
            return;
        }
        if !buf.is_empty() && !push(&mut tx, buf).await {
            return;
        }
        // An empty line tells the client the stream is live (and keeps proxies open).
        if !push(&mut tx, b"\n".to_vec()).await {
            return;
        }
        // Adds a live event to what goes out next when the filter wants it; true
        // when it is the run's last event (the stream then ends, so `logs -f` and
        // `events` end with the run instead of holding the master's exit).
        let take = |event: &Arc<FeedEvent>, out: &mut Outgoing| {
            if filter.as_ref().is_none_or(|f| f.wants(event.event())) {
                out.add(event, format);
            }
            matches!(event.event(), Event::RunStopped { .. })
        };
        loop {
            let mut out = Outgoing::default();
            let mut ended = match live.recv().await {
                Ok(event) => take(&event, &mut out),
                Err(RecvError::Lagged(_)) => {
                    tracing::warn!("control: dropped a follower that fell behind");
                    return;
                }
                Err(RecvError::Closed) => return,
            };
            // What else is already there goes out with it (one write to the client
            // instead of one per event, which is what a flood costs).
            while !ended && out.bytes < FRAME_BATCH {
                match live.try_recv() {
                    Ok(event) => ended = take(&event, &mut out),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Lagged(_)) => {
                        tracing::warn!("control: dropped a follower that fell behind");
                        return;
                    }
                    Err(TryRecvError::Closed) => ended = true,
                }
            }
            for frame in out.frames() {
                if !push(&mut tx, frame).await {
                    tracing::warn!("control: dropped a follower that stopped reading");
                    return;
                }
            }
            if ended {
                return;
            }
        }
    });
    ndjson(body.boxed())
}

/// Live events of this size or more go to a follower as they are, shared with
/// every other follower (not copied into a frame of its own).
const SHARED_FROM: usize = 4 * 1024;

/// A live event's formatted lines, as the body of a frame (no copy).
struct Formatted(Arc<FeedEvent>, Formatter);

impl AsRef<[u8]> for Formatted {
    fn as_ref(&self) -> &[u8] {
        self.1.live(&self.0)
    }
}

/// What a follower sends next: small events copied together into one frame, large
/// ones (a flood's batches of lines) as frames of their own that share the
/// event's formatted bytes.
#[derive(Default)]
struct Outgoing {
    frames: Vec<Bytes>,
    small: Vec<u8>,
    bytes: usize,
}

impl Outgoing {
    fn add(&mut self, event: &Arc<FeedEvent>, format: Formatter) {
        let data = format.live(event);
        self.bytes += data.len();
        if data.len() < SHARED_FROM {
            self.small.extend_from_slice(data);
            return;
        }
        if !self.small.is_empty() {
            self.frames
                .push(Bytes::from(std::mem::take(&mut self.small)));
        }
        self.frames
            .push(Bytes::from_owner(Formatted(event.clone(), format)));
    }

    /// The frames, in order.
    fn frames(mut self) -> Vec<Bytes> {
        if !self.small.is_empty() {
            self.frames.push(Bytes::from(self.small));
        }
        self.frames
    }
}

/// Sends one frame to a follower; false when it is gone or has not taken anything
/// for [`STALLED_FOLLOWER`] while its stream was full.
async fn push(
    tx: &mut http_body_util::channel::Sender<Bytes, Infallible>,
    buf: impl Into<Bytes>,
) -> bool {
    match tx.try_send(Frame::data(buf.into())) {
        Ok(()) => true,
        Err(frame) => matches!(
            tokio::time::timeout(STALLED_FOLLOWER, tx.send(frame)).await,
            Ok(Ok(()))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distarch_core::{InstanceLabel, LogLines, LogStream};

    #[tokio::test]
    async fn a_stream_opened_after_the_run_stopped_ends_at_once_with_what_is_left() {
        // The feed's sender stays alive: the stream must not wait for it to close.
        let (_feed, live) = tokio::sync::broadcast::channel(4);
        let label = Arc::new(InstanceLabel::new("g".into(), "h".into(), 1, 1, 1, 0));
        let mut lines = LogLines::new(
            std::time::SystemTime::now(),
            label,
            distarch_core::protocol::Level::Info,
            LogStream::Stdout,
        );
        lines.push(b"last words", false);
        let followed = Followed {
            buffered: vec![Arc::new(Event::Lines(lines))],
            live,
            ended: Some(Arc::new(Event::RunStopped {
                run_id: "r".into(),
                exit_code: 0,
            })),
        };
        let body = follow_from(followed, None, Formatter::Json).into_body();
        let all = tokio::time::timeout(Duration::from_secs(5), body.collect())
            .await
            .expect("the stream ended at once")
            .expect("a body")
            .to_bytes();
        let text = String::from_utf8_lossy(&all);
        let kinds: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(kinds.len(), 2, "{text}");
        assert_eq!(kinds[0]["message"], "last words", "{text}");
        assert_eq!(kinds[1]["event"], "run_stopped", "{text}");
    }
}
