//! `predict --kafka-brokers … --topic T --group G`: a member of a Kafka consumer group that
//! scores its share of the topic's partitions with the same batches, scorer and output rows
//! as `predict`, one output message per input message.
//!
//! At least once, never lost: an offset is committed only once every earlier message of its
//! partition has its output written (standard output, flushed) or acknowledged by the broker
//! (idempotent producer, `acks=all`), see [`Offsets`]. Partitions given away in a rebalance
//! are committed first, with whatever is in flight flushed; SIGTERM or SIGINT stops fetching,
//! scores what was fetched, flushes, commits and leaves the group. A replica killed outright
//! leaves its partitions at their last commit, and whoever gets them scores the rest again.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use csv::ByteRecord;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};

use super::decode::{Decoder, InputFormat};
use super::metrics::{self, Metrics};
use super::offsets::Offsets;
use super::{BROKER_TIMEOUT, Connection, check_topics, created, send};
use crate::config::DataConfig;
use crate::data::records::{Encoder, Layout, RowInfo, Rows};
use crate::score::Scorer;
use crate::stream::{Batches, Options, Outcome, RowFormat, Summary};

/// Where a replica reads, what it writes, and where to.
pub struct KafkaOptions {
    pub connection: Connection,
    pub topic: String,
    pub group: String,
    /// Outputs to this topic (else standard output).
    pub out_topic: Option<String>,
    /// Messages that cannot be scored go here, as they were, instead of an error output.
    pub dead_letter_topic: Option<String>,
    /// Only flagged rows (and errors) get an output.
    pub alerts_only: bool,
    pub input: InputFormat,
    /// `--input-format csv`: the fields of each line (else the model's input columns).
    pub columns: Vec<String>,
    pub metrics_port: Option<u16>,
}

/// How long a poll waits on a quiet topic before the loop takes its turn (commits, stop).
const IDLE_POLL: Duration = Duration::from_millis(100);

/// How often done offsets are committed while messages flow.
const COMMIT_EVERY: Duration = Duration::from_millis(200);

/// Set by SIGTERM or SIGINT.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Consumes `kafka.topic` as a member of `kafka.group` until SIGTERM or SIGINT, writing each
/// message's output to the output topic (or `stdout`).
pub fn run(
    scorer: &Scorer,
    data: &DataConfig,
    kafka: &KafkaOptions,
    opts: &Options,
    stdout: Box<dyn Write + Send>,
) -> Result<Summary> {
    let decoder = decoder(scorer, data, kafka, &opts.keep);
    let mut layout = Layout::new(
        decoder.names(),
        &scorer.pre,
        data,
        (&opts.keep, scorer.sequence.as_ref()),
    )
    .context("--kafka-brokers")?;
    layout.records = opts.alerts.is_some();
    let names = decoder.names().to_vec();
    let labelled = layout.label.is_some();
    let encoder = Encoder::new(layout, &scorer.pre, data, opts.explain > 0);
    let tracked = Arc::new(Tracked {
        offsets: Mutex::new(Offsets::default()),
        failure: Mutex::new(None),
        metrics: kafka.metrics_port.map(|_| {
            let mut m = Metrics::default();
            if let Some(a) = &opts.alerts {
                m.register(|r| a.pipeline.counters.register(r));
            }
            Arc::new(m)
        }),
    });
    let consumer = join(kafka, &tracked)?;
    let mut reader = Reader {
        decoder,
        encoder,
        keep: opts.keep.len(),
    };
    let scoring = Scoring {
        batches: Batches::new(scorer, opts.explain, labelled)?
            .alerting(opts.alerts.as_ref(), &names),
        out: Outputs {
            kafka,
            tracked: &tracked,
            producer: consumer.context().producer.as_deref(),
            format: RowFormat::new(opts.format, &opts.keep, scorer, opts.explain, true),
            stdout: std::io::BufWriter::with_capacity(1 << 16, stdout),
            line: Vec::new(),
            written: Vec::new(),
        },
    };
    // Fetching and decoding on this thread (which serves librdkafka's callbacks: rebalances,
    // commits), scoring and sending on another: a batch is decoded while the last is scored.
    let summary = std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<Decoded>(1);
        let scored = scope.spawn(move || scoring.run(rx));
        let fetched = fetch(&consumer, &tracked, &mut reader, opts, tx);
        let summary = scored.join().expect("the scoring thread panicked")?;
        fetched.map(|()| summary)
    })?;
    // Stopping: every output acknowledged, and all of it committed before the group is left.
    consumer.context().commit(&consumer, CommitMode::Sync);
    tracked.check()?;
    consumer.unsubscribe();
    Ok(summary)
}

