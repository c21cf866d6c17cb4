//! Synthetic embedded-device traffic in the schema of the public "Embedded System Network
//! Security" dataset, for the project's own sample data and tests.
//!
//! About `anomaly_ratio` of the rows are attacks drawn from four patterns (SYN floods, port
//! scans, exfiltration bursts, malformed flags). Each attack row takes any given feature from
//! its pattern only with probability 0.7 and from normal traffic otherwise, so the classes
//! overlap and the task is learnable but not trivially separable.

use std::path::Path;

use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Beta, Distribution, Normal};

pub const COLUMNS: [&str; 18] = [
    "packet_size",
    "inter_arrival_time",
    "src_port",
    "dst_port",
    "packet_count_5s",
    "mean_packet_size",
    "spectral_entropy",
    "frequency_band_energy",
    "label",
    "protocol_type_TCP",
    "protocol_type_UDP",
    "src_ip_192.168.1.2",
    "src_ip_192.168.1.3",
    "dst_ip_192.168.1.5",
    "dst_ip_192.168.1.6",
    "tcp_flags_FIN",
    "tcp_flags_SYN",
    "tcp_flags_SYN-ACK",
];

#[derive(Clone, Copy)]
enum Pattern {
    Normal,
    Flood,
    Scan,
    Exfiltration,
    MalformedFlags,
}

/// One flow's fields, before they are mixed and written.
struct Flow {
    packet_size: f64,
    inter_arrival: f64,
    src_port: u32,
    dst_port: u32,
    count_5s: f64,
    mean_size: f64,
    entropy: f64,
    band_energy: f64,
    tcp: bool,
    src_ip: u8,
    dst_ip: u8,
    flags: [bool; 3],
}

fn unit(x: f64) -> f64 {
    x.clamp(0.0, 1.0)
}

fn draw(p: Pattern, rng: &mut StdRng) -> Flow {
    let beta = |a: f64, b: f64, rng: &mut StdRng| Beta::new(a, b).expect("valid beta").sample(rng);
    let noise = Normal::new(0.0, 0.08).expect("valid normal");
    let mut f = Flow {
        packet_size: beta(2.5, 2.5, rng),
        inter_arrival: beta(2.0, 2.0, rng),
        src_port: rng.random_range(1024..65536),
        dst_port: [53, 80, 443][rng.random_range(0..3)],
        count_5s: beta(2.0, 2.0, rng),
        mean_size: 0.0,
        entropy: beta(2.0, 2.0, rng),
        band_energy: beta(2.0, 2.0, rng),
        tcp: true,
        src_ip: rng.random_range(0..3),
        dst_ip: rng.random_range(0..3),
        flags: [false; 3],
    };
    f.tcp = f.dst_port != 53 || rng.random_bool(0.1);
    if f.tcp {
        let k = rng.random_range(0..4);
        if k < 3 {
            f.flags[k] = true;
        }
    }
    match p {
        Pattern::Normal => {}
        Pattern::Flood => {
            f.packet_size = unit(0.12 + noise.sample(rng));
            f.inter_arrival = unit(0.05 + noise.sample(rng).abs());
            f.count_5s = unit(0.9 + noise.sample(rng));
            f.tcp = true;
            f.flags = [false, true, false];
        }
        Pattern::Scan => {
            f.dst_port = [21, 22, 23, 25, 135, 139, 445, 3389, 8080][rng.random_range(0..9)];
            f.packet_size = unit(0.08 + noise.sample(rng).abs());
            f.entropy = unit(0.15 + noise.sample(rng));
            f.count_5s = unit(0.7 + noise.sample(rng));
            f.tcp = true;
            f.flags = [false, true, false];
        }
        Pattern::Exfiltration => {
            f.packet_size = unit(0.92 + noise.sample(rng));
            f.band_energy = unit(0.85 + noise.sample(rng));
            f.entropy = unit(0.9 + noise.sample(rng));
            f.dst_port = 443;
            f.tcp = true;
        }
        Pattern::MalformedFlags => {
            f.flags = [true, true, rng.random_bool(0.5)];
            f.tcp = rng.random_bool(0.5);
        }
    }
    f.mean_size = unit(0.7 * f.packet_size + 0.3 * beta(2.0, 2.0, rng));
    f
}

