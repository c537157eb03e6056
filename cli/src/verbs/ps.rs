//! `distarch ps [RUN]`.

use super::table::render;
use super::{locate, print_json, OutputFormat, PsArgs, VerbError};
use distarch_control::live_runs;
use distarch_control::wire::{InstanceSnapshot, JobStats};

pub async fn ps(args: PsArgs) -> Result<i32, VerbError> {
    let Some(run) = args.run else {
        let (runs, cleaned) = live_runs().await?;
        for id in cleaned {
            eprintln!("distarch: removed the files of run {id}: its master is gone");
        }
        if args.output.output == OutputFormat::Json {
            let status: Vec<_> = runs.iter().map(|r| &r.status).collect();
            print_json(&status);
            return Ok(0);
        }
        let rows: Vec<Vec<String>> = runs
            .iter()
            .map(|r| {
                let s = &r.status;
                let d = &s.descriptor;
                vec![
                    d.run_id.clone(),
                    d.name.clone(),
                    d.pid.to_string(),
                    d.started.clone(),
                    format!("{}/{}", s.running, s.instances),
                    if d.service { "service" } else { "" }.to_string(),
                    d.config.clone().unwrap_or_else(|| d.cwd.clone()),
                ]
            })
            .collect();
        say_raw!(
            "{}",
            render(
                &["RUN", "NAME", "PID", "STARTED", "RUNNING", "MODE", "CONFIG"],
                &rows
            )
        );
        return Ok(0);
    };
    let found = locate(&run).await?;
    if args.output.output == OutputFormat::Json {
        let instances: Vec<InstanceSnapshot> = found.client().get("/instances").await?;
        print_json(&instances);
        return Ok(0);
    }
    let (all, pools) = (found.client(), found.client());
    let (instances, jobs) = tokio::join!(
        all.get::<Vec<InstanceSnapshot>>("/instances"),
        pools.get::<Vec<JobStats>>("/jobs"),
    );
    let instances = instances?;
    // A master without job pools (or from before them) has none to show.
    let jobs = jobs.unwrap_or_default();
    let rows: Vec<Vec<String>> = instances
        .iter()
        .map(|i| {
            vec![
                i.id.to_string(),
                i.group.clone(),
                format!("{}/{}", i.group_id, i.group_count),
                i.host.clone(),
                format!("{}/{}", i.placement, i.transport),
                i.state.as_str().to_string(),
                i.process.clone().unwrap_or_default(),
                i.restarts.to_string(),
                i.started.clone().unwrap_or_default(),
                i.status.clone().unwrap_or_default(),
                i.last_exit.clone().unwrap_or_default(),
            ]
        })
        .collect();
    say_raw!(
        "{}",
        render(
            &[
                "ID",
                "GROUP",
                "GID",
                "HOST",
                "PLACEMENT",
                "STATE",
                "PROCESS",
                "RESTARTS",
                "STARTED",
                "STATUS",
                "LAST EXIT"
            ],
            &rows
        )
    );
    for pool in &jobs {
        say_raw!("JOBS {}: {}\n", pool.group, pool.summary());
    }
    Ok(0)
}
