//! The API server a running master serves: HTTP/1.1 + JSON on the run's Unix socket
//! (peers of another user are refused), and optionally on TCP with a bearer token.

use crate::routes::{route, Ctx, Reloader};
use crate::rundir::{current_uid, ensure_runtime_dir, write_private, RunDirError, RunFiles};
use crate::wire::RunDescriptor;
use distarch_core::Control;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;

/// Why the API could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The runtime directory is missing, unsafe or unwritable.
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    /// The socket, descriptor or token file could not be made.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being made.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TCP listener could not be opened.
    #[error("cannot listen on {addr} (launcher.control.listen): {source}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// What the master tells about itself, besides its [`Control`].
#[derive(Clone, Default)]
pub struct ServeOptions {
    /// The config file the run was started from.
    pub config_file: Option<PathBuf>,
    /// Whether the run is in service mode.
    pub service: bool,
    /// Also serve on this TCP address (needs a token).
    pub listen: Option<String>,
    /// The token for TCP; generated when `None`.
    pub token: Option<String>,
    /// Reads the configuration sources again, for `reload` without a configuration
    /// (and SIGHUP).
    pub reload: Option<Reloader>,
}

/// The running API server. Dropping it stops serving and removes the run's files.
pub struct ControlServer {
    files: RunFiles,
    descriptor: RunDescriptor,
    tcp: Option<std::net::SocketAddr>,
    token_file: Option<PathBuf>,
    tasks: Vec<JoinHandle<()>>,
    /// Connections being served now.
    open: Arc<AtomicUsize>,
}

/// Counts a connection as open while it is served.
struct OpenGuard(Arc<AtomicUsize>);

impl OpenGuard {
    fn new(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::SeqCst);
        OpenGuard(open.clone())
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ControlServer {
    /// The run's socket.
    pub fn socket(&self) -> &Path {
        &self.files.socket
    }

    /// The descriptor clients see.
    pub fn descriptor(&self) -> &RunDescriptor {
        &self.descriptor
    }

    /// The TCP address actually bound, if any.
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp
    }

    /// The file holding the TCP token, if one was generated.
    pub fn token_file(&self) -> Option<&Path> {
        self.token_file.as_deref()
    }

    /// Stops taking connections, then lets the ones being served finish for up to
    /// `grace` (a `stop` of the run's last instance gets its answer although the
    /// run ends with it; follow streams end with the run), then stops serving and
    /// removes the run's files.
    pub async fn close(self, grace: std::time::Duration) {
        for t in &self.tasks {
            t.abort();
        }
        let deadline = tokio::time::Instant::now() + grace;
        while self.open.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.files.remove();
    }
}

fn name_of(config: Option<&Path>, cwd: &Path) -> String {
    config
        .and_then(|c| c.file_stem())
        .filter(|s| *s != "distarch")
        .or_else(|| cwd.file_name())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "distarch".into())
}

