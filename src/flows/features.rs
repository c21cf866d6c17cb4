//! One flow's running state and its CIC-IDS2017 features, as the corrected CICFlowMeter
//! (Engelen, Rimmer and Joosen, 2021; GintsEngelen/CICFlowMeter) defines them: lengths are
//! transport payload bytes, times are microseconds, rates per second, standard deviations
//! the sample's (n − 1). Where that extractor has a known slip, this follows its intent; the
//! README's feature table says where.

use std::net::IpAddr;

use super::packet::{Packet, flag};

/// A sample's count, sum, mean, spread and extremes, kept as values arrive (Welford's
/// update, as Apache Commons' SummaryStatistics that CICFlowMeter uses).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    n: u64,
    sum: f64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl Stats {
    pub fn add(&mut self, x: f64) {
        self.n += 1;
        self.sum += x;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
        if self.n == 1 || x < self.min {
            self.min = x;
        }
        if self.n == 1 || x > self.max {
            self.max = x;
        }
    }

    pub fn n(&self) -> u64 {
        self.n
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Mean, standard deviation, maximum and minimum; zeros for an empty sample.
    pub fn summary(&self) -> [f64; 4] {
        if self.n == 0 {
            return [0.0; 4];
        }
        [self.mean, self.variance().sqrt(), self.max, self.min]
    }

    /// The sample variance (n − 1); 0 for fewer than two values.
    pub fn variance(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            self.m2 / (self.n - 1) as f64
        }
    }
}

/// Bulk transfers in one direction: runs of at least 4 payload-carrying packets with no gap
/// over a second and no bulk packet of the other direction in between.
#[derive(Debug, Clone, Default)]
struct Bulk {
    /// The current run: its start, last packet, packets and bytes.
    start: i64,
    last: i64,
    packets: u64,
    bytes: u64,
    /// Completed (or ongoing, once 4 long) bulks: count, packets, bytes, µs.
    count: u64,
    total_packets: u64,
    total_bytes: u64,
    duration: i64,
}

impl Bulk {
    /// A payload of `size` bytes at `ts`; `other_last` is the other direction's last bulk
    /// packet, which breaks a run that started before it.
    fn add(&mut self, ts: i64, size: u64, other_last: i64) {
        if other_last > self.start {
            self.start = 0;
        }
        if size == 0 {
            return;
        }
        if self.start == 0 || ts - self.last > 1_000_000 {
            (self.start, self.last, self.packets, self.bytes) = (ts, ts, 1, size);
            return;
        }
        self.packets += 1;
        self.bytes += size;
        if self.packets == 4 {
            self.count += 1;
            self.total_packets += 4;
            self.total_bytes += self.bytes;
            self.duration += ts - self.start;
        } else if self.packets > 4 {
            self.total_packets += 1;
            self.total_bytes += size;
            self.duration += ts - self.last;
        }
        self.last = ts;
    }

    /// Bytes per bulk, packets per bulk, bytes per second of bulk.
    fn averages(&self) -> [f64; 3] {
        let per_bulk = |v: u64| {
            if self.count == 0 {
                0.0
            } else {
                v as f64 / self.count as f64
            }
        };
        let rate = if self.duration == 0 {
            0.0
        } else {
            self.total_bytes as f64 / (self.duration as f64 / 1e6)
        };
        [
            per_bulk(self.total_bytes),
            per_bulk(self.total_packets),
            rate,
        ]
    }
}

/// One direction's counters.
#[derive(Debug, Clone, Default)]
struct Side {
    lengths: Stats,
    iat: Stats,
    last_seen: i64,
    header_bytes: u64,
    psh: u64,
    urg: u64,
    rst: u64,
    fin: u64,
    data_packets: u64,
    min_header: u64,
    init_window: Option<u16>,
    bulk: Bulk,
}

