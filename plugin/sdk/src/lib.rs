//! Turns a [`Transport`] implementation into a transport plugin executable: a
//! program named `distarch-transport-<name>` that distarch starts once per run and
//! drives over line-delimited JSON-RPC on stdin/stdout (docs/plugins.md,
//! protocol 1).
//!
//! ```text
//! fn main() {
//!     std::process::exit(distarch_plugin::run("mine", MyTransport::new()));
//! }
//! ```
//!
//! (plugins/rlocal is a whole plugin: the local transport served this way.)
//!
//! What this crate does for the transport: the handshake (announcing the
//! transport's [`Transport::settings_keys`]), `plan` (the typed [`Prepared`] value
//! stays in this process; the master gets a token), `spawn` (the instance's stdio is
//! copied to and from the two Unix sockets the master listens on), `wait` answered
//! when the instance ends, `terminate`/`kill`/signals, `cleanup`, `gc` and
//! `shutdown`; and when the master goes away (stdin closes) every instance is
//! killed before the plugin exits.

use distarch_core::config::StopSignal;
use distarch_core::{
    ExitStatus, GcRequest, Instance, InstanceSpec, PlacementRef, Prepared, Transport,
};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u64 = 1;

/// Runs `transport` as a plugin named `name` on this process's stdin/stdout until
/// the master says `shutdown` or goes away; returns the exit code.
pub fn run<T: Transport + 'static>(name: &str, transport: T) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("distarch-transport-{name}: cannot start a runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(serve(name, Arc::new(transport)))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

enum Cmd {
    Signal(Option<StopSignal>, oneshot::Sender<Result<(), String>>),
    Kill(oneshot::Sender<Result<(), String>>),
    Wait(Value),
    Cleanup(oneshot::Sender<()>),
}

struct Server<T> {
    name: String,
    transport: Arc<T>,
    out: mpsc::UnboundedSender<String>,
    prepared: Mutex<HashMap<u64, Prepared>>,
    instances: Mutex<BTreeMap<String, mpsc::UnboundedSender<Cmd>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    next: AtomicU64,
}

fn line(msg: Value) -> String {
    let mut s = msg.to_string();
    s.push('\n');
    s
}

