//! A synthetic capture with its ground truth (`anomaly generate --pcap`): clients talking to
//! servers over TCP (handshake, requests and responses, FIN both ways; some reset, some
//! pausing past the activity timeout), DNS over UDP, pings, with VLAN tags and IPv6 on a share
//! of them; and three attacks: a SYN port scan, a brute-force login run and a UDP flood.
//!
//! Every session has a 5-tuple of its own, so the labels file names each flow by its Flow ID.
//! Packets are written in time order through a heap that holds only the sessions still open,
//! so a capture of millions of packets takes little memory.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::features::flow_id;
use super::packet::flag::{ACK, FIN, PSH, RST, SYN};
use super::synth::{CaptureWriter, Spec, Transport};

/// 2026-01-05 09:00:00 UTC, in µs: the capture's first session.
const START: i64 = 1_767_603_600_000_000;

/// What was written.
#[derive(Debug, Default)]
pub struct Written {
    pub packets: u64,
    pub flows: u64,
    pub attacks: u64,
}

/// A packet waiting for its turn, ordered by time, then by when it was made.
struct Pending(i64, u64, Spec);

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.0, self.1) == (other.0, other.1)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(other.0, other.1))
    }
}

/// Writes `flows` sessions' packets to `capture` (pcap, or pcapng) and each flow's label to
/// `labels` (`Flow ID,Label`).
pub fn write(
    capture: impl Write,
    labels: impl Write,
    flows: usize,
    seed: u64,
    pcapng: bool,
) -> Result<Written> {
    let mut g = Generator {
        rng: StdRng::seed_from_u64(seed),
        heap: BinaryHeap::new(),
        seq: 0,
        out: CaptureWriter::new(capture, pcapng)?,
        labels: csv::Writer::from_writer(labels),
        written: Written::default(),
        sessions: 0,
    };
    g.labels.write_record(["Flow ID", "Label"])?;
    let mut t = START;
    let mut made = 0;
    while made < flows {
        t += g.rng.random_range(0..20_000);
        made += g.session(t, flows - made)?;
        // Sessions last under three minutes: whatever is older than that is final.
        g.flush_before(t - 180_000_000)?;
    }
    g.flush_before(i64::MAX)?;
    g.labels.flush()?;
    Ok(g.written)
}

struct Generator<W: Write, L: Write> {
    rng: StdRng,
    heap: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    out: CaptureWriter<W>,
    labels: csv::Writer<L>,
    written: Written,
    /// Sessions made: each one's client (subnet, port) is its own.
    sessions: u32,
}

/// A session's two ends, the client first.
type Ends = ((IpAddr, u16), (IpAddr, u16));

impl<W: Write, L: Write> Generator<W, L> {
    fn push(&mut self, p: Spec) {
        self.seq += 1;
        self.heap.push(Reverse(Pending(p.ts, self.seq, p)));
    }

    fn flush_before(&mut self, t: i64) -> Result<()> {
        while self.heap.peek().is_some_and(|Reverse(p)| p.0 < t) {
            let Reverse(Pending(ts, _, p)) = self.heap.pop().expect("peeked");
            self.out.write(ts, &p.frame())?;
            self.written.packets += 1;
        }
        Ok(())
    }

    /// A fresh client port, and the block of 64,000 sessions it belongs to.
    fn next_port(&mut self) -> (u16, u16) {
        self.sessions += 1;
        (
            1025 + (self.sessions % 64_000) as u16,
            (self.sessions / 64_000) as u16,
        )
    }