/// Fetches batches and hands them, decoded, to the scoring thread until a stop is asked (or
/// the scoring thread has stopped); commits what is done every [`COMMIT_EVERY`].
fn fetch(
    consumer: &BaseConsumer<Group>,
    tracked: &Tracked,
    reader: &mut Reader,
    opts: &Options,
    scoring: SyncSender<Decoded>,
) -> Result<()> {
    let mut batch: Vec<Fetched> = Vec::new();
    let mut committed_at = Instant::now();
    while !STOP.load(Ordering::SeqCst) {
        fill(consumer, tracked, &mut batch, opts);
        // Fetched before their partition was given away (in a poll of this fill): whoever
        // owns it now, this replica included, fetches them again from the last commit.
        let offsets = tracked.offsets();
        batch.retain(|m| m.generation == offsets.generation(m.partition));
        drop(offsets);
        if !batch.is_empty() {
            let decoded = reader.decode(std::mem::take(&mut batch));
            if scoring.send(decoded).is_err() {
                break;
            }
        }
        tracked.check()?;
        if committed_at.elapsed() >= COMMIT_EVERY {
            consumer.context().commit(consumer, CommitMode::Async);
            committed_at = Instant::now();
        }
    }
    Ok(())
}

/// The consumer, its topics checked, its metrics served, subscribed, with SIGTERM and SIGINT
/// caught: a member of the group from here on.
fn join(kafka: &KafkaOptions, tracked: &Arc<Tracked>) -> Result<BaseConsumer<Group>> {
    let consumer = consumer(kafka, tracked)?;
    let mut topics = vec![kafka.topic.as_str()];
    topics.extend(kafka.out_topic.as_deref());
    topics.extend(kafka.dead_letter_topic.as_deref());
    check_topics(consumer.client(), &topics)?;
    if let (Some(m), Some(port)) = (&tracked.metrics, kafka.metrics_port) {
        metrics::serve(m.clone(), port)?;
    }
    consumer
        .subscribe(&[&kafka.topic])
        .with_context(|| format!("subscribing to Kafka topic '{}'", kafka.topic))?;
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(signal, on_signal as *const () as libc::sighandler_t) };
    }
    Ok(consumer)
}

/// Fetches messages into `batch` until it holds `batch_rows`, or `flush_after` has passed
/// since its first message, or none came for a while (so that commits go on), or a stop was
/// asked. While messages keep coming they are taken without a look at the clock (a third of
/// the time went to it), which is read again when none is waiting and every 256 messages.
fn fill(
    consumer: &BaseConsumer<Group>,
    tracked: &Tracked,
    batch: &mut Vec<Fetched>,
    opts: &Options,
) {
    let mut deadline: Option<Instant> = None;
    let mut waiting = true;
    while !STOP.load(Ordering::Relaxed) && batch.len() < opts.batch_rows {
        let wait = match deadline {
            None => IDLE_POLL,
            Some(_) if waiting => Duration::ZERO,
            Some(d) => match d.saturating_duration_since(Instant::now()) {
                left if left.is_zero() => return,
                left => left,
            },
        };
        match consumer.poll(wait) {
            Some(Ok(m)) => {
                deadline.get_or_insert_with(|| Instant::now() + opts.flush_after);
                let generation = tracked.offsets().generation(m.partition());
                batch.push(Fetched::from(&m, generation));
                waiting = true;
            }
            Some(Err(e)) => eprintln!("kafka: {e}"),
            None if deadline.is_none() => return,
            None => waiting = false,
        }
        if batch.len().is_multiple_of(256) && deadline.is_some_and(|d| Instant::now() >= d) {
            return;
        }
    }
}

