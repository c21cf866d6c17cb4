//! Packets to flows: pcap/pcapng captures in, CIC-IDS2017 flow records out, each written as
//! soon as its flow ends.
//!
//! [`capture`] reads the file format, [`packet`] decodes a frame, [`table`] keeps the open
//! flows and decides when each ends, [`features`] keeps a flow's counters and computes its
//! columns, [`output`] writes them (CSV in the corrected release's header or the original
//! CICFlowMeter's, or JSON lines).

pub mod capture;
pub mod features;
pub mod output;
pub mod packet;
pub mod pipe;
pub mod synth;
pub mod table;
pub mod traffic;

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::time::{Duration, Instant};

use anyhow::Result;

use features::Flow;
use packet::Skip;
pub use table::{End, Limits};

/// What an extraction saw, for the closing summary on stderr.
#[derive(Debug, Default)]
pub struct Summary {
    pub packets: u64,
    pub skipped: BTreeMap<Skip, u64>,
    pub flows: u64,
    pub ended: BTreeMap<End, u64>,
    pub out_of_order: u64,
}

impl Summary {
    /// One line: packets, flows, and what was skipped or cut short, by kind.
    pub fn line(&self) -> String {
        let mut line = format!("{} packets, {} flows", self.packets, self.flows);
        for (skip, n) in &self.skipped {
            line += &format!("; skipped {n} {}", skip.describe());
        }
        if let Some(n) = self.ended.get(&End::Evicted) {
            line += &format!("; {n} flows ended early because the table was full (--max-flows)");
        }
        if self.out_of_order > 0 {
            line += &format!(
                "; {} packets older than the one before (taken at its time)",
                self.out_of_order
            );
        }
        line
    }
}

/// Reads the capture `name` from `input` and hands every flow to `on_flow` when it ends
/// (in the order flows end; those still open at the end of the input by their start). On a
/// truncated or corrupt capture, the flows up to that point are handed out first, then the
/// error is returned. With `live`, the wall clock also ends flows while no packet arrives.
pub fn extract(
    name: &str,
    input: impl Read + Send,
    limits: Limits,
    live: bool,
    on_flow: &mut dyn FnMut(&Flow) -> Result<()>,
) -> Result<Summary> {
    let mut summary = Summary::default();
    let mut table = table::Table::new(limits);
    let mut failed: Option<anyhow::Error> = None;
    let mut out = |flow: Flow| {
        if failed.is_none() {
            failed = on_flow(&flow).err();
        }
    };
    let read = if live {
        live_packets(name, input, &mut table, &mut summary, &mut out)
    } else {
        capture::read(name, input, &mut |frame| {
            match packet::decode(frame.linktype, frame.ts, frame.data) {
                Ok(p) => table.add(p, &mut out),
                Err(skip) => *summary.skipped.entry(skip).or_default() += 1,
            }
            Ok(())
        })
    };
    table.finish(&mut out);
    summary.ended = table.ended.clone();
    summary.flows = summary.ended.values().sum();
    summary.out_of_order = table.out_of_order;
    if let Some(e) = failed {
        return Err(e);
    }
    summary.packets = read?;
    Ok(summary)
}

