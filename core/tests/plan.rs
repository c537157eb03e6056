//! The placement plan: id order and error reporting, against the real local transport's
//! neighbour, a minimal transport defined here.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use async_trait::async_trait;
use distarch_core::*;

struct Hosts;

#[async_trait]
impl Transport for Hosts {
    fn name(&self) -> &str {
        "hosts"
    }
    /// Every empty host is an error of its own; the prepared form is the host list.
    fn plan(&self, p: &PlacementRef<'_>) -> Result<PlacementPlan, ConfigErrors> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct S {
            hosts: Vec<String>,
        }
        let s: S = p.parse_settings()?;
        let errors: Vec<ConfigError> = s
            .hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.is_empty())
            .map(|(i, _)| ConfigError::new(format!("{}.hosts[{i}]", p.path()), "is empty"))
            .collect();
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let targets = s
            .hosts
            .iter()
            .map(|h| Target {
                address: h.clone(),
                host: h.clone(),
                instances: p.instances,
            })
            .collect();
        Ok(PlacementPlan::new(targets, Prepared::new(s.hosts)))
    }
    /// Fails with the prepared host list, so a test can see what spawn was given.
    async fn spawn(&self, spec: &InstanceSpec) -> Result<Box<dyn Instance>, SpawnError> {
        let hosts = spec.settings::<Vec<String>>()?;
        Err(SpawnError::new(format!("prepared: {}", hosts.join(","))))
    }
}

fn config(text: &str) -> Config {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text).unwrap();
    config::load(&config::ConfigSources {
        file: Some(path),
        ignore_env: true,
        ..Default::default()
    })
    .unwrap()
    .config
}

fn registry() -> TransportRegistry {
    let mut r = TransportRegistry::new();
    r.register(Hosts);
    r
}

#[test]
fn ids_go_by_group_order_then_placement_then_host() {
    let c = config(
        r#"
[groups.zeta]
order = -1
command = "w"
placements.b = { transport = "hosts", hosts = ["h1", "h2"], instances = 2 }
placements.a = { transport = "hosts", hosts = ["h3"], instances = 1 }
[groups.alpha]
command = "w"
placements.x = { transport = "hosts", hosts = ["h9"], instances = 1 }
"#,
    );
    let plan = build_plan(&c, &registry(), &[]).unwrap();
    let rows: Vec<(u64, &str, u64, &str)> = plan
        .instances
        .iter()
        .map(|i| {
            (
                i.id,
                &*plan.group_of(i).name,
                i.group_id,
                i.target.host.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (1, "zeta", 1, "h3"),
            (2, "zeta", 2, "h1"),
            (3, "zeta", 3, "h1"),
            (4, "zeta", 4, "h2"),
            (5, "zeta", 5, "h2"),
            (6, "alpha", 1, "h9"),
        ]
    );
    assert_eq!(plan.groups[0].count, 5);
    let only = build_plan(&c, &registry(), &["alpha".into()]).unwrap();
    assert_eq!(only.instances.len(), 1);
    assert_eq!(only.instances[0].id, 1);
}

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let c = config(
        r#"
[groups.a]
command = ""
instances = 1
[groups.b]
command = "w"
priority = 40
backoff = { factor = 0.5 }
placements.p = { transport = "hosts", hots = ["h1"], instances = 1 }
placements.q = { transport = "nope", instances = 1 }
placements.r = { transport = "hosts", hosts = ["h"] }
"#,
    );
    let missing = build_plan(&c, &registry(), &["missing".into()]).unwrap_err();
    assert!(
        missing
            .to_string()
            .contains("groups.missing: no such group (known: a, b)"),
        "{missing}"
    );
    let errors = build_plan(&c, &registry(), &[]).unwrap_err();
    let text = errors.to_string();
    for needle in [
        "groups.a.command: the command is empty",
        "groups.b.priority: priority 40 is out of range",
        "groups.b.backoff.factor: factor 0.5 must be a number of at least 1",
        "groups.b.placements.p: unknown key `hots`; a placement with transport `hosts` accepts: transport, instances, params, hosts; did you mean `hosts`?",
        "groups.b.placements.q.transport: unknown transport `nope` (available: hosts)",
        "groups.b.placements.r.instances: instances is not set",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
}

#[test]
fn a_transport_reports_all_its_problems_and_spawn_gets_what_plan_prepared() {
    let c = config(
        r#"
[groups.g]
command = "w"
placements.p = { transport = "hosts", hosts = ["", "h", ""], instances = 1 }
"#,
    );
    let errors = build_plan(&c, &registry(), &[]).unwrap_err();
    let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "groups.g.placements.p.hosts[0]",
            "groups.g.placements.p.hosts[2]"
        ]
    );

    let spec = InstanceSpec::builder(["w"])
        .target("h2")
        .plan(&Hosts, &serde_json::json!({"hosts": ["h1", "h2"]}))
        .unwrap();
    assert_eq!((spec.target.as_str(), spec.host.as_str()), ("h2", "h2"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let err = rt.block_on(Hosts.spawn(&spec)).err().unwrap();
    assert_eq!(err.message, "prepared: h1,h2");
    // A spec that this transport did not plan is refused by name, not misread.
    let foreign = InstanceSpec::builder(["w"]).build();
    let err = rt.block_on(Hosts.spawn(&foreign)).err().unwrap();
    assert!(
        err.message
            .starts_with("groups.g.placements.p: the settings were not prepared"),
        "{}",
        err.message
    );
}
