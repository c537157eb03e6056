//! Finding runs on this machine: by id, unique id prefix, name, or config file.
//! A run whose socket no longer answers (its master died) is cleaned away, never
//! trusted; a socket that answers for another run id is ignored.

use crate::client::{Client, ClientError};
use crate::rundir::{check_dir, descriptors, runtime_dir, RunDirError, RunFiles};
use crate::wire::{RunDescriptor, RunStatus};
use std::io::ErrorKind;
use std::path::Path;

/// A live run.
#[derive(Debug, Clone)]
pub struct FoundRun {
    /// What the master says about itself.
    pub status: RunStatus,
    /// Its files.
    pub files: RunFiles,
}

impl FoundRun {
    /// A client of its socket.
    pub fn client(&self) -> Client {
        Client::unix(&self.files.socket)
    }
}

/// Why no run could be picked.
#[derive(Debug, thiserror::Error)]
pub enum FindError {
    /// The runtime directory is not usable.
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    /// Nothing matched.
    #[error("no running distarch run matches `{0}` (see `distarch ps`)")]
    NoMatch(String),
    /// More than one run matched.
    #[error("`{query}` matches several runs: {runs}; give more of the id")]
    Ambiguous {
        /// The query.
        query: String,
        /// The run ids that match.
        runs: String,
    },
    /// A run's socket exists but cannot be used (permissions).
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Every live run in this user's runtime directory, oldest first, and the ids of
/// the stale runs that were cleaned.
pub async fn live_runs() -> Result<(Vec<FoundRun>, Vec<String>), FindError> {
    let dir = runtime_dir();
    if !dir.exists() {
        return Ok((Vec::new(), Vec::new()));
    }
    check_dir(&dir)?;
    let mut live = Vec::new();
    let mut cleaned = Vec::new();
    for (descriptor, files) in descriptors(&dir)? {
        match probe(&descriptor, &files).await {
            Probe::Live(status) => live.push(FoundRun {
                status: *status,
                files,
            }),
            Probe::Stale => {
                files.remove();
                cleaned.push(descriptor.run_id);
            }
            Probe::Foreign => {}
            Probe::Error(e) => return Err(e.into()),
        }
    }
    Ok((live, cleaned))
}

enum Probe {
    Live(Box<RunStatus>),
    Stale,
    Foreign,
    Error(ClientError),
}

async fn probe(descriptor: &RunDescriptor, files: &RunFiles) -> Probe {
    let client = Client::unix(&files.socket);
    match client.get::<RunStatus>("/run").await {
        Ok(status) if status.descriptor.run_id == descriptor.run_id => {
            Probe::Live(Box::new(status))
        }
        Ok(_) => Probe::Foreign,
        Err(ClientError::Connect { source, .. })
            if matches!(
                source.kind(),
                ErrorKind::ConnectionRefused | ErrorKind::NotFound
            ) =>
        {
            Probe::Stale
        }
        Err(e @ ClientError::Connect { .. }) | Err(e @ ClientError::Refused { .. }) => {
            Probe::Error(e)
        }
        // Anything else (a socket that answers nonsense) is not ours to trust.
        Err(_) => Probe::Foreign,
    }
}

/// The one live run that `query` names: its id, a unique prefix of it, its name,
/// or its config file.
pub async fn find_run(query: &str) -> Result<FoundRun, FindError> {
    let (runs, _) = live_runs().await?;
    let config = Path::new(query)
        .exists()
        .then(|| std::fs::canonicalize(query).ok())
        .flatten()
        .map(|p| p.to_string_lossy().into_owned());
    let exact: Vec<&FoundRun> = runs
        .iter()
        .filter(|r| r.status.descriptor.run_id == query)
        .collect();
    let matched: Vec<&FoundRun> = if !exact.is_empty() {
        exact
    } else {
        runs.iter()
            .filter(|r| {
                let d = &r.status.descriptor;
                d.run_id.starts_with(query)
                    || d.name == query
                    || (config.is_some() && d.config == config)
            })
            .collect()
    };
    match matched.as_slice() {
        [] => Err(FindError::NoMatch(query.to_string())),
        [one] => Ok((*one).clone()),
        many => Err(FindError::Ambiguous {
            query: query.to_string(),
            runs: many
                .iter()
                .map(|r| r.status.descriptor.run_id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}
