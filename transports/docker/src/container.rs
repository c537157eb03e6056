//! The container an instance runs in: its name and its create request.

use crate::labels::{self, MasterIdentity};
use crate::settings::{parse_volume, DockerSettings, MountKind};
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use distarch_core::InstanceSpec;
use std::collections::HashMap;

/// The container name of one start of an instance: `distarch-<run>-<group>-<id>`,
/// with `-r<restart>` after a restart so that a container kept by
/// `auto_remove = false` does not clash with the next one.
pub fn container_name(spec: &InstanceSpec) -> String {
    let base = spec.object_name();
    if spec.restart == 0 {
        base
    } else {
        format!("{base}-r{}", spec.restart)
    }
}

/// The create request of one start of an instance.
pub fn create_body(
    spec: &InstanceSpec,
    settings: &DockerSettings,
    master: &MasterIdentity,
) -> ContainerCreateBody {
    let mut env: Vec<String> = spec
        .env
        .iter()
        .filter(|(k, _)| !settings.env.contains_key(*k))
        .chain(settings.env.iter())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    env.sort();

    let mut labels: HashMap<String, String> = settings
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in [
        (labels::RUN, spec.run_id.clone()),
        (labels::GROUP, spec.group.clone()),
        (labels::PLACEMENT, spec.placement.clone()),
        (labels::ID, spec.id.to_string()),
        (labels::RESTART, spec.restart.to_string()),
        (labels::AUTO_REMOVE, settings.auto_remove.to_string()),
    ] {
        labels.insert(k.to_string(), v);
    }
    for (k, v) in master.entries() {
        labels.insert(k.to_string(), v);
    }

    // The group's command is the container command unless the placement says
    // otherwise; `command = []` keeps the image's own CMD.
    let cmd = match &settings.command {
        Some(c) => c.argv().unwrap_or_default(),
        None => spec.command.clone(),
    };
    let cmd = (!cmd.is_empty()).then_some(cmd);
    // `entrypoint = []` (or "") clears the image's entrypoint, like
    // `docker run --entrypoint ""`.
    let entrypoint = settings.entrypoint.as_ref().map(|e| {
        let argv = e.argv().unwrap_or_default();
        if argv.is_empty() {
            vec![String::new()]
        } else {
            argv
        }
    });

    let workdir = settings.workdir.clone().or_else(|| {
        spec.workdir
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
    });

    let binds: Vec<String> = settings
        .volumes
        .iter()
        .filter(|v| parse_volume(v).is_ok())
        .cloned()
        .collect();
    let mounts: Vec<Mount> = settings
        .mounts
        .iter()
        .map(|m| Mount {
            target: Some(m.target.clone()),
            source: m.source.clone(),
            typ: Some(match m.kind {
                MountKind::Bind => MountType::BIND,
                MountKind::Volume => MountType::VOLUME,
                MountKind::Tmpfs => MountType::TMPFS,
            }),
            read_only: Some(m.read_only),
            ..Default::default()
        })
        .collect();

    let host_config = HostConfig {
        memory: settings.memory.map(|m| m.0),
        // Without swap the memory limit is a hard limit: an instance that goes over
        // it is OOM-killed instead of swapping slowly.
        memory_swap: settings.memory.map(|m| m.0),
        nano_cpus: settings.cpus.map(|c| (c * 1e9) as i64),
        pids_limit: settings.pids_limit,
        network_mode: settings.network.clone(),
        binds: (!binds.is_empty()).then_some(binds),
        mounts: (!mounts.is_empty()).then_some(mounts),
        // distarch removes the container itself after reading its exit status;
        // the engine's own auto-remove would race with that.
        auto_remove: Some(false),
        init: Some(settings.init),
        ..Default::default()
    };

    ContainerCreateBody {
        image: Some(settings.image.clone()),
        cmd,
        entrypoint,
        env: Some(env),
        labels: Some(labels),
        working_dir: workdir,
        user: settings.user.clone(),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(true),
        // The engine closes the worker's stdin when the master's attach goes away:
        // the worker sees EOF even when the master was killed.
        stdin_once: Some(true),
        tty: Some(false),
        host_config: Some(host_config),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use distarch_core::CommandLine;
    use std::time::Duration;

    fn spec() -> InstanceSpec {
        let mut spec = InstanceSpec::builder(["/worker", "--x"])
            .run_id("abc")
            .names("my group", "box")
            .id(3)
            .target("unix:///x")
            .env("DISTARCH_ID", "3")
            .env("A", "group")
            .stop_times(Duration::from_secs(1), Duration::from_secs(1))
            .build();
        spec.group_id = 1;
        spec.group_count = 2;
        spec.host = "docker".into();
        spec
    }

    fn settings(json: serde_json::Value) -> DockerSettings {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn names() {
        let mut s = spec();
        assert_eq!(container_name(&s), "distarch-abc-my-group-3");
        s.restart = 2;
        assert_eq!(container_name(&s), "distarch-abc-my-group-3-r2");
    }

    #[test]
    fn body_from_group_and_placement() {
        let s = settings(serde_json::json!({
            "image": "w:1", "memory": "64m", "cpus": 0.5, "pids_limit": 10,
            "labels": {"team": "a"}, "env": {"A": "placement"}, "network": "none",
            "volumes": ["/d:/d:ro"], "mounts": [{"type": "tmpfs", "target": "/t"}]
        }));
        let me = MasterIdentity::current();
        let b = create_body(&spec(), &s, &me);
        assert_eq!(b.cmd, Some(vec!["/worker".to_string(), "--x".to_string()]));
        assert_eq!(b.entrypoint, None);
        let env = b.env.unwrap();
        assert!(env.contains(&"A=placement".to_string()), "{env:?}");
        assert!(env.contains(&"DISTARCH_ID=3".to_string()));
        let labels = b.labels.unwrap();
        assert_eq!(labels["distarch.run"], "abc");
        assert_eq!(labels["distarch.group"], "my group");
        assert_eq!(labels["distarch.id"], "3");
        assert_eq!(labels["team"], "a");
        assert_eq!(
            labels[crate::labels::MASTER_PID],
            std::process::id().to_string()
        );
        let h = b.host_config.unwrap();
        assert_eq!(h.memory, Some(64 << 20));
        assert_eq!(h.nano_cpus, Some(500_000_000));
        assert_eq!(h.pids_limit, Some(10));
        assert_eq!(h.network_mode.as_deref(), Some("none"));
        assert_eq!(h.binds, Some(vec!["/d:/d:ro".to_string()]));
        assert_eq!(h.mounts.unwrap()[0].typ, Some(MountType::TMPFS));
        assert_eq!(b.stdin_once, Some(true));
        assert_eq!(b.tty, Some(false));
    }

    #[test]
    fn command_overrides() {
        let me = MasterIdentity::current();
        let mut s = settings(serde_json::json!({"image": "w"}));
        s.command = Some(CommandLine::Argv(vec![]));
        s.entrypoint = Some(CommandLine::Line(String::new()));
        let b = create_body(&spec(), &s, &me);
        assert_eq!(b.cmd, None, "empty command keeps the image's CMD");
        assert_eq!(b.entrypoint, Some(vec![String::new()]));
        s.command = Some(CommandLine::Line("/bin/sh -c 'echo hi'".into()));
        let b = create_body(&spec(), &s, &me);
        assert_eq!(
            b.cmd,
            Some(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()])
        );
    }
}
