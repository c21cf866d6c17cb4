//! What a run leaves behind as it goes: TensorBoard event files under `runs/<run>/`, a text
//! log in `logs/<run>.log`, and progress on the terminal (plain lines when stdout is not one).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use protobuf::Message;
use tensorboard_proto::event::Event;
use tensorboard_proto::summary::Summary;
use tensorboard_rs::record_writer::RecordWriter;

use crate::checkpoint::EpochRecord;
use crate::config::LoggingConfig;
use crate::train::Observer;

/// The current UTC time as (year, month, day, hour, minute, second).
fn utc_now() -> (i64, i64, i64, i64, i64, i64) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    crate::clock::utc(secs as i64)
}

/// `run-20261121T101500Z`: sortable, unique per second.
pub fn default_run_name() -> String {
    let (y, m, d, hh, mm, ss) = utc_now();
    format!("run-{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

/// `2026-11-21 10:15:00 UTC`, for reports.
pub fn utc_timestamp() -> String {
    let (y, m, d, hh, mm, ss) = utc_now();
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC")
}

/// `2026-11-21T10:15:00Z` (RFC 3339), for files other tools read.
pub fn utc_rfc3339() -> String {
    let (y, m, d, hh, mm, ss) = utc_now();
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// TensorBoard events for one run directory: `events.out.tfevents.*`, TFRecord-framed `Event`
/// protos built with tensorboard-rs's summaries. Written here rather than by tensorboard-rs's
/// writer, which panics on its background thread when a write fails (a full disk): here a
/// failed write is one warning on stderr, and the run goes on without further events.
pub struct Scalars {
    dir: PathBuf,
    writer: Option<RecordWriter<BufWriter<File>>>,
}

impl Scalars {
    pub fn open(dir: &Path) -> Result<Scalars> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let name = format!(
            "events.out.tfevents.{:010}.{}.{}.0",
            now.as_secs(),
            crate::device::hostname(),
            std::process::id()
        );
        let path = dir.join(name);
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut scalars = Scalars {
            dir: dir.to_path_buf(),
            writer: Some(RecordWriter::new(BufWriter::new(file))),
        };
        let mut first = Event::new();
        first.set_file_version("brain.Event:2".into());
        scalars.write(first, 0);
        Ok(scalars)
    }

    pub fn add(&mut self, tag: &str, value: f64, step: usize) {
        self.summary(tensorboard_rs::summary::scalar(tag, value as f32), step);
    }

    /// An RGB image, row-major. tensorboard-rs reads `dim` as [channels, width, height]
    /// (despite its CHW name), so that is the order it gets.
    pub fn image(&mut self, tag: &str, rgb: &[u8], width: u32, height: u32, step: usize) {
        let dim = [3, width as usize, height as usize];
        self.summary(tensorboard_rs::summary::image(tag, rgb, &dim), step);
    }

    fn summary(&mut self, summary: Summary, step: usize) {
        let mut event = Event::new();
        event.set_summary(summary);
        self.write(event, step);
    }

    fn write(&mut self, mut event: Event, step: usize) {
        let Some(writer) = self.writer.as_mut() else {
            return;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        event.set_wall_time(now.as_secs_f64());
        event.set_step(step as i64);
        let written = event
            .write_to_bytes()
            .map_err(std::io::Error::other)
            .and_then(|bytes| writer.write(&bytes));
        if let Err(e) = written {
            self.fail(e);
        }
    }

    /// Pushes buffered events to the file (each epoch, and when dropped).
    pub fn flush(&mut self) {
        if let Some(Err(e)) = self.writer.as_mut().map(RecordWriter::flush) {
            self.fail(e);
        }
    }

    fn fail(&mut self, e: std::io::Error) {
        eprintln!(
            "warning: cannot write TensorBoard events to {}: {e}; no further events are written",
            self.dir.display()
        );
        self.writer = None;
    }
}

impl Drop for Scalars {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Where a run's TensorBoard events go.
pub fn run_dir(cfg: &LoggingConfig, run_name: &str) -> PathBuf {
    cfg.tensorboard_dir.join(run_name)
}

/// Messages for the user: stdout unless `--quiet`, and always the text log.
pub struct RunLog {
    scalars: Scalars,
    text: File,
    quiet: bool,
    terminal: bool,
    epochs: usize,
    batch_every: usize,
    bars: Option<Bars>,
}

/// On a terminal: a bar over all epochs and, beneath it, one over the current epoch's batches.
struct Bars {
    multi: MultiProgress,
    epochs: ProgressBar,
    batches: ProgressBar,
}

impl RunLog {
    pub fn open(cfg: &LoggingConfig, run_name: &str, epochs: usize, quiet: bool) -> Result<RunLog> {
        // Fold runs are named `<run>/fold_K`: their logs go to a folder per run.
        let path = cfg.log_dir.join(format!("{run_name}.log"));
        let dir = path.parent().unwrap_or(&cfg.log_dir);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let text = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(RunLog {
            scalars: Scalars::open(&run_dir(cfg, run_name))?,
            text,
            quiet,
            terminal: std::io::stdout().is_terminal(),
            epochs,
            batch_every: cfg.batch_log_every,
            bars: None,
        })
    }

    pub fn say(&mut self, msg: &str) {
        let _ = writeln!(self.text, "{msg}");
        if self.quiet {
            return;
        }
        match &self.bars {
            Some(bars) => {
                let _ = bars.multi.println(msg);
            }
            None => println!("{msg}"),
        }
    }
}

impl Drop for RunLog {
    fn drop(&mut self) {
        if let Some(bars) = self.bars.take() {
            bars.batches.finish_and_clear();
            bars.epochs.finish_and_clear();
        }
    }
}

impl Observer for RunLog {
    fn epoch_started(&mut self, epoch: usize, batches: usize) {
        if self.quiet || !self.terminal {
            return;
        }
        let style = |template: &str| {
            ProgressStyle::with_template(template)
                .expect("a valid template")
                .progress_chars("=> ")
        };
        let total = self.epochs as u64;
        let bars = self.bars.get_or_insert_with(|| {
            let multi = MultiProgress::new();
            let epochs = multi.add(ProgressBar::new(total));
            epochs.set_style(style(
                "epochs  [{bar:30}] {pos}/{len}  {elapsed} (eta {eta})",
            ));
            let batches = multi.add(ProgressBar::new(0));
            batches.set_style(style("epoch {msg} [{bar:30}] {pos}/{len} batches"));
            Bars {
                multi,
                epochs,
                batches,
            }
        });
        bars.epochs.set_position(epoch as u64 - 1);
        bars.batches.reset();
        bars.batches.set_length(batches as u64);
        bars.batches.set_message(format!("{epoch:>3}"));
    }

    fn batch_done(&mut self, step: u64, loss: f64) {
        if self.batch_every > 0 && step.is_multiple_of(self.batch_every as u64) {
            self.scalars.add("Train/BatchLoss", loss, step as usize);
        }
        if let Some(bars) = &self.bars {
            bars.batches.inc(1);
        }
    }

    fn note(&mut self, message: &str) {
        self.say(message);
    }

    fn epoch_done(&mut self, r: &EpochRecord, improved: bool, best: f64) {
        if let Some(bars) = &self.bars {
            bars.epochs.inc(1);
        }
        let s = &mut self.scalars;
        s.add("Loss/Train", r.train_loss, r.epoch);
        s.add("Loss/Validation", r.val_loss, r.epoch);
        s.add("LearningRate", r.learning_rate, r.epoch);
        s.add("Best/ValidationLoss", best, r.epoch);
        s.flush();
        self.say(&format!(
            "epoch {:>3}/{}  train_loss {:.5}  val_loss {:.5}  lr {:.2e}{}",
            r.epoch,
            self.epochs,
            r.train_loss,
            r.val_loss,
            r.learning_rate,
            if improved { "  * best" } else { "" }
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk that fills mid-run (`/dev/full` refuses every write): one warning, no more
    /// events, and the run goes on; never a panic.
    #[test]
    fn a_failed_event_write_stops_the_events_without_a_panic() {
        let Ok(full) = File::options().write(true).open("/dev/full") else {
            println!("skipped: /dev/full is not available on this system");
            return;
        };
        let mut s = Scalars {
            dir: PathBuf::from("/dev/full"),
            writer: Some(RecordWriter::new(BufWriter::with_capacity(64, full))),
        };
        for step in 0..100 {
            s.add("Loss/Train", 0.5, step);
        }
        s.flush();
        assert!(s.writer.is_none());
        s.add("Loss/Train", 0.5, 100);
        s.flush();
    }
}
