//! What a reload does with `[launcher]`: the settings an instance is started with
//! (`stop_grace`, `kill_after`, `max_line_bytes`) and `service` take effect at
//! once, and every group whose effective value changed is restarted one instance at
//! a time, as when its own configuration changed; the output settings
//! (`log_format`, `log_level`, `timestamps`, `time_zone`) apply to the next line
//! written (see [`crate::LiveOutput`]); the others (the log file's path, deadlines
//! counted from the launch, listeners) are named in the reload's notes as taking
//! effect when the run is started again.

use crate::config::{GroupConfig, LauncherConfig};

/// The applied keys that restart the groups using them.
const RESTARTING: [&str; 3] = ["stop_grace", "kill_after", "max_line_bytes"];

/// The launcher keys that changed, split by what the reload does with them.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct LauncherChanges {
    /// Keys applied by this reload.
    pub(crate) applied: Vec<&'static str>,
    /// Keys that only change when the run is started again.
    pub(crate) deferred: Vec<&'static str>,
}

impl LauncherChanges {
    /// Compares the running launcher settings with the reloaded ones.
    pub(crate) fn between(old: &LauncherConfig, new: &LauncherConfig) -> Self {
        let mut c = LauncherChanges::default();
        let mut check = |changed: bool, key: &'static str, applied: bool| {
            if changed {
                if applied {
                    c.applied.push(key);
                } else {
                    c.deferred.push(key);
                }
            }
        };
        check(old.stop_grace != new.stop_grace, "stop_grace", true);
        check(old.kill_after != new.kill_after, "kill_after", true);
        check(
            old.max_line_bytes != new.max_line_bytes,
            "max_line_bytes",
            true,
        );
        check(old.service != new.service, "service", true);
        check(old.timeout != new.timeout, "timeout", false);
        check(
            old.max_running_time != new.max_running_time,
            "max_running_time",
            false,
        );
        check(
            old.ready_timeout != new.ready_timeout,
            "ready_timeout",
            false,
        );
        check(old.log_format != new.log_format, "log_format", true);
        check(old.log_level != new.log_level, "log_level", true);
        check(old.timestamps != new.timestamps, "timestamps", true);
        check(old.time_zone != new.time_zone, "time_zone", true);
        check(old.log_file != new.log_file, "log_file", false);
        check(old.control != new.control, "control", false);
        check(old.metrics != new.metrics, "metrics", false);
        c
    }

    /// Copies the applied keys into the running settings.
    pub(crate) fn apply(old: &mut LauncherConfig, new: &LauncherConfig) {
        old.stop_grace = new.stop_grace;
        old.kill_after = new.kill_after;
        old.max_line_bytes = new.max_line_bytes;
        old.service = new.service;
        old.log_format = new.log_format;
        old.log_level = new.log_level;
        old.timestamps = new.timestamps;
        old.time_zone = new.time_zone;
    }

    /// True when instances of `group` would start with other values under `new`
    /// than under `old` (a launcher default it does not override changed).
    pub(crate) fn affects(old: &LauncherConfig, new: &LauncherConfig, group: &GroupConfig) -> bool {
        (group.stop_grace.is_none() && old.stop_grace != new.stop_grace)
            || (group.kill_after.is_none() && old.kill_after != new.kill_after)
            || old.max_line_bytes != new.max_line_bytes
    }

    /// The reload's notes: one line for what was applied, one for what was not.
    pub(crate) fn notes(&self) -> Vec<String> {
        let keys = |v: &[&str]| {
            v.iter()
                .map(|k| format!("launcher.{k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut notes = Vec::new();
        if !self.applied.is_empty() {
            let restarting: Vec<&str> = self
                .applied
                .iter()
                .copied()
                .filter(|k| RESTARTING.contains(k))
                .collect();
            let mut note = format!("applied {}", keys(&self.applied));
            if !restarting.is_empty() {
                note.push_str(&format!(
                    " (groups that use {} are restarted one instance at a time)",
                    keys(&restarting)
                ));
            }
            notes.push(note);
        }
        if !self.deferred.is_empty() {
            notes.push(format!(
                "{} changed but is not reloaded: it takes effect when the run is started again",
                keys(&self.deferred)
            ));
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    #[test]
    fn splits_the_changed_keys_by_what_a_reload_does() {
        let old = LauncherConfig::default();
        let mut new = old.clone();
        new.stop_grace = HumanDuration::from_secs(3);
        new.log_level = distarch_protocol::Level::Info;
        new.service = true;
        new.ready_timeout = HumanDuration::from_secs(5);
        let c = LauncherChanges::between(&old, &new);
        assert_eq!(c.applied, ["stop_grace", "service", "log_level"]);
        assert_eq!(c.deferred, ["ready_timeout"]);
        let notes = c.notes();
        assert_eq!(
            notes[0],
            "applied launcher.stop_grace, launcher.service, launcher.log_level \
             (groups that use launcher.stop_grace are restarted one instance at a time)"
        );
        assert!(
            notes[1].starts_with("launcher.ready_timeout changed"),
            "{notes:?}"
        );
        let mut quiet = old.clone();
        quiet.log_format = crate::LogFormat::Json;
        assert_eq!(
            LauncherChanges::between(&old, &quiet).notes(),
            ["applied launcher.log_format"]
        );
        assert!(LauncherChanges::between(&old, &old).notes().is_empty());
    }

    #[test]
    fn a_group_that_overrides_a_default_is_not_affected_by_it() {
        let old = LauncherConfig::default();
        let mut new = old.clone();
        new.kill_after = HumanDuration::from_secs(1);
        let mut group = GroupConfig::new(crate::config::CommandLine::Argv(vec!["w".into()]));
        assert!(LauncherChanges::affects(&old, &new, &group));
        group.kill_after = Some(HumanDuration::from_secs(9));
        assert!(!LauncherChanges::affects(&old, &new, &group));
    }
}
