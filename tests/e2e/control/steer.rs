//! A master launched in the background plus a second "terminal" running control
//! verbs against it, both with the same private runtime directory.

use distarch_e2e::*;
use serde_json::Value;
use std::time::Duration;

pub const LIMIT: Duration = Duration::from_secs(60);

pub fn worker() -> String {
    toml_str(test_worker_bin().display().to_string())
}

/// A group `name` of `n` test workers in `mode`, tagged with `token`.
pub fn group(name: &str, mode: &str, n: u32, extra: &str, token: &str) -> String {
    let args: Vec<String> = mode.split_whitespace().map(toml_str).collect();
    format!(
        "[groups.{name}]\ncommand = [{w}, {args}, \"--tag\", \"{token}\"]\ninstances = {n}\n{extra}\n",
        w = worker(),
        args = args.join(", ")
    )
}

/// The master and its clients.
pub struct Steer {
    pub d: Distarch,
    pub master: Running,
    pub run: String,
}

/// A temp dir whose runtime directory (XDG_RUNTIME_DIR) is private to the test.
pub fn distarch(config: &str) -> Distarch {
    let d = Distarch::new().config(config);
    let rt = d.path("rt");
    std::fs::create_dir_all(&rt).unwrap();
    let rt = rt.display().to_string();
    d.env("XDG_RUNTIME_DIR", &rt)
}

impl Steer {
    /// Launches `config` with run id `run` (plus `extra` launch arguments) and waits
    /// until `ps RUN` answers with every instance of `ready_count` ready.
    pub fn launch(config: &str, run: &str, extra: &[&str], ready_count: usize) -> Steer {
        let d = distarch(config);
        let mut args = vec!["launch", "--run-id", run];
        args.extend_from_slice(extra);
        let master = d.spawn(&args);
        let s = Steer {
            d,
            master,
            run: run.to_string(),
        };
        s.wait_instances(
            &format!("{ready_count} ready instances"),
            Duration::from_secs(30),
            |all| all.iter().filter(|i| i["state"] == "ready").count() >= ready_count,
        );
        s
    }

    /// Runs `distarch ARGS` as the second terminal.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.d.run(args, LIMIT)
    }

    /// Runs `distarch ARGS -o json` and parses its output; panics unless it exits 0.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend_from_slice(&["-o", "json"]);
        let out = self.cli(&all);
        assert_eq!(
            out.code,
            0,
            "distarch {all:?}\n{out}\nmaster:\n{}",
            self.master.stdout()
        );
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
    }

    /// The instances, from `ps RUN -o json`.
    pub fn instances(&self) -> Vec<Value> {
        let out = self.d.run(&["ps", &self.run, "-o", "json"], LIMIT);
        if out.code != 0 {
            return Vec::new();
        }
        serde_json::from_str::<Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }

    /// Waits until the instances satisfy `cond`; panics with them otherwise.
    pub fn wait_instances(&self, what: &str, limit: Duration, cond: impl Fn(&[Value]) -> bool) {
        let mut last = Vec::new();
        let ok = wait_until(limit, || {
            last = self.instances();
            cond(&last)
        });
        assert!(
            ok,
            "waited {limit:?} for {what}; instances:\n{}\nmaster stdout:\n{}",
            serde_json::to_string_pretty(&last).unwrap(),
            self.master.stdout()
        );
    }

    /// The instance with this id.
    pub fn instance(&self, id: u64) -> Option<Value> {
        self.instances().into_iter().find(|i| i["id"] == id)
    }
}

/// Ids of the instances of `group` (all groups when empty), sorted.
pub fn ids(instances: &[Value], group: &str) -> Vec<u64> {
    let mut ids: Vec<u64> = instances
        .iter()
        .filter(|i| group.is_empty() || i["group"] == group)
        .filter_map(|i| i["id"].as_u64())
        .collect();
    ids.sort_unstable();
    ids
}

/// The `ids` array of a command's JSON answer.
pub fn answer_ids(v: &Value) -> Vec<u64> {
    let mut ids: Vec<u64> = v["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    ids.sort_unstable();
    ids
}

/// True when every instance listed in `ids` is in `state`.
pub fn all_in(instances: &[Value], ids: &[u64], state: &str) -> bool {
    ids.iter().all(|id| {
        instances
            .iter()
            .any(|i| i["id"] == *id && i["state"] == state)
    })
}
