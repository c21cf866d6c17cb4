//! The alert writer: one thread owns the store's write connection and commits whatever
//! batches queued while it was busy in one transaction (group commit), answers each batch's
//! sender only once its alerts are committed, then hands them to the listeners and the
//! delivery sinks. Reads (the API) use a second connection. Retention runs on the writer
//! between batches.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::Alert;
use super::sinks::{self, Sinks, Spec};
use super::store::Store;

/// The most batches committed in one transaction.
const GROUP: usize = 256;

/// How often retention runs.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct Options {
    /// A SQLite path or a `postgres://` URL.
    pub db: String,
    /// Alarms alike within this window are one alert.
    pub dedup_window: Duration,
    /// Alerts whose latest alarm arrived longer ago than this are deleted (0: kept for ever).
    pub retention_days: u32,
    pub sinks: Vec<Spec>,
}

/// What the alert machinery counts, for `/metrics`.
#[derive(Clone)]
pub struct Counters {
    pub stored: Counter,
    pub store_failures: Counter,
    /// Seconds to commit a group of batches.
    pub store_latency: Histogram,
    pub delivered: Family<sinks::Label, Counter>,
    pub retried: Family<sinks::Label, Counter>,
    pub dropped: Family<sinks::Label, Counter>,
}

/// Fresh counters, for the sinks' tests.
#[cfg(test)]
pub(crate) fn tests_counters() -> Counters {
    Counters::new()
}

impl Counters {
    fn new() -> Counters {
        Counters {
            stored: Counter::default(),
            store_failures: Counter::default(),
            // 50 µs to about 1.6 s.
            store_latency: Histogram::new(exponential_buckets(0.00005, 2.0, 16)),
            delivered: Family::default(),
            retried: Family::default(),
            dropped: Family::default(),
        }
    }

    /// Adds the counters to a registry (the server's, or the Kafka consumer's).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "anomaly_alerts_stored",
            "Alarms written to the alert store (each repeat counted)",
            self.stored.clone(),
        );
        registry.register(
            "anomaly_alert_store_failures",
            "Batches of alarms the alert store could not commit",
            self.store_failures.clone(),
        );
        registry.register(
            "anomaly_alert_store_seconds",
            "Time to commit a group of alarm batches to the alert store",
            self.store_latency.clone(),
        );
        registry.register(
            "anomaly_alerts_delivered",
            "Alerts a sink delivered, by sink",
            self.delivered.clone(),
        );
        registry.register(
            "anomaly_alert_delivery_retries",
            "Failed delivery attempts that were retried, by sink",
            self.retried.clone(),
        );
        registry.register(
            "anomaly_alerts_dropped",
            "Alerts a sink dropped (its queue full, or refused for good), by sink",
            self.dropped.clone(),
        );
    }
}

/// Alerts stored, handed to whoever listens (the server's event stream).
pub type Listener = Box<dyn Fn(&[Alert]) + Send>;

struct Batch {
    alerts: Vec<Alert>,
    reply: tokio::sync::oneshot::Sender<Result<()>>,
}