/// Takes each field from `attack` with probability `p`, else from `normal`.
fn mix(attack: Flow, normal: Flow, p: f64, rng: &mut StdRng) -> Flow {
    let mut pick = || rng.random_bool(p);
    Flow {
        packet_size: if pick() {
            attack.packet_size
        } else {
            normal.packet_size
        },
        inter_arrival: if pick() {
            attack.inter_arrival
        } else {
            normal.inter_arrival
        },
        src_port: if pick() {
            attack.src_port
        } else {
            normal.src_port
        },
        dst_port: if pick() {
            attack.dst_port
        } else {
            normal.dst_port
        },
        count_5s: if pick() {
            attack.count_5s
        } else {
            normal.count_5s
        },
        mean_size: if pick() {
            attack.mean_size
        } else {
            normal.mean_size
        },
        entropy: if pick() {
            attack.entropy
        } else {
            normal.entropy
        },
        band_energy: if pick() {
            attack.band_energy
        } else {
            normal.band_energy
        },
        tcp: if pick() { attack.tcp } else { normal.tcp },
        src_ip: if pick() { attack.src_ip } else { normal.src_ip },
        dst_ip: if pick() { attack.dst_ip } else { normal.dst_ip },
        flags: if pick() { attack.flags } else { normal.flags },
    }
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// Writes `rows` flows to `out` (same seed, same bytes).
pub fn write_sample(out: &Path, rows: usize, seed: u64, anomaly_ratio: f64) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut text = String::with_capacity(rows * 140);
    text.push_str(&COLUMNS.join(","));
    text.push('\n');
    let attacks = [
        Pattern::Flood,
        Pattern::Scan,
        Pattern::Exfiltration,
        Pattern::MalformedFlags,
    ];
    for _ in 0..rows {
        let anomalous = rng.random_bool(anomaly_ratio);
        let f = if anomalous {
            let attack = draw(attacks[rng.random_range(0..attacks.len())], &mut rng);
            let normal = draw(Pattern::Normal, &mut rng);
            mix(attack, normal, 0.7, &mut rng)
        } else {
            draw(Pattern::Normal, &mut rng)
        };
        use std::fmt::Write as _;
        let _ = writeln!(
            text,
            "{:.6},{:.6},{},{},{:.6},{:.6},{:.6},{:.6},{},{},{},{},{},{},{},{},{},{}",
            f.packet_size,
            f.inter_arrival,
            f.src_port,
            f.dst_port,
            f.count_5s,
            f.mean_size,
            f.entropy,
            f.band_energy,
            if anomalous { "1.0" } else { "0.0" },
            py_bool(f.tcp),
            py_bool(!f.tcp),
            py_bool(f.src_ip == 1),
            py_bool(f.src_ip == 2),
            py_bool(f.dst_ip == 1),
            py_bool(f.dst_ip == 2),
            py_bool(f.flags[0]),
            py_bool(f.flags[1]),
            py_bool(f.flags[2]),
        );
    }
    super::write_atomic(out, text)
}

/// The columns `write_sequences` writes.
pub const SEQUENCE_COLUMNS: [&str; 10] = [
    "timestamp",
    "src_host",
    "dst_port",
    "duration",
    "bytes_out",
    "bytes_in",
    "packets",
    "gap",
    "failed",
    "label",
];

/// One flow of a host's sequence.
#[derive(Clone, Copy)]
struct SeqFlow {
    dst_port: u32,
    duration: f64,
    bytes_out: f64,
    bytes_in: f64,
    packets: u32,
    failed: bool,
}

/// A normal flow: a login (30%: port 22, short, small, failing half the time) or a service
/// flow (a port from 1 to 1024, heavy-tailed sizes, failing 5% of the time).
fn normal_flow(rng: &mut StdRng) -> SeqFlow {
    let lognormal = |m: f64, s: f64, rng: &mut StdRng| {
        (m + s * Normal::<f64>::new(0.0, 1.0)
            .expect("valid normal")
            .sample(rng))
        .exp()
    };
    if rng.random_bool(0.3) {
        SeqFlow {
            dst_port: 22,
            duration: lognormal(-1.0, 0.5, rng),
            bytes_out: lognormal(6.0, 0.3, rng),
            bytes_in: lognormal(6.5, 0.3, rng),
            packets: rng.random_range(8..15),
            failed: rng.random_bool(0.5),
        }
    } else {
        SeqFlow {
            dst_port: rng.random_range(1..=1024),
            duration: lognormal(0.0, 1.0, rng),
            bytes_out: lognormal(7.0, 1.5, rng),
            bytes_in: lognormal(8.0, 2.0, rng),
            packets: 1 + lognormal(2.0, 0.8, rng).round() as u32,
            failed: rng.random_bool(0.05),
        }
    }
}

