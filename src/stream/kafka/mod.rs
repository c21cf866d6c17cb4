//! Kafka in and out, through librdkafka: a consumer-group member that scores a topic's flow
//! records ([`consume`]) and a producer that publishes them (`flows --kafka-brokers`).
//!
//! Every client here starts from [`Connection::config`]: the brokers, then the user's
//! `--kafka-config key=value` settings (TLS, SASL, timeouts), passed to librdkafka as given,
//! so any setting librdkafka documents works, and an unknown one is a clear error.

pub mod consume;
pub mod decode;
pub mod metrics;
pub mod offsets;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use rdkafka::ClientContext;
use rdkafka::client::Client;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::bail_input;
use crate::error::bad_input;

/// How long a metadata request or a final flush may take before the broker is called down.
const BROKER_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the brokers are and how to talk to them.
#[derive(Debug, Clone)]
pub struct Connection {
    pub brokers: String,
    /// librdkafka settings, in the order given (a later one wins).
    pub settings: Vec<(String, String)>,
}

impl Connection {
    /// `--kafka-config` entries are `key=value`.
    pub fn new(brokers: &str, settings: &[String]) -> Result<Connection> {
        if brokers.trim().is_empty() {
            bail_input!("--kafka-brokers: expected host:port[,host:port…]");
        }
        let settings = settings
            .iter()
            .map(|s| match s.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().into(), v.trim().into())),
                _ => Err(bad_input(format!(
                    "--kafka-config {s:?}: expected key=value, e.g. security.protocol=SASL_SSL"
                ))),
            })
            .collect::<Result<_>>()?;
        Ok(Connection {
            brokers: brokers.trim().to_string(),
            settings,
        })
    }

    /// A client's configuration: `defaults` first, then the brokers and the user's settings.
    pub fn config(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (k, v) in defaults {
            config.set(*k, *v);
        }
        config.set("bootstrap.servers", &self.brokers);
        for (k, v) in &self.settings {
            config.set(k, v);
        }
        config
    }

    /// The settings of a producer whose every message is stored at least once, in order:
    /// idempotent, acknowledged by every in-sync replica, and never creating a topic by
    /// asking for it (a mistyped name is an error, see [`check_topics`]).
    pub fn producer_config(&self) -> ClientConfig {
        self.config(&[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "5"),
            ("allow.auto.create.topics", "false"),
        ])
    }
}

/// A client that could not be made: a setting librdkafka refuses is the user's input.
pub fn created<T>(made: rdkafka::error::KafkaResult<T>) -> Result<T> {
    made.map_err(|e| match e {
        KafkaError::ClientConfig(_, description, key, value) => {
            bad_input(format!("--kafka-config {key}={value}: {description}"))
        }
        other => anyhow::anyhow!("cannot start a Kafka client: {other}"),
    })
}

/// Checks that every topic exists on the brokers (with partitions), so a mistyped name is an
/// error at start, not messages retried until they time out.
pub fn check_topics<C: ClientContext>(client: &Client<C>, topics: &[&str]) -> Result<()> {
    for &topic in topics {
        let metadata = client
            .fetch_metadata(Some(topic), BROKER_TIMEOUT)
            .map_err(|e| anyhow::anyhow!("cannot reach the Kafka brokers: {e}"))?;
        let found = metadata.topics().iter().find(|t| t.name() == topic);
        match found {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => {}
            _ => bail_input!(
                "Kafka topic '{topic}' does not exist on the brokers: create it first (e.g. \
                 kafka-topics.sh --create --topic {topic} --partitions N)"
            ),
        }
    }
    Ok(())
}

/// Sends a record, waiting while the producer's queue is full; any other refusal is returned.
fn send<C: ProducerContext>(
    producer: &ThreadedProducer<C>,
    mut record: BaseRecord<'_, [u8], [u8], C::DeliveryOpaque>,
) -> Result<()> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(anyhow::anyhow!("cannot send to Kafka: {e}")),
        }
    }
}

/// Publishes lines (flow records) to a topic, keyed, and says at the end whether the broker
/// stored every one.
pub struct Publisher {
    producer: ThreadedProducer<Failures>,
    topic: String,
}

/// A publisher's delivery reports: the first failure and how many there were.
#[derive(Default)]
struct Failures(Mutex<(usize, Option<String>)>);

impl ClientContext for Failures {}

impl ProducerContext for Failures {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            let mut failed = self.0.lock().expect("never poisoned");
            failed.0 += 1;
            failed.1.get_or_insert_with(|| e.to_string());
        }
    }
}

impl Publisher {
    /// A producer for `topic`, which must exist.
    pub fn new(connection: &Connection, topic: &str) -> Result<Publisher> {
        let producer: ThreadedProducer<Failures> = created(
            connection
                .producer_config()
                .create_with_context(Failures::default()),
        )?;
        check_topics(producer.client(), &[topic])?;
        Ok(Publisher {
            producer,
            topic: topic.to_string(),
        })
    }

    /// A writer whose every flushed line becomes one message, keyed by what `key` holds then;
    /// with `header`, the first line (a CSV header) is not sent.
    pub fn lines(self, header: bool, key: Rc<RefCell<String>>) -> Lines {
        Lines {
            publisher: self,
            key,
            line: Vec::new(),
            skip: header,
        }
    }

    /// Waits until the broker has acknowledged (or refused) every message sent.
    pub fn finish(self) -> Result<()> {
        self.producer
            .flush(BROKER_TIMEOUT)
            .map_err(|e| anyhow::anyhow!("Kafka: messages not acknowledged in time: {e}"))?;
        let failed = self.producer.context().0.lock().expect("never poisoned");
        match &failed.1 {
            Some(first) => Err(anyhow::anyhow!(
                "Kafka: {} messages were not stored by the brokers (first: {first})",
                failed.0
            )),
            None => Ok(()),
        }
    }
}

/// Lines written and flushed one at a time (as the flow writer does), sent as messages.
pub struct Lines {
    publisher: Publisher,
    /// The key of the next message.
    key: Rc<RefCell<String>>,
    line: Vec<u8>,
    /// The next flushed line is a header, not a record.
    skip: bool,
}

impl Lines {
    pub fn finish(self) -> Result<()> {
        self.publisher.finish()
    }
}

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.line.is_empty() {
            return Ok(());
        }
        if !std::mem::take(&mut self.skip) {
            let line = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            let p = &self.publisher;
            let key = self.key.borrow();
            let record = BaseRecord::to(&p.topic).key(key.as_bytes()).payload(line);
            send(&p.producer, record).map_err(std::io::Error::other)?;
        }
        self.line.clear();
        Ok(())
    }
}