/// Starts serving the API of `control` (on the current tokio runtime) and writes
/// the run's descriptor.
pub async fn serve(control: Control, options: ServeOptions) -> Result<ControlServer, ServeError> {
    let dir = ensure_runtime_dir()?;
    let files = RunFiles::new(&dir, control.run_id());
    files.remove();
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| ServeError::Io { what, path, source }
    };
    let unix =
        UnixListener::bind(&files.socket).map_err(io("cannot bind socket", &files.socket))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&files.socket, std::fs::Permissions::from_mode(0o600))
            .map_err(io("cannot restrict socket", &files.socket))?;
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    let config_file = options
        .config_file
        .as_ref()
        .map(|c| std::fs::canonicalize(c).unwrap_or_else(|_| cwd.join(c)));
    let mut server = ControlServer {
        files: files.clone(),
        descriptor: RunDescriptor {
            run_id: control.run_id().to_string(),
            pid: std::process::id(),
            started: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            name: name_of(config_file.as_deref(), &cwd),
            config: config_file.map(|c| c.to_string_lossy().into_owned()),
            cwd: cwd.to_string_lossy().into_owned(),
            listen: None,
            service: options.service,
        },
        tcp: None,
        token_file: None,
        tasks: Vec::new(),
        open: Arc::default(),
    };
    let mut token = None;
    if let Some(addr) = &options.listen {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServeError::Listen {
                addr: addr.clone(),
                source,
            })?;
        let bound = listener.local_addr().ok();
        let secret = match &options.token {
            Some(t) => t.clone(),
            None => {
                let t = new_token();
                write_private(&files.token, t.as_bytes())
                    .map_err(io("cannot write token", &files.token))?;
                server.token_file = Some(files.token.clone());
                t
            }
        };
        token = Some(secret);
        server.tcp = bound;
        server.descriptor.listen = bound.map(|a| a.to_string());
        let ctx = Arc::new(Ctx {
            control: control.clone(),
            descriptor: server.descriptor.clone(),
            reload: options.reload.clone(),
            token: token.clone(),
        });
        server
            .tasks
            .push(tokio::spawn(accept_tcp(listener, ctx, server.open.clone())));
    }
    let ctx = Arc::new(Ctx {
        control,
        descriptor: server.descriptor.clone(),
        reload: options.reload,
        token: None,
    });
    server
        .tasks
        .push(tokio::spawn(accept_unix(unix, ctx, server.open.clone())));
    let json = serde_json::to_vec_pretty(&server.descriptor).unwrap_or_default();
    write_private(&files.descriptor, &json)
        .map_err(io("cannot write descriptor", &files.descriptor))?;
    drop(token);
    Ok(server)
}

/// 32 random bytes as hex.
fn new_token() -> String {
    let mut rng = fastrand::Rng::new();
    // fastrand seeds from the OS; mix in the time and pid for good measure.
    let salt = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id());
    (0..4)
        .map(|_| format!("{:016x}", rng.u64(..) ^ salt.rotate_left(17)))
        .collect()
}

async fn accept_unix(listener: UnixListener, ctx: Arc<Ctx>, open: Arc<AtomicUsize>) {
    let me = current_uid();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let denied = match stream.peer_cred() {
            Ok(cred) if cred.uid() == me => None,
            Ok(cred) => Some(format!("uid {} is not the run's user", cred.uid())),
            Err(e) => Some(format!("cannot read peer credentials: {e}")),
        };
        if let Some(why) = &denied {
            tracing::warn!("control: refused a connection on the socket: {why}");
        }
        let guard = OpenGuard::new(&open);
        let ctx = ctx.clone();
        tokio::spawn(async move {
            connection(stream, ctx, denied).await;
            drop(guard);
        });
    }
}

async fn accept_tcp(listener: TcpListener, ctx: Arc<Ctx>, open: Arc<AtomicUsize>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let guard = OpenGuard::new(&open);
        let ctx = ctx.clone();
        tokio::spawn(async move {
            connection(stream, ctx, None).await;
            drop(guard);
        });
    }
}

async fn connection<S>(stream: S, ctx: Arc<Ctx>, denied: Option<String>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
        let ctx = ctx.clone();
        let denied = denied.clone();
        async move {
            if let Some(why) = denied {
                return Ok::<_, std::convert::Infallible>(crate::routes::error(
                    StatusCode::FORBIDDEN,
                    format!("refused: {why}"),
                ));
            }
            if let Some(expected) = &ctx.token {
                if !crate::routes::token_ok(&req, expected) {
                    tracing::warn!(
                        "control: refused a TCP request without a valid token: {} {}",
                        req.method(),
                        req.uri().path()
                    );
                    return Ok(crate::routes::error(
                        StatusCode::UNAUTHORIZED,
                        "refused: a valid bearer token is required".into(),
                    ));
                }
            }
            Ok(route(req, ctx).await)
        }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// A body from whole bytes.
pub(crate) fn full(bytes: impl Into<bytes::Bytes>) -> crate::routes::Body {
    Full::new(bytes.into()).boxed()
}

/// A response with a JSON body.
pub(crate) fn json_response(
    status: StatusCode,
    value: &impl serde::Serialize,
) -> Response<crate::routes::Body> {
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}