/// The decoder of `kafka.input`: the fields a record needs by name (JSON), or the CSV
/// header (`--columns`, else the model's input columns).
fn decoder(scorer: &Scorer, data: &DataConfig, kafka: &KafkaOptions, keep: &[String]) -> Decoder {
    let inputs = scorer.pre.columns.iter().map(|c| c.name.clone());
    if kafka.input == InputFormat::Csv {
        let names: Vec<String> = match kafka.columns.is_empty() {
            true => inputs.collect(),
            false => kafka.columns.iter().map(|c| c.trim().to_string()).collect(),
        };
        let required = vec![true; names.len()];
        return Decoder::new(kafka.input, names, required);
    }
    let mut names: Vec<String> = inputs.collect();
    let required = names.len();
    let sequence = scorer.sequence.as_ref();
    let keys = sequence
        .into_iter()
        .flat_map(|s| [&s.order_by, &s.group_by]);
    let extra = keep
        .iter()
        .cloned()
        .chain([data.label_column.trim().to_string()])
        .chain(keys.flatten().map(|k| k.trim().to_string()));
    for name in extra {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let required = (0..names.len()).map(|i| i < required).collect();
    Decoder::new(kafka.input, names, required)
}

/// The consumer, its group settings first: offsets committed by us only, a new group reading
/// the topic from its start, librdkafka's statistics (each partition's lag) every second when
/// metrics are served, and a short fetch back-off.
fn consumer(kafka: &KafkaOptions, tracked: &Arc<Tracked>) -> Result<BaseConsumer<Group>> {
    let sends = kafka.out_topic.is_some() || kafka.dead_letter_topic.is_some();
    let producer = match sends {
        true => Some(Arc::new(created(
            (kafka.connection.producer_config()).create_with_context(Acks(tracked.clone())),
        )?)),
        false => None,
    };
    let stats = if kafka.metrics_port.is_some() {
        "1000"
    } else {
        "0"
    };
    let config = kafka.connection.config(&[
        ("group.id", &kafka.group),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        ("auto.offset.reset", "earliest"),
        ("statistics.interval.ms", stats),
        // librdkafka waits this long to fetch again for a partition whose prefetched messages
        // exceed its queue thresholds (default 1 s): a replica slower than the fetcher then
        // stalls on an empty queue every second. At 10 ms one replica went from 117k to 208k
        // records/s in benches/kafka.sh.
        ("fetch.queue.backoff.ms", "10"),
    ]);
    created(config.create_with_context(Group {
        topic: kafka.topic.clone(),
        tracked: tracked.clone(),
        producer,
        commit_sent: Mutex::new(None),
    }))
}

/// A fetched message, owned, until its batch is scored.
struct Fetched {
    partition: i32,
    offset: i64,
    /// Its partition's ownership when it was fetched.
    generation: u64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
}

impl Fetched {
    fn from(m: &impl Message, generation: u64) -> Fetched {
        Fetched {
            partition: m.partition(),
            offset: m.offset(),
            generation,
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
        }
    }
}

/// What the consumer thread and librdkafka's callbacks share.
struct Tracked {
    offsets: Mutex<Offsets>,
    /// The first output the broker refused: the replica stops without committing past it.
    failure: Mutex<Option<String>>,
    metrics: Option<Arc<Metrics>>,
}

impl Tracked {
    fn offsets(&self) -> std::sync::MutexGuard<'_, Offsets> {
        self.offsets.lock().expect("never poisoned")
    }

    fn check(&self) -> Result<()> {
        match &*self.failure.lock().expect("never poisoned") {
            Some(e) => Err(anyhow::anyhow!(
                "Kafka: an output was not stored ({e}); stopping without committing past it"
            )),
            None => Ok(()),
        }
    }
}

/// An output's source message, handed back with the broker's acknowledgement.
struct Sent {
    generation: u64,
    partition: i32,
    offset: i64,
}

/// The producer's side: acknowledgements mark outputs done.
struct Acks(Arc<Tracked>);

