//! Writing captures: packets built with etherparse, framed as pcap or pcapng. `generate
//! --pcap` uses it for its synthetic traffic, and the tests for hand-built captures whose
//! flows they work out by hand.

use std::io::Write;
use std::net::IpAddr;

use anyhow::Result;
use etherparse::{IpHeaders, PacketBuilder, PacketBuilderStep, VlanId};

use super::packet::flag;

/// What a packet carries above IP.
#[derive(Debug, Clone, Copy)]
pub enum Transport {
    Tcp {
        flags: u8,
        window: u16,
    },
    Udp,
    /// ICMP (ICMPv6 on IPv6) with a type and code.
    Icmp {
        kind: u8,
        code: u8,
    },
}

/// One packet of a capture to write.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Microseconds since the Unix epoch.
    pub ts: i64,
    pub src: (IpAddr, u16),
    pub dst: (IpAddr, u16),
    pub transport: Transport,
    /// Payload bytes above the transport header.
    pub payload: usize,
    /// An 802.1Q tag.
    pub vlan: Option<u16>,
}

impl Spec {
    /// The packet as an Ethernet frame.
    pub fn frame(&self) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let payload = vec![0x61u8; self.payload];
        let mut out = Vec::new();
        let written = match (self.vlan, self.src.0, self.dst.0) {
            (Some(id), IpAddr::V4(s), IpAddr::V4(d)) => {
                let vlan = eth.single_vlan(VlanId::try_new(id).expect("a 12-bit VLAN id"));
                self.above(vlan.ipv4(s.octets(), d.octets(), 64), &payload, &mut out)
            }
            (None, IpAddr::V4(s), IpAddr::V4(d)) => {
                self.above(eth.ipv4(s.octets(), d.octets(), 64), &payload, &mut out)
            }
            (Some(id), IpAddr::V6(s), IpAddr::V6(d)) => {
                let vlan = eth.single_vlan(VlanId::try_new(id).expect("a 12-bit VLAN id"));
                self.above(vlan.ipv6(s.octets(), d.octets(), 64), &payload, &mut out)
            }
            (None, IpAddr::V6(s), IpAddr::V6(d)) => {
                self.above(eth.ipv6(s.octets(), d.octets(), 64), &payload, &mut out)
            }
            _ => panic!("both ends of a packet are IPv4 or both IPv6"),
        };
        written.expect("a built packet serialises");
        out
    }

    fn above(
        &self,
        ip: PacketBuilderStep<IpHeaders>,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let v6 = self.src.0.is_ipv6();
        match self.transport {
            Transport::Tcp { flags, window } => {
                let mut tcp = ip.tcp(self.src.1, self.dst.1, 1000, window);
                let has = |bit: u8| flags & bit != 0;
                if has(flag::SYN) {
                    tcp = tcp.syn();
                }
                if has(flag::FIN) {
                    tcp = tcp.fin();
                }
                if has(flag::RST) {
                    tcp = tcp.rst();
                }
                if has(flag::PSH) {
                    tcp = tcp.psh();
                }
                if has(flag::URG) {
                    tcp = tcp.urg(0);
                }
                if has(flag::ECE) {
                    tcp = tcp.ece();
                }
                if has(flag::CWR) {
                    tcp = tcp.cwr();
                }
                if has(flag::ACK) {
                    tcp = tcp.ack(1);
                }
                tcp.write(out, payload)?;
            }
            Transport::Udp => ip.udp(self.src.1, self.dst.1).write(out, payload)?,
            Transport::Icmp { kind, code } if v6 => {
                ip.icmpv6_raw(kind, code, [0; 4]).write(out, payload)?
            }
            Transport::Icmp { kind, code } => {
                ip.icmpv4_raw(kind, code, [0; 4]).write(out, payload)?
            }
        }
        Ok(())
    }
}

/// A capture being written: pcap (microseconds, little-endian) or pcapng (one section, one
/// Ethernet interface, enhanced packet blocks).
pub struct CaptureWriter<W: Write> {
    out: W,
    pcapng: bool,
}

const ETHERNET: u32 = 1;

impl<W: Write> CaptureWriter<W> {
    pub fn new(mut out: W, pcapng: bool) -> Result<CaptureWriter<W>> {
        if pcapng {
            // Section header: byte-order magic, version 1.0, section length unknown.
            let mut shb = Vec::new();
            shb.extend(0x1a2b_3c4du32.to_le_bytes());
            shb.extend(1u16.to_le_bytes());
            shb.extend(0u16.to_le_bytes());
            shb.extend((-1i64).to_le_bytes());
            block(&mut out, 0x0a0d_0d0a, &shb)?;
            let mut idb = Vec::new();
            idb.extend((ETHERNET as u16).to_le_bytes());
            idb.extend(0u16.to_le_bytes());
            idb.extend(262_144u32.to_le_bytes());
            block(&mut out, 1, &idb)?;
        } else {
            out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
            out.write_all(&2u16.to_le_bytes())?;
            out.write_all(&4u16.to_le_bytes())?;
            out.write_all(&[0; 8])?;
            out.write_all(&262_144u32.to_le_bytes())?;
            out.write_all(&ETHERNET.to_le_bytes())?;
        }
        Ok(CaptureWriter { out, pcapng })
    }

    /// Writes one frame captured at `ts` (µs).
    pub fn write(&mut self, ts: i64, frame: &[u8]) -> Result<()> {
        let len = frame.len() as u32;
        if self.pcapng {
            let mut epb = Vec::with_capacity(20 + frame.len());
            epb.extend(0u32.to_le_bytes());
            epb.extend(((ts as u64 >> 32) as u32).to_le_bytes());
            epb.extend((ts as u64 as u32).to_le_bytes());
            epb.extend(len.to_le_bytes());
            epb.extend(len.to_le_bytes());
            epb.extend_from_slice(frame);
            block(&mut self.out, 6, &epb)?;
        } else {
            self.out
                .write_all(&((ts / 1_000_000) as u32).to_le_bytes())?;
            self.out
                .write_all(&((ts % 1_000_000) as u32).to_le_bytes())?;
            self.out.write_all(&len.to_le_bytes())?;
            self.out.write_all(&len.to_le_bytes())?;
            self.out.write_all(frame)?;
        }
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A pcapng block: type, total length, body padded to 4 bytes, total length again.
fn block(out: &mut impl Write, kind: u32, body: &[u8]) -> Result<()> {
    let padded = body.len().div_ceil(4) * 4;
    let total = (12 + padded) as u32;
    out.write_all(&kind.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&vec![0; padded - body.len()])?;
    out.write_all(&total.to_le_bytes())?;
    Ok(())
}

/// A capture of `packets` in order, as bytes.
pub fn capture(packets: &[Spec], pcapng: bool) -> Vec<u8> {
    let mut w = CaptureWriter::new(Vec::new(), pcapng).expect("writing to memory");
    for p in packets {
        w.write(p.ts, &p.frame()).expect("writing to memory");
    }
    w.into_inner()
}
