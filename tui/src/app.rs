//! The view's state: the instances, the selection, sorting, filtering, the log
//! pane and the command waiting for confirmation. No terminal here: every key is
//! a method, so the behaviour is tested without a screen.

use distarch_core::{InstanceSnapshot, InstanceState};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// Columns the table can be sorted by (`o` cycles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Instance id.
    Id,
    /// Group, then group id.
    Group,
    /// State, then id.
    State,
    /// Restarts, most first.
    Restarts,
    /// Uptime, longest first.
    Uptime,
    /// Last seen, most recent first.
    LastSeen,
}

impl SortBy {
    fn next(self) -> SortBy {
        match self {
            SortBy::Id => SortBy::Group,
            SortBy::Group => SortBy::State,
            SortBy::State => SortBy::Restarts,
            SortBy::Restarts => SortBy::Uptime,
            SortBy::Uptime => SortBy::LastSeen,
            SortBy::LastSeen => SortBy::Id,
        }
    }

    /// The column's name in the header.
    pub fn name(self) -> &'static str {
        match self {
            SortBy::Id => "id",
            SortBy::Group => "group",
            SortBy::State => "state",
            SortBy::Restarts => "restarts",
            SortBy::Uptime => "uptime",
            SortBy::LastSeen => "last seen",
        }
    }
}

/// A command on the selected group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Stop the group's instances and keep them stopped.
    Stop(String),
    /// Restart the group's instances.
    Restart(String),
    /// Suspend the group.
    Suspend(String),
    /// Resume the group.
    Resume(String),
    /// Set the group's instance count.
    Scale(String, u64),
    /// Stop the whole run (only `launch --tui`, on quit).
    StopRun,
}

impl Action {
    /// What the confirmation asks.
    pub fn question(&self) -> String {
        match self {
            Action::Stop(g) => format!("stop group {g}?"),
            Action::Restart(g) => format!("restart group {g}?"),
            Action::Suspend(g) => format!("suspend group {g}?"),
            Action::Resume(g) => format!("resume group {g}?"),
            Action::Scale(g, n) => format!("scale group {g} to {n}?"),
            Action::StopRun => "stop the run and quit?".into(),
        }
    }
}

/// What a key did, for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do beyond drawing again.
    Redraw,
    /// Carry out this confirmed command.
    Run(Action),
    /// Quit the view.
    Quit,
    /// Nothing changed.
    Nothing,
}

/// The input mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Moving around.
    Normal,
    /// Typing a filter.
    Filter,
    /// Waiting for y/n on a command.
    Confirm(Action),
    /// Showing the help.
    Help,
}

/// Counts by state of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSummary {
    /// Instances by state name.
    pub by_state: BTreeMap<&'static str, usize>,
    /// Instances.
    pub total: usize,
    /// Restarts of its instances.
    pub restarts: u64,
}

/// Which output the log pane shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogScope {
    /// The selected instance's.
    Instance,
    /// The selected instance's group's.
    Group,
}

/// Everything the view shows.
#[derive(Debug)]
pub struct App {
    /// The run's name for the title.
    pub title: String,
    /// Every instance, as last fetched.
    all: Vec<InstanceSnapshot>,
    /// Indexes into `all` of the shown rows, sorted and filtered.
    shown: Vec<usize>,
    /// The selected instance's id (kept across refreshes and sorting).
    selected_id: Option<u64>,
    /// Sort column.
    pub sort: SortBy,
    /// Filter text (substring of group, host, state, transport, status, or an id).
    pub filter: String,
    /// Input mode.
    pub mode: Mode,
    /// The log pane's scope.
    pub log_scope: LogScope,
    /// The log pane's lines.
    pub log: Vec<String>,
    /// The status line (last command's answer, errors).
    pub status: String,
    /// When the instances were last fetched.
    pub fetched: Option<SystemTime>,
    /// True in `launch --tui`: quitting stops the run.
    pub owns_run: bool,
    /// Groups by name.
    pub groups: BTreeMap<String, GroupSummary>,
}