impl ClientContext for Acks {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        eprintln!("kafka producer: {error}: {reason}");
    }
}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<Sent>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Box<Sent>) {
        match result {
            Ok(_) => {
                let mut offsets = self.0.offsets();
                offsets.acknowledged(sent.generation, sent.partition, sent.offset);
            }
            Err((e, _)) => {
                let mut failure = self.0.failure.lock().expect("never poisoned");
                failure.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// The consumer's side: commits, rebalances, statistics.
struct Group {
    /// The input topic.
    topic: String,
    tracked: Arc<Tracked>,
    producer: Option<Arc<ThreadedProducer<Acks>>>,
    /// When the last asynchronous commit was sent.
    commit_sent: Mutex<Option<Instant>>,
}

impl Group {
    /// Commits every partition's done offset; `Sync` flushes the producer first and waits.
    fn commit(&self, consumer: &BaseConsumer<Group>, mode: CommitMode) {
        if let (CommitMode::Sync, Some(p)) = (mode, &self.producer)
            && let Err(e) = p.flush(BROKER_TIMEOUT)
        {
            eprintln!("kafka: outputs still in flight after {BROKER_TIMEOUT:?}: {e}");
        }
        let done = self.tracked.offsets().committable();
        if done.is_empty() {
            return;
        }
        let mut list = TopicPartitionList::new();
        for &(partition, offset) in &done {
            let _ = list.add_partition_offset(&self.topic, partition, Offset::Offset(offset));
        }
        *self.commit_sent.lock().expect("never poisoned") = Some(Instant::now());
        match consumer.commit(&list, mode) {
            Ok(()) if matches!(mode, CommitMode::Sync) => self.tracked.offsets().committed(&done),
            Ok(()) => {}
            Err(e) => eprintln!("kafka: commit failed (the offsets are committed again): {e}"),
        }
    }
}

impl ClientContext for Group {
    fn stats(&self, statistics: Statistics) {
        if let Some(m) = &self.tracked.metrics {
            m.statistics(&statistics);
        }
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        eprintln!("kafka consumer: {error}: {reason}");
    }
}

impl ConsumerContext for Group {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Group>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            self.commit(consumer, CommitMode::Sync);
            let gone: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
            self.tracked.offsets().forget(&gone);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, list: &TopicPartitionList) {
        if result.is_err() {
            return;
        }
        let done: Vec<(i32, i64)> = list
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), o)),
                _ => None,
            })
            .collect();
        self.tracked.offsets().committed(&done);
        let sent = self.commit_sent.lock().expect("never poisoned").take();
        if let (Some(m), Some(t)) = (&self.tracked.metrics, sent) {
            m.commit_seconds.observe(t.elapsed().as_secs_f64());
        }
    }
}

/// The fetching side: messages become rows.
struct Reader<'a> {
    decoder: Decoder,
    encoder: Encoder<'a>,
    /// `--keep` columns (empty cells for a message that is not a record).
    keep: usize,
}

/// A batch on its way to the scoring thread: the messages and their rows.
struct Decoded {
    messages: Vec<Fetched>,
    rows: Rows,
}

/// The scoring side: rows become outputs.
struct Scoring<'a> {
    batches: Batches<'a>,
    out: Outputs<'a>,
}

/// Where outputs go, and the offsets they settle.
struct Outputs<'a> {
    kafka: &'a KafkaOptions,
    tracked: &'a Tracked,
    producer: Option<&'a ThreadedProducer<Acks>>,
    format: RowFormat,
    stdout: std::io::BufWriter<Box<dyn Write + Send>>,
    /// The output being written.
    line: Vec<u8>,
    /// Messages whose output went to standard output in this batch: (generation,
    /// partition, offset).
    written: Vec<(u64, i32, i64)>,
}

/// What becomes of a scored message.
enum Route {
    /// `--alerts-only` and not flagged.
    Nothing,
    DeadLetter,
    Output,
}

impl Reader<'_> {
    fn decode(&mut self, messages: Vec<Fetched>) -> Decoded {
        let mut rows = Rows::default();
        let mut record = ByteRecord::new();
        for m in &messages {
            match self.decoder.decode(m.value.as_deref(), &mut record) {
                Ok(()) => self.encoder.push(&record, &mut rows),
                Err(e) => rows.push_error(e, self.keep),
            }
        }
        Decoded { messages, rows }
    }
}

impl Scoring<'_> {
    /// Scores each batch and sends (or writes) its outputs, until the fetching side is done;
    /// the run's counts.
    fn run(mut self, batches: Receiver<Decoded>) -> Result<Summary> {
        for mut d in batches {
            if let Some(m) = &self.out.tracked.metrics {
                m.messages_in.inc_by(d.messages.len() as u64);
                m.batch_rows.observe(d.messages.len() as f64);
            }
            let out = &mut self.out;
            let mut next = d.messages.iter();
            self.batches
                .score(&mut d.rows, None, &mut |row, info, verdict| {
                    let m = next.next().expect("one row per message");
                    out.emit(m, row, info, verdict)
                })?;
            out.settle()?;
        }
        Ok(self.batches.summary)
    }
}

