//! pcap and pcapng captures, read block by block from any `Read` (a file, a gzip stream,
//! stdin) in bounded memory: pcap-parser refills one fixed buffer, and each packet is handed
//! to the caller borrowed from it.
//!
//! pcap: micro- and nanosecond files, either byte order. pcapng: several sections and
//! interfaces (each its own link type, time resolution and offset), enhanced and simple
//! packet blocks; other blocks are passed over. A truncated or corrupt capture is an error
//! naming the packet number and byte offset where reading stopped.

use std::io::Read;

use anyhow::Result;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{Block, LegacyPcapReader, PcapBlockOwned, PcapError, PcapNGReader};

use crate::bail_input;

/// The reader's buffer: a block must fit in it, so it bounds a packet's size (pcapng's
/// largest snap length is 256 KiB).
const BUFFER: usize = 1 << 20;

/// One captured packet, borrowed from the reader's buffer.
pub struct Frame<'a> {
    /// 1-based, counting every packet record of the capture.
    pub number: u64,
    pub linktype: u32,
    /// Microseconds since the Unix epoch.
    pub ts: i64,
    pub data: &'a [u8],
}

/// A pcapng interface: its link type and how its timestamps read.
struct Interface {
    linktype: u32,
    /// Timestamp units per second.
    resolution: u64,
    /// Seconds added to every timestamp.
    offset: i64,
}

/// Reads the capture `name` from `input`, calling `on_frame` for every packet in order.
/// Returns the number of packets read.
pub fn read(
    name: &str,
    mut input: impl Read + Send,
    on_frame: &mut dyn FnMut(Frame) -> Result<()>,
) -> Result<u64> {
    let mut magic = [0u8; 4];
    let got = read_full(&mut input, &mut magic)?;
    if got < 4 {
        bail_input!("{name}: not a pcap or pcapng capture (it is {got} bytes long)");
    }
    let mut state = State {
        name,
        number: 0,
        offset: 0,
        last_ts: 0,
    };
    // The readers parse the file header from their first read: hand them the whole of it.
    let result = if magic == [0x0a, 0x0d, 0x0d, 0x0a] {
        let head = file_header(magic, &mut input, section_header_len)?;
        match PcapNGReader::new(BUFFER, head.chain(input)) {
            Ok(r) => state.run(r, on_frame),
            Err(e) => Err(state.fail(&e)),
        }
    } else {
        let head = file_header(magic, &mut input, |_| 24)?;
        match LegacyPcapReader::new(BUFFER, head.chain(input)) {
            Ok(r) => state.run(r, on_frame),
            Err(PcapError::HeaderNotRecognized) => bail_input!(
                "{name}: not a pcap or pcapng capture (it starts with bytes {magic:02x?})"
            ),
            Err(e) => Err(state.fail(&e)),
        }
    };
    result.map(|()| state.number)
}

/// Fills `buf` from a reader that may return a few bytes at a time (a pipe); returns how
/// many bytes there were before the end.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(got)
}

/// The capture's file header read whole: the magic, the next 8 bytes, and on to `len` of
/// those 12 bytes (a pipe may hand them over a few at a time).
fn file_header(
    magic: [u8; 4],
    input: &mut impl Read,
    len: fn(&[u8]) -> usize,
) -> Result<std::io::Cursor<Vec<u8>>> {
    let mut head = magic.to_vec();
    head.resize(12, 0);
    let got = 4 + read_full(input, &mut head[4..])?;
    head.truncate(got);
    let want = len(&head).clamp(got, BUFFER);
    if want > got {
        head.resize(want, 0);
        let more = read_full(input, &mut head[got..])?;
        head.truncate(got + more);
    }
    Ok(std::io::Cursor::new(head))
}

/// A pcapng section header block's length (bytes 4..8, in the byte order bytes 8..12 give).
fn section_header_len(head: &[u8]) -> usize {
    if head.len() < 12 {
        return head.len();
    }
    let len: [u8; 4] = head[4..8].try_into().expect("4 bytes");
    if head[8..12] == [0x4d, 0x3c, 0x2b, 0x1a] {
        u32::from_le_bytes(len) as usize
    } else {
        u32::from_be_bytes(len) as usize
    }
}

