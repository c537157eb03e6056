//! "started N/M, ready K" while a run starts, on a terminal whose log level hides
//! the per-instance lines (indicatif). It sits in front of the standard output
//! writer so that log lines and the progress line never overwrite each other.

use distarch_core::{Event, EventObserver, LogWriter};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashSet;
use std::io::Write;

/// The standard output writer with a progress line under it.
pub struct Progress {
    writer: LogWriter<Box<dyn Write + Send>>,
    bar: Option<ProgressBar>,
    total: u64,
    started: HashSet<u64>,
    ready: HashSet<u64>,
}

impl Progress {
    /// Wraps the standard output writer.
    pub fn new(writer: LogWriter<Box<dyn Write + Send>>) -> Self {
        Progress {
            writer,
            bar: None,
            total: 0,
            started: HashSet::new(),
            ready: HashSet::new(),
        }
    }

    fn show(&mut self) {
        let Some(bar) = &self.bar else {
            return;
        };
        bar.set_position(self.ready.len() as u64);
        bar.set_message(format!(
            "started {}/{}, ready {}",
            self.started.len(),
            self.total,
            self.ready.len()
        ));
        if self.ready.len() as u64 >= self.total {
            self.finish();
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl EventObserver for Progress {
    fn observe(&mut self, event: &Event) {
        match event {
            Event::RunStarting { instances, .. } if *instances > 0 => {
                self.total = *instances as u64;
                let bar =
                    ProgressBar::with_draw_target(Some(self.total), ProgressDrawTarget::stderr());
                if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} [{bar:30}]") {
                    bar.set_style(style.progress_chars("=> "));
                }
                self.bar = Some(bar);
            }
            Event::InstanceStarted { instance, .. } => {
                self.started.insert(instance.id);
                self.show();
            }
            Event::InstanceReady(i) => {
                self.ready.insert(i.id);
                self.show();
            }
            Event::RunStopping { .. } | Event::RunStopped { .. } => self.finish(),
            _ => {}
        }
        self.writer.write_event(event);
    }

    fn flush(&mut self) {
        match &self.bar {
            // The line is taken away while lines are written, then drawn again.
            Some(bar) => bar.suspend(|| self.writer.flush_now()),
            None => self.writer.flush_now(),
        }
    }
}
