//! [`PluginTransport`]: the core `Transport`/`Instance` traits over the plugin
//! protocol, and the resolver that finds `distarch-transport-<name>`.

use crate::conn::{Connection, Reply};
use crate::{EXECUTABLE_PREFIX, PROTOCOL_VERSION};
use async_trait::async_trait;
use distarch_core::config::StopSignal;
use distarch_core::owner::MasterIdentity;
use distarch_core::protocol::Level;
use distarch_core::TransportResolver;
use distarch_core::{
    ConfigError, ConfigErrors, ExitStatus, GcReport, GcRequest, Instance, InstanceError,
    InstanceIo, InstanceSpec, PlacementPlan, PlacementRef, Prepared, SpawnError, Target, Transport,
};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::oneshot;

/// How long a plugin may take to answer a request (not `wait`) before it counts as
/// hung; `DISTARCHPLUGIN_TIMEOUT` (e.g. `5s`, `500ms`) changes it (not `DISTARCH_...`: those
/// variables are configuration overrides).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The placement key that names the plugin executable explicitly.
const PLUGIN_KEY: &str = "plugin";

fn timeout_from_env() -> Duration {
    let Ok(text) = std::env::var("DISTARCHPLUGIN_TIMEOUT") else {
        return DEFAULT_TIMEOUT;
    };
    let text = text.trim();
    let parsed = if let Some(ms) = text.strip_suffix("ms") {
        ms.parse::<u64>().ok().map(Duration::from_millis)
    } else if let Some(s) = text.strip_suffix('s') {
        s.parse::<u64>().ok().map(Duration::from_secs)
    } else {
        text.parse::<u64>().ok().map(Duration::from_secs)
    };
    parsed.unwrap_or(DEFAULT_TIMEOUT)
}

/// `distarch-transport-<name>` on `PATH`, if there is an executable file of that name.
pub fn find_plugin(name: &str) -> Option<PathBuf> {
    let file = format!("{EXECUTABLE_PREFIX}{name}");
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(&file))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The resolver the CLI installs: a transport name that is not built in is looked
/// up as `distarch-transport-<name>` on `PATH`, or taken from the placement's
/// `plugin = "/path"`, and started (handshake included).
pub fn resolver() -> TransportResolver {
    Arc::new(|name: &str, path: Option<&str>| {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(format!(
                "unknown transport `{name}`: not a built-in, and not a plugin name (letters, digits, `-`, `_`)"
            ));
        }
        let exe = match path {
            Some(p) => {
                let p = PathBuf::from(p);
                if !is_executable(&p) {
                    return Err(format!(
                        "transport `{name}`: plugin = {:?} is not an executable file",
                        p.display().to_string()
                    ));
                }
                p
            }
            None => find_plugin(name).ok_or_else(|| {
                format!(
                    "unknown transport `{name}`: no built-in and no {EXECUTABLE_PREFIX}{name} on PATH"
                )
            })?,
        };
        let argv = vec![exe.display().to_string()];
        PluginTransport::start(name, &argv).map(|t| Arc::new(t) as Arc<dyn Transport>)
    })
}

/// What the plugin's `plan` returned for a placement, given back on `spawn`.
struct PluginPrepared(Value);

/// A transport that is an external program speaking the plugin protocol.
pub struct PluginTransport {
    name: String,
    conn: Arc<Connection>,
    keys: Option<Vec<&'static str>>,
    capabilities: Value,
    /// Where the per-instance stdio sockets are made.
    sock_dir: PathBuf,
}

impl std::fmt::Debug for PluginTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.conn.label)
    }
}

