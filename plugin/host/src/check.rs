//! `distarch plugin-check -- CMD`: drives a plugin through the protocol's scenarios
//! (docs/plugins.md, "Conformance") and says which passed.

use crate::PluginTransport;
use distarch_core::config::StopSignal;
use distarch_core::{ExitStatus, Instance, InstanceSpec, Transport};
use serde_json::{json, Map, Value};
use std::io::Write;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One scenario's outcome.
type Outcome = Result<(), String>;

const LIMIT: Duration = Duration::from_secs(15);

fn name_of(argv: &[String]) -> String {
    let file = argv
        .first()
        .and_then(|p| std::path::Path::new(p).file_name())
        .and_then(|f| f.to_str())
        .unwrap_or("plugin");
    file.strip_prefix(crate::EXECUTABLE_PREFIX)
        .unwrap_or(file)
        .to_string()
}

fn start(argv: &[String]) -> Result<PluginTransport, String> {
    PluginTransport::start(&name_of(argv), argv)
}

async fn spawn(t: &PluginTransport, argv: &[&str]) -> Result<Box<dyn Instance>, String> {
    let spec = InstanceSpec::builder(argv.iter().copied())
        .run_id(format!("check{}", std::process::id()))
        .env("CHECK_VAR", "checked value")
        .plan(t, &json!({}))
        .map_err(|e| format!("plan: {e}"))?;
    t.spawn(&spec).await.map_err(|e| e.chain())
}

async fn wait(i: &mut Box<dyn Instance>) -> Result<ExitStatus, String> {
    tokio::time::timeout(LIMIT, i.wait())
        .await
        .map_err(|_| "the instance did not end (no `wait` answer)".to_string())?
        .map_err(|e| e.to_string())
}

async fn read_all(i: &mut Box<dyn Instance>) -> Result<(String, String), String> {
    let io = i.take_io().ok_or("no stdio")?;
    let (mut stdout, stderr) = (io.stdout, io.stderr);
    drop(io.stdin);
    let mut out = String::new();
    let mut err = String::new();
    tokio::time::timeout(LIMIT, async {
        let _ = stdout.read_to_string(&mut out).await;
        if let Some(mut e) = stderr {
            let _ = e.read_to_string(&mut err).await;
        }
    })
    .await
    .map_err(|_| "stdout did not reach end-of-file".to_string())?;
    Ok((out, err))
}

fn expect(status: ExitStatus, want: ExitStatus) -> Outcome {
    if status == want {
        Ok(())
    } else {
        Err(format!("ended with {status}, expected {want}"))
    }
}

