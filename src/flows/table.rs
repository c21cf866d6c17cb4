//! The flow table: packets in, ended flows out, in the order they end.
//!
//! The rules are the corrected CICFlowMeter's, checked as each packet arrives: a flow ends
//! when its next packet comes more than the flow timeout after its first; a TCP flow that saw
//! FIN both ways and then an ACK, or an RST, is ready to end and ends at its next SYN; an ICMP
//! flow ends when a packet's type and code both differ from its own. After a timeout, a TCP
//! connection's next packet starts a flow in the same orientation that carries the
//! connection's time on ("Total TCP Flow Time").
//!
//! So that flows come out while the capture is still being read, and memory stays bounded, the
//! capture's clock also ends flows with no packet to trigger them: at the flow timeout from
//! their first packet, and, for flows ready to end, once the activity timeout passes with no
//! packet. The table holds at most `max_flows` flows; a new one then ends the flow idle
//! longest.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use super::features::{Flow, TcpState};
use super::packet::{ICMP, ICMPV6, Packet, TCP, flag};

/// Timeouts in microseconds and the table's bound.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub flow_timeout: i64,
    pub activity_timeout: i64,
    pub max_flows: usize,
}

/// Why a flow ended, counted for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum End {
    /// FIN both ways and an ACK, or an RST, then a new SYN or quiet.
    Closed,
    Timeout,
    /// An ICMP packet of another type and code.
    IcmpChange,
    /// The table was full (`--max-flows`).
    Evicted,
    EndOfInput,
}

/// Both endpoints, the lower first, and the protocol: the same for both directions.
type Key = (IpAddr, u16, IpAddr, u16, u8);

fn key(p: &Packet) -> Key {
    let (a, b) = ((p.src, p.src_port), (p.dst, p.dst_port));
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    (lo.0, lo.1, hi.0, hi.1, p.protocol)
}

struct Entry {
    flow: Flow,
    /// Creation order, so that index entries are unique and ties break the same way.
    seq: u64,
}

/// The second of a time (µs): flows are ordered by how long they have been idle to the
/// second, so most packets leave that index alone.
fn second(t: i64) -> i64 {
    t.div_euclid(1_000_000)
}

/// What a TCP flow ended by the clock leaves for the connection's next packet.
struct Continuation {
    forward_src: (IpAddr, u16),
    time: i64,
    last_seen: i64,
    was_closed: bool,
}

pub struct Table {
    limits: Limits,
    /// Boxed: a flow's counters are several hundred bytes, and a map that doubles its room
    /// should double pointers, not counters (memory then follows the flows held).
    flows: HashMap<Key, Box<Entry>>,
    by_start: BTreeSet<(i64, u64, Key)>,
    /// By the second of the last packet.
    by_last: BTreeSet<(i64, u64, Key)>,
    /// Flows ready to end, by their last packet.
    closing: BTreeSet<(i64, u64, Key)>,
    continuations: HashMap<Key, Continuation>,
    continuation_order: BTreeSet<(i64, Key)>,
    next_seq: u64,
    /// The capture's clock: the latest packet time seen.
    pub clock: i64,
    /// Packets older than the clock (taken at the clock's time).
    pub out_of_order: u64,
    pub ended: std::collections::BTreeMap<End, u64>,
}

