//! `.../pods/NAME/attach` over WebSocket with the `v4.channel.k8s.io` and
//! `v5.channel.k8s.io` subprotocols: each binary message starts with a channel byte
//! (0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize; v5 adds 255 = close, whose
//! next byte names the channel closed). Bridged to a Docker attach of the pod's
//! container. When the client goes away, the container's stdin is closed, which for
//! a `stdinOnce` container is the worker's end of input.

use crate::http::{bad_request, flag, not_found, Body};
use crate::server::{lock, Shared};
use bollard::container::LogOutput;
use bollard::query_parameters::{AttachContainerOptions, InspectContainerOptions};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::collections::BTreeMap;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";

/// Handles an attach request.
pub async fn attach(
    server: Shared,
    ns: &str,
    name: &str,
    q: &BTreeMap<String, String>,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let headers = req.headers();
    let upgrade = headers
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = headers
        .get("sec-websocket-key")
        .map(|k| k.as_bytes().to_vec())
    else {
        return bad_request("attach needs a WebSocket upgrade (Sec-WebSocket-Key missing)");
    };
    let offered: Vec<String> = headers
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
        .collect();
    let protocol = if offered.iter().any(|p| p == V5) {
        V5
    } else if offered.iter().any(|p| p == V4) {
        V4
    } else {
        return bad_request(&format!(
            "none of the offered subprotocols {offered:?} is supported; use {V5} or {V4}"
        ));
    };
    if !upgrade {
        return bad_request("attach needs a WebSocket upgrade");
    }
    let pod = lock(&server.store)
        .pods
        .get(&(ns.to_string(), name.to_string()))
        .cloned();
    let Some(pod) = pod else {
        return not_found("pods", name);
    };
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    if phase == "Succeeded" || phase == "Failed" {
        return bad_request(&format!(
            "cannot attach to a container in a completed pod; current phase is {phase}"
        ));
    }
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .cloned()
        .unwrap_or_default();
    if let Some(want) = q.get("container") {
        if *want != container.name {
            return bad_request(&format!("container {want} is not valid for pod {name}"));
        }
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let id = lock(&server.runtimes)
        .get(&uid)
        .and_then(|r| r.container.clone());
    let running = phase == "Running";
    let Some(id) = id.filter(|_| running) else {
        return bad_request(&format!(
            "unable to upgrade connection: container {} in pod {name} is not running",
            container.name
        ));
    };
    let want_stdin = flag(q, "stdin");
    let want_stdout = flag(q, "stdout");
    let want_stderr = flag(q, "stderr");
    if !(want_stdin || want_stdout || want_stderr) {
        return bad_request("you must specify at least 1 of stdin, stdout, stderr");
    }
    if want_stdin && container.stdin != Some(true) {
        return bad_request(&format!(
            "stdin is not enabled for container {} in pod {name}",
            container.name
        ));
    }
    let opts = AttachContainerOptions {
        stdin: want_stdin,
        stdout: want_stdout,
        stderr: want_stderr,
        stream: true,
        logs: false,
        detach_keys: None,
    };
    let attached = match server.docker.attach_container(&id, Some(opts)).await {
        Ok(a) => a,
        Err(e) => return bad_request(&format!("unable to upgrade connection: {e}")),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let docker = server.docker.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        bridge(ws, attached, protocol == V5, want_stdin, &docker, &id).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", derive_accept_key(&key))
        .header("sec-websocket-protocol", protocol)
        .body(BodyExt::boxed_unsync(Empty::<Bytes>::new()))
        .unwrap_or_else(|_| bad_request("cannot build the answer"))
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::binary(v)
}

async fn bridge<S>(
    ws: WebSocketStream<S>,
    attached: bollard::container::AttachContainerResults,
    v5: bool,
    want_stdin: bool,
    docker: &bollard::Docker,
    id: &str,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut tx, mut rx) = ws.split();
    let bollard::container::AttachContainerResults {
        mut output,
        mut input,
    } = attached;
    let mut stdin_open = want_stdin;
    loop {
        tokio::select! {
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(b))) if !b.is_empty() => match b[0] {
                    0 if stdin_open => {
                        let written = input.write_all(&b[1..]).await.is_ok() && input.flush().await.is_ok();
                        stdin_open = written;
                    }
                    255 if v5 && b.get(1) == Some(&0) && stdin_open => {
                        let _ = input.shutdown().await;
                        stdin_open = false;
                    }
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    // The client is gone: the container's stdin ends.
                    if stdin_open {
                        let _ = input.shutdown().await;
                    }
                    return;
                }
                Some(Ok(_)) => {}
            },
            out = output.next() => match out {
                Some(Ok(LogOutput::StdOut { message })) | Some(Ok(LogOutput::Console { message })) => {
                    if tx.send(frame(1, &message)).await.is_err() { return; }
                }
                Some(Ok(LogOutput::StdErr { message })) => {
                    if tx.send(frame(2, &message)).await.is_err() { return; }
                }
                Some(Ok(LogOutput::StdIn { .. })) => {}
                Some(Err(_)) | None => {
                    // The container ended: report how on the status channel, close.
                    let code = docker
                        .inspect_container(id, None::<InspectContainerOptions>)
                        .await
                        .ok()
                        .and_then(|i| i.state)
                        .and_then(|s| s.exit_code)
                        .unwrap_or(0);
                    let status = if code == 0 {
                        json!({"metadata": {}, "status": "Success"})
                    } else {
                        json!({"metadata": {}, "status": "Failure",
                               "message": format!("command terminated with non-zero exit code: exit code {code}"),
                               "reason": "NonZeroExitCode",
                               "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
                    };
                    let _ = tx.send(frame(3, &serde_json::to_vec(&status).unwrap_or_default())).await;
                    let _ = tx.send(Message::Close(None)).await;
                    return;
                }
            },
        }
    }
}
