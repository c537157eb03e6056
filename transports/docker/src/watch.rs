//! The task that follows one started container to its end: it copies the attach's
//! output into the supervisor's pipes, watches the exit, and deals with a dropped
//! connection to the engine.
//!
//! When the attach ends while the container still runs (the connection to the
//! engine dropped, or the engine went away), the engine has closed the worker's
//! stdin for good (`StdinOnce`), exactly as if the master had died, and the master
//! can no longer send it a `stop` frame. The instance is then lost: the container
//! is stopped (`docker stop`, the engine waits out the grace period), its output
//! since the last byte read is replayed from the container's log and followed to
//! its end (nothing lost, nothing twice, order kept), and the end is reported as
//! `lost` with the reason and how the container ended, so the restart policy
//! applies. While the engine cannot be reached, each step retries for up to
//! [`ENGINE_GONE_LIMIT`].

use crate::api::{engine_message, status_code};
use crate::output::{Output, Pipes, StreamEnd};
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{
    InspectContainerOptions, StopContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use distarch_core::ExitStatus;
use futures_util::StreamExt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long the engine may stay unreachable before the container counts as lost
/// for good (an engine restart takes a few seconds).
pub(crate) const ENGINE_GONE_LIMIT: Duration = Duration::from_secs(30);
/// How long after the attach closed the exit must be known; a container still
/// running then has lost its attach.
const EXIT_AFTER_ATTACH: Duration = Duration::from_secs(2);

/// What the watch task needs to know about its container.
pub(crate) struct Watched {
    pub(crate) docker: Docker,
    pub(crate) id: String,
    /// The engine's address, for messages.
    pub(crate) engine: String,
    /// Seconds the engine waits after SIGTERM before SIGKILL on `docker stop`.
    pub(crate) stop_timeout: i32,
}

/// Starts the task; returns where its verdict is published.
pub(crate) fn start(
    watched: Watched,
    output: Output,
    pipes: Pipes,
) -> (watch::Receiver<Option<ExitStatus>>, JoinHandle<()>) {
    let (tx, rx) = watch::channel(None);
    let task = tokio::spawn(async move {
        let status = follow(watched, output, pipes).await;
        let _ = tx.send(Some(status));
    });
    (rx, task)
}

async fn follow(w: Watched, mut output: Output, mut pipes: Pipes) -> ExitStatus {
    let (exit_tx, mut exit_rx) = watch::channel(None);
    let cut = Arc::new(AtomicBool::new(false));
    let exit_task = {
        let (docker, id, cut) = (w.docker.clone(), w.id.clone(), cut.clone());
        tokio::spawn(async move {
            let _ = exit_tx.send(Some(wait_exit(&docker, &id, &cut).await));
        })
    };
    let exit = async move {
        let status = exit_rx
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|s| s.clone());
        exit_task.abort();
        status.unwrap_or_else(|| ExitStatus::Lost("the exit could not be watched".into()))
    };
    tokio::pin!(exit);

    let why = match pipes.pump(&mut output).await {
        StreamEnd::Closed => {
            let status = match tokio::time::timeout(EXIT_AFTER_ATTACH, &mut exit).await {
                Ok(status) => Ok(status),
                Err(_) => match running(&w).await {
                    Some(false) => Ok(exit.as_mut().await),
                    Some(true) => Err("the attach was closed"),
                    None => Err("the engine does not answer"),
                },
            };
            match status {
                // The usual end: the container exited, its attach closed, and the
                // connection to the engine held all along.
                Ok(status) if !cut.load(Ordering::SeqCst) => {
                    return engine_still_there(&w, status).await
                }
                // The exit was watched through a cut connection: the attach was
                // most likely cut too, closing the worker's stdin, which is why it
                // ended (an SDK worker exits at once on end of file).
                Ok(status) => {
                    drop(output);
                    let why = "the attach was closed while a request was cut";
                    return lost(&w, &mut pipes, why, std::future::ready(status)).await;
                }
                Err(why) => why.to_string(),
            }
        }
        StreamEnd::Failed(e, _) => e,
    };
    drop(output);
    lost(&w, &mut pipes, &why, exit).await
}

/// A container that ended while its engine went away was stopped by the engine's
/// shutdown (dockerd closes its API first, then stops its containers): that end is
/// reported as lost, with the reason. An engine that answers, even with an error,
/// is still there.
async fn engine_still_there(w: &Watched, status: ExitStatus) -> ExitStatus {
    if matches!(status, ExitStatus::Lost(_)) {
        return status;
    }
    match w.docker.ping().await {
        Err(e) if status_code(&e).is_none() => ExitStatus::Lost(format!(
            "the docker engine at {} stopped answering as the container ended (the engine is stopping or restarting); it ended: {status}",
            w.engine
        )),
        _ => status,
    }
}

