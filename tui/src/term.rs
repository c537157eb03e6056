//! The terminal side: raw mode and the alternate screen on the way in, restored
//! on every way out (quit, the run's end, an error, a panic, SIGTERM/SIGHUP), and
//! the loop that reads keys and draws at most [`MIN_FRAME`] apart.

use crate::app::{App, Key, Outcome};
use crate::fetch::{fetcher, ToFetcher, ToView};
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use distarch_control::Client;
use ratatui::DefaultTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Shortest time between two draws (at most 4 a second).
const MIN_FRAME: Duration = Duration::from_millis(250);
/// Longest wait for a key before looking at the fetcher's news.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// How `top` is run.
#[derive(Debug, Clone)]
pub struct TopOptions {
    /// Shown in the title (the run's name or id).
    pub title: String,
    /// True in `launch --tui`: quitting stops the run (after a confirmation).
    pub owns_run: bool,
}

/// Why the view ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The user quit.
    Quit,
    /// The run went away (ended, or cannot be reached); the text says why.
    RunGone(String),
    /// Stopped by a signal.
    Signal,
}

/// Shows the view of the run `client` talks to until the user quits or the run
/// goes away. The terminal is restored before this returns, and on a panic.
pub async fn run(client: Client, options: TopOptions) -> std::io::Result<Exit> {
    run_until(client, options, Arc::new(AtomicBool::new(false))).await
}

/// [`run`], also ending (as [`Exit::Signal`]) once `stop` is set: the master of
/// `launch --tui` sets it when the run has ended.
pub async fn run_until(
    client: Client,
    options: TopOptions,
    stop: Arc<AtomicBool>,
) -> std::io::Result<Exit> {
    let (to_fetcher, from_view) = mpsc::unbounded_channel();
    let (to_view, from_fetcher) = std_mpsc::channel();
    let fetch = tokio::spawn(fetcher(client, from_view, to_view));
    let signals = tokio::spawn(watch_signals(stop.clone()));
    let ui = tokio::task::spawn_blocking(move || {
        let mut terminal = ratatui::try_init()?;
        let result = ui_loop(&mut terminal, options, &from_fetcher, &to_fetcher, &stop);
        ratatui::try_restore()?;
        result
    });
    let result = ui
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
    fetch.abort();
    signals.abort();
    result
}

async fn watch_signals(stop: Arc<AtomicBool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = hup.recv() => {}
    }
    stop.store(true, Ordering::Relaxed);
}

fn key_of(code: KeyCode, modifiers: KeyModifiers) -> Option<Key> {
    Some(match code {
        KeyCode::Char('c') if modifiers.contains(KeyModifiers::CONTROL) => Key::CtrlC,
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Backspace => Key::Backspace,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::PageUp => Key::PageUp,
        KeyCode::PageDown => Key::PageDown,
        KeyCode::Home => Key::Home,
        KeyCode::End => Key::End,
        _ => return None,
    })
}

/// Reads terminal events on a thread of its own and hands them over. crossterm's
/// reader never returns once the terminal is hung up (it loops on the dead tty), so
/// the view never waits inside it: it waits on this channel, and can always end.
fn spawn_input(quit: Arc<AtomicBool>) -> std_mpsc::Receiver<Event> {
    let (tx, rx) = std_mpsc::channel();
    let _ = std::thread::Builder::new()
        .name("distarch-top-keys".into())
        .spawn(move || {
            while !quit.load(Ordering::Relaxed) {
                match event::poll(IDLE_POLL) {
                    Ok(false) => {}
                    Ok(true) => match event::read() {
                        Ok(ev) => {
                            if tx.send(ev).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    },
                    Err(_) => return,
                }
            }
        });
    rx
}

/// How often the view checks that its terminal is still there.
const TERMINAL_CHECK: Duration = Duration::from_secs(1);

fn ui_loop(
    terminal: &mut DefaultTerminal,
    options: TopOptions,
    from_fetcher: &std_mpsc::Receiver<ToView>,
    to_fetcher: &mpsc::UnboundedSender<ToFetcher>,
    stop: &AtomicBool,
) -> std::io::Result<Exit> {
    let quit_input = Arc::new(AtomicBool::new(false));
    let input = spawn_input(quit_input.clone());
    let result = ui_events(terminal, options, from_fetcher, to_fetcher, stop, &input);
    quit_input.store(true, Ordering::Relaxed);
    result
}

fn ui_events(
    terminal: &mut DefaultTerminal,
    options: TopOptions,
    from_fetcher: &std_mpsc::Receiver<ToView>,
    to_fetcher: &mpsc::UnboundedSender<ToFetcher>,
    stop: &AtomicBool,
    input: &std_mpsc::Receiver<Event>,
) -> std::io::Result<Exit> {
    let mut app = App::new(options.title, options.owns_run);
    app.status = "connecting...".into();
    let mut dirty = true;
    let mut last_draw: Option<Instant> = None;
    let mut last_check = Instant::now();
    let mut log_target = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(Exit::Signal);
        }
        if last_check.elapsed() >= TERMINAL_CHECK {
            last_check = Instant::now();
            // A hung-up terminal (its window closed) answers no size.
            if crossterm::terminal::size().is_err() {
                return Ok(Exit::Signal);
            }
        }
        while let Ok(msg) = from_fetcher.try_recv() {
            dirty = true;
            match msg {
                ToView::Instances(list) => {
                    if app.status == "connecting..." {
                        app.status = "press ? for keys".into();
                    }
                    app.set_instances(list);
                }
                ToView::Log(lines) => app.log = lines,
                ToView::Status(text) => app.status = text,
                ToView::Gone(why) => return Ok(Exit::RunGone(why)),
            }
        }
        let target = app.log_target();
        if target != log_target {
            log_target = target.clone();
            app.log.clear();
            let _ = to_fetcher.send(ToFetcher::LogTarget(target));
        }
        let since_draw = last_draw.map(|t| t.elapsed()).unwrap_or(MIN_FRAME);
        if dirty && since_draw >= MIN_FRAME {
            terminal.draw(|frame| crate::view::draw(frame, &app))?;
            last_draw = Some(Instant::now());
            dirty = false;
        }
        let wait = if dirty {
            MIN_FRAME.saturating_sub(since_draw)
        } else {
            IDLE_POLL
        };
        let ev = match input.recv_timeout(wait) {
            Ok(ev) => ev,
            Err(std_mpsc::RecvTimeoutError::Timeout) => continue,
            // The reader ended: the terminal is gone.
            Err(std_mpsc::RecvTimeoutError::Disconnected) => return Ok(Exit::Signal),
        };
        match ev {
            Event::Key(k) if k.kind == KeyEventKind::Press => {
                let Some(key) = key_of(k.code, k.modifiers) else {
                    continue;
                };
                let area = terminal.size()?;
                let [_, _, table, _, _] = crate::view::areas(
                    ratatui::layout::Rect::new(0, 0, area.width, area.height),
                    app.groups.len(),
                );
                match app.key(key, crate::view::table_rows(table)) {
                    Outcome::Quit => return Ok(Exit::Quit),
                    Outcome::Run(action) => {
                        let quit = action == crate::app::Action::StopRun;
                        let _ = to_fetcher.send(ToFetcher::Run(action));
                        if quit {
                            return Ok(Exit::Quit);
                        }
                        dirty = true;
                    }
                    Outcome::Redraw => dirty = true,
                    Outcome::Nothing => {}
                }
            }
            Event::Resize(_, _) => dirty = true,
            _ => {}
        }
    }
}
