//! Test images without any registry: a root filesystem built in a temp dir and
//! loaded with `docker import`.
//!
//! A dynamically linked binary is copied with the libraries `ldd` lists and the
//! dynamic loader, at their host paths; `busybox-static` supplies `/bin/sh` and the
//! usual tools. `build_worker_image` is the common case: the binary at `/worker` as
//! the entrypoint, plus busybox.

use crate::dockerd::{docker_cli, Dockerd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where busybox-static installs its binary on Debian.
const BUSYBOX: &str = "/bin/busybox";

/// Describes an image to build.
#[derive(Debug, Clone, Default)]
pub struct ImageBuilder {
    tag: String,
    files: Vec<(PathBuf, String)>,
    trees: Vec<(PathBuf, String, Vec<String>)>,
    busybox: bool,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
}

impl ImageBuilder {
    /// An empty image named `tag` (e.g. `distarch-test/worker:1`).
    pub fn new(tag: &str) -> Self {
        ImageBuilder {
            tag: tag.to_string(),
            ..Default::default()
        }
    }

    /// Adds a binary at `at` (absolute) with the libraries it needs.
    pub fn binary(mut self, host_path: &Path, at: &str) -> Self {
        self.files.push((host_path.to_path_buf(), at.to_string()));
        self
    }

    /// Adds the directory `host_dir` at `at` (absolute), recursively, following
    /// symlinks, leaving out entries named in `skip` (e.g. a stdlib's `test`).
    pub fn tree(mut self, host_dir: &Path, at: &str, skip: &[&str]) -> Self {
        let skip = skip.iter().map(|s| s.to_string()).collect();
        self.trees
            .push((host_dir.to_path_buf(), at.to_string(), skip));
        self
    }

    /// Adds busybox and a link for each of its applets in `/bin` (`sh`, `sleep`, ...).
    pub fn busybox(mut self) -> Self {
        self.busybox = true;
        self
    }

    /// Sets the image's ENTRYPOINT.
    pub fn entrypoint(mut self, argv: &[&str]) -> Self {
        self.entrypoint = Some(argv.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Sets the image's CMD.
    pub fn cmd(mut self, argv: &[&str]) -> Self {
        self.cmd = Some(argv.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Builds the root filesystem and imports it into `dockerd`; panics on failure.
    pub fn build(&self, dockerd: &Dockerd) {
        let rootfs = tempfile::tempdir().expect("temp dir for a rootfs");
        let root = rootfs.path();
        for dir in ["bin", "tmp", "proc", "sys", "dev", "etc"] {
            std::fs::create_dir_all(root.join(dir)).expect("rootfs dir");
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").expect("group");
        for (host, at) in &self.files {
            copy_into(root, host, at);
            for lib in libraries_of(host) {
                let at = lib.display().to_string();
                copy_into(root, &lib, &at);
            }
        }
        for (host, at, skip) in &self.trees {
            copy_tree(root, host, at, skip);
        }
        if self.busybox {
            copy_into(root, Path::new(BUSYBOX), "/bin/busybox");
            let list = Command::new(BUSYBOX)
                .arg("--list")
                .output()
                .expect("busybox --list");
            for applet in String::from_utf8_lossy(&list.stdout).lines() {
                let link = root.join("bin").join(applet);
                if applet != "busybox" && !link.exists() {
                    std::os::unix::fs::symlink("busybox", link).expect("busybox link");
                }
            }
        }
        let mut changes = Vec::new();
        if let Some(e) = &self.entrypoint {
            changes.push(format!(
                "ENTRYPOINT {}",
                serde_json::to_string(e).expect("json")
            ));
        }
        if let Some(c) = &self.cmd {
            changes.push(format!("CMD {}", serde_json::to_string(c).expect("json")));
        }
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(root)
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .expect("run tar");
        let mut import = Command::new(docker_cli());
        import.arg("-H").arg(dockerd.host()).arg("import");
        for c in &changes {
            import.arg("-c").arg(c);
        }
        let out = import
            .args(["-", &self.tag])
            .stdin(Stdio::from(tar.stdout.take().expect("tar stdout")))
            .output()
            .expect("run docker import");
        let _ = tar.wait();
        assert!(
            out.status.success(),
            "docker import of {} failed: {}",
            self.tag,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Builds `tag` on `dockerd`: `binary` at `/worker` as the ENTRYPOINT (so a group's
/// command becomes its arguments), with its libraries, plus busybox.
pub fn build_worker_image(dockerd: &Dockerd, binary: &Path, tag: &str) {
    ImageBuilder::new(tag)
        .binary(binary, "/worker")
        .busybox()
        .entrypoint(&["/worker"])
        .build(dockerd);
}

/// Builds `tag` on `dockerd`: busybox only, `/bin/sh` as the ENTRYPOINT.
pub fn build_busybox_image(dockerd: &Dockerd, tag: &str) {
    ImageBuilder::new(tag)
        .busybox()
        .entrypoint(&["/bin/sh"])
        .build(dockerd);
}

fn copy_into(root: &Path, host: &Path, at: &str) {
    let dest = root.join(at.trim_start_matches('/'));
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).expect("rootfs dir");
    }
    // `copy` follows symlinks: the file's contents land at the path asked for.
    std::fs::copy(host, &dest)
        .unwrap_or_else(|e| panic!("copy {} into the rootfs: {e}", host.display()));
}

fn copy_tree(root: &Path, host: &Path, at: &str, skip: &[String]) {
    let entries = std::fs::read_dir(host)
        .unwrap_or_else(|e| panic!("read {} for the rootfs: {e}", host.display()));
    for entry in entries {
        let entry = entry.expect("dir entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if skip.contains(&name) {
            continue;
        }
        let path = entry.path();
        let inside = format!("{}/{name}", at.trim_end_matches('/'));
        if path.is_dir() {
            copy_tree(root, &path, &inside, skip);
        } else if path.is_file() {
            copy_into(root, &path, &inside);
        }
    }
}

/// The shared libraries and loader `ldd` lists for `binary` (none for a static one).
pub fn libraries_of(binary: &Path) -> Vec<PathBuf> {
    let Ok(out) = Command::new("ldd").arg(binary).output() else {
        return Vec::new();
    };
    let mut libs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
        // `/lib64/ld-linux-x86-64.so.2 (0x...)`.
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    libs
}