/// Reads packets on a thread of its own; while none arrives, the capture's clock moves on
/// with the wall clock, so a quiet link still ends its flows on time.
fn live_packets(
    name: &str,
    input: impl Read + Send,
    table: &mut table::Table,
    summary: &mut Summary,
    out: &mut dyn FnMut(Flow),
) -> Result<u64> {
    let (tx, rx) = sync_channel::<Result<packet::Packet, Skip>>(4096);
    std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            capture::read(name, input, &mut |frame| {
                let p = packet::decode(frame.linktype, frame.ts, frame.data);
                tx.send(p)
                    .map_err(|_| anyhow::anyhow!("the flow table stopped"))
            })
        });
        let mut last = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_millis(250)) {
                Ok(Ok(p)) => {
                    last = Instant::now();
                    table.add(p, out);
                }
                Ok(Err(skip)) => *summary.skipped.entry(skip).or_default() += 1,
                Err(RecvTimeoutError::Timeout) if table.clock != i64::MIN => {
                    table.sweep(table.clock + last.elapsed().as_micros() as i64, out);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        reader.join().expect("the capture reader panicked")
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::IpAddr;

    use super::packet::flag::{ACK, FIN, PSH, RST, SYN};
    use super::synth::{Spec, Transport, capture};
    use super::*;

    /// 2017-07-03 09:55:58 UTC, in µs.
    const T0: i64 = 1_499_075_758_000_000;
    const LIMITS: Limits = Limits {
        flow_timeout: 120_000_000,
        activity_timeout: 5_000_000,
        max_flows: 1000,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn tcp(ts: i64, forward: bool, flags: u8, payload: usize) -> Spec {
        let (a, b) = ((ip("10.0.0.1"), 40000), (ip("10.0.0.2"), 80));
        let (src, dst) = if forward { (a, b) } else { (b, a) };
        let window = if forward { 1000 } else { 2000 };
        Spec {
            ts: T0 + ts,
            src,
            dst,
            transport: Transport::Tcp { flags, window },
            payload,
            vlan: None,
        }
    }

    fn udp(ts: i64, sport: u16) -> Spec {
        Spec {
            ts: T0 + ts,
            src: (ip("10.0.0.3"), sport),
            dst: (ip("10.0.0.4"), 53),
            transport: Transport::Udp,
            payload: 40,
            vlan: None,
        }
    }

    /// The flows of a capture, each as column name → text, in the order they were written.
    fn flows_of(bytes: &[u8], limits: Limits) -> Vec<HashMap<String, String>> {
        let names = output::header(output::Schema::Cic);
        let mut out = Vec::new();
        extract("test", bytes, limits, false, &mut |f| {
            out.push(names.iter().cloned().zip(output::values(f)).collect());
            Ok(())
        })
        .unwrap();
        out
    }

    fn check(flow: &HashMap<String, String>, expected: &[(&str, f64)]) {
        for (name, want) in expected {
            let got: f64 = flow[*name].parse().unwrap();
            assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{name}: {got} vs {want}"
            );
        }
    }

    /// A TCP session worked out by hand: handshake, one request, one response, FIN both ways
    /// and the last ACK.
    #[test]
    fn a_hand_built_session_has_the_features_worked_out_by_hand() {
        let packets = [
            tcp(0, true, SYN, 0),
            tcp(100, false, SYN | ACK, 0),
            tcp(250, true, ACK, 0),
            tcp(1250, true, PSH | ACK, 100),
            tcp(2250, false, PSH | ACK, 300),
            tcp(3000, true, FIN | ACK, 0),
            tcp(3500, false, FIN | ACK, 0),
            tcp(4000, true, ACK, 0),
        ];
        let flows = flows_of(&capture(&packets, false), LIMITS);
        assert_eq!(flows.len(), 1);
        let f = &flows[0];
        assert_eq!(f["Flow ID"], "10.0.0.1-10.0.0.2-40000-80-6");
        assert_eq!(
            (f["Src IP"].as_str(), f["Dst Port"].as_str()),
            ("10.0.0.1", "80")
        );
        assert_eq!(f["Timestamp"], "2017-07-03 09:55:58.000000");
        check(
            f,
            &[
                ("Flow Duration", 4000.0),
                ("Total Fwd Packet", 5.0),
                ("Total Bwd packets", 3.0),
                ("Total Length of Fwd Packet", 100.0),
                ("Total Length of Bwd Packet", 300.0),
                ("Fwd Packet Length Max", 100.0),
                ("Fwd Packet Length Min", 0.0),
                ("Fwd Packet Length Mean", 20.0),
                ("Fwd Packet Length Std", 2000f64.sqrt()),
                ("Bwd Packet Length Mean", 100.0),
                ("Bwd Packet Length Std", 30000f64.sqrt()),
                ("Flow Bytes/s", 100_000.0),
                ("Flow Packets/s", 2000.0),
                ("Flow IAT Mean", 4000.0 / 7.0),
                ("Flow IAT Max", 1000.0),
                ("Flow IAT Min", 100.0),
                ("Fwd IAT Total", 4000.0),
                ("Fwd IAT Mean", 1000.0),
                ("Fwd IAT Max", 1750.0),
                ("Fwd IAT Min", 250.0),
                ("Bwd IAT Total", 3400.0),
                ("Bwd IAT Max", 2150.0),
                ("Bwd IAT Min", 1250.0),
                ("Fwd PSH Flags", 1.0),
                ("Bwd PSH Flags", 1.0),
                ("Fwd Header Length", 100.0),
                ("Bwd Header Length", 60.0),
                ("Fwd Packets/s", 1250.0),
                ("Bwd Packets/s", 750.0),
                ("Packet Length Max", 300.0),
                ("Packet Length Mean", 50.0),
                ("Packet Length Variance", 80000.0 / 7.0),
                ("FIN Flag Count", 2.0),
                ("SYN Flag Count", 2.0),
                ("PSH Flag Count", 2.0),
                ("ACK Flag Count", 7.0),
                ("RST Flag Count", 0.0),
                ("Down/Up Ratio", 0.6),
                ("Average Packet Size", 50.0),
                ("Fwd Segment Size Avg", 20.0),
                ("Bwd Segment Size Avg", 100.0),
                ("Subflow Fwd Packets", 5.0),
                ("Subflow Bwd Bytes", 300.0),
                ("FWD Init Win Bytes", 1000.0),
                ("Bwd Init Win Bytes", 2000.0),
                ("Fwd Act Data Pkts", 1.0),
                ("Fwd Seg Size Min", 20.0),
                ("Active Mean", 0.0),
                ("Idle Mean", 0.0),
                ("ICMP Code", -1.0),
                ("ICMP Type", -1.0),
                ("Total TCP Flow Time", 4000.0),
            ],
        );
    }

    /// Gaps over the activity timeout split active and idle periods; gaps over a second
    /// split subflows; four payload packets within a second make a bulk.
    #[test]
    fn active_idle_subflow_and_bulk_features_follow_the_gaps() {
        let s = 1_000_000;
        let packets = [
            tcp(0, true, ACK, 10),
            tcp(100_000, true, ACK, 10),
            tcp(200_000, true, ACK, 10),
            tcp(300_000, true, ACK, 10),
            tcp(7 * s, true, ACK, 10),
            tcp(7 * s + 500_000, true, ACK, 10),
            tcp(20 * s, false, ACK, 0),
        ];
        let flows = flows_of(&capture(&packets, false), LIMITS);
        check(
            &flows[0],
            &[
                // Active: 0 → 0.3 s and 7 → 7.5 s (the period the flow ends in, 20 s alone, is
                // not counted, as in CICFlowMeter); idle: 6.7 s and 12.5 s.
                ("Active Mean", 400_000.0),
                ("Active Max", 500_000.0),
                ("Active Min", 300_000.0),
                ("Idle Mean", (6_700_000.0 + 12_500_000.0) / 2.0),
                ("Idle Max", 12_500_000.0),
                ("Idle Min", 6_700_000.0),
                // Three subflows: gaps of 6.7 s and 12.5 s.
                ("Subflow Fwd Packets", 2.0),
                ("Subflow Fwd Bytes", 20.0),
                ("Subflow Bwd Packets", 1.0 / 3.0),
                // One bulk: the first four packets, 40 bytes over 0.3 s.
                ("Fwd Bytes/Bulk Avg", 40.0),
                ("Fwd Packet/Bulk Avg", 4.0),
                ("Fwd Bulk Rate Avg", 40.0 / 0.3),
            ],
        );
    }

    #[test]
    fn each_termination_rule_ends_flows_where_it_should() {
        let s = 1_000_000;
        // RST: the flow ends; a packet 6 s later (past the activity timeout) starts another.
        let rst = [
            tcp(0, true, SYN, 0),
            tcp(10, false, RST | ACK, 0),
            tcp(6 * s, true, ACK, 0),
        ];
        let flows = flows_of(&capture(&rst, false), LIMITS);
        let counts: Vec<&str> = flows
            .iter()
            .map(|f| f["Total Fwd Packet"].as_str())
            .collect();
        assert_eq!(counts, ["1", "1"]);
        // The continuation keeps the connection's orientation and carries its time on.
        assert_eq!(flows[1]["Src IP"], "10.0.0.1");
        check(&flows[1], &[("Total TCP Flow Time", 6.0 * 1e6)]);

        // FIN both ways and the last ACK: the next SYN starts a new flow at once.
        let mut fin = vec![tcp(0, true, SYN, 0), tcp(5, false, SYN | ACK, 0)];
        fin.extend([tcp(10, true, FIN | ACK, 0), tcp(20, false, FIN | ACK, 0)]);
        fin.extend([tcp(30, true, ACK, 0), tcp(40, true, SYN, 0)]);
        let flows = flows_of(&capture(&fin, false), LIMITS);
        assert_eq!(flows.len(), 2);
        check(
            &flows[0],
            &[("Flow Duration", 30.0), ("Total Fwd Packet", 3.0)],
        );
        check(
            &flows[1],
            &[("SYN Flag Count", 1.0), ("Total TCP Flow Time", 0.0)],
        );

        // The flow timeout counts from the first packet: UDP every 50 s for 300 s.
        let every: Vec<Spec> = (0..7).map(|i| udp(i * 50 * s, 5000)).collect();
        let flows = flows_of(&capture(&every, false), LIMITS);
        let counts: Vec<&str> = flows
            .iter()
            .map(|f| f["Total Fwd Packet"].as_str())
            .collect();
        assert_eq!(counts, ["3", "3", "1"]);

        // ICMP: a reply (type differs, code alike) joins; an unreachable (both differ) ends it.
        let icmp = |ts: i64, forward: bool, kind: u8, code: u8| {
            let (a, b) = ((ip("10.0.0.5"), 0), (ip("10.0.0.6"), 0));
            let (src, dst) = if forward { (a, b) } else { (b, a) };
            let transport = Transport::Icmp { kind, code };
            Spec {
                ts: T0 + ts,
                src,
                dst,
                transport,
                payload: 8,
                vlan: None,
            }
        };
        let pings = [
            icmp(0, true, 8, 0),
            icmp(10, false, 0, 0),
            icmp(20, true, 3, 3),
        ];
        let flows = flows_of(&capture(&pings, false), LIMITS);
        let kinds: Vec<(&str, &str)> = flows
            .iter()
            .map(|f| (f["ICMP Type"].as_str(), f["Total Bwd packets"].as_str()))
            .collect();
        assert_eq!(kinds, [("8", "1"), ("3", "0")]);

        // A full table ends the flow idle longest (to the second).
        let three = [udp(0, 1), udp(s, 2), udp(2 * s, 1), udp(3 * s, 3)];
        let small = Limits {
            max_flows: 2,
            ..LIMITS
        };
        let mut ended = Vec::new();
        let summary = extract("t", &capture(&three, false)[..], small, false, &mut |f| {
            ended.push(f.src_port);
            Ok(())
        })
        .unwrap();
        assert_eq!(ended, [2, 1, 3]);
        assert_eq!(summary.ended[&End::Evicted], 1);
    }

    /// A closed flow is written once the activity timeout passes, while the capture goes on.
    #[test]
    fn flows_are_written_as_they_end_not_at_the_end_of_the_input() {
        let s = 1_000_000;
        let mut packets = vec![tcp(0, true, SYN, 0), tcp(10, false, RST, 0)];
        packets.extend((0..20).map(|i| udp(i * s, 7)));
        let mut order = Vec::new();
        extract(
            "t",
            &capture(&packets, false)[..],
            LIMITS,
            false,
            &mut |f| {
                order.push((f.protocol, f.packets()));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(order, [(6, 2), (17, 20)]);
    }

    /// pcap and pcapng of the same packets (with VLAN tags and IPv6) give the same flows.
    #[test]
    fn pcap_and_pcapng_of_the_same_packets_give_identical_flows() {
        let mut packets: Vec<Spec> = (0..40)
            .map(|i| tcp(i * 1000, i % 3 != 0, ACK, (i * 37 % 200) as usize))
            .collect();
        for p in packets.iter_mut().step_by(2) {
            p.vlan = Some(42);
        }
        let v6 = |ts: i64| Spec {
            ts: T0 + ts,
            src: (ip("2001:db8::1"), 5353),
            dst: (ip("2001:db8::2"), 53),
            transport: Transport::Udp,
            payload: 30,
            vlan: None,
        };
        packets.extend([v6(50_000), v6(60_000)]);
        let pcap = flows_of(&capture(&packets, false), LIMITS);
        assert_eq!(pcap, flows_of(&capture(&packets, true), LIMITS));
        assert_eq!(pcap.len(), 2);
        assert_eq!(pcap[1]["Flow ID"], "2001:db8::1-2001:db8::2-5353-53-17");
    }

    /// Seeded mutations of a capture (cut short, bytes flipped, lengths made absurd) end in a
    /// flow list or an error, never a panic or a hang.
    #[test]
    fn mutated_captures_never_panic() {
        let packets: Vec<Spec> = (0..60)
            .map(|i| tcp(i * 1000, i % 2 == 0, ACK | PSH, (i * 13 % 90) as usize))
            .collect();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for pcapng in [false, true] {
            let good = capture(&packets, pcapng);
            for _ in 0..400 {
                let mut bad = good.clone();
                match next() % 3 {
                    0 => bad.truncate((next() % good.len() as u64) as usize),
                    1 => {
                        for _ in 0..1 + next() % 8 {
                            let at = (next() % bad.len() as u64) as usize;
                            bad[at] ^= 1 << (next() % 8);
                        }
                    }
                    _ => {
                        let at = (next() % (bad.len() as u64 - 4)) as usize;
                        bad[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
                    }
                }
                let _ = extract("fuzz", &bad[..], LIMITS, false, &mut |_| Ok(()));
            }
        }
    }
}