impl Side {
    fn add(&mut self, p: &Packet) {
        if self.lengths.n() > 0 {
            self.iat.add((p.ts - self.last_seen) as f64);
        }
        if self.lengths.n() == 0 || (p.header_len as u64) < self.min_header {
            self.min_header = p.header_len as u64;
        }
        self.lengths.add(p.payload_len as f64);
        self.last_seen = p.ts;
        self.header_bytes += p.header_len as u64;
        self.psh += p.has(flag::PSH) as u64;
        self.urg += p.has(flag::URG) as u64;
        self.rst += p.has(flag::RST) as u64;
        self.fin += p.has(flag::FIN) as u64;
        self.data_packets += (p.payload_len > 0) as u64;
        self.init_window.get_or_insert(p.window);
    }

    fn packets(&self) -> u64 {
        self.lengths.n()
    }
}

/// Where a TCP connection stands, as the corrected extractor tracks it: a flow that saw both
/// FINs and then an ACK, or an RST, is ready to end; its next SYN starts a new flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpState {
    #[default]
    Open,
    FirstFin,
    SecondFin,
    Ready,
}

/// A flow: the 5-tuple as its first packet had it (that packet's source is "forward").
#[derive(Debug, Clone)]
pub struct Flow {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
    pub start: i64,
    pub last_seen: i64,
    pub tcp: TcpState,
    pub icmp: Option<(u8, u8)>,
    /// Time of the same TCP connection before this flow (earlier flows and the gaps).
    pub connection_before: i64,
    fwd: Side,
    bwd: Side,
    all_lengths: Stats,
    flow_iat: Stats,
    flags: [u64; 8],
    active: Stats,
    idle: Stats,
    active_start: i64,
    active_end: i64,
    subflows: u64,
}

impl Flow {
    /// A flow whose first packet is `p`, oriented from `src` (`p`'s source, or its
    /// destination when an ended flow's orientation carries on).
    pub fn new(p: &Packet, forward_is_src: bool) -> Flow {
        let (src, dst, src_port, dst_port) = if forward_is_src {
            (p.src, p.dst, p.src_port, p.dst_port)
        } else {
            (p.dst, p.src, p.dst_port, p.src_port)
        };
        let mut flow = Flow {
            src,
            dst,
            src_port,
            dst_port,
            protocol: p.protocol,
            start: p.ts,
            last_seen: p.ts,
            tcp: TcpState::Open,
            icmp: p.icmp,
            connection_before: 0,
            fwd: Side::default(),
            bwd: Side::default(),
            all_lengths: Stats::default(),
            flow_iat: Stats::default(),
            flags: [0; 8],
            active: Stats::default(),
            idle: Stats::default(),
            active_start: p.ts,
            active_end: p.ts,
            subflows: 1,
        };
        flow.add(p, i64::MAX);
        flow
    }

    pub fn is_forward(&self, p: &Packet) -> bool {
        p.src == self.src && p.src_port == self.src_port
    }

    pub fn packets(&self) -> u64 {
        self.fwd.packets() + self.bwd.packets()
    }

    pub fn fins_both_ways(&self) -> bool {
        self.fwd.fin > 0 && self.bwd.fin > 0
    }

    /// Adds a packet; `activity_timeout` (µs) splits active and idle periods.
    pub fn add(&mut self, p: &Packet, activity_timeout: i64) {
        let forward = self.is_forward(p);
        let other_last = if forward {
            self.bwd.bulk.last
        } else {
            self.fwd.bulk.last
        };
        let side = if forward {
            &mut self.fwd
        } else {
            &mut self.bwd
        };
        side.bulk.add(p.ts, p.payload_len as u64, other_last);
        side.add(p);
        if self.all_lengths.n() > 0 {
            self.flow_iat.add((p.ts - self.last_seen) as f64);
            if p.ts - self.last_seen > 1_000_000 {
                self.subflows += 1;
            }
            if p.ts - self.active_end > activity_timeout {
                if self.active_end > self.active_start {
                    self.active
                        .add((self.active_end - self.active_start) as f64);
                }
                self.idle.add((p.ts - self.active_end) as f64);
                self.active_start = p.ts;
            }
            self.active_end = p.ts;
        }
        self.all_lengths.add(p.payload_len as f64);
        for (bit, count) in self.flags.iter_mut().enumerate() {
            *count += (p.flags >> bit) as u64 & 1;
        }
        self.last_seen = p.ts;
    }