impl PluginTransport {
    /// Starts the plugin `argv` for transport `name` and does the handshake.
    pub fn start(name: &str, argv: &[String]) -> Result<Self, String> {
        let label = format!(
            "plugin `{name}` ({})",
            argv.first().map_or("", String::as_str)
        );
        let conn = Connection::start(label.clone(), argv, timeout_from_env())?;
        let master: Map<String, Value> = MasterIdentity::current()
            .to_map()
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let hello = conn.call_blocking(
            "initialize",
            json!({
                "protocol": PROTOCOL_VERSION,
                "transport": name,
                "distarch": env!("CARGO_PKG_VERSION"),
                "master": master,
            }),
        );
        let hello = match hello {
            Ok(h) => h,
            Err(e) => {
                conn.close(Duration::from_millis(200));
                return Err(format!("handshake failed: {e}"));
            }
        };
        let version = hello.get("protocol").and_then(Value::as_u64);
        if version != Some(PROTOCOL_VERSION) {
            conn.close(Duration::from_millis(200));
            return Err(format!(
                "{label}: speaks plugin protocol {}, this distarch speaks {PROTOCOL_VERSION}",
                version.map_or_else(|| "(none said)".to_string(), |v| v.to_string())
            ));
        }
        let keys = hello
            .get("settings_keys")
            .and_then(Value::as_array)
            .map(|keys| {
                let mut out: Vec<&'static str> = keys
                    .iter()
                    .filter_map(Value::as_str)
                    // Leaked once per plugin and run: settings_keys borrows from self.
                    .map(|k| &*Box::leak(k.to_string().into_boxed_str()))
                    .collect();
                out.push(PLUGIN_KEY);
                out
            });
        let sock_dir = std::env::temp_dir().join(format!(
            "distarch-plug-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        Ok(PluginTransport {
            name: name.to_string(),
            conn,
            keys,
            capabilities: hello.get("capabilities").cloned().unwrap_or(Value::Null),
            sock_dir,
        })
    }

    /// The capabilities the plugin announced in its handshake.
    pub fn capabilities(&self) -> &Value {
        &self.capabilities
    }

    /// The plugin's process id.
    pub fn pid(&self) -> u32 {
        self.conn.pid()
    }

    /// Why the plugin is gone, if it is.
    pub fn gone(&self) -> Option<String> {
        self.conn.dead()
    }

    /// Whether the plugin process has exited.
    pub fn exited(&self) -> bool {
        self.conn.exited()
    }

    /// Sends a raw request (for plugin-check).
    pub async fn raw_call(&self, method: &str, params: Value) -> Reply {
        self.conn.call(method, params).await
    }

    /// Closes the plugin's stdin without a `shutdown` request, waiting up to
    /// `grace` for it to exit (for plugin-check).
    pub fn close(&self, grace: Duration) {
        self.conn.close(grace);
    }
}

impl Drop for PluginTransport {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.sock_dir);
    }
}

fn config_error(path: String, e: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError::new(path, e)])
}

#[async_trait]
impl Transport for PluginTransport {
    fn name(&self) -> &str {
        &self.name
    }

    fn settings_keys(&self) -> Option<&[&str]> {
        self.keys.as_deref()
    }

