//! Progress of long-running operator commands: a bar on a terminal, plain
//! lines at every tenth of the work otherwise (logs, CI, pipes).
//!
//! Progress goes to standard error, so that standard output carries only
//! the command's summary line.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Destination of plain progress lines: standard error, or a buffer in tests.
pub type SharedWriter = Arc<Mutex<dyn Write + Send>>;

/// Progress of one command over a known number of units.
pub struct Progress {
    label: String,
    unit: String,
    total: u64,
    done: u64,
    output: Output,
}

enum Output {
    Bar(ProgressBar),
    /// Plain lines; `next_tenth` is the next multiple of 10% to report.
    Lines {
        writer: SharedWriter,
        next_tenth: u64,
    },
}

impl Progress {
    /// Starts progress over `total` units named `unit` (plural, such as
    /// "data keys"): a bar when standard error is a terminal, plain lines
    /// otherwise.
    pub fn start(label: &str, unit: &str, total: u64) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let template = format!("{label} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{eta}} left)");
            if let Ok(style) = ProgressStyle::with_template(&template) {
                bar.set_style(style.progress_chars("=> "));
            }
            return Self::with_output(label, unit, total, Output::Bar(bar));
        }
        Self::lines(label, unit, total, Arc::new(Mutex::new(std::io::stderr())))
    }

    /// Starts progress that writes plain lines to `writer`.
    pub fn lines(label: &str, unit: &str, total: u64, writer: SharedWriter) -> Self {
        Self::with_output(
            label,
            unit,
            total,
            Output::Lines {
                writer,
                next_tenth: 1,
            },
        )
    }

    fn with_output(label: &str, unit: &str, total: u64, output: Output) -> Self {
        Self {
            label: label.to_owned(),
            unit: unit.to_owned(),
            total,
            done: 0,
            output,
        }
    }

    /// Changes the total, for work whose size is known only after it
    /// started.
    pub fn set_total(&mut self, total: u64) {
        self.total = total;
        if let Output::Bar(bar) = &self.output {
            bar.set_length(total);
        }
    }

    /// Adds `units` of finished work.
    pub fn advance(&mut self, units: u64) {
        self.done = self.done.saturating_add(units);
        match &mut self.output {
            Output::Bar(bar) => bar.set_position(self.done),
            Output::Lines { writer, next_tenth } => {
                let mut line = None;
                while *next_tenth <= 10 && self.done.saturating_mul(10) >= *next_tenth * self.total
                {
                    line = Some(*next_tenth * 10);
                    *next_tenth += 1;
                }
                if let Some(percent) = line.filter(|_| self.total > 0) {
                    write_line(
                        writer,
                        &format!(
                            "{}: {}/{} {} ({percent}%)",
                            self.label, self.done, self.total, self.unit
                        ),
                    );
                }
            }
        }
    }

    /// Ends the progress display. The caller prints the summary.
    pub fn finish(self) {
        if let Output::Bar(bar) = self.output {
            bar.finish_and_clear();
        }
    }
}

fn write_line(writer: &Mutex<dyn Write + Send>, line: &str) {
    // Progress is informational: a closed stderr must not fail the command.
    if let Ok(mut writer) = writer.lock() {
        let _ignored = writeln!(writer, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured() -> (Arc<Mutex<Vec<u8>>>, SharedWriter) {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer: SharedWriter = buffer.clone();
        (buffer, writer)
    }

    fn text(buffer: &Arc<Mutex<Vec<u8>>>) -> String {
        String::from_utf8(buffer.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lines_report_each_tenth_once() {
        let (buffer, writer) = captured();
        let mut progress = Progress::lines("keys rotate", "data keys", 20, writer);

        for _ in 0..20 {
            progress.advance(1);
        }
        progress.finish();

        let expected: String = (1..=10)
            .map(|tenth| {
                format!(
                    "keys rotate: {}/20 data keys ({}%)\n",
                    tenth * 2,
                    tenth * 10
                )
            })
            .collect();
        assert_eq!(text(&buffer), expected);
    }

    #[test]
    fn large_step_reports_only_the_tenth_reached() {
        let (buffer, writer) = captured();
        let mut progress = Progress::lines("restore", "records", 7, writer);

        progress.advance(5);
        progress.advance(2);

        assert_eq!(
            text(&buffer),
            "restore: 5/7 records (70%)\nrestore: 7/7 records (100%)\n"
        );
    }

    #[test]
    fn zero_total_prints_nothing() {
        let (buffer, writer) = captured();
        let mut progress = Progress::lines("backup", "steps", 0, writer);

        progress.advance(0);

        assert_eq!(text(&buffer), "");
    }
}
