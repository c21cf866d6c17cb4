//! One captured frame to the few fields a flow needs: addresses, ports, protocol, TCP flags
//! and window, the transport header's and payload's lengths, ICMP type and code.
//!
//! etherparse slices the link and IP layers without allocating (VLAN tags, IPv6 extension
//! headers, truncated captures included); the transport header is sliced from the IP payload
//! here, so a capture cut short by its snap length still counts the payload the IP header
//! declares. Bytes from the wire never panic: what cannot be decoded is a [`Skip`] reason.

use std::net::IpAddr;

use etherparse::{
    EtherType, Icmpv4Slice, Icmpv6Slice, IpNumber, LaxNetSlice, LaxSlicedPacket, TcpHeaderSlice,
    UdpHeaderSlice,
};

/// The link-layer header types a capture's packets may have (pcap's LINKTYPE_ values).
pub mod link {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    pub const RAW: u32 = 101;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
}

/// TCP flag bits as they sit in the header's 13th byte.
pub mod flag {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const ICMP: u8 = 1;
pub const ICMPV6: u8 = 58;

/// What a flow learns from one packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// Capture time, microseconds since the Unix epoch.
    pub ts: i64,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub protocol: u8,
    /// TCP flags ([`flag`]); 0 for other protocols.
    pub flags: u8,
    pub window: u16,
    /// The transport header's bytes (TCP with options, UDP's 8; 0 for ICMP, as CICFlowMeter).
    pub header_len: u32,
    /// The transport payload's bytes as the IP header declares them (0 for ICMP).
    pub payload_len: u32,
    /// ICMP (or ICMPv6) type and code.
    pub icmp: Option<(u8, u8)>,
}

impl Packet {
    pub fn has(&self, bit: u8) -> bool {
        self.flags & bit != 0
    }
}

/// Why a frame holds no flow packet; counted by kind and reported at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// ARP, LLDP, or another EtherType that is not IP.
    NotIp,
    /// An IPv4 fragment after the first, or any IPv6 fragment.
    Fragment,
    /// IP carrying something other than TCP, UDP or ICMP (GRE, ESP, IGMP, …).
    OtherProtocol,
    /// A link type this reader does not decode.
    UnknownLinkType,
    /// A frame too short or inconsistent for its headers.
    Malformed,
}

impl Skip {
    pub fn describe(self) -> &'static str {
        match self {
            Skip::NotIp => "not IP (ARP and other link protocols)",
            Skip::Fragment => "IP fragments after the first (IPv6: all fragments)",
            Skip::OtherProtocol => "IP protocols other than TCP, UDP and ICMP",
            Skip::UnknownLinkType => "unknown link types",
            Skip::Malformed => "malformed packets",
        }
    }
}

/// Decodes a frame of link type `linktype` captured at `ts` (µs).
pub fn decode(linktype: u32, ts: i64, frame: &[u8]) -> Result<Packet, Skip> {
    let sliced = match linktype {
        link::ETHERNET => LaxSlicedPacket::from_ethernet(frame).map_err(|_| Skip::Malformed)?,
        link::RAW | link::IPV4 | link::IPV6 => {
            LaxSlicedPacket::from_ip(frame).map_err(|_| Skip::Malformed)?
        }
        link::NULL => {
            // The address family in the capturing host's byte order: 2 is IPv4; 24, 28 and
            // 30 are IPv6 on the BSDs and macOS.
            let family = frame.get(..4).ok_or(Skip::Malformed)?;
            let family = u32::from_le_bytes(family.try_into().expect("4 bytes"))
                .min(u32::from_be_bytes(family.try_into().expect("4 bytes")));
            if ![2, 24, 28, 30].contains(&family) {
                return Err(Skip::NotIp);
            }
            LaxSlicedPacket::from_ip(&frame[4..]).map_err(|_| Skip::Malformed)?
        }
        link::LINUX_SLL => by_ether_type(frame, 14, 16)?,
        link::LINUX_SLL2 => by_ether_type(frame, 0, 20)?,
        _ => return Err(Skip::UnknownLinkType),
    };
    from_net(ts, sliced.net.as_ref())
}

/// A Linux cooked header: the EtherType at `at`, the packet after `len` bytes.
fn by_ether_type(frame: &[u8], at: usize, len: usize) -> Result<LaxSlicedPacket<'_>, Skip> {
    let rest = frame.get(len..).ok_or(Skip::Malformed)?;
    let kind = u16::from_be_bytes([frame[at], frame[at + 1]]);
    Ok(LaxSlicedPacket::from_ether_type(EtherType(kind), rest))
}

fn from_net(ts: i64, net: Option<&LaxNetSlice>) -> Result<Packet, Skip> {
    let (src, dst, payload, declared) = match net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let h = ip.header();
            if h.fragments_offset().value() != 0 {
                return Err(Skip::Fragment);
            }
            let auth = ip.extensions().auth.map_or(0, |a| a.slice().len());
            let header = h.slice().len() + auth;
            let declared = (h.total_len() as usize).saturating_sub(header);
            let (src, dst) = (h.source_addr().into(), h.destination_addr().into());
            (src, dst, ip.payload(), declared)
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            if ip.is_payload_fragmented() {
                return Err(Skip::Fragment);
            }
            let h = ip.header();
            let declared =
                (h.payload_length() as usize).saturating_sub(ip.extensions().slice().len());
            let (src, dst) = (h.source_addr().into(), h.destination_addr().into());
            (src, dst, ip.payload(), declared)
        }
        Some(LaxNetSlice::Arp(_)) | None => return Err(Skip::NotIp),
    };
    // A payload cut by the snap length keeps the length its header declares; one without a
    // length field (IPv6 jumbograms) has what was captured.
    let declared = if payload.incomplete {
        declared.max(payload.payload.len())
    } else {
        payload.payload.len()
    };
    let mut p = Packet {
        ts,
        src,
        dst,
        src_port: 0,
        dst_port: 0,
        protocol: payload.ip_number.0,
        flags: 0,
        window: 0,
        header_len: 0,
        payload_len: 0,
        icmp: None,
    };
    transport(&mut p, payload.ip_number, payload.payload, declared)?;
    Ok(p)
}

/// Fills the transport fields from the IP payload (`declared` bytes long on the wire).
fn transport(p: &mut Packet, number: IpNumber, bytes: &[u8], declared: usize) -> Result<(), Skip> {
    let payload_of = |header: usize| declared.saturating_sub(header) as u32;
    match number.0 {
        TCP => {
            let tcp = TcpHeaderSlice::from_slice(bytes).map_err(|_| Skip::Malformed)?;
            let header = tcp.slice().len();
            p.src_port = tcp.source_port();
            p.dst_port = tcp.destination_port();
            p.flags = bytes[13];
            p.window = tcp.window_size();
            p.header_len = header as u32;
            p.payload_len = payload_of(header);
        }
        UDP => {
            let udp = UdpHeaderSlice::from_slice(bytes).map_err(|_| Skip::Malformed)?;
            p.src_port = udp.source_port();
            p.dst_port = udp.destination_port();
            p.header_len = 8;
            p.payload_len = payload_of(8);
        }
        ICMP => {
            let icmp = Icmpv4Slice::from_slice(bytes).map_err(|_| Skip::Malformed)?;
            p.icmp = Some((icmp.type_u8(), icmp.code_u8()));
        }
        ICMPV6 => {
            let icmp = Icmpv6Slice::from_slice(bytes).map_err(|_| Skip::Malformed)?;
            p.icmp = Some((icmp.type_u8(), icmp.code_u8()));
        }
        _ => return Err(Skip::OtherProtocol),
    }
    Ok(())
}