/// The gap before a host's next flow, in seconds.
fn normal_gap(rng: &mut StdRng) -> f64 {
    (1.0 + Normal::<f64>::new(0.0, 1.0)
        .expect("valid normal")
        .sample(rng))
    .exp()
}

/// The attacks that only a sequence shows: each flow on its own is a draw from normal
/// traffic; their order and timing are not.
#[derive(Clone, Copy)]
enum SequenceAttack {
    /// One normal flow repeated at a fixed period (a normal gap, drawn once).
    Beacon,
    /// Service flows to ports counting up by one, at a fixed pace.
    Scan,
    /// Logins, one after another at a fixed pace.
    BruteForce,
}

/// Writes about `rows` time-ordered flows of `hosts` hosts to `out`: `timestamp`, `src_host`,
/// six flow features, `gap` (seconds since the host's previous flow), and `label` (1 in
/// attack episodes of 50 to 150 flows, about `anomaly_ratio` of the flows). Same seed, same
/// bytes.
pub fn write_sequences(
    out: &Path,
    rows: usize,
    hosts: usize,
    seed: u64,
    anomaly_ratio: f64,
) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    // An episode of 100 flows on average starts with this chance where a normal flow would.
    let start = anomaly_ratio / (100.0 * (1.0 - anomaly_ratio) + anomaly_ratio);
    let mut flows: Vec<(f64, usize, SeqFlow, f64, bool)> = Vec::with_capacity(rows);
    for host in 0..hosts {
        let n = rows / hosts + usize::from(host < rows % hosts);
        let mut t = 1_700_000_000.0 + rng.random_range(0.0..60.0);
        let mut i = 0;
        while i < n {
            if !rng.random_bool(start) {
                let gap = normal_gap(&mut rng);
                t += gap;
                flows.push((t, host, normal_flow(&mut rng), gap, false));
                i += 1;
                continue;
            }
            let kind = [
                SequenceAttack::Beacon,
                SequenceAttack::Beacon,
                SequenceAttack::Scan,
                SequenceAttack::Scan,
                SequenceAttack::BruteForce,
            ][rng.random_range(0..5)];
            let len = rng.random_range(50..=150).min(n - i);
            let pace = normal_gap(&mut rng);
            let beacon = normal_flow(&mut rng);
            let first_port = rng.random_range(1..=1024);
            for k in 0..len {
                let f = match kind {
                    SequenceAttack::Beacon => beacon,
                    SequenceAttack::Scan => loop {
                        let f = normal_flow(&mut rng);
                        if f.dst_port != 22 {
                            break SeqFlow {
                                dst_port: (first_port + k as u32 - 1) % 1024 + 1,
                                ..f
                            };
                        }
                    },
                    SequenceAttack::BruteForce => loop {
                        let f = normal_flow(&mut rng);
                        if f.dst_port == 22 {
                            break f;
                        }
                    },
                };
                t += pace;
                flows.push((t, host, f, pace, true));
            }
            i += len;
        }
    }
    flows.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut text = String::with_capacity(flows.len() * 90);
    text.push_str(&SEQUENCE_COLUMNS.join(","));
    text.push('\n');
    for (t, host, f, gap, attack) in flows {
        use std::fmt::Write as _;
        let _ = writeln!(
            text,
            "{t:.3},h{host:02},{},{:.4},{:.0},{:.0},{},{gap:.3},{},{}",
            f.dst_port,
            f.duration,
            f.bytes_out,
            f.bytes_in,
            f.packets,
            u8::from(f.failed),
            u8::from(attack)
        );
    }
    super::write_atomic(out, text)
}
