//! `distarch-fake-apiserver`: a small Kubernetes API server for distarch's tests.
//!
//! It serves the subset of the core/v1 API that distarch uses (pods: create, get,
//! list, watch, delete with grace, log, attach; config maps with cascading deletion;
//! events; namespaces) over plain HTTP, and runs each pod as a container on a Docker
//! engine. See README.md for what is not real.
//!
//! Usage: `distarch-fake-apiserver --docker unix:///path/docker.sock [--listen
//! 127.0.0.1:0] [--namespace NS]... [--forbid VERB:RESOURCE]... [--node-label K=V]...
//! [--id ID] [--throttle N] [--expire-watches SECS] [--running-lag MS]`. It prints `listening on http://ADDR` on stdout once it accepts
//! connections. SIGTERM or SIGINT removes its containers and exits.
#![forbid(unsafe_code)]

mod api;
mod attach;
mod http;
mod kubelet;
mod server;
mod store;

use bollard::query_parameters::{ListContainersOptions, RemoveContainerOptions};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use server::{lock, Server, SERVER_LABEL};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::Store;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

struct Args {
    listen: String,
    docker: String,
    namespaces: Vec<String>,
    forbid: BTreeSet<String>,
    node_labels: BTreeMap<String, String>,
    id: String,
    throttle: u64,
    expire_watches: Option<u64>,
    running_lag: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        listen: "127.0.0.1:0".into(),
        docker: std::env::var("DOCKER_HOST")
            .unwrap_or_else(|_| "unix:///var/run/docker.sock".into()),
        namespaces: Vec::new(),
        forbid: BTreeSet::new(),
        node_labels: BTreeMap::new(),
        id: format!("fake-{}", std::process::id()),
        throttle: 0,
        expire_watches: None,
        running_lag: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => a.listen = value()?,
            "--docker" => a.docker = value()?,
            "--namespace" => a.namespaces.push(value()?),
            "--forbid" => {
                a.forbid.insert(value()?);
            }
            "--node-label" => {
                let v = value()?;
                let (k, v) = v
                    .split_once('=')
                    .ok_or(format!("--node-label wants K=V, got {v:?}"))?;
                a.node_labels.insert(k.into(), v.into());
            }
            "--id" => a.id = value()?,
            "--throttle" => {
                let v = value()?;
                a.throttle = v
                    .parse()
                    .map_err(|_| format!("--throttle wants a count, got {v:?}"))?;
            }
            "--expire-watches" => {
                let v = value()?;
                a.expire_watches = Some(
                    v.parse()
                        .map_err(|_| format!("--expire-watches wants seconds, got {v:?}"))?,
                );
            }
            "--running-lag" => {
                let v = value()?;
                a.running_lag = v
                    .parse()
                    .map_err(|_| format!("--running-lag wants milliseconds, got {v:?}"))?;
            }
            "--help" | "-h" => {
                println!("usage: distarch-fake-apiserver --docker unix:///PATH [--listen ADDR] [--namespace NS]... [--forbid VERB:RESOURCE]... [--node-label K=V]... [--id ID] [--throttle N] [--expire-watches SECS] [--running-lag MS]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.namespaces.is_empty() {
        a.namespaces = vec!["default".into(), "kube-system".into()];
    }
    a.node_labels
        .entry("kubernetes.io/hostname".into())
        .or_insert_with(|| "fake-node".into());
    a.node_labels
        .entry("kubernetes.io/os".into())
        .or_insert_with(|| "linux".into());
    Ok(a)
}

async fn remove_containers(server: &Server) {
    let mut filters = HashMap::new();
    filters.insert(
        "label".to_string(),
        vec![format!("{SERVER_LABEL}={}", server.id)],
    );
    let opts = ListContainersOptions {
        all: true,
        filters: Some(filters),
        ..ListContainersOptions::default()
    };
    if let Ok(list) = server.docker.list_containers(Some(opts)).await {
        for c in list {
            if let Some(id) = c.id {
                let opts = RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                };
                let _ = server.docker.remove_container(&id, Some(opts)).await;
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("distarch-fake-apiserver: {e}");
            std::process::exit(2);
        }
    };
    let Some(path) = args.docker.strip_prefix("unix://") else {
        eprintln!(
            "distarch-fake-apiserver: --docker must be unix:///PATH, got {}",
            args.docker
        );
        std::process::exit(2);
    };
    let docker = match bollard::Docker::connect_with_unix(path, 3600, bollard::API_DEFAULT_VERSION)
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "distarch-fake-apiserver: cannot use Docker at {}: {e}",
                args.docker
            );
            std::process::exit(1);
        }
    };
    let docker = match docker.negotiate_version().await {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "distarch-fake-apiserver: Docker at {} does not answer: {e}",
                args.docker
            );
            std::process::exit(1);
        }
    };
    let listener = match TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "distarch-fake-apiserver: cannot listen on {}: {e}",
                args.listen
            );
            std::process::exit(1);
        }
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let server = Arc::new(Server {
        store: Mutex::new(Store::new(args.namespaces)),
        docker,
        runtimes: Mutex::default(),
        forbid: args.forbid,
        node_labels: args.node_labels,
        node_name: "fake-node".into(),
        counters: Mutex::default(),
        id: args.id,
        throttle: std::sync::atomic::AtomicU64::new(args.throttle),
        expire_watches: args.expire_watches.map(Duration::from_secs),
        running_lag: Duration::from_millis(args.running_lag),
    });
    println!("listening on http://{addr}");
    let _ = std::io::stdout().flush();

    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("distarch-fake-apiserver: cannot install signal handlers");
        std::process::exit(1);
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let server = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let server = server.clone();
                        async move { Ok::<_, std::convert::Infallible>(api::handle(server, req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        }
    }
    let pods = lock(&server.store).pods.len();
    eprintln!("distarch-fake-apiserver: stopping, removing the containers of {pods} pod(s)");
    remove_containers(&server).await;
}
