//! State batches: spans of offsets of a share-partition with one delivery
//! state and count, as `__share_group_state` and the share-group-state APIs
//! carry them. Combining keeps, for each offset, the batch that has gone
//! furthest (the higher delivery count, then the later state), as Kafka's
//! PersisterStateBatchCombiner does, and drops what lies below the start.

/// Delivery states as persisted (Kafka's: ACQUIRED is never written).
pub const AVAILABLE: i8 = 0;
pub const ACKNOWLEDGED: i8 = 2;
pub const ARCHIVED: i8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateBatch {
    pub first: i64,
    pub last: i64,
    pub state: i8,
    pub count: i16,
}

impl StateBatch {
    fn rank(&self) -> (i16, i8) {
        (self.count, self.state)
    }
}

/// The state batches of the share-group-state APIs, both ways.
macro_rules! wire_batch {
    ($wire:ty) => {
        impl From<&$wire> for StateBatch {
            fn from(b: &$wire) -> StateBatch {
                StateBatch {
                    first: b.first_offset,
                    last: b.last_offset,
                    state: b.delivery_state,
                    count: b.delivery_count,
                }
            }
        }

        impl From<&StateBatch> for $wire {
            fn from(b: &StateBatch) -> $wire {
                <$wire>::default()
                    .with_first_offset(b.first)
                    .with_last_offset(b.last)
                    .with_delivery_state(b.state)
                    .with_delivery_count(b.count)
            }
        }
    };
}

wire_batch!(kafka_protocol::messages::read_share_group_state_response::StateBatch);
wire_batch!(kafka_protocol::messages::write_share_group_state_request::StateBatch);

/// `so_far` and `new` made one list of non-overlapping batches in offset
/// order, from `start` on (-1: no start to cut at).
pub fn combine(so_far: &[StateBatch], new: &[StateBatch], start: i64) -> Vec<StateBatch> {
    let all: Vec<StateBatch> = so_far
        .iter()
        .chain(new)
        .filter(|b| b.first <= b.last && (start < 0 || b.last >= start))
        .map(|b| StateBatch {
            first: if start >= 0 { b.first.max(start) } else { b.first },
            ..*b
        })
        .collect();
    // Every place where some batch begins or ends splits the range; each
    // piece takes the best batch covering it.
    let mut cuts: Vec<i64> = all.iter().flat_map(|b| [b.first, b.last + 1]).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out: Vec<StateBatch> = Vec::new();
    for piece in cuts.windows(2) {
        let (first, last) = (piece[0], piece[1] - 1);
        let best = all
            .iter()
            .filter(|b| b.first <= first && b.last >= last)
            .max_by_key(|b| b.rank());
        let Some(best) = best else { continue };
        match out.last_mut() {
            Some(prev) if prev.last + 1 == first && prev.rank() == best.rank() => prev.last = last,
            _ => out.push(StateBatch { first, last, ..*best }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(first: i64, last: i64, state: i8, count: i16) -> StateBatch {
        StateBatch {
            first,
            last,
            state,
            count,
        }
    }

    #[test]
    fn the_batch_delivered_more_often_wins_where_batches_overlap() {
        let so_far = [b(0, 9, AVAILABLE, 1)];
        let new = [b(3, 5, ACKNOWLEDGED, 1), b(8, 12, AVAILABLE, 2)];
        assert_eq!(
            combine(&so_far, &new, -1),
            vec![
                b(0, 2, AVAILABLE, 1),
                b(3, 5, ACKNOWLEDGED, 1),
                b(6, 7, AVAILABLE, 1),
                b(8, 12, AVAILABLE, 2)
            ]
        );
        // An older, lesser batch written later changes nothing.
        assert_eq!(
            combine(&[b(0, 4, ARCHIVED, 3)], &[b(0, 4, AVAILABLE, 1)], -1),
            vec![b(0, 4, ARCHIVED, 3)]
        );
    }

    #[test]
    fn batches_below_the_start_go_and_equal_neighbours_join() {
        let so_far = [b(0, 4, ACKNOWLEDGED, 1), b(5, 9, AVAILABLE, 1)];
        let new = [b(5, 9, ACKNOWLEDGED, 1)];
        assert_eq!(combine(&so_far, &new, 2), vec![b(2, 9, ACKNOWLEDGED, 1)]);
        assert_eq!(combine(&so_far, &new, 10), vec![]);
    }
}