impl App {
    /// An empty view.
    pub fn new(title: impl Into<String>, owns_run: bool) -> Self {
        App {
            title: title.into(),
            all: Vec::new(),
            shown: Vec::new(),
            selected_id: None,
            sort: SortBy::Id,
            filter: String::new(),
            mode: Mode::Normal,
            log_scope: LogScope::Instance,
            log: Vec::new(),
            status: "press ? for keys".into(),
            fetched: None,
            owns_run,
            groups: BTreeMap::new(),
        }
    }

    /// Takes a new list of instances.
    pub fn set_instances(&mut self, instances: Vec<InstanceSnapshot>) {
        self.all = instances;
        self.groups.clear();
        for i in &self.all {
            let g = self.groups.entry(i.group.clone()).or_default();
            *g.by_state.entry(i.state.as_str()).or_default() += 1;
            g.total += 1;
            g.restarts += u64::from(i.restarts);
        }
        self.fetched = Some(SystemTime::now());
        self.reshow();
    }

    /// Every instance.
    pub fn instances(&self) -> &[InstanceSnapshot] {
        &self.all
    }

    /// The rows shown, in order.
    pub fn rows(&self) -> impl Iterator<Item = &InstanceSnapshot> + '_ {
        self.shown.iter().map(|&i| &self.all[i])
    }

    /// Number of rows shown.
    pub fn row_count(&self) -> usize {
        self.shown.len()
    }

    /// Position of the selected row among the shown ones.
    pub fn selected_row(&self) -> Option<usize> {
        let id = self.selected_id?;
        self.shown.iter().position(|&i| self.all[i].id == id)
    }

    /// The selected instance.
    pub fn selected(&self) -> Option<&InstanceSnapshot> {
        self.selected_row().map(|r| &self.all[self.shown[r]])
    }

    fn matches(&self, i: &InstanceSnapshot) -> bool {
        if self.filter.is_empty() {
            return true;
        }
        let f = self.filter.to_lowercase();
        i.id.to_string() == f
            || i.group.to_lowercase().contains(&f)
            || i.host.to_lowercase().contains(&f)
            || i.transport.to_lowercase().contains(&f)
            || i.state.as_str().contains(&f)
            || i.status
                .as_deref()
                .is_some_and(|s| s.to_lowercase().contains(&f))
    }

    fn reshow(&mut self) {
        let mut shown: Vec<usize> = (0..self.all.len())
            .filter(|&i| self.matches(&self.all[i]))
            .collect();
        let all = &self.all;
        match self.sort {
            SortBy::Id => shown.sort_by_key(|&i| all[i].id),
            SortBy::Group => shown.sort_by(|&a, &b| {
                (&all[a].group, all[a].group_id).cmp(&(&all[b].group, all[b].group_id))
            }),
            SortBy::State => shown.sort_by_key(|&i| (state_rank(all[i].state), all[i].id)),
            SortBy::Restarts => {
                shown.sort_by_key(|&i| (std::cmp::Reverse(all[i].restarts), all[i].id))
            }
            // RFC 3339 UTC times sort as text; earliest start = longest uptime.
            SortBy::Uptime => shown.sort_by(|&a, &b| {
                let key = |i: usize| (all[i].started.is_none(), all[i].started.clone(), all[i].id);
                key(a).cmp(&key(b))
            }),
            SortBy::LastSeen => shown.sort_by(|&a, &b| {
                all[b]
                    .last_seen
                    .cmp(&all[a].last_seen)
                    .then(all[a].id.cmp(&all[b].id))
            }),
        }
        self.shown = shown;
        if self.selected_row().is_none() {
            self.selected_id = self.shown.first().map(|&i| self.all[i].id);
        }
    }

    fn select_row(&mut self, row: usize) {
        if let Some(&i) = self.shown.get(row) {
            self.selected_id = Some(self.all[i].id);
        }
    }

    fn move_by(&mut self, delta: isize) {
        if self.shown.is_empty() {
            return;
        }
        let now = self.selected_row().unwrap_or(0) as isize;
        let last = self.shown.len() as isize - 1;
        self.select_row((now + delta).clamp(0, last) as usize);
    }

    fn group_action(&mut self, make: impl FnOnce(&InstanceSnapshot) -> Action) -> Outcome {
        match self.selected() {
            Some(i) => {
                let action = make(i);
                self.mode = Mode::Confirm(action);
                Outcome::Redraw
            }
            None => {
                self.status = "no instance selected".into();
                Outcome::Redraw
            }
        }
    }

    /// Handles a key (`page` is the number of table rows on screen).
    pub fn key(&mut self, key: Key, page: usize) -> Outcome {
        match self.mode.clone() {
            Mode::Help => {
                self.mode = Mode::Normal;
                Outcome::Redraw
            }
            Mode::Confirm(action) => match key {
                Key::Char('y') | Key::Char('Y') => {
                    self.mode = Mode::Normal;
                    self.status = format!("{} ...", action.question().trim_end_matches('?'));
                    Outcome::Run(action)
                }
                _ => {
                    self.mode = Mode::Normal;
                    self.status = "cancelled".into();
                    Outcome::Redraw
                }
            },
            Mode::Filter => {
                match key {
                    Key::Enter => self.mode = Mode::Normal,
                    Key::Esc => {
                        self.filter.clear();
                        self.mode = Mode::Normal;
                    }
                    Key::Backspace => {
                        self.filter.pop();
                    }
                    Key::Char(c) => self.filter.push(c),
                    _ => return Outcome::Nothing,
                }
                self.reshow();
                Outcome::Redraw
            }
            Mode::Normal => self.normal_key(key, page),
        }
    }

    fn normal_key(&mut self, key: Key, page: usize) -> Outcome {
        let page = page.max(1) as isize;
        match key {
            Key::Char('q') | Key::Esc | Key::CtrlC => {
                if self.owns_run {
                    self.mode = Mode::Confirm(Action::StopRun);
                    return Outcome::Redraw;
                }
                return Outcome::Quit;
            }
            Key::Up | Key::Char('k') => self.move_by(-1),
            Key::Down | Key::Char('j') => self.move_by(1),
            Key::PageUp => self.move_by(-page),
            Key::PageDown => self.move_by(page),
            Key::Home | Key::Char('g') => self.select_row(0),
            Key::End | Key::Char('G') => self.select_row(self.shown.len().saturating_sub(1)),
            Key::Char('o') => {
                self.sort = self.sort.next();
                self.reshow();
            }
            Key::Char('/') => self.mode = Mode::Filter,
            Key::Char('?') => self.mode = Mode::Help,
            Key::Char('l') => {
                self.log_scope = match self.log_scope {
                    LogScope::Instance => LogScope::Group,
                    LogScope::Group => LogScope::Instance,
                };
                self.log.clear();
            }
            Key::Char('x') => return self.group_action(|i| Action::Stop(i.group.clone())),
            Key::Char('r') => return self.group_action(|i| Action::Restart(i.group.clone())),
            Key::Char('s') => return self.group_action(|i| Action::Suspend(i.group.clone())),
            Key::Char('u') => return self.group_action(|i| Action::Resume(i.group.clone())),
            Key::Char('+') => {
                return self.group_action(|i| Action::Scale(i.group.clone(), i.group_count + 1))
            }
            Key::Char('-') => {
                return self.group_action(|i| {
                    Action::Scale(i.group.clone(), i.group_count.saturating_sub(1))
                })
            }
            _ => return Outcome::Nothing,
        }
        Outcome::Redraw
    }

    /// The log pane's query: `id=N` or `group=NAME`.
    pub fn log_target(&self) -> Option<(LogScope, String)> {
        let i = self.selected()?;
        Some(match self.log_scope {
            LogScope::Instance => (LogScope::Instance, i.id.to_string()),
            LogScope::Group => (LogScope::Group, i.group.clone()),
        })
    }
}

