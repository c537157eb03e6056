//! Drawing the view with ratatui: a title line, the groups with their counts by
//! state, the instance table, the log pane and a status line.

use crate::app::{App, LogScope, Mode};
use distarch_core::InstanceState;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, TableState, Wrap};
use ratatui::Frame;
use std::time::SystemTime;

/// The colour of a state.
fn state_style(s: InstanceState) -> Style {
    let c = match s {
        InstanceState::Ready => Color::Green,
        InstanceState::Running => Color::Cyan,
        InstanceState::Starting | InstanceState::Pending => Color::Yellow,
        InstanceState::Stopping | InstanceState::Backoff => Color::Magenta,
        InstanceState::Suspended => Color::Blue,
        InstanceState::Ended => Color::DarkGray,
        _ => Color::White,
    };
    Style::default().fg(c)
}

/// `1h02m`, `3m05s`, `12s` since an RFC 3339 time.
fn since(t: Option<&str>, now: SystemTime) -> String {
    let Some(t) = t.and_then(|t| humantime::parse_rfc3339_weak(t).ok()) else {
        return "-".into();
    };
    let secs = now.duration_since(t).map(|d| d.as_secs()).unwrap_or(0);
    match secs {
        s if s >= 3600 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// Rows of the instance table that fit in `area`.
pub(crate) fn table_rows(area: Rect) -> usize {
    // Borders (2) and the header (1).
    area.height.saturating_sub(3) as usize
}

/// The layout: title, groups, table, log, status.
pub(crate) fn areas(area: Rect, groups: usize) -> [Rect; 5] {
    let group_height = (groups as u16 + 2).clamp(3, 8);
    let log_height = (area.height / 4).max(4);
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(group_height),
        Constraint::Min(4),
        Constraint::Length(log_height),
        Constraint::Length(1),
    ])
    .areas(area)
}

/// Draws the whole view.
pub(crate) fn draw(frame: &mut Frame<'_>, app: &App) {
    let now = SystemTime::now();
    let [title, groups, table, log, status] = areas(frame.area(), app.groups.len());
    draw_title(frame, title, app);
    draw_groups(frame, groups, app);
    draw_table(frame, table, app, now);
    draw_log(frame, log, app);
    draw_status(frame, status, app);
    match &app.mode {
        Mode::Confirm(action) => popup(frame, &format!("{}  (y/n)", action.question())),
        Mode::Help => popup(frame, HELP),
        _ => {}
    }
}

const HELP: &str = "↑/↓ j/k PgUp/PgDn g/G  move\n\
o  sort by the next column\n\
/  filter (group, host, state, transport, status, id); Esc clears\n\
l  log pane: instance / group\n\
s  suspend the selected group     u  resume it\n\
x  stop the selected group        r  restart it\n\
+  / -  scale the selected group by one\n\
q  quit (any key closes this help)";

fn draw_title(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let total = app.instances().len();
    let ready = app
        .instances()
        .iter()
        .filter(|i| i.state == InstanceState::Ready)
        .count();
    let line = Line::from(vec![
        Span::styled(
            format!(" distarch top — {} ", app.title),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(format!(
            " {total} instance(s), {ready} ready  sort: {}  filter: {}",
            app.sort.name(),
            if app.filter.is_empty() && app.mode != Mode::Filter {
                "-".to_string()
            } else if app.mode == Mode::Filter {
                format!("{}▏", app.filter)
            } else {
                app.filter.clone()
            }
        )),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

fn draw_groups(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let lines: Vec<Line<'_>> = app
        .groups
        .iter()
        .map(|(name, g)| {
            let mut spans = vec![Span::styled(
                format!("{name:<16} {:>5} ", g.total),
                Style::default().add_modifier(Modifier::BOLD),
            )];
            for (state, n) in &g.by_state {
                let style = crate::app::parse_state(state)
                    .map(state_style)
                    .unwrap_or_default();
                spans.push(Span::styled(format!(" {state} {n}"), style));
            }
            if g.restarts > 0 {
                spans.push(Span::raw(format!("  restarts {}", g.restarts)));
            }
            Line::from(spans)
        })
        .collect();
    let block = Block::default().borders(Borders::ALL).title(" groups ");
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_table(frame: &mut Frame<'_>, area: Rect, app: &App, now: SystemTime) {
    let visible = table_rows(area).max(1);
    let selected = app.selected_row().unwrap_or(0);
    // Only the rows on screen are built: cheap with thousands of instances.
    let offset = selected.saturating_sub(visible - 1);
    let rows: Vec<Row<'_>> = app
        .rows()
        .skip(offset)
        .take(visible)
        .map(|i| {
            Row::new(vec![
                Span::raw(i.id.to_string()),
                Span::raw(format!("{}/{}", i.group, i.group_id)),
                Span::raw(i.host.clone()),
                Span::raw(i.transport.clone()),
                Span::styled(i.state.as_str(), state_style(i.state)),
                Span::raw(i.restarts.to_string()),
                Span::raw(if i.state.is_live() {
                    since(i.started.as_deref(), now)
                } else {
                    "-".into()
                }),
                Span::raw(since(i.last_seen.as_deref(), now)),
                Span::raw(i.status.clone().unwrap_or_default()),
            ])
        })
        .collect();
    let header = Row::new(vec![
        "id",
        "group/gid",
        "host",
        "transport",
        "state",
        "restarts",
        "uptime",
        "seen",
        "status",
    ])
    .style(Style::default().add_modifier(Modifier::BOLD));
    let widths = [
        Constraint::Length(6),
        Constraint::Length(16),
        Constraint::Length(14),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Min(10),
    ];
    let title = format!(
        " instances {}/{} ",
        app.selected_row().map(|r| r + 1).unwrap_or(0),
        app.row_count()
    );
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::default().borders(Borders::ALL).title(title))
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(app.selected_row().map(|r| r - offset));
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_log(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let title = match (app.log_scope, app.selected()) {
        (LogScope::Instance, Some(i)) => format!(" output of instance {} (l: group) ", i.id),
        (LogScope::Group, Some(i)) => format!(" output of group {} (l: instance) ", i.group),
        _ => " output ".into(),
    };
    let height = area.height.saturating_sub(2) as usize;
    let start = app.log.len().saturating_sub(height);
    let lines: Vec<Line<'_>> = app.log[start..]
        .iter()
        .map(|l| Line::raw(l.as_str()))
        .collect();
    let block = Block::default().borders(Borders::ALL).title(title);
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn draw_status(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let hint = match app.mode {
        Mode::Filter => "type to filter, Enter to keep, Esc to clear",
        _ => "q quit  ? keys  s/u suspend/resume  x stop  r restart  +/- scale  o sort  / filter",
    };
    let line = Line::from(vec![
        Span::styled(
            format!(" {} ", app.status),
            Style::default().fg(Color::Yellow),
        ),
        Span::styled(format!(" {hint}"), Style::default().fg(Color::DarkGray)),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

fn popup(frame: &mut Frame<'_>, text: &str) {
    let area = frame.area();
    let lines = text.lines().count() as u16;
    let width =
        (text.lines().map(|l| l.chars().count()).max().unwrap_or(10) as u16 + 4).min(area.width);
    let height = (lines + 2).min(area.height);
    let rect = Rect {
        x: area.x + (area.width.saturating_sub(width)) / 2,
        y: area.y + (area.height.saturating_sub(height)) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(text.to_string())
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL)),
        rect,
    );
}
