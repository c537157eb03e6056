//! `stop`, `suspend`, `resume`, `scale`, `restart`.

use super::{locate, print_json, GroupArgs, OutputFormat, RestartArgs, ScaleArgs, TargetArgs};
use super::{VerbError, EXIT_REFUSED};
use distarch_control::wire::{
    GroupsRequest, IdsAnswer, ScaleOutcome, ScaleRequest, TargetsRequest,
};
use distarch_core::Selector;

fn list(ids: &[u64]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    ids.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn report(output: OutputFormat, what: &str, answer: &IdsAnswer) {
    match output {
        OutputFormat::Json => print_json(answer),
        OutputFormat::Text => say!("{what}: {}", list(&answer.ids)),
    }
}

pub async fn stop(args: TargetArgs) -> Result<i32, VerbError> {
    let found = locate(&args.run).await?;
    let whole = args.targets.is_empty();
    let req = TargetsRequest {
        targets: args.targets.iter().map(|t| Selector::parse(t)).collect(),
        rolling: false,
    };
    let answer: IdsAnswer = found.client().post("/stop", &req).await?;
    let what = if whole { "stopping the run" } else { "stopped" };
    report(args.output.output, what, &answer);
    Ok(0)
}

pub async fn suspend(args: GroupArgs) -> Result<i32, VerbError> {
    let found = locate(&args.run).await?;
    let req = GroupsRequest {
        groups: args.groups.clone(),
    };
    let answer: IdsAnswer = found.client().post("/suspend", &req).await?;
    report(args.output.output, "suspended", &answer);
    Ok(0)
}

pub async fn resume(args: GroupArgs) -> Result<i32, VerbError> {
    let found = locate(&args.run).await?;
    let req = GroupsRequest {
        groups: args.groups.clone(),
    };
    let answer: IdsAnswer = found.client().post("/resume", &req).await?;
    report(args.output.output, "resumed", &answer);
    Ok(0)
}

/// `GROUP=N` or `GROUP.PLACEMENT=N`.
fn parse_count(text: &str) -> Result<ScaleRequest, VerbError> {
    let bad = || {
        VerbError::new(
            distarch_core::EXIT_CONFIG,
            format!("`{text}` is not GROUP=N or GROUP.PLACEMENT=N (e.g. first=5)"),
        )
    };
    let (target, count) = text.split_once('=').ok_or_else(bad)?;
    let count: u64 = count.trim().parse().map_err(|_| bad())?;
    let (group, placement) = match target.split_once('.') {
        Some((g, p)) => (g.to_string(), Some(p.to_string())),
        None => (target.to_string(), None),
    };
    if group.is_empty() || placement.as_deref() == Some("") {
        return Err(bad());
    }
    Ok(ScaleRequest {
        group,
        placement,
        count,
    })
}

pub async fn scale(args: ScaleArgs) -> Result<i32, VerbError> {
    let requests = args
        .counts
        .iter()
        .map(|c| parse_count(c))
        .collect::<Result<Vec<_>, _>>()?;
    let found = locate(&args.run).await?;
    let client = found.client();
    let mut outcomes = Vec::new();
    for req in requests {
        let outcome: ScaleOutcome = client.post("/scale", &req).await?;
        if args.output.output == OutputFormat::Text {
            say!(
                "{}: {} instances (added: {}; removed: {})",
                req.group,
                outcome.count,
                list(&outcome.added),
                list(&outcome.removed)
            );
        }
        outcomes.push(outcome);
    }
    if args.output.output == OutputFormat::Json {
        print_json(&outcomes);
    }
    Ok(0)
}

pub async fn restart(args: RestartArgs) -> Result<i32, VerbError> {
    let found = locate(&args.run).await?;
    let req = TargetsRequest {
        targets: args.targets.iter().map(|t| Selector::parse(t)).collect(),
        rolling: args.rolling,
    };
    let answer: IdsAnswer = found.client().post("/restart", &req).await?;
    report(args.output.output, "restarted", &answer);
    if answer.ids.is_empty() {
        return Err(VerbError::new(EXIT_REFUSED, "nothing to restart"));
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_counts_name_a_group_and_maybe_a_placement() {
        let r = parse_count("first=5").unwrap();
        assert_eq!((r.group.as_str(), r.placement, r.count), ("first", None, 5));
        let r = parse_count("first.remote=2").unwrap();
        assert_eq!(r.placement.as_deref(), Some("remote"));
        assert!(parse_count("first").is_err());
        assert!(parse_count("first=-1").is_err());
        assert!(parse_count(".x=1").is_err());
    }
}