/// Order of states for sorting: the ones that need a look first.
fn state_rank(s: InstanceState) -> u8 {
    match s {
        InstanceState::Backoff => 0,
        InstanceState::Starting => 1,
        InstanceState::Stopping => 2,
        InstanceState::Pending => 3,
        InstanceState::Running => 4,
        InstanceState::Ready => 5,
        InstanceState::Suspended => 6,
        InstanceState::Ended => 7,
        _ => 8,
    }
}

/// A key, independent of the terminal library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable character.
    Char(char),
    /// Ctrl-C.
    CtrlC,
    /// Enter.
    Enter,
    /// Escape.
    Esc,
    /// Backspace.
    Backspace,
    /// Arrow up.
    Up,
    /// Arrow down.
    Down,
    /// Page up.
    PageUp,
    /// Page down.
    PageDown,
    /// Home.
    Home,
    /// End.
    End,
}

/// The state named `name` (as [`InstanceState::as_str`] writes it).
pub fn parse_state(name: &str) -> Option<InstanceState> {
    [
        InstanceState::Pending,
        InstanceState::Starting,
        InstanceState::Running,
        InstanceState::Ready,
        InstanceState::Stopping,
        InstanceState::Backoff,
        InstanceState::Suspended,
        InstanceState::Ended,
    ]
    .into_iter()
    .find(|s| s.as_str() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(id: u64, group: &str, state: InstanceState, restarts: u32) -> InstanceSnapshot {
        InstanceSnapshot {
            id,
            group: group.into(),
            group_id: id,
            group_count: 3,
            placement: "p".into(),
            transport: "local".into(),
            host: "localhost".into(),
            state,
            process: None,
            restarts,
            started: None,
            ready: None,
            last_seen: None,
            status: None,
            last_exit: None,
        }
    }

    fn app() -> App {
        let mut a = App::new("t", false);
        a.set_instances(vec![
            inst(1, "web", InstanceState::Ready, 0),
            inst(2, "web", InstanceState::Backoff, 4),
            inst(3, "db", InstanceState::Ready, 1),
        ]);
        a
    }

    #[test]
    fn groups_are_counted_by_state() {
        let a = app();
        assert_eq!(a.groups["web"].by_state["ready"], 1);
        assert_eq!(a.groups["web"].by_state["backoff"], 1);
        assert_eq!(a.groups["db"].total, 1);
    }

    #[test]
    fn sorting_keeps_the_selection() {
        let mut a = app();
        a.key(Key::Down, 10);
        assert_eq!(a.selected().map(|i| i.id), Some(2));
        a.key(Key::Char('o'), 10); // group
        a.key(Key::Char('o'), 10); // state
        assert_eq!(a.rows().map(|i| i.id).collect::<Vec<_>>(), vec![2, 1, 3]);
        assert_eq!(a.selected().map(|i| i.id), Some(2));
        a.key(Key::Char('o'), 10); // restarts
        assert_eq!(a.rows().map(|i| i.id).collect::<Vec<_>>(), vec![2, 3, 1]);
    }

    #[test]
    fn filter_and_confirmed_group_commands() {
        let mut a = app();
        for k in [Key::Char('/'), Key::Char('d'), Key::Char('b'), Key::Enter] {
            a.key(k, 10);
        }
        assert_eq!(a.rows().map(|i| i.id).collect::<Vec<_>>(), vec![3]);
        assert_eq!(a.key(Key::Char('s'), 10), Outcome::Redraw);
        assert_eq!(a.mode, Mode::Confirm(Action::Suspend("db".into())));
        assert_eq!(
            a.key(Key::Char('y'), 10),
            Outcome::Run(Action::Suspend("db".into()))
        );
        assert_eq!(a.key(Key::Char('+'), 10), Outcome::Redraw);
        assert_eq!(a.key(Key::Char('n'), 10), Outcome::Redraw);
        assert_eq!(a.mode, Mode::Normal);
        assert_eq!(a.key(Key::Char('q'), 10), Outcome::Quit);
    }
}