    /// A client and a server (IPv6 when `v6`): the client's (subnet, port) is the session's
    /// own, so no two sessions share a 5-tuple.
    fn ends(&mut self, server_port: u16, v6: bool) -> Ends {
        let (port, block) = self.next_port();
        let host = self.rng.random_range(10..250u8);
        let server = self.rng.random_range(1..10u8);
        if v6 {
            let c = Ipv6Addr::new(0x2001, 0xdb8, 1, block, 0, 0, 0, host as u16);
            let srv = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, server as u16);
            ((c.into(), port), (srv.into(), server_port))
        } else {
            let c = Ipv4Addr::new(192, 168, (block % 250) as u8 + 1, host);
            (
                (c.into(), port),
                (Ipv4Addr::new(10, 0, 0, server).into(), server_port),
            )
        }
    }

    fn label(&mut self, (c, s): Ends, protocol: u8, label: &str) -> Result<()> {
        self.labels
            .write_record([flow_id(c, s, protocol).as_str(), label])?;
        self.written.flows += 1;
        if label != "BENIGN" {
            self.written.attacks += 1;
        }
        Ok(())
    }

    /// One session starting at `t`; returns how many flows it made (at most `left`).
    fn session(&mut self, t: i64, left: usize) -> Result<usize> {
        let roll = self.rng.random_range(0..1000);
        let vlan = (self.rng.random_range(0..10) == 0).then_some(100);
        let v6 = self.rng.random_range(0..10) == 0;
        match roll {
            0..=5 => self.port_scan(t, left.min(60)),
            6..=11 => self.brute_force(t, left.min(30)),
            12..=14 => self.udp_flood(t),
            15..=200 => {
                let ends = self.ends(53, v6);
                self.dns(t, ends, vlan)?;
                Ok(1)
            }
            201..=280 => {
                let ends = self.ends(0, v6);
                self.ping(t, ends, vlan)?;
                Ok(1)
            }
            _ => {
                let ends = self.ends(if roll % 2 == 0 { 443 } else { 80 }, v6);
                self.web(t, ends, vlan)?;
                Ok(1)
            }
        }
    }

    fn tcp(&mut self, ts: i64, (from, to): Ends, flags: u8, payload: usize, vlan: Option<u16>) {
        let window = if from.1 < 1024 { 29_200 } else { 64_240 };
        let transport = Transport::Tcp { flags, window };
        self.push(Spec {
            ts,
            src: from,
            dst: to,
            transport,
            payload,
            vlan,
        });
    }

    /// Handshake, 1–8 request/response exchanges, FIN both ways and the last ACK; one in
    /// twenty resets instead, one in fifty pauses past the activity timeout.
    fn web(&mut self, mut t: i64, ends: Ends, vlan: Option<u16>) -> Result<()> {
        let back = (ends.1, ends.0);
        let rtt = self.rng.random_range(200..40_000);
        self.tcp(t, ends, SYN, 0, vlan);
        self.tcp(t + rtt, back, SYN | ACK, 0, vlan);
        t += rtt + 100;
        self.tcp(t, ends, ACK, 0, vlan);
        for _ in 0..self.rng.random_range(1..=8) {
            t += self.rng.random_range(100..300_000);
            if self.rng.random_range(0..50) == 0 {
                t += 8_000_000;
            }
            let request = self.rng.random_range(80..900);
            self.tcp(t, ends, PSH | ACK, request, vlan);
            t += rtt;
            for _ in 0..self.rng.random_range(1..6) {
                let response = self.rng.random_range(200..1460);
                self.tcp(t, back, ACK, response, vlan);
                t += self.rng.random_range(50..2_000);
            }
            self.tcp(t, ends, ACK, 0, vlan);
        }
        t += self.rng.random_range(1_000..100_000);
        if self.rng.random_range(0..20) == 0 {
            self.tcp(t, back, RST | ACK, 0, vlan);
        } else {
            self.tcp(t, ends, FIN | ACK, 0, vlan);
            self.tcp(t + rtt, back, FIN | ACK, 0, vlan);
            self.tcp(t + 2 * rtt, ends, ACK, 0, vlan);
        }
        self.label(ends, 6, "BENIGN")
    }

    fn dns(&mut self, t: i64, ends: Ends, vlan: Option<u16>) -> Result<()> {
        let (q, r) = (
            self.rng.random_range(30..60),
            self.rng.random_range(60..400),
        );
        let delay = self.rng.random_range(500..80_000);
        self.push(Spec {
            ts: t,
            src: ends.0,
            dst: ends.1,
            transport: Transport::Udp,
            payload: q,
            vlan,
        });
        self.push(Spec {
            ts: t + delay,
            src: ends.1,
            dst: ends.0,
            transport: Transport::Udp,
            payload: r,
            vlan,
        });
        self.label(ends, 17, "BENIGN")
    }

    fn ping(&mut self, mut t: i64, ends: Ends, vlan: Option<u16>) -> Result<()> {
        let ((c, _), (s, _)) = ends;
        let v6 = c.is_ipv6();
        let (request, reply) = if v6 { (128, 129) } else { (8, 0) };
        for _ in 0..self.rng.random_range(1..5) {
            let echo = |kind| Transport::Icmp { kind, code: 0 };
            self.push(Spec {
                ts: t,
                src: (c, 0),
                dst: (s, 0),
                transport: echo(request),
                payload: 56,
                vlan,
            });
            let back = t + self.rng.random_range(200..30_000);
            self.push(Spec {
                ts: back,
                src: (s, 0),
                dst: (c, 0),
                transport: echo(reply),
                payload: 56,
                vlan,
            });
            t += 1_000_000;
        }
        self.label(((c, 0), (s, 0)), if v6 { 58 } else { 1 }, "BENIGN")
    }

    /// One attacker sends a SYN to each of `n` ports of one server; closed ports reset.
    fn port_scan(&mut self, mut t: i64, n: usize) -> Result<usize> {
        let attacker: IpAddr = Ipv4Addr::new(172, 16, 0, 66).into();
        let target: IpAddr = Ipv4Addr::new(10, 0, 0, self.rng.random_range(1..10)).into();
        for _ in 0..n {
            let ends = (
                (attacker, self.next_port().0),
                (target, self.rng.random_range(1..10_000)),
            );
            self.tcp(t, ends, SYN, 0, None);
            self.tcp(t + 150, (ends.1, ends.0), RST | ACK, 0, None);
            self.label(ends, 6, "PortScan")?;
            t += self.rng.random_range(200..3_000);
        }
        Ok(n)
    }

    /// Short login attempts to port 22 from one attacker, one after another.
    fn brute_force(&mut self, mut t: i64, n: usize) -> Result<usize> {
        let attacker: IpAddr = Ipv4Addr::new(172, 16, 0, 77).into();
        let server: IpAddr = Ipv4Addr::new(10, 0, 0, 22).into();
        for _ in 0..n {
            let ends = ((attacker, self.next_port().0), (server, 22));
            let back = (ends.1, ends.0);
            self.tcp(t, ends, SYN, 0, None);
            self.tcp(t + 300, back, SYN | ACK, 0, None);
            self.tcp(t + 400, ends, ACK, 0, None);
            self.tcp(t + 2_000, back, PSH | ACK, 40, None);
            self.tcp(t + 3_000, ends, PSH | ACK, 72, None);
            self.tcp(t + 60_000, back, PSH | ACK, 24, None);
            self.tcp(t + 61_000, ends, FIN | ACK, 0, None);
            self.tcp(t + 61_300, back, FIN | ACK, 0, None);
            self.tcp(t + 61_400, ends, ACK, 0, None);
            self.label(ends, 6, "BruteForce")?;
            t += self.rng.random_range(70_000..200_000);
        }
        Ok(n)
    }

    /// Hundreds of large datagrams to one port in a fraction of a second.
    fn udp_flood(&mut self, mut t: i64) -> Result<usize> {
        let from = (Ipv4Addr::new(172, 16, 0, 88).into(), self.next_port().0);
        let to = (Ipv4Addr::new(10, 0, 0, 53).into(), 9999);
        for _ in 0..self.rng.random_range(200..600) {
            self.push(Spec {
                ts: t,
                src: from,
                dst: to,
                transport: Transport::Udp,
                payload: 1200,
                vlan: None,
            });
            t += self.rng.random_range(50..500);
        }
        self.label((from, to), 17, "UDPFlood")?;
        Ok(1)
    }
}