impl<T: Transport + 'static> Server<T> {
    fn reply(&self, id: &Value, result: Result<Value, String>) {
        let msg = match result {
            Ok(r) => json!({"jsonrpc": "2.0", "id": id, "result": r}),
            Err(e) => {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32000, "message": e}})
            }
        };
        let _ = self.out.send(line(msg));
    }

    fn plan(&self, p: &Value) -> Value {
        let empty = Map::new();
        let settings = p
            .get("settings")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let group = p.get("group").and_then(Value::as_str).unwrap_or("g");
        let placement = p.get("placement").and_then(Value::as_str).unwrap_or("p");
        let instances = p
            .get("instances")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1);
        let pref = PlacementRef {
            group,
            name: placement,
            instances,
            settings,
        };
        let prefix = format!("{}.", pref.path());
        if let Some(keys) = self.transport.settings_keys() {
            let unknown: Vec<Value> = settings
                .keys()
                .filter(|k| !keys.contains(&k.as_str()))
                .map(|k| {
                    json!({"key": k, "message": format!("unknown key `{k}` (known: {})", keys.join(", "))})
                })
                .collect();
            if !unknown.is_empty() {
                return json!({"errors": unknown});
            }
        }
        match self.transport.plan(&pref) {
            Ok(plan) => {
                let token = self.next.fetch_add(1, Ordering::Relaxed);
                lock(&self.prepared).insert(token, plan.prepared);
                let targets: Vec<Value> = plan
                    .targets
                    .iter()
                    .map(
                        |t| json!({"address": t.address, "host": t.host, "instances": t.instances}),
                    )
                    .collect();
                json!({"targets": targets, "prepared": token})
            }
            Err(errors) => {
                let errors: Vec<Value> = errors
                    .0
                    .iter()
                    .map(|e| {
                        let key = e.path.strip_prefix(&prefix).unwrap_or("");
                        json!({"key": key, "message": e.message})
                    })
                    .collect();
                json!({"errors": errors})
            }
        }
    }

    async fn spawn(self: &Arc<Self>, p: &Value) -> Result<Value, String> {
        let text = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let num = |k: &str| p.get(k).and_then(Value::as_u64).unwrap_or(0);
        let token = num("prepared");
        let prepared = lock(&self.prepared)
            .get(&token)
            .cloned()
            .ok_or_else(|| format!("no placement was planned with token {token}"))?;
        let command: Vec<String> = p
            .get("command")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let env: BTreeMap<String, String> = p
            .get("env")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let spec = InstanceSpec {
            // What the wrapped transport names after the run (cgroups, containers)
            // must not collide with what the master's own transports name after it
            // (rlocal next to the built-in local transport share a machine).
            run_id: format!("{}-{}", text("run_id"), self.name),
            group: text("group"),
            placement: text("placement"),
            id: num("id"),
            group_id: num("group_id"),
            group_count: num("group_count"),
            target: text("target"),
            host: text("host"),
            restart: u32::try_from(num("restart")).unwrap_or(0),
            command,
            env,
            workdir: p.get("workdir").and_then(Value::as_str).map(PathBuf::from),
            priority: p
                .get("priority")
                .and_then(Value::as_i64)
                .and_then(|n| i32::try_from(n).ok()),
            prepared,
            stop_grace: Duration::from_millis(num("stop_grace_ms")),
            kill_after: Duration::from_millis(num("kill_after_ms")),
        };
        let stdio = p.get("stdio").cloned().unwrap_or(Value::Null);
        let path = |k: &str| stdio.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(io_path), Some(err_path)) = (path("io"), path("stderr")) else {
            return Err("spawn without stdio.io and stdio.stderr".into());
        };
        let io = UnixStream::connect(&io_path)
            .await
            .map_err(|e| format!("cannot connect {io_path}: {e}"))?;
        let err = UnixStream::connect(&err_path)
            .await
            .map_err(|e| format!("cannot connect {err_path}: {e}"))?;
        let mut instance = self
            .transport
            .spawn(&spec)
            .await
            .map_err(|e| distarch_core::error_chain(&e))?;
        let handle = format!("{}-{}", spec.id, self.next.fetch_add(1, Ordering::Relaxed));
        let describe = instance.describe();
        if let Some(stdio) = instance.take_io() {
            let (mut io_read, mut io_write) = io.into_split();
            let (mut stdin, mut stdout) = (stdio.stdin, stdio.stdout);
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut io_read, &mut stdin).await;
                let _ = stdin.shutdown().await;
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut stdout, &mut io_write).await;
                let _ = io_write.shutdown().await;
            });
            let mut err = err;
            match stdio.stderr {
                Some(mut stderr) => {
                    tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut stderr, &mut err).await;
                        let _ = err.shutdown().await;
                    });
                }
                None => drop(err),
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.instances).insert(handle.clone(), tx);
        let server = self.clone();
        let h = handle.clone();
        let task = tokio::spawn(async move { server.own(h, instance, rx).await });
        lock(&self.tasks).push(task);
        Ok(json!({"instance": handle, "describe": describe}))
    }

    /// The task that owns one instance: waits for it and carries out commands.
    async fn own(
        self: Arc<Self>,
        handle: String,
        mut instance: Box<dyn Instance>,
        mut rx: mpsc::UnboundedReceiver<Cmd>,
    ) {
        let mut status: Option<Value> = None;
        let mut waits: Vec<Value> = Vec::new();
        loop {
            tokio::select! {
                // `wait` is cancel-safe (the Instance contract).
                s = instance.wait(), if status.is_none() => {
                    let s = match s {
                        Ok(s) => status_json(&s),
                        Err(e) => json!({"lost": distarch_core::error_chain(&e)}),
                    };
                    for id in waits.drain(..) {
                        self.reply(&id, Ok(s.clone()));
                    }
                    status = Some(s);
                }
                cmd = rx.recv() => match cmd {
                    None => break,
                    Some(Cmd::Wait(id)) => match &status {
                        Some(s) => self.reply(&id, Ok(s.clone())),
                        None => waits.push(id),
                    },
                    Some(Cmd::Signal(sig, done)) => {
                        let r = match sig {
                            Some(sig) => instance.stop_with_signal(sig).await,
                            None => instance.terminate().await,
                        };
                        let _ = done.send(r.map_err(|e| distarch_core::error_chain(&e)));
                    }
                    Some(Cmd::Kill(done)) => {
                        let _ = done.send(instance.kill().await.map_err(|e| distarch_core::error_chain(&e)));
                    }
                    Some(Cmd::Cleanup(done)) => {
                        if status.is_none() {
                            let _ = instance.kill().await;
                            let _ = instance.wait().await;
                        }
                        instance.cleanup().await;
                        lock(&self.instances).remove(&handle);
                        let _ = done.send(());
                        return;
                    }
                },
            }
        }
    }

    async fn control(&self, method: &str, p: &Value) -> Result<Value, String> {
        let handle = p.get("instance").and_then(Value::as_str).unwrap_or("");
        let Some(tx) = lock(&self.instances).get(handle).cloned() else {
            return Err(format!("no instance {handle}"));
        };
        let gone = || format!("instance {handle} is gone");
        match method {
            "terminate" => {
                let sig = match p.get("signal").and_then(Value::as_i64) {
                    Some(n) => Some(StopSignal::parse(&n.to_string())?),
                    None => None,
                };
                let (done, rx) = oneshot::channel();
                tx.send(Cmd::Signal(sig, done)).map_err(|_| gone())?;
                rx.await.map_err(|_| gone())??;
            }
            "kill" => {
                let (done, rx) = oneshot::channel();
                tx.send(Cmd::Kill(done)).map_err(|_| gone())?;
                rx.await.map_err(|_| gone())??;
            }
            _ => {
                let (done, rx) = oneshot::channel();
                tx.send(Cmd::Cleanup(done)).map_err(|_| gone())?;
                let _ = rx.await;
            }
        }
        Ok(json!({}))
    }

    /// Kills every instance and waits for their tasks (shutdown, or the master gone).
    async fn end_all(&self) {
        let all: Vec<mpsc::UnboundedSender<Cmd>> =
            lock(&self.instances).values().cloned().collect();
        for tx in all {
            let (done, _rx) = oneshot::channel();
            let _ = tx.send(Cmd::Cleanup(done));
        }
        let tasks: Vec<_> = lock(&self.tasks).drain(..).collect();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        self.transport.shutdown().await;
    }

    async fn gc(&self, p: &Value) -> Value {
        let dry_run = p.get("dry_run").and_then(Value::as_bool).unwrap_or(false);
        let report = self
            .transport
            .gc(&GcRequest {
                config: None,
                dry_run,
            })
            .await;
        let lines: Vec<Value> = report
            .lines
            .iter()
            .map(|(level, text)| json!({"level": level.to_string(), "text": text}))
            .collect();
        json!({"lines": lines, "failed": report.failed})
    }
}