async fn scenario(argv: &[String], t: &PluginTransport, which: &str) -> Outcome {
    match which {
        "handshake" => {
            if t.capabilities().is_object() {
                Ok(())
            } else {
                Err("no `capabilities` object in the initialize answer".into())
            }
        }
        "plan returns targets for every instance" => {
            let settings = Map::new();
            let p = distarch_core::PlacementRef {
                group: "g",
                name: "p",
                instances: 3,
                settings: &settings,
            };
            let plan = t.plan(&p).map_err(|e| e.to_string())?;
            let n: u32 = plan.targets.iter().map(|t| t.instances).sum();
            if n == 3 {
                Ok(())
            } else {
                Err(format!("targets hold {n} instances, expected 3"))
            }
        }
        "plan names an unknown key" => {
            let mut settings = Map::new();
            settings.insert("no_such_key_zz".into(), json!(1));
            let p = distarch_core::PlacementRef {
                group: "g",
                name: "p",
                instances: 1,
                settings: &settings,
            };
            match t.plan(&p) {
                Ok(_) => Err("accepted an unknown key".into()),
                Err(e) if e.to_string().contains("no_such_key_zz") => Ok(()),
                Err(e) => Err(format!("the error does not name the key: {e}")),
            }
        }
        "stdin, stdout, stderr, env and exit code" => {
            let mut i = spawn(
                t,
                &[
                    "sh",
                    "-c",
                    "read l; echo \"got $l $CHECK_VAR\"; echo to-err >&2; exit 3",
                ],
            )
            .await?;
            let mut io = i.take_io().ok_or("no stdio")?;
            io.stdin
                .write_all(b"hello\n")
                .await
                .map_err(|e| e.to_string())?;
            drop(io.stdin);
            let mut out = String::new();
            let mut err = String::new();
            let _ = tokio::time::timeout(LIMIT, io.stdout.read_to_string(&mut out)).await;
            if let Some(mut e) = io.stderr {
                let _ = tokio::time::timeout(LIMIT, e.read_to_string(&mut err)).await;
            }
            let status = wait(&mut i).await?;
            i.cleanup().await;
            if out != "got hello checked value\n" {
                return Err(format!("stdout was {out:?}"));
            }
            if err != "to-err\n" {
                return Err(format!("stderr was {err:?}"));
            }
            expect(status, ExitStatus::Exited(3))
        }
        "terminate sends SIGTERM" | "kill sends SIGKILL" | "a stop signal (SIGINT)" => {
            let mut i = spawn(t, &["sleep", "30"]).await?;
            let started = Instant::now();
            let (want, r) = match which {
                "terminate sends SIGTERM" => (15, i.terminate().await),
                "kill sends SIGKILL" => (9, i.kill().await),
                _ => (2, i.stop_with_signal(StopSignal::parse("INT")?).await),
            };
            r.map_err(|e| e.to_string())?;
            let status = wait(&mut i).await?;
            i.cleanup().await;
            if started.elapsed() > Duration::from_secs(10) {
                return Err("the instance took more than 10 s to end".into());
            }
            expect(status, ExitStatus::Signaled(want))
        }
        "output reaches end-of-file when the instance ends" => {
            let mut i = spawn(t, &["sh", "-c", "printf 'a\\0b'"]).await?;
            let (out, _) = read_all(&mut i).await?;
            let status = wait(&mut i).await?;
            i.cleanup().await;
            if out != "a\0b" {
                return Err(format!("stdout was {out:?}"));
            }
            expect(status, ExitStatus::Exited(0))
        }
        "a program that cannot start is a spawn error" => {
            match spawn(t, &["/nonexistent/program-zz"]).await {
                Ok(mut i) => {
                    // Some backends only learn it from the exit: 127 is fine too.
                    match wait(&mut i).await? {
                        ExitStatus::Exited(c) if c != 0 => Ok(()),
                        s => Err(format!("started, and ended with {s}")),
                    }
                }
                Err(_) => Ok(()),
            }
        }
        "unknown method is a JSON-RPC error" => {
            match t.raw_call("no_such_method_zz", json!({})).await {
                Err(e) if t.gone().is_none() => {
                    let _ = e;
                    Ok(())
                }
                Err(e) => Err(e),
                Ok(v) => Err(format!("answered {v}")),
            }
        }
        "gc answers a report" => {
            let v = t
                .raw_call("gc", json!({"dry_run": true, "placements": []}))
                .await?;
            if v.get("lines").and_then(Value::as_array).is_some() {
                Ok(())
            } else {
                Err(format!("answered {v}, not {{\"lines\": [...]}}"))
            }
        }
        "shutdown ends running instances and the plugin" => {
            let t2 = start(argv)?;
            let mut i = spawn(&t2, &["sleep", "30"]).await?;
            t2.shutdown().await;
            let status = wait(&mut i).await?;
            if !t2.exited() {
                return Err("the plugin still runs after shutdown".into());
            }
            match status {
                ExitStatus::Signaled(_) | ExitStatus::Lost(_) => Ok(()),
                s => Err(format!("the instance ended with {s}")),
            }
        }
        "stdin end-of-file ends the plugin and its instances" => {
            let t2 = start(argv)?;
            let mut i = spawn(&t2, &["sh", "-c", "echo $$; exec sleep 30"]).await?;
            let mut io = i.take_io().ok_or("no stdio")?;
            let mut line = [0u8; 32];
            let n = tokio::time::timeout(LIMIT, io.stdout.read(&mut line))
                .await
                .map_err(|_| "no pid line")?
                .map_err(|e| e.to_string())?;
            let pid = String::from_utf8_lossy(&line[..n]).trim().to_string();
            tokio::task::spawn_blocking(move || t2.close(Duration::from_secs(10)))
                .await
                .map_err(|e| e.to_string())?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::path::Path::new(&format!("/proc/{pid}")).exists() {
                if Instant::now() > deadline {
                    return Err(format!("instance pid {pid} still runs"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(())
        }
        other => Err(format!("no scenario {other}")),
    }
}

/// The scenarios, in the order they run.
pub const SCENARIOS: &[&str] = &[
    "handshake",
    "plan returns targets for every instance",
    "plan names an unknown key",
    "stdin, stdout, stderr, env and exit code",
    "output reaches end-of-file when the instance ends",
    "terminate sends SIGTERM",
    "kill sends SIGKILL",
    "a stop signal (SIGINT)",
    "a program that cannot start is a spawn error",
    "unknown method is a JSON-RPC error",
    "gc answers a report",
    "shutdown ends running instances and the plugin",
    "stdin end-of-file ends the plugin and its instances",
];

/// Runs every scenario against the plugin `argv`, printing one line each and the
/// `N passed, M failed` summary to `out`; returns (passed, failed).
pub async fn check(argv: &[String], out: &mut dyn Write) -> (usize, usize) {
    let t = match start(argv) {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(out, "FAIL handshake: {e}");
            let _ = writeln!(out, "0 passed, {} failed", SCENARIOS.len());
            return (0, SCENARIOS.len());
        }
    };
    let (mut passed, mut failed) = (0, 0);
    for which in SCENARIOS {
        match tokio::time::timeout(Duration::from_secs(60), scenario(argv, &t, which)).await {
            Ok(Ok(())) => {
                passed += 1;
                let _ = writeln!(out, "ok   {which}");
            }
            Ok(Err(e)) => {
                failed += 1;
                let _ = writeln!(out, "FAIL {which}: {e}");
            }
            Err(_) => {
                failed += 1;
                let _ = writeln!(out, "FAIL {which}: no result within 60 s");
            }
        }
    }
    t.shutdown().await;
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    (passed, failed)
}