impl Table {
    pub fn new(limits: Limits) -> Table {
        Table {
            limits,
            flows: HashMap::new(),
            by_start: BTreeSet::new(),
            by_last: BTreeSet::new(),
            closing: BTreeSet::new(),
            continuations: HashMap::new(),
            continuation_order: BTreeSet::new(),
            next_seq: 0,
            clock: i64::MIN,
            out_of_order: 0,
            ended: Default::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Adds a packet, handing each flow that ends to `out`.
    pub fn add(&mut self, mut p: Packet, out: &mut dyn FnMut(Flow)) {
        if p.ts < self.clock {
            self.out_of_order += 1;
            p.ts = self.clock;
        }
        self.advance(p.ts, out);
        let k = key(&p);
        let Some(entry) = self.flows.get(&k) else {
            self.start(k, &p, out);
            return;
        };
        let flow = &entry.flow;
        // (A flow past its timeout was ended by the clock before this packet.)
        if flow.tcp == TcpState::Ready && p.has(flag::SYN) {
            let fresh = !p.has(flag::ACK);
            let ended = self.end(&k, End::Closed, out);
            let mut next = Flow::new(&p, fresh || (p.src, p.src_port) == ended.forward_src);
            if !fresh {
                next.connection_before = ended.time + (p.ts - ended.last_seen);
            }
            self.insert(k, next, out);
            return;
        }
        let icmp = matches!(flow.protocol, ICMP | ICMPV6);
        let other_kind = |(t, c): (u8, u8)| flow.icmp.is_some_and(|(ft, fc)| t != ft && c != fc);
        if icmp && p.icmp.is_some_and(other_kind) {
            self.end(&k, End::IcmpChange, out);
            self.insert(k, Flow::new(&p, true), out);
            return;
        }
        self.update(k, &p);
    }

    /// A packet of an existing flow that does not end it.
    fn update(&mut self, k: Key, p: &Packet) {
        let activity = self.limits.activity_timeout;
        let entry = self.flows.get_mut(&k).expect("the flow exists");
        let (seq, before) = (entry.seq, entry.flow.last_seen);
        let flow = &mut entry.flow;
        flow.add(p, activity);
        if flow.protocol == TCP {
            flow.tcp = next_state(flow, p);
        }
        let closing = flow.tcp == TcpState::Ready;
        if second(before) != second(p.ts) {
            self.by_last.remove(&(second(before), seq, k));
            self.by_last.insert((second(p.ts), seq, k));
        }
        // A flow ready to end stays so; each packet moves its place in the queue.
        if closing {
            self.closing.remove(&(before, seq, k));
            self.closing.insert((p.ts, seq, k));
        }
    }

    /// A packet with no flow: a new flow, carrying on a TCP connection the clock ended.
    fn start(&mut self, k: Key, p: &Packet, out: &mut dyn FnMut(Flow)) {
        let mut flow = None;
        if let Some(c) = self.continuations.remove(&k) {
            self.continuation_order.remove(&(c.last_seen, k));
            let fresh = c.was_closed && p.has(flag::SYN) && !p.has(flag::ACK);
            if !fresh {
                let mut f = Flow::new(p, (p.src, p.src_port) == c.forward_src);
                f.connection_before = c.time + (p.ts - c.last_seen);
                flow = Some(f);
            }
        }
        let flow = flow.unwrap_or_else(|| Flow::new(p, true));
        self.insert(k, flow, out);
    }

    fn insert(&mut self, k: Key, flow: Flow, out: &mut dyn FnMut(Flow)) {
        if self.flows.len() >= self.limits.max_flows.max(1)
            && let Some(&(_, _, idle)) = self.by_last.first()
        {
            self.end(&idle, End::Evicted, out);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_start.insert((flow.start, seq, k));
        self.by_last.insert((second(flow.last_seen), seq, k));
        self.flows.insert(k, Box::new(Entry { flow, seq }));
    }

    /// Ends a flow: out of the table and its indexes, counted, handed to `out`; returns what
    /// the connection's next flow would carry on.
    fn end(&mut self, k: &Key, why: End, out: &mut dyn FnMut(Flow)) -> Continuation {
        let Entry { flow, seq } = *self.flows.remove(k).expect("the flow exists");
        self.by_start.remove(&(flow.start, seq, *k));
        self.by_last.remove(&(second(flow.last_seen), seq, *k));
        self.closing.remove(&(flow.last_seen, seq, *k));
        *self.ended.entry(why).or_default() += 1;
        let next = Continuation {
            forward_src: (flow.src, flow.src_port),
            time: flow.connection_before + flow.duration(),
            last_seen: flow.last_seen,
            was_closed: flow.tcp == TcpState::Ready,
        };
        out(flow);
        next
    }

    /// Moves the clock to `now`, ending the flows it times out.
    fn advance(&mut self, now: i64, out: &mut dyn FnMut(Flow)) {
        self.clock = self.clock.max(now);
        self.sweep(self.clock, out);
    }

    /// Ends the flows that are timed out at `now` (the clock, or a live capture's estimate
    /// of it while no packet arrives).
    pub fn sweep(&mut self, now: i64, out: &mut dyn FnMut(Flow)) {
        let Limits {
            flow_timeout,
            activity_timeout,
            ..
        } = self.limits;
        while let Some(&(start, _, k)) = self.by_start.first() {
            if now - start <= flow_timeout {
                break;
            }
            self.end_by_clock(k, End::Timeout, out);
        }
        while let Some(&(last, _, k)) = self.closing.first() {
            if now - last <= activity_timeout {
                break;
            }
            self.end_by_clock(k, End::Closed, out);
        }
        while let Some(&(last, k)) = self.continuation_order.first() {
            if now - last <= flow_timeout {
                break;
            }
            self.continuation_order.remove(&(last, k));
            self.continuations.remove(&k);
        }
    }

    /// Ends a flow with no packet to trigger it, leaving a TCP connection's continuation.
    fn end_by_clock(&mut self, k: Key, why: End, out: &mut dyn FnMut(Flow)) {
        let c = self.end(&k, why, out);
        if k.4 != TCP {
            return;
        }
        let last_seen = c.last_seen;
        if let Some(old) = self.continuations.insert(k, c) {
            self.continuation_order.remove(&(old.last_seen, k));
        }
        self.continuation_order.insert((last_seen, k));
        if self.continuations.len() > self.limits.max_flows
            && let Some((_, old)) = self.continuation_order.pop_first()
        {
            self.continuations.remove(&old);
        }
    }

    /// Ends every flow still open, oldest first.
    pub fn finish(&mut self, out: &mut dyn FnMut(Flow)) {
        while let Some(&(_, _, k)) = self.by_start.first() {
            self.end(&k, End::EndOfInput, out);
        }
    }
}

/// The corrected extractor's TCP states: FIN from one side, then both; an ACK after both
/// FINs, or any RST, makes the flow ready to end.
fn next_state(flow: &Flow, p: &Packet) -> TcpState {
    let state = flow.tcp;
    if p.has(flag::FIN) {
        match state {
            TcpState::Open => TcpState::FirstFin,
            TcpState::FirstFin if flow.fins_both_ways() => TcpState::SecondFin,
            other => other,
        }
    } else if p.has(flag::RST) || (p.has(flag::ACK) && state == TcpState::SecondFin) {
        TcpState::Ready
    } else {
        state
    }
}