fn status_json(s: &ExitStatus) -> Value {
    match s {
        ExitStatus::Exited(c) => json!({"exited": c}),
        ExitStatus::Signaled(n) => json!({"signaled": n}),
        ExitStatus::OomKilled => json!({"oom": true}),
        ExitStatus::Lost(why) => json!({"lost": why}),
        other => json!({"lost": other.to_string()}),
    }
}

async fn serve<T: Transport + 'static>(name: &str, transport: Arc<T>) -> i32 {
    let (out, mut lines) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(l) = lines.recv().await {
            if stdout.write_all(l.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let server = Arc::new(Server {
        name: name.to_string(),
        transport,
        out,
        prepared: Mutex::new(HashMap::new()),
        instances: Mutex::new(BTreeMap::new()),
        tasks: Mutex::new(Vec::new()),
        next: AtomicU64::new(1),
    });
    let mut input = BufReader::new(tokio::io::stdin()).lines();
    let mut code = 0;
    loop {
        let text = match input.next_line().await {
            Ok(Some(t)) => t,
            Ok(None) => break,
            Err(e) => {
                eprintln!("distarch-transport-{name}: reading stdin: {e}");
                code = 1;
                break;
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        let msg: Value = match serde_json::from_str(&text) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("distarch-transport-{name}: not JSON ({e}): {text:.100}");
                continue;
            }
        };
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let method = msg
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let params = msg.get("params").cloned().unwrap_or(Value::Null);
        match method.as_str() {
            "initialize" => {
                let r = if params.get("protocol").and_then(Value::as_u64) == Some(PROTOCOL_VERSION)
                {
                    Ok(json!({
                        "protocol": PROTOCOL_VERSION,
                        "name": server.name,
                        "settings_keys": server.transport.settings_keys(),
                        "capabilities": {"stdio": "sockets", "signals": true, "gc": true},
                    }))
                } else {
                    Err(format!("this plugin speaks protocol {PROTOCOL_VERSION}"))
                };
                server.reply(&id, r);
            }
            "plan" => {
                let r = server.plan(&params);
                server.reply(&id, Ok(r));
            }
            "spawn" => {
                let s = server.clone();
                tokio::spawn(async move {
                    let r = s.spawn(&params).await;
                    s.reply(&id, r);
                });
            }
            "wait" => {
                let handle = params.get("instance").and_then(Value::as_str).unwrap_or("");
                let tx = lock(&server.instances).get(handle).cloned();
                match tx {
                    Some(tx) => {
                        if let Err(mpsc::error::SendError(Cmd::Wait(id))) = tx.send(Cmd::Wait(id)) {
                            server.reply(&id, Err(format!("instance {handle} is gone")));
                        }
                    }
                    None => server.reply(&id, Err(format!("no instance {handle}"))),
                }
            }
            "terminate" | "kill" | "cleanup" => {
                let s = server.clone();
                tokio::spawn(async move {
                    let r = s.control(&method, &params).await;
                    s.reply(&id, r);
                });
            }
            "gc" => {
                let r = server.gc(&params).await;
                server.reply(&id, Ok(r));
            }
            "shutdown" => {
                server.end_all().await;
                server.reply(&id, Ok(json!({})));
                break;
            }
            _ if id.is_null() => {}
            _ => {
                let msg = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": format!("unknown method `{method}`")}});
                let _ = server.out.send(line(msg));
            }
        }
    }
    // Shutdown, or the master went away: nothing started here outlives it.
    server.end_all().await;
    drop(server);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    code
}