    pub fn duration(&self) -> i64 {
        self.last_seen - self.start
    }

    pub fn id(&self) -> String {
        flow_id(
            (self.src, self.src_port),
            (self.dst, self.dst_port),
            self.protocol,
        )
    }

    /// The numeric features, in [`NUMERIC`]'s order.
    pub fn features(&self) -> Vec<f64> {
        let (f, b) = (&self.fwd, &self.bwd);
        let duration = self.duration() as f64;
        let seconds = duration / 1e6;
        let packets = self.packets() as f64;
        let per_second = |n: f64| if duration > 0.0 { n / seconds } else { 0.0 };
        let per_packet = |sum: f64, n: u64| if n == 0 { 0.0 } else { sum / n as f64 };
        let [fm, fs, fx, fn_] = f.lengths.summary();
        let [bm, bs, bx, bn] = b.lengths.summary();
        let iat_total = |s: &Stats| s.sum();
        let mut v = vec![
            duration,
            f.packets() as f64,
            b.packets() as f64,
            f.lengths.sum(),
            b.lengths.sum(),
            fx,
            fn_,
            fm,
            fs,
            bx,
            bn,
            bm,
            bs,
            // Over a zero duration these are Java's Infinity (or NaN), as the release has them.
            (f.lengths.sum() + b.lengths.sum()) / seconds,
            packets / seconds,
        ];
        v.extend(self.flow_iat.summary());
        for side in [f, b] {
            v.push(iat_total(&side.iat));
            v.extend(side.iat.summary());
        }
        v.extend([f.psh, b.psh, f.urg, b.urg, f.rst, b.rst].map(|c| c as f64));
        v.extend([f.header_bytes as f64, b.header_bytes as f64]);
        v.extend([
            per_second(f.packets() as f64),
            per_second(b.packets() as f64),
        ]);
        let [m, s, x, n] = self.all_lengths.summary();
        v.extend([n, x, m, s, self.all_lengths.variance()]);
        // FIN, SYN, RST, PSH, ACK, URG, CWR, ECE, in the release's order.
        for bit in [0, 1, 2, 3, 4, 5, 7, 6] {
            v.push(self.flags[bit] as f64);
        }
        let down_up = if f.packets() == 0 {
            0.0
        } else {
            b.packets() as f64 / f.packets() as f64
        };
        v.extend([
            down_up,
            per_packet(self.all_lengths.sum(), self.packets()),
            per_packet(f.lengths.sum(), f.packets()),
            per_packet(b.lengths.sum(), b.packets()),
        ]);
        v.extend(f.bulk.averages());
        v.extend(b.bulk.averages());
        let per_subflow = |x: f64| x / self.subflows as f64;
        v.extend([
            per_subflow(f.packets() as f64),
            per_subflow(f.lengths.sum()),
            per_subflow(b.packets() as f64),
            per_subflow(b.lengths.sum()),
        ]);
        v.extend([
            f.init_window.unwrap_or(0) as f64,
            b.init_window.unwrap_or(0) as f64,
            f.data_packets as f64,
            f.min_header as f64,
        ]);
        v.extend(self.active.summary());
        v.extend(self.idle.summary());
        let (icmp_type, icmp_code) = self
            .icmp
            .map_or((-1.0, -1.0), |(t, c)| (t as f64, c as f64));
        v.extend([icmp_code, icmp_type]);
        let tcp_time = if self.protocol == super::packet::TCP {
            (self.connection_before + self.duration()) as f64
        } else {
            0.0
        };
        v.push(tcp_time);
        v
    }
}

