//! Where runs are found: a per-user runtime directory (mode 0700) holding, per run,
//! `<id>.sock` (mode 0600), `<id>.json` (the [`RunDescriptor`]) and, with TCP,
//! `<id>.token` (mode 0600).
//!
//! The directory is `$XDG_RUNTIME_DIR/distarch`, else `/run/distarch` for root, else
//! `$TMPDIR/distarch-<uid>`. A directory that is not ours or that others may open is
//! refused, never trusted.

use crate::wire::RunDescriptor;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Problems with the runtime directory or a run's files.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// The directory could not be created or read.
    #[error("runtime directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The directory belongs to someone else or others may open it.
    #[error("runtime directory {path} is not safe: {why}")]
    Unsafe {
        /// The directory.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// The effective user id of this process (the owner of `/proc/self`).
pub fn current_uid() -> u32 {
    fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

/// The runtime directory for this user (not created).
pub fn runtime_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("distarch");
    }
    let uid = current_uid();
    if uid == 0 {
        return PathBuf::from("/run/distarch");
    }
    std::env::temp_dir().join(format!("distarch-{uid}"))
}

/// The runtime directory, created (mode 0700) if needed and checked.
pub fn ensure_runtime_dir() -> Result<PathBuf, RunDirError> {
    let dir = runtime_dir();
    if let Err(e) = fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
    {
        return Err(RunDirError::Io {
            path: dir,
            source: e,
        });
    }
    check_dir(&dir)?;
    Ok(dir)
}

/// Refuses a directory that is not ours, or that group or others may open.
pub fn check_dir(dir: &Path) -> Result<(), RunDirError> {
    let meta = fs::symlink_metadata(dir).map_err(|e| RunDirError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let unsafe_because = |why: String| {
        Err(RunDirError::Unsafe {
            path: dir.to_path_buf(),
            why,
        })
    };
    if !meta.is_dir() {
        return unsafe_because("it is not a directory".into());
    }
    if meta.uid() != current_uid() {
        return unsafe_because(format!("it belongs to uid {}", meta.uid()));
    }
    if meta.mode() & 0o077 != 0 {
        return unsafe_because(format!(
            "its mode is {:o}; it must be 700",
            meta.mode() & 0o777
        ));
    }
    Ok(())
}

/// The files of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFiles {
    /// The socket.
    pub socket: PathBuf,
    /// The descriptor.
    pub descriptor: PathBuf,
    /// The TCP token.
    pub token: PathBuf,
}

impl RunFiles {
    /// The files of `run_id` in `dir`.
    pub fn new(dir: &Path, run_id: &str) -> Self {
        RunFiles {
            socket: dir.join(format!("{run_id}.sock")),
            descriptor: dir.join(format!("{run_id}.json")),
            token: dir.join(format!("{run_id}.token")),
        }
    }

    /// Removes every file of the run (missing ones are fine).
    pub fn remove(&self) {
        for p in [&self.socket, &self.descriptor, &self.token] {
            let _ = fs::remove_file(p);
        }
    }
}

/// Writes a file only its owner can read (mode 0600), replacing any old one.
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents)?;
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
    fs::rename(&tmp, path)
}

/// Every descriptor found in `dir` (unreadable or malformed ones are skipped), with
/// its files.
pub fn descriptors(dir: &Path) -> Result<Vec<(RunDescriptor, RunFiles)>, RunDirError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(RunDirError::Io {
                path: dir.to_path_buf(),
                source: e,
            })
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let files = RunFiles::new(dir, stem);
        let parsed = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<RunDescriptor>(&b).ok());
        match parsed {
            Some(d) if d.run_id == stem => out.push((d, files)),
            // A descriptor that does not parse or names another run is junk.
            _ => files.remove(),
        }
    }
    out.sort_by(|a, b| a.0.started.cmp(&b.0.started));
    Ok(out)
}
