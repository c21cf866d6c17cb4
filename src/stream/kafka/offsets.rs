//! Which offsets may be committed: per partition, the first message whose output the broker
//! has not yet acknowledged, or the one after the last message handled. Committing that and
//! never more is the whole at-least-once promise: a replica killed at any moment leaves only
//! messages after the commit, which whoever gets the partition scores again.

use std::collections::{BTreeMap, BTreeSet};

/// Per partition of the input topic this replica owns.
#[derive(Default)]
pub struct Offsets {
    parts: BTreeMap<i32, Part>,
    /// Per partition, bumped whenever it is given away: a message is tagged with its
    /// partition's ownership when fetched, so that what was fetched, scored or acknowledged
    /// under an earlier ownership is never taken for this one's (whoever owns the partition
    /// fetches it again from the last commit).
    generations: BTreeMap<i32, u64>,
}

#[derive(Default)]
struct Part {
    /// The offset after the last message handled (scored and written, or sent).
    next: Option<i64>,
    /// Offsets whose output is sent and not yet acknowledged.
    in_flight: BTreeSet<i64>,
    /// The last offset committed.
    committed: Option<i64>,
}

impl Part {
    fn position(&self) -> Option<i64> {
        self.in_flight.first().copied().or(self.next)
    }
}

impl Offsets {
    /// The current ownership of `partition`, for a message fetched from it now.
    pub fn generation(&self, partition: i32) -> u64 {
        self.generations.get(&partition).copied().unwrap_or(0)
    }

    /// A message fetched in `generation` is handled: its output is written (`awaiting:
    /// false`) or sent and awaiting the broker's acknowledgement. One fetched before its
    /// partition was given away is not tracked: whoever owns it now scores it again.
    pub fn handled(&mut self, generation: u64, partition: i32, offset: i64, awaiting: bool) {
        if generation != self.generation(partition) {
            return;
        }
        let part = self.parts.entry(partition).or_default();
        part.next = Some(part.next.map_or(offset + 1, |n| n.max(offset + 1)));
        if awaiting {
            part.in_flight.insert(offset);
        }
    }

    /// The broker acknowledged the output of `offset`, sent in `generation`.
    pub fn acknowledged(&mut self, generation: u64, partition: i32, offset: i64) {
        if generation == self.generation(partition)
            && let Some(part) = self.parts.get_mut(&partition)
        {
            part.in_flight.remove(&offset);
        }
    }

    /// Outputs sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.parts.values().map(|p| p.in_flight.len()).sum()
    }

    /// The offsets that may be committed and are past the last commit: (partition, offset).
    pub fn committable(&self) -> Vec<(i32, i64)> {
        let ahead = |(&partition, part): (&i32, &Part)| {
            let at = part.position()?;
            (part.committed < Some(at)).then_some((partition, at))
        };
        self.parts.iter().filter_map(ahead).collect()
    }

    /// The broker stored these commits.
    pub fn committed(&mut self, done: &[(i32, i64)]) {
        for &(partition, offset) in done {
            if let Some(part) = self.parts.get_mut(&partition) {
                part.committed = part.committed.max(Some(offset));
            }
        }
    }

    /// Partitions given away (a rebalance): nothing of theirs is committed any more.
    pub fn forget(&mut self, partitions: &[i32]) {
        for p in partitions {
            self.parts.remove(p);
            *self.generations.entry(*p).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_stops_at_the_first_unacknowledged_output() {
        let mut o = Offsets::default();
        let g = o.generation(0);
        for offset in 10..15 {
            o.handled(g, 0, offset, true);
        }
        o.handled(g, 1, 7, false);
        assert_eq!(o.committable(), vec![(0, 10), (1, 8)]);
        o.acknowledged(g, 0, 10);
        o.acknowledged(g, 0, 12);
        assert_eq!(o.committable(), vec![(0, 11), (1, 8)]);
        o.committed(&[(0, 11), (1, 8)]);
        assert_eq!(o.committable(), vec![]);
        for offset in [11, 13, 14] {
            o.acknowledged(g, 0, offset);
        }
        assert_eq!(o.committable(), vec![(0, 15)]);
        assert_eq!(o.in_flight(), 0);
    }

    #[test]
    fn what_comes_from_an_earlier_ownership_is_ignored() {
        let mut o = Offsets::default();
        let (before, other) = (o.generation(3), o.generation(4));
        o.handled(before, 3, 100, true);
        o.handled(other, 4, 7, true);
        o.forget(&[3]);
        assert_eq!(o.committable(), vec![(4, 7)], "partition 4 is still owned");
        o.handled(before, 3, 101, false);
        assert_eq!(
            o.committable(),
            vec![(4, 7)],
            "fetched before 3 was given away"
        );
        let now = o.generation(3);
        o.handled(now, 3, 90, true);
        o.acknowledged(before, 3, 90);
        assert_eq!(o.committable(), vec![(3, 90), (4, 7)]);
        o.acknowledged(now, 3, 90);
        o.acknowledged(other, 4, 7);
        assert_eq!(o.committable(), vec![(3, 91), (4, 8)]);
    }
}