/// The "Flow ID" of a flow from `a` to `b`: both addresses, both ports, the protocol, the
/// lower address's end first (`a` when the addresses are equal), as CICFlowMeter writes it.
pub fn flow_id(a: (IpAddr, u16), b: (IpAddr, u16), protocol: u8) -> String {
    let bytes = |ip: &IpAddr| match ip {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    };
    let (a, b) = if bytes(&a.0) <= bytes(&b.0) {
        (a, b)
    } else {
        (b, a)
    };
    format!("{}-{}-{}-{}-{protocol}", a.0, b.0, a.1, b.1)
}

/// The identifying columns, before the numeric ones.
pub const IDENTIFIERS: [&str; 7] = [
    "Flow ID",
    "Src IP",
    "Src Port",
    "Dst IP",
    "Dst Port",
    "Protocol",
    "Timestamp",
];

/// The numeric columns of the corrected CIC-IDS2017 release, in its order and spelling.
pub const NUMERIC: [&str; 81] = [
    "Flow Duration",
    "Total Fwd Packet",
    "Total Bwd packets",
    "Total Length of Fwd Packet",
    "Total Length of Bwd Packet",
    "Fwd Packet Length Max",
    "Fwd Packet Length Min",
    "Fwd Packet Length Mean",
    "Fwd Packet Length Std",
    "Bwd Packet Length Max",
    "Bwd Packet Length Min",
    "Bwd Packet Length Mean",
    "Bwd Packet Length Std",
    "Flow Bytes/s",
    "Flow Packets/s",
    "Flow IAT Mean",
    "Flow IAT Std",
    "Flow IAT Max",
    "Flow IAT Min",
    "Fwd IAT Total",
    "Fwd IAT Mean",
    "Fwd IAT Std",
    "Fwd IAT Max",
    "Fwd IAT Min",
    "Bwd IAT Total",
    "Bwd IAT Mean",
    "Bwd IAT Std",
    "Bwd IAT Max",
    "Bwd IAT Min",
    "Fwd PSH Flags",
    "Bwd PSH Flags",
    "Fwd URG Flags",
    "Bwd URG Flags",
    "Fwd RST Flags",
    "Bwd RST Flags",
    "Fwd Header Length",
    "Bwd Header Length",
    "Fwd Packets/s",
    "Bwd Packets/s",
    "Packet Length Min",
    "Packet Length Max",
    "Packet Length Mean",
    "Packet Length Std",
    "Packet Length Variance",
    "FIN Flag Count",
    "SYN Flag Count",
    "RST Flag Count",
    "PSH Flag Count",
    "ACK Flag Count",
    "URG Flag Count",
    "CWR Flag Count",
    "ECE Flag Count",
    "Down/Up Ratio",
    "Average Packet Size",
    "Fwd Segment Size Avg",
    "Bwd Segment Size Avg",
    "Fwd Bytes/Bulk Avg",
    "Fwd Packet/Bulk Avg",
    "Fwd Bulk Rate Avg",
    "Bwd Bytes/Bulk Avg",
    "Bwd Packet/Bulk Avg",
    "Bwd Bulk Rate Avg",
    "Subflow Fwd Packets",
    "Subflow Fwd Bytes",
    "Subflow Bwd Packets",
    "Subflow Bwd Bytes",
    "FWD Init Win Bytes",
    "Bwd Init Win Bytes",
    "Fwd Act Data Pkts",
    "Fwd Seg Size Min",
    "Active Mean",
    "Active Std",
    "Active Max",
    "Active Min",
    "Idle Mean",
    "Idle Std",
    "Idle Max",
    "Idle Min",
    "ICMP Code",
    "ICMP Type",
    "Total TCP Flow Time",
];