    fn plan(&self, placement: &PlacementRef<'_>) -> Result<PlacementPlan, ConfigErrors> {
        let mut settings = placement.settings.clone();
        settings.remove(PLUGIN_KEY);
        let path = placement.path();
        let reply = self
            .conn
            .call_blocking(
                "plan",
                json!({
                    "group": placement.group,
                    "placement": placement.name,
                    "instances": placement.instances,
                    "settings": settings,
                }),
            )
            .map_err(|e| config_error(format!("{path}.transport"), e))?;
        if let Some(errors) = reply.get("errors").and_then(Value::as_array) {
            if !errors.is_empty() {
                return Err(ConfigErrors(
                    errors
                        .iter()
                        .map(|e| {
                            let key = e.get("key").and_then(Value::as_str).unwrap_or("");
                            let message = e
                                .get("message")
                                .and_then(Value::as_str)
                                .unwrap_or("invalid");
                            let at = if key.is_empty() {
                                path.clone()
                            } else {
                                format!("{path}.{key}")
                            };
                            ConfigError::new(at, message)
                        })
                        .collect(),
                ));
            }
        }
        let bad = |why: &str| {
            config_error(
                format!("{path}.transport"),
                format!("{}: broke the protocol: `plan` {why}", self.conn.label),
            )
        };
        let targets = reply
            .get("targets")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("returned no `targets`"))?;
        let mut out = Vec::new();
        for t in targets {
            let address = t.get("address").and_then(Value::as_str);
            let instances = t.get("instances").and_then(Value::as_u64);
            let (Some(address), Some(instances)) = (address, instances) else {
                return Err(bad("returned a target without `address` or `instances`"));
            };
            let host = t.get("host").and_then(Value::as_str).unwrap_or(address);
            out.push(Target {
                address: address.to_string(),
                host: host.to_string(),
                instances: u32::try_from(instances)
                    .map_err(|_| bad("returned too many instances"))?,
            });
        }
        let prepared = reply.get("prepared").cloned().unwrap_or(Value::Null);
        Ok(PlacementPlan::new(
            out,
            Prepared::new(PluginPrepared(prepared)),
        ))
    }

    async fn spawn(&self, spec: &InstanceSpec) -> Result<Box<dyn Instance>, SpawnError> {
        let prepared = &spec.settings::<PluginPrepared>()?.0;
        // Made at the first spawn (a `validate` or `gc` run makes none), removed at
        // shutdown; the socket files go as soon as both are connected.
        std::fs::create_dir_all(&self.sock_dir).map_err(|e| {
            SpawnError::new(format!("cannot create {}: {e}", self.sock_dir.display()))
        })?;
        let base = self.sock_dir.join(format!("{}-{}", spec.id, spec.restart));
        let io_path = base.with_extension("io");
        let err_path = base.with_extension("err");
        let _ = std::fs::remove_file(&io_path);
        let _ = std::fs::remove_file(&err_path);
        let bind = |p: &Path| {
            UnixListener::bind(p)
                .map_err(|e| SpawnError::new(format!("cannot listen on {}: {e}", p.display())))
        };
        let io_listener = bind(&io_path)?;
        let err_listener = bind(&err_path)?;
        let reply = self
            .conn
            .call(
                "spawn",
                json!({
                    "run_id": spec.run_id,
                    "group": spec.group,
                    "placement": spec.placement,
                    "id": spec.id,
                    "group_id": spec.group_id,
                    "group_count": spec.group_count,
                    "target": spec.target,
                    "host": spec.host,
                    "restart": spec.restart,
                    "command": spec.command,
                    "env": spec.env,
                    "workdir": spec.workdir,
                    "priority": spec.priority,
                    "prepared": prepared,
                    "stop_grace_ms": u64::try_from(spec.stop_grace.as_millis()).unwrap_or(u64::MAX),
                    "kill_after_ms": u64::try_from(spec.kill_after.as_millis()).unwrap_or(u64::MAX),
                    "stdio": {"io": io_path, "stderr": err_path},
                }),
            )
            .await;
        let connected = async {
            let limit = Duration::from_secs(5);
            let io = tokio::time::timeout(limit, io_listener.accept()).await;
            let err = tokio::time::timeout(limit, err_listener.accept()).await;
            match (io, err) {
                (Ok(Ok((io, _))), Ok(Ok((err, _)))) => Some((io, err)),
                _ => None,
            }
        };
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_file(&io_path);
                let _ = std::fs::remove_file(&err_path);
                return Err(SpawnError::new(e));
            }
        };
        let streams = connected.await;
        let _ = std::fs::remove_file(&io_path);
        let _ = std::fs::remove_file(&err_path);
        let Some(handle) = reply.get("instance").and_then(Value::as_str) else {
            return Err(SpawnError::new(format!(
                "{}: broke the protocol: `spawn` returned no `instance`",
                self.conn.label
            )));
        };
        let handle = handle.to_string();
        let Some((io, err)) = streams else {
            let _ = self.conn.call("kill", json!({"instance": handle})).await;
            return Err(SpawnError::new(format!(
                "{}: broke the protocol: instance {handle} never connected its stdio sockets",
                self.conn.label
            )));
        };
        let describe = reply
            .get("describe")
            .and_then(Value::as_str)
            .map_or_else(|| handle.clone(), str::to_string);
        let waiter = self
            .conn
            .start_call("wait", json!({"instance": handle}))
            .map_err(SpawnError::new)?;
        let (io_read, io_write) = io.into_split();
        let (err_read, _err_write) = err.into_split();
        Ok(Box::new(PluginInstance {
            conn: self.conn.clone(),
            handle,
            describe: format!("{describe} via {}", self.name),
            io: Some(InstanceIo {
                stdin: Box::new(io_write),
                stdout: Box::new(io_read),
                stderr: Some(Box::new(err_read)),
            }),
            waiter: Some(waiter),
            status: None,
        }))
    }

    async fn shutdown(&self) {
        if self.conn.dead().is_none() {
            let _ = self.conn.call("shutdown", json!({})).await;
        }
        let conn = self.conn.clone();
        let _ = tokio::task::spawn_blocking(move || conn.close(Duration::from_secs(5))).await;
        let _ = std::fs::remove_dir_all(&self.sock_dir);
    }

    async fn gc(&self, request: &GcRequest<'_>) -> GcReport {
        let mut report = GcReport::default();
        let placements: Vec<Value> = request
            .config
            .map(|c| {
                c.groups
                    .values()
                    .flat_map(|g| g.placements.values())
                    .filter(|p| p.transport == self.name)
                    .map(|p| {
                        let mut s = p.settings.clone();
                        s.remove(PLUGIN_KEY);
                        Value::Object(s)
                    })
                    .collect()
            })
            .unwrap_or_default();
        match self
            .conn
            .call(
                "gc",
                json!({"dry_run": request.dry_run, "placements": placements}),
            )
            .await
        {
            Ok(r) => {
                for line in r
                    .get("lines")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let text = line.get("text").and_then(Value::as_str).unwrap_or("");
                    match line.get("level").and_then(Value::as_str) {
                        Some("error") => report.error(text),
                        Some("warn") => report.warn(text),
                        _ => report.info(text),
                    }
                }
                if r.get("failed").and_then(Value::as_bool) == Some(true) {
                    report.failed = true;
                }
            }
            Err(e) => report.error(e),
        }
        if report.lines.iter().all(|(l, _)| *l != Level::Error) && report.failed {
            report.error("the plugin says its gc failed");
        }
        report
    }
}