impl Outputs<'_> {
    /// Writes or sends one message's output (or dead letter), or nothing.
    fn emit(&mut self, m: &Fetched, row: usize, info: &RowInfo, verdict: &Outcome) -> Result<()> {
        let bad = verdict.is_err() && !info.warming;
        let route = match verdict {
            Err(_) if bad && self.kafka.dead_letter_topic.is_some() => Route::DeadLetter,
            Ok(v) if self.kafka.alerts_only && !v.flagged => Route::Nothing,
            _ => Route::Output,
        };
        let metrics = self.tracked.metrics.as_deref();
        if let (true, Some(m)) = (bad, metrics) {
            m.bad_messages.inc();
        }
        let (topic, value, headers) = match route {
            Route::Nothing => {
                let mut offsets = self.tracked.offsets();
                offsets.handled(m.generation, m.partition, m.offset, false);
                return Ok(());
            }
            Route::DeadLetter => {
                let error = verdict.as_ref().err().copied().unwrap_or_default();
                let value = m.value.as_deref().unwrap_or_default();
                let headers = dead_letter_headers(error, m, value.len());
                let topic = self.kafka.dead_letter_topic.as_deref();
                (
                    topic,
                    &value[..value.len().min(DEAD_LETTER_BYTES)],
                    Some(headers),
                )
            }
            Route::Output => {
                self.line.clear();
                let source = Some((m.partition, m.offset));
                (self.format)
                    .row(&mut self.line, row, source, &info.keep, verdict)
                    .context("writing results")?;
                (self.kafka.out_topic.as_deref(), &self.line[..], None)
            }
        };
        let (Some(topic), Some(producer)) = (topic, self.producer) else {
            self.stdout.write_all(value).context("writing results")?;
            self.written.push((m.generation, m.partition, m.offset));
            if let Some(metrics) = metrics {
                metrics.output("stdout");
            }
            return Ok(());
        };
        let mut offsets = self.tracked.offsets();
        offsets.handled(m.generation, m.partition, m.offset, true);
        drop(offsets);
        let sent = Box::new(Sent {
            generation: m.generation,
            partition: m.partition,
            offset: m.offset,
        });
        let mut record = BaseRecord::with_opaque_to(topic, sent).payload(value);
        if let Some(key) = &m.key {
            record = record.key(&key[..]);
        }
        if let Some(h) = headers {
            record = record.headers(h);
        }
        send(producer, record)?;
        if let Some(metrics) = metrics {
            let to = if matches!(route, Route::DeadLetter) {
                "dead_letter"
            } else {
                "scores"
            };
            metrics.output(to);
        }
        Ok(())
    }

    /// After a batch: what went to standard output is flushed, and then done.
    fn settle(&mut self) -> Result<()> {
        self.stdout.flush().context("writing results")?;
        let mut offsets = self.tracked.offsets();
        for (generation, partition, offset) in self.written.drain(..) {
            offsets.handled(generation, partition, offset, false);
        }
        if let Some(m) = &self.tracked.metrics {
            m.in_flight.set(offsets.in_flight() as i64);
        }
        Ok(())
    }
}

/// The most of a message a dead letter carries: below Kafka's default `max.message.bytes`
/// (1 MB), so a poison message too large for the dead-letter topic cannot stop the consumer.
const DEAD_LETTER_BYTES: usize = 900_000;

/// A dead letter's headers: why, where it came from, and its size when cut to
/// [`DEAD_LETTER_BYTES`].
fn dead_letter_headers(error: &str, m: &Fetched, size: usize) -> OwnedHeaders {
    let (partition, offset) = (m.partition.to_string(), m.offset.to_string());
    let headers = match size > DEAD_LETTER_BYTES {
        true => OwnedHeaders::new().insert(Header {
            key: "anomaly.truncated_from_bytes",
            value: Some(&size.to_string()),
        }),
        false => OwnedHeaders::new(),
    };
    headers
        .insert(Header {
            key: "anomaly.error",
            value: Some(error),
        })
        .insert(Header {
            key: "anomaly.partition",
            value: Some(&partition),
        })
        .insert(Header {
            key: "anomaly.offset",
            value: Some(&offset),
        })
}
