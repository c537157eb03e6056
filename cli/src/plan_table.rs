//! The placement plan as a table (`distarch validate`, `launch --dry-run`).

use distarch_core::Plan;
use std::fmt::Write;
use std::path::Path;

/// Renders which instance ids go where.
pub fn render(plan: &Plan, file: Option<&Path>) -> String {
    let mut out = String::new();
    let source = match file {
        Some(f) => format!("config {}", f.display()),
        None => "no config file".to_string(),
    };
    let _ = writeln!(
        out,
        "configuration is valid ({source}): {} instance(s) in {} group(s)",
        plan.instances.len(),
        plan.groups.len()
    );
    for group in &plan.groups {
        let _ = writeln!(
            out,
            "group {} ({} instance(s)): {}",
            group.name,
            group.count,
            shell_join(&group.argv)
        );
    }
    let rows: Vec<[String; 6]> = plan
        .instances
        .iter()
        .map(|i| {
            let g = plan.group_of(i);
            [
                i.id.to_string(),
                g.name.to_string(),
                format!("{}/{}", i.group_id, g.count),
                i.placement.to_string(),
                i.transport.to_string(),
                i.target.host.clone(),
            ]
        })
        .collect();
    let header = ["ID", "GROUP", "GROUP_ID", "PLACEMENT", "TRANSPORT", "HOST"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut line = |cells: [&str; 6]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(header);
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}

fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