/// An instance started through a plugin.
struct PluginInstance {
    conn: Arc<Connection>,
    handle: String,
    describe: String,
    io: Option<InstanceIo>,
    waiter: Option<oneshot::Receiver<Reply>>,
    status: Option<ExitStatus>,
}

impl PluginInstance {
    fn control(
        &self,
        method: &'static str,
        extra: Value,
    ) -> impl std::future::Future<Output = Result<(), InstanceError>> + Send + 'static {
        let conn = self.conn.clone();
        let describe = self.describe.clone();
        let mut params = json!({"instance": self.handle});
        async move {
            if let (Some(p), Value::Object(extra)) = (params.as_object_mut(), extra) {
                p.extend(extra);
            }
            conn.call(method, params)
                .await
                .map(|_| ())
                .map_err(|e| InstanceError::new(format!("{method} {describe}: {e}")))
        }
    }
}

fn parse_status(v: &Value) -> ExitStatus {
    if let Some(code) = v.get("exited").and_then(Value::as_i64) {
        return ExitStatus::Exited(i32::try_from(code).unwrap_or(i32::MAX));
    }
    if let Some(sig) = v.get("signaled").and_then(Value::as_i64) {
        return ExitStatus::Signaled(i32::try_from(sig).unwrap_or(0));
    }
    if v.get("oom").and_then(Value::as_bool) == Some(true) {
        return ExitStatus::OomKilled;
    }
    if let Some(why) = v.get("lost").and_then(Value::as_str) {
        return ExitStatus::Lost(why.to_string());
    }
    ExitStatus::Lost(format!("the plugin answered `wait` with {v}"))
}

#[async_trait]
impl Instance for PluginInstance {
    fn take_io(&mut self) -> Option<InstanceIo> {
        self.io.take()
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn terminate(&mut self) -> Result<(), InstanceError> {
        self.control("terminate", Value::Null).await
    }

    async fn kill(&mut self) -> Result<(), InstanceError> {
        self.control("kill", Value::Null).await
    }

    async fn stop_with_signal(&mut self, signal: StopSignal) -> Result<(), InstanceError> {
        self.control(
            "terminate",
            json!({"signal": signal.number(), "signal_name": signal.name()}),
        )
        .await
    }

    async fn wait(&mut self) -> Result<ExitStatus, InstanceError> {
        if let Some(s) = &self.status {
            return Ok(s.clone());
        }
        let Some(rx) = self.waiter.as_mut() else {
            return Ok(ExitStatus::Lost("no wait pending".into()));
        };
        // Awaiting `&mut Receiver` is cancel-safe: the answer stays in the channel.
        let status = match rx.await {
            Ok(Ok(v)) => parse_status(&v),
            Ok(Err(why)) => ExitStatus::Lost(why),
            Err(_) => ExitStatus::Lost(
                self.conn
                    .dead()
                    .unwrap_or_else(|| format!("{}: the connection was closed", self.conn.label)),
            ),
        };
        self.waiter = None;
        self.status = Some(status.clone());
        Ok(status)
    }

    async fn cleanup(&mut self) {
        if self.conn.dead().is_none() {
            let _ = self
                .conn
                .call("cleanup", json!({"instance": self.handle}))
                .await;
        }
    }
}
