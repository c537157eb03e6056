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
    fn plan(&self, p: &PlacementRef<'_>) -> Result<Vec<Target>, ConfigError> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct S {
            hosts: Vec<String>,
        }
        let s: S = p.parse_settings()?;
        Ok(s.hosts
            .into_iter()
            .map(|h| Target {
                address: h.clone(),
                host: h,
                instances: p.instances,
            })
            .collect())
    }
    async fn spawn(&self, _: &InstanceSpec) -> Result<Box<dyn Instance>, SpawnError> {
        Err(SpawnError::new("not used"))
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
