//! A client of the API: one HTTP/1.1 connection per request, over the run's Unix
//! socket or over TCP with a bearer token.

use crate::wire::{ErrorAnswer, API_PREFIX};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::PathBuf;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The master cannot be reached.
    #[error("cannot connect to {at}: {source}")]
    Connect {
        /// Socket path or address.
        at: String,
        /// Why.
        source: std::io::Error,
    },
    /// The connection broke.
    #[error("talking to the master: {0}")]
    Http(#[from] hyper::Error),
    /// The master answered with an error.
    #[error("{message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The master's explanation.
        message: String,
    },
    /// The answer was not what was expected.
    #[error("unexpected answer from the master: {0}")]
    Decode(String),
}

impl ClientError {
    /// True when the master said the group or instance does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Refused { status: 404, .. })
    }
}

/// Where the API is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A run's Unix socket.
    Unix(PathBuf),
    /// A TCP address with its bearer token.
    Tcp {
        /// `host:port`.
        addr: String,
        /// The token.
        token: String,
    },
}

/// A client of one run's API.
#[derive(Debug, Clone)]
pub struct Client {
    endpoint: Endpoint,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

impl Client {
    /// A client of the API at `endpoint`.
    pub fn new(endpoint: Endpoint) -> Self {
        Client { endpoint }
    }

    /// A client of the API on a run's Unix socket.
    pub fn unix(socket: impl Into<PathBuf>) -> Self {
        Client::new(Endpoint::Unix(socket.into()))
    }

    async fn connect(&self) -> Result<Box<dyn Io>, ClientError> {
        match &self.endpoint {
            Endpoint::Unix(path) => UnixStream::connect(path)
                .await
                .map(|s| Box::new(s) as Box<dyn Io>)
                .map_err(|source| ClientError::Connect {
                    at: path.display().to_string(),
                    source,
                }),
            Endpoint::Tcp { addr, .. } => TcpStream::connect(addr)
                .await
                .map(|s| Box::new(s) as Box<dyn Io>)
                .map_err(|source| ClientError::Connect {
                    at: addr.clone(),
                    source,
                }),
        }
    }

    /// Sends a request; returns the answer's body once the status says success.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::body::Incoming, ClientError> {
        let io = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{API_PREFIX}{path}"))
            .header(hyper::header::HOST, "distarch");
        if let Endpoint::Tcp { token, .. } = &self.endpoint {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        if status == StatusCode::OK {
            return Ok(resp.into_body());
        }
        let bytes = resp.into_body().collect().await?.to_bytes();
        let message = serde_json::from_slice::<ErrorAnswer>(&bytes)
            .map(|e| e.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_string());
        Err(ClientError::Refused {
            status: status.as_u16(),
            message,
        })
    }

    /// `GET` a JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self.send(Method::GET, path, None).await?;
        decode(body).await
    }

    /// `POST` a JSON body, get a JSON answer.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        let body = self.send(Method::POST, path, Some(bytes)).await?;
        decode(body).await
    }

    /// `GET` a stream of lines; `on_line` gets each non-empty line and returns
    /// false to stop. Returns when the stream ends.
    pub async fn lines(
        &self,
        path: &str,
        mut on_line: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), ClientError> {
        self.line_chunks(path, |chunk| {
            chunk
                .split(|b| *b == b'\n')
                .filter(|line| !line.is_empty())
                .all(&mut on_line)
        })
        .await
    }

    /// `GET` a stream of lines, handed over in chunks of whole lines: `on_chunk`
    /// gets the non-empty lines that arrived together (one read), each ending with
    /// a newline, as one slice a printer writes at once; it returns false to stop.
    /// The lines are not split or copied one by one: a follower of a flood costs
    /// the machine a search for the last newline of each read. Returns when the
    /// stream ends (a last line without a newline gets one).
    pub async fn line_chunks(
        &self,
        path: &str,
        mut on_chunk: impl FnMut(&[u8]) -> bool,
    ) -> Result<(), ClientError> {
        let mut body = self.send(Method::GET, path, None).await?;
        let mut pending: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            if pending.is_empty() {
                // The usual case (frames end with whole lines): no copy.
                let whole = memchr::memrchr(b'\n', data).map_or(0, |last| last + 1);
                if !whole_lines(&data[..whole], &mut on_chunk) {
                    return Ok(());
                }
                pending.extend_from_slice(&data[whole..]);
                continue;
            }
            pending.extend_from_slice(data);
            let Some(last) = memchr::memrchr(b'\n', &pending) else {
                continue;
            };
            if !whole_lines(&pending[..=last], &mut on_chunk) {
                return Ok(());
            }
            pending.drain(..=last);
        }
        if !pending.is_empty() {
            pending.push(b'\n');
            whole_lines(&pending, &mut on_chunk);
        }
        Ok(())
    }
}

/// Hands `lines` (whole lines, the last ending with a newline) to `on_chunk`
/// without its empty lines (the stream's "now live" marker), in as few slices as
/// there are runs of non-empty lines. False when `on_chunk` said stop.
fn whole_lines(lines: &[u8], on_chunk: &mut impl FnMut(&[u8]) -> bool) -> bool {
    let mut rest = lines;
    loop {
        // Empty lines at the start of what is left.
        let skip = rest.iter().take_while(|b| **b == b'\n').count();
        rest = &rest[skip..];
        if rest.is_empty() {
            return true;
        }
        // Up to and including the newline before the next empty line, if any.
        let end = memchr::memmem::find(rest, b"\n\n").map_or(rest.len(), |i| i + 1);
        if !on_chunk(&rest[..end]) {
            return false;
        }
        rest = &rest[end..];
    }
}

async fn decode<T: DeserializeOwned>(body: hyper::body::Incoming) -> Result<T, ClientError> {
    let bytes = body.collect().await?.to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::whole_lines;

    fn chunks(lines: &[u8]) -> Vec<String> {
        let mut got = Vec::new();
        assert!(whole_lines(lines, &mut |c: &[u8]| {
            got.push(String::from_utf8_lossy(c).into_owned());
            true
        }));
        got
    }

    #[test]
    fn whole_lines_come_in_runs_without_the_empty_ones() {
        assert_eq!(chunks(b"a\nb\n"), ["a\nb\n"]);
        assert_eq!(chunks(b"\n"), Vec::<String>::new());
        assert_eq!(chunks(b"\n\nx\n"), ["x\n"]);
        assert_eq!(chunks(b"a\n\nb\nc\n\n"), ["a\n", "b\nc\n"]);
    }

    #[test]
    fn a_stop_ends_the_runs() {
        let mut seen = 0;
        assert!(!whole_lines(b"a\n\nb\n", &mut |_: &[u8]| {
            seen += 1;
            false
        }));
        assert_eq!(seen, 1);
    }
}
