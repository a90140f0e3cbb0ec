//! A progress bar on stderr for long work: bytes read while parsing, then the
//! phase name. Only when asked for and stderr is a terminal; silent otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
pub struct Progress(Option<ProgressBar>);

impl Progress {
    pub fn new(enabled: bool, file_bytes: u64) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = ProgressBar::with_draw_target(Some(file_bytes), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{spinner} {msg:12} [{bar:30}] {bytes}/{total_bytes} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message("reading");
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress(Some(bar))
    }

    pub fn silent() -> Progress {
        Progress(None)
    }

    pub fn bar(&self) -> Option<ProgressBar> {
        self.0.clone()
    }

    /// Switches from the byte count to a spinner naming the phase.
    pub fn phase(&self, name: &'static str) {
        if let Some(bar) = &self.0 {
            if bar.length().is_some() {
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} ({elapsed})").unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_length(0);
                bar.unset_length();
            }
            bar.set_message(name);
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