/// Waits until the engine answers again, for up to [`ENGINE_GONE_LIMIT`]; returns
/// whether it does.
pub(crate) async fn engine_back(docker: &Docker) -> bool {
    let deadline = Instant::now() + ENGINE_GONE_LIMIT;
    loop {
        match docker.ping().await {
            Ok(_) => return true,
            Err(e) if status_code(&e).is_some() => return true,
            Err(_) if Instant::now() >= deadline => return false,
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Stops a container whose attach dropped, replays its output to its end, and
/// says how it ended.
async fn lost(
    w: &Watched,
    pipes: &mut Pipes,
    why: &str,
    exit: impl Future<Output = ExitStatus>,
) -> ExitStatus {
    let reason = format!(
        "the connection to the docker engine at {} dropped ({why}); the engine closed the worker's stdin, so the container was stopped",
        w.engine
    );
    let deadline = Instant::now() + ENGINE_GONE_LIMIT;
    let stop = retry(deadline, || async {
        let options = StopContainerOptions {
            t: Some(w.stop_timeout),
            signal: None,
        };
        match w.docker.stop_container(&w.id, Some(options)).await {
            Err(e) if matches!(status_code(&e), Some(304 | 404 | 409)) => Ok(()),
            other => other,
        }
    });
    let replay = async {
        loop {
            match pipes.replay(&w.docker, &w.id, true).await {
                StreamEnd::Closed => return None,
                // The engine answered with an error (a log driver that cannot
                // be read back, say): asking again will not help.
                StreamEnd::Failed(e, Some(_)) => return Some(e),
                StreamEnd::Failed(e, None) if Instant::now() >= deadline => return Some(e),
                StreamEnd::Failed(_, None) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    };
    let (stopped, replayed) = tokio::join!(stop, replay);
    let status = exit.await;
    let mut message = reason;
    if let Err(e) = stopped {
        message.push_str(&format!(" (docker stop failed: {})", engine_message(&e)));
    }
    if let Some(e) = replayed {
        message.push_str(&format!(
            "; its output since the drop could not be read back from its log: {e}"
        ));
    }
    match status {
        ExitStatus::Lost(more) => ExitStatus::Lost(format!("{message}; {more}")),
        ended => ExitStatus::Lost(format!("{message}; it then ended: {ended}")),
    }
}

/// Runs `call` until it succeeds, fails for a reason other than an unreachable
/// engine, or `deadline` passes.
async fn retry<F, Fut>(deadline: Instant, mut call: F) -> Result<(), DockerError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), DockerError>>,
{
    loop {
        match call().await {
            Ok(()) => return Ok(()),
            Err(e) if status_code(&e).is_none() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether the container runs; `None` when the engine does not answer.
async fn running(w: &Watched) -> Option<bool> {
    match w
        .docker
        .inspect_container(&w.id, None::<InspectContainerOptions>)
        .await
    {
        Ok(info) => Some(info.state.and_then(|s| s.running) == Some(true)),
        Err(e) if status_code(&e) == Some(404) => Some(false),
        Err(_) => None,
    }
}

/// Waits for the container to end; while the engine cannot be reached, asks again
/// for up to [`ENGINE_GONE_LIMIT`]. Raises `cut` when a connection to the engine
/// failed on the way (not a refusal, not a timeout).
async fn wait_exit(docker: &Docker, id: &str, cut: &AtomicBool) -> ExitStatus {
    let mut unreachable_since: Option<Instant> = None;
    loop {
        let options = WaitContainerOptions {
            condition: "not-running".to_string(),
        };
        let mut stream = docker.wait_container(id, Some(options));
        let code = match stream.next().await {
            Some(Ok(r)) => Some(r.status_code),
            Some(Err(DockerError::DockerContainerWaitError { code, .. })) => Some(code),
            Some(Err(e)) => {
                note_cut(&e, cut);
                None
            }
            None => None,
        };
        drop(stream);
        if let Some(code) = code {
            return classify(docker, id, code).await;
        }
        // The wait call failed (engine restarting, connection cut): ask directly.
        match docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => {
                let state = info.state.unwrap_or_default();
                if state.running != Some(true) {
                    if state.oom_killed == Some(true) {
                        return ExitStatus::OomKilled;
                    }
                    return exit_code_status(state.exit_code.unwrap_or(-1));
                }
                unreachable_since = None;
            }
            Err(e) if status_code(&e) == Some(404) => {
                return ExitStatus::Lost("the container was removed by someone else".into())
            }
            Err(e) => {
                note_cut(&e, cut);
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= ENGINE_GONE_LIMIT {
                    return ExitStatus::Lost(format!(
                        "cannot reach the docker engine for {}s: {}",
                        ENGINE_GONE_LIMIT.as_secs(),
                        engine_message(&e)
                    ));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Raises `cut` when `e` says a connection to the engine failed.
fn note_cut(e: &DockerError, cut: &AtomicBool) {
    let failed = status_code(e).is_none() && !matches!(e, DockerError::RequestTimeoutError);
    if failed {
        cut.store(true, Ordering::SeqCst);
    }
}

/// How a container that exited with `code` ended: OOM-killed (from the engine's
/// state), killed by a signal (codes 129..=159, the shell convention the engine
/// uses), or exited.
async fn classify(docker: &Docker, id: &str, code: i64) -> ExitStatus {
    if let Ok(info) = docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
    {
        if info.state.and_then(|s| s.oom_killed) == Some(true) {
            return ExitStatus::OomKilled;
        }
    }
    exit_code_status(code)
}

fn exit_code_status(code: i64) -> ExitStatus {
    match code {
        129..=159 => ExitStatus::Signaled((code - 128) as i32),
        c => ExitStatus::Exited(i32::try_from(c).unwrap_or(-1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(exit_code_status(0), ExitStatus::Exited(0));
        assert_eq!(exit_code_status(3), ExitStatus::Exited(3));
        assert_eq!(exit_code_status(137), ExitStatus::Signaled(9));
        assert_eq!(exit_code_status(143), ExitStatus::Signaled(15));
        assert_eq!(exit_code_status(255), ExitStatus::Exited(255));
    }
}