/// Where reading is, for error messages.
struct State<'n> {
    name: &'n str,
    number: u64,
    offset: u64,
    /// A simple packet block has no timestamp: it takes the one before it.
    last_ts: i64,
}

impl State<'_> {
    fn fail(&self, e: &PcapError<&[u8]>) -> anyhow::Error {
        let what = match e {
            PcapError::UnexpectedEof | PcapError::Incomplete(_) => {
                "the capture ends inside a block (truncated)".to_string()
            }
            PcapError::BufferTooSmall => format!("a block longer than {} bytes", BUFFER),
            PcapError::ReadError => "reading failed".to_string(),
            other => format!("corrupt block ({other:?})"),
        };
        crate::error::bad_input(format!(
            "{}: packet {} at byte offset {}: {what}",
            self.name,
            self.number + 1,
            self.offset
        ))
    }

    fn run(
        &mut self,
        mut reader: impl PcapReaderIterator,
        on_frame: &mut dyn FnMut(Frame) -> Result<()>,
    ) -> Result<()> {
        let (mut legacy, mut interfaces) = (None, Vec::new());
        loop {
            match reader.next() {
                Ok((len, block)) => {
                    self.block(block, &mut legacy, &mut interfaces, on_frame)?;
                    self.offset += len as u64;
                    reader.consume(len);
                }
                Err(PcapError::Eof) => return Ok(()),
                Err(PcapError::Incomplete(_)) => {
                    if let Err(e) = reader.refill() {
                        return Err(self.fail(&e));
                    }
                }
                Err(e) => return Err(self.fail(&e)),
            }
        }
    }

    fn block(
        &mut self,
        block: PcapBlockOwned,
        legacy: &mut Option<(u32, u64)>,
        interfaces: &mut Vec<Interface>,
        on_frame: &mut dyn FnMut(Frame) -> Result<()>,
    ) -> Result<()> {
        let (linktype, ts, data) = match block {
            PcapBlockOwned::LegacyHeader(h) => {
                let per_second = if h.is_nanosecond_precision() {
                    1_000_000_000
                } else {
                    1_000_000
                };
                *legacy = Some((h.network.0 as u32, per_second));
                return Ok(());
            }
            PcapBlockOwned::Legacy(b) => {
                let (linktype, per_second) = legacy.expect("the header comes first");
                let ts = b.ts_sec as i64 * 1_000_000
                    + (b.ts_usec as u64 * 1_000_000 / per_second) as i64;
                (linktype, ts, b.data)
            }
            PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                interfaces.clear();
                return Ok(());
            }
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                interfaces.push(Interface {
                    linktype: idb.linktype.0 as u32,
                    resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                    offset: idb.if_tsoffset,
                });
                return Ok(());
            }
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                let Some(iface) = interfaces.get(epb.if_id as usize) else {
                    bail_input!(
                        "{}: packet {} at byte offset {}: interface {} was never described",
                        self.name,
                        self.number + 1,
                        self.offset,
                        epb.if_id
                    );
                };
                let units = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                let micros = units as u128 * 1_000_000 / iface.resolution as u128;
                let ts = iface.offset * 1_000_000 + micros as i64;
                let len = (epb.caplen as usize).min(epb.data.len());
                (iface.linktype, ts, &epb.data[..len])
            }
            PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                let Some(iface) = interfaces.first() else {
                    bail_input!(
                        "{}: packet {} at byte offset {}: a simple packet block before any interface",
                        self.name,
                        self.number + 1,
                        self.offset
                    );
                };
                let len = (spb.origlen as usize).min(spb.data.len());
                (iface.linktype, self.last_ts, &spb.data[..len])
            }
            PcapBlockOwned::NG(_) => return Ok(()),
        };
        self.number += 1;
        self.last_ts = ts;
        on_frame(Frame {
            number: self.number,
            linktype,
            ts,
            data,
        })
    }
}