pub struct Pipeline {
    /// None once closed.
    batches: Mutex<Option<Sender<Batch>>>,
    sinks: Arc<Sinks>,
    /// The connection the API reads with.
    reader: Mutex<Store>,
    pub counters: Counters,
    pub name: String,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Pipeline {
    /// Opens the store (two connections), starts the sinks and the writer.
    pub fn start(opts: &Options, listener: Listener) -> Result<Pipeline> {
        let mut store = Store::open(&opts.db)?;
        let reader = Store::open(&opts.db)?;
        let name = store.name.clone();
        let counters = Counters::new();
        let sinks = Arc::new(Sinks::start(&opts.sinks, &counters)?);
        let (batches, rx) = channel();
        let writer = {
            let (counters, opts, sinks) = (counters.clone(), opts.clone(), sinks.clone());
            std::thread::Builder::new()
                .name("alert-store".into())
                .spawn(move || {
                    purge(&mut store, opts.retention_days);
                    write_batches(&mut store, &rx, &opts, &counters, &sinks, &listener)
                })?
        };
        Ok(Pipeline {
            batches: Mutex::new(Some(batches)),
            sinks,
            reader: Mutex::new(reader),
            counters,
            name,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Queues alerts for the store; the answer comes once they are committed.
    pub fn store(&self, alerts: Vec<Alert>) -> tokio::sync::oneshot::Receiver<Result<()>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let batch = Batch { alerts, reply };
        let sent = match &*lock(&self.batches) {
            Some(b) => b.send(batch).map_err(|e| e.0),
            None => Err(batch),
        };
        if let Err(batch) = sent {
            let _ = batch
                .reply
                .send(Err(anyhow!("the alert store's writer has stopped")));
        }
        answer
    }

    /// [`store`](Self::store), waiting on this thread.
    pub fn store_blocking(&self, alerts: Vec<Alert>) -> Result<()> {
        if alerts.is_empty() {
            return Ok(());
        }
        self.store(alerts)
            .blocking_recv()
            .map_err(|_| anyhow!("the alert store's writer has stopped"))?
    }

    /// Runs `f` on the read connection.
    pub fn read<T>(&self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        f(&mut lock(&self.reader))
    }

    /// Stops taking alerts, lets the writer commit what it has, and gives the sinks up to
    /// `timeout` to deliver what they hold (what is left is said on stderr).
    pub fn close(&self, timeout: Duration) {
        lock(&self.batches).take();
        if let Some(writer) = lock(&self.writer).take() {
            let _ = writer.join();
        }
        let left = self.sinks.drain(timeout);
        if left > 0 {
            eprintln!("anomaly: {left} alerts were not delivered before shutdown");
        }
    }

    /// Whether the writer still runs.
    pub fn is_running(&self) -> bool {
        lock(&self.writer)
            .as_ref()
            .is_some_and(|w| !w.is_finished())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The writer thread: a batch, plus whatever else queued meanwhile, in one transaction.
fn write_batches(
    store: &mut Store,
    rx: &Receiver<Batch>,
    opts: &Options,
    counters: &Counters,
    sinks: &Sinks,
    listener: &Listener,
) {
    let window = opts.dedup_window.as_micros() as i64;
    let mut purged = Instant::now();
    loop {
        let first = match rx.recv_timeout(PURGE_EVERY) {
            Ok(b) => b,
            Err(RecvTimeoutError::Timeout) => {
                purge(store, opts.retention_days);
                purged = Instant::now();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut group = vec![first];
        while group.len() < GROUP {
            match rx.try_recv() {
                Ok(b) => group.push(b),
                Err(_) => break,
            }
        }
        let alerts: Vec<Alert> = group.iter_mut().flat_map(|b| b.alerts.drain(..)).collect();
        let alarms: u64 = alerts.iter().map(|a| a.count as u64).sum();
        let started = Instant::now();
        match store.write(alerts, window) {
            Ok(stored) => {
                counters
                    .store_latency
                    .observe(started.elapsed().as_secs_f64());
                counters.stored.inc_by(alarms);
                for batch in group {
                    let _ = batch.reply.send(Ok(()));
                }
                listener(&stored);
                sinks.push(&stored);
            }
            Err(e) => {
                counters.store_failures.inc();
                let message = format!("alert store {}: {}", store.name, crate::error::one_line(&e));
                eprintln!("anomaly: {message}");
                for batch in group {
                    let _ = batch.reply.send(Err(anyhow!("{message}")));
                }
            }
        }
        if purged.elapsed() >= PURGE_EVERY {
            purge(store, opts.retention_days);
            purged = Instant::now();
        }
    }
}

/// Deletes alerts past retention (a failure is reported and tried again later).
fn purge(store: &mut Store, days: u32) {
    if days == 0 {
        return;
    }
    let before = super::now_micros() - days as i64 * 86_400_000_000;
    if let Err(e) = store.purge(before) {
        eprintln!(
            "anomaly: alert store {}: retention: {}",
            store.name,
            crate::error::one_line(&e)
        );
    }
}
