//! What a partition's leader knows of its followers (Kafka's Partition and
//! Replica state at the leader): each follower's log end offset from its
//! fetches and when it was last caught up; from them the high watermark, the
//! ISR members to drop (`replica.lag.time.max.ms`) and the followers ready to
//! join, and whether an acks=all write is done. Pure logic on times given by
//! the caller, so that it is tested deterministically; the replica manager
//! feeds it fetches and appends and sends the ISR changes to the controller.

use std::collections::{BTreeMap, BTreeSet};

/// Kafka's offset for "not known yet".
pub const UNKNOWN_OFFSET: i64 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    pub log_end_offset: i64,
    /// The last time the follower had everything the leader had.
    pub last_caught_up_ms: i64,
    /// The leader's log end offset at the follower's previous fetch, and when that was.
    last_fetch_leader_end: i64,
    last_fetch_ms: i64,
}

impl FollowerProgress {
    /// Kafka's `isCaughtUp`: at the leader's end, or caught up within the lag bound.
    fn is_caught_up(&self, leader_end: i64, now_ms: i64, max_lag_ms: i64) -> bool {
        self.log_end_offset == leader_end || now_ms - self.last_caught_up_ms <= max_lag_ms
    }
}

/// How an acks=all write stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcksAll {
    /// The high watermark has not reached it yet.
    Waiting,
    Done,
    /// Reached, but with fewer in-sync replicas than min.insync.replicas
    /// (NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    NotEnoughReplicasAfterAppend,
}

#[derive(Debug)]
pub struct LeaderState {
    leader: i32,
    isr: BTreeSet<i32>,
    followers: BTreeMap<i32, FollowerProgress>,
    high_watermark: i64,
    /// The first offset of this leader's epoch: a follower joins the ISR
    /// only once it has reached it (it has this leader's history).
    epoch_start_offset: i64,
    max_lag_ms: i64,
}

impl LeaderState {
    /// This broker becomes the leader (Kafka's makeLeader): the followers'
    /// offsets are unknown until they fetch; ISR members count as caught up
    /// now, so none is dropped before it had `max_lag_ms` to fetch.
    pub fn new(
        leader: i32,
        replicas: &[i32],
        isr: &[i32],
        leader_end: i64,
        high_watermark: i64,
        now_ms: i64,
        max_lag_ms: i64,
    ) -> LeaderState {
        let isr: BTreeSet<i32> = isr.iter().copied().collect();
        let followers = replicas
            .iter()
            .filter(|r| **r != leader)
            .map(|r| {
                let in_sync = isr.contains(r);
                let progress = FollowerProgress {
                    log_end_offset: UNKNOWN_OFFSET,
                    last_caught_up_ms: if in_sync { now_ms } else { 0 },
                    last_fetch_leader_end: if in_sync { leader_end } else { UNKNOWN_OFFSET },
                    last_fetch_ms: if in_sync { now_ms } else { 0 },
                };
                (*r, progress)
            })
            .collect();
        LeaderState {
            leader,
            isr,
            followers,
            high_watermark,
            epoch_start_offset: leader_end,
            max_lag_ms,
        }
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn isr(&self) -> &BTreeSet<i32> {
        &self.isr
    }

    pub fn follower(&self, id: i32) -> Option<&FollowerProgress> {
        self.followers.get(&id)
    }

    /// A follower fetched from `fetch_offset` (so it has everything before
    /// it) when the leader's log ended at `leader_end`. Returns the new high
    /// watermark when it moved.
    pub fn on_follower_fetch(&mut self, follower: i32, fetch_offset: i64, leader_end: i64, now_ms: i64) -> Option<i64> {
        let p = self.followers.get_mut(&follower)?;
        // Kafka's updateFetchState: caught up now if at the end, or caught up
        // as of its previous fetch if it has reached what the leader had then.
        if fetch_offset >= leader_end {
            p.last_caught_up_ms = p.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= p.last_fetch_leader_end {
            p.last_caught_up_ms = p.last_caught_up_ms.max(p.last_fetch_ms);
        }
        p.log_end_offset = fetch_offset;
        p.last_fetch_leader_end = leader_end;
        p.last_fetch_ms = now_ms;
        self.maybe_advance_high_watermark(leader_end, now_ms)
    }

    /// The leader appended (its log now ends at `leader_end`): alone in the
    /// ISR, that is enough to move the high watermark.
    pub fn on_leader_append(&mut self, leader_end: i64, now_ms: i64) -> Option<i64> {
        self.maybe_advance_high_watermark(leader_end, now_ms)
    }

    /// Kafka's maybeIncrementLeaderHW: the least log end offset among the
    /// leader and every ISR member — a lagging one holds writes back until
    /// the controller has committed its removal (a leader cut off from the
    /// controller and its followers must not acknowledge alone); it never
    /// moves back.
    fn maybe_advance_high_watermark(&mut self, leader_end: i64, _now_ms: i64) -> Option<i64> {
        let mut candidate = leader_end;
        for (id, p) in &self.followers {
            if self.isr.contains(id) {
                candidate = candidate.min(p.log_end_offset);
            }
        }
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            Some(candidate)
        } else {
            None
        }
    }

    /// ISR members (the leader aside) not caught up within the lag bound:
    /// to be dropped (Kafka's getOutOfSyncReplicas).
    pub fn out_of_sync(&self, leader_end: i64, now_ms: i64) -> Vec<i32> {
        self.followers
            .iter()
            .filter(|(id, p)| self.isr.contains(id) && !p.is_caught_up(leader_end, now_ms, self.max_lag_ms))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Followers outside the ISR that have caught up to the high watermark
    /// and to this leader's epoch: to be added (Kafka's isFollowerInSync).
    pub fn ready_to_join(&self) -> Vec<i32> {
        self.followers
            .iter()
            .filter(|(id, p)| {
                !self.isr.contains(id)
                    && p.log_end_offset >= self.high_watermark
                    && p.log_end_offset >= self.epoch_start_offset
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// The replicas changed in this leader epoch (a reassignment): joining
    /// ones are tracked from their first fetch, leaving ones forgotten.
    pub fn set_replicas(&mut self, replicas: &[i32]) {
        self.followers.retain(|id, _| replicas.contains(id));
        for r in replicas.iter().filter(|r| **r != self.leader) {
            self.followers.entry(*r).or_insert(FollowerProgress {
                log_end_offset: UNKNOWN_OFFSET,
                last_caught_up_ms: 0,
                last_fetch_leader_end: UNKNOWN_OFFSET,
                last_fetch_ms: 0,
            });
        }
    }

    /// The controller committed a new ISR (the leader is always in it).
    pub fn set_isr(&mut self, isr: &[i32]) {
        self.isr = isr.iter().copied().chain(std::iter::once(self.leader)).collect();
    }

    /// Whether an acks=all write whose last offset is `last_offset` is done
    /// (Kafka's checkEnoughReplicasReachOffset); `min_isr` is the effective
    /// one (already capped at the replication factor).
    pub fn acks_all(&self, last_offset: i64, min_isr: usize) -> AcksAll {
        if self.high_watermark <= last_offset {
            AcksAll::Waiting
        } else if self.isr.len() < min_isr {
            AcksAll::NotEnoughReplicasAfterAppend
        } else {
            AcksAll::Done
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: i64 = 30_000;

    /// Leader 1, followers 2 and 3, all in sync; the log ends at 100, HW 100.
    fn three_in_sync(now: i64) -> LeaderState {
        LeaderState::new(1, &[1, 2, 3], &[1, 2, 3], 100, 100, now, LAG)
    }

    #[test]
    fn the_high_watermark_is_the_least_in_sync_log_end_and_never_moves_back() {
        let mut s = three_in_sync(0);
        // Appended to 110: nobody has fetched yet, the HW stays.
        assert_eq!(s.on_leader_append(110, 1), None);
        assert_eq!(s.on_follower_fetch(2, 110, 110, 2), None, "follower 3 has not fetched");
        assert_eq!(s.on_follower_fetch(3, 105, 110, 3), Some(105));
        assert_eq!(s.on_follower_fetch(3, 110, 110, 4), Some(110));
        // A follower fetching from further back (a restart) never lowers it.
        assert_eq!(s.on_follower_fetch(2, 90, 110, 5), None);
        assert_eq!(s.high_watermark(), 110);
    }

    #[test]
    fn acks_all_waits_for_every_in_sync_replica_then_checks_min_isr() {
        let mut s = three_in_sync(0);
        s.on_leader_append(110, 1);
        assert_eq!(s.acks_all(109, 2), AcksAll::Waiting);
        s.on_follower_fetch(2, 110, 110, 2);
        assert_eq!(s.acks_all(109, 2), AcksAll::Waiting, "follower 3 has not fetched it");
        s.on_follower_fetch(3, 110, 110, 3);
        assert_eq!(s.acks_all(109, 2), AcksAll::Done);
        // With the ISR down to the leader, a reached offset is not enough for min ISR 2.
        s.set_isr(&[1]);
        s.on_leader_append(120, 4);
        assert_eq!(s.acks_all(119, 2), AcksAll::NotEnoughReplicasAfterAppend);
        assert_eq!(s.acks_all(119, 1), AcksAll::Done);
    }

    #[test]
    fn a_follower_silent_past_the_lag_bound_leaves_and_holds_writes_back_until_it_has_left() {
        let mut s = three_in_sync(0);
        s.on_leader_append(110, 1_000);
        s.on_follower_fetch(2, 110, 110, 2_000);
        // Follower 3 stops fetching. Within the bound it holds the HW back.
        assert_eq!(s.high_watermark(), 100);
        assert!(s.out_of_sync(110, LAG).is_empty());
        // Past the bound: out of sync, yet still holding the HW until the
        // controller commits the smaller ISR; then the HW moves without it.
        assert_eq!(s.out_of_sync(110, LAG + 1), vec![3]);
        assert_eq!(s.on_follower_fetch(2, 110, 110, LAG + 1), None);
        s.set_isr(&[2]);
        assert_eq!(s.on_follower_fetch(2, 110, 110, LAG + 2), Some(110));
        // A follower that keeps fetching but never reaches the end is out too.
        let mut t = three_in_sync(0);
        for now in (1..=40).map(|k| k * 1_000) {
            t.on_leader_append(100 + now, now);
            t.on_follower_fetch(2, 100 + now, 100 + now, now);
            // Follower 3 is always 500 behind what the leader had at its previous fetch.
            t.on_follower_fetch(3, 100 + now - 1_500, 100 + now, now);
        }
        assert_eq!(t.out_of_sync(40_100, 40_000), vec![3]);
    }

    #[test]
    fn a_follower_catching_up_joins_once_it_has_this_leaders_epoch() {
        // Leader of a new epoch at 100; follower 3 outside the ISR.
        let mut s = LeaderState::new(1, &[1, 2, 3], &[1, 2], 100, 90, 0, LAG);
        s.on_follower_fetch(2, 100, 100, 1);
        assert_eq!(s.high_watermark(), 100);
        s.on_follower_fetch(3, 95, 100, 2);
        assert!(s.ready_to_join().is_empty(), "below the high watermark");
        s.on_follower_fetch(3, 100, 100, 3);
        assert_eq!(s.ready_to_join(), vec![3]);
        s.set_isr(&[2, 3]);
        assert_eq!(s.isr().iter().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(s.ready_to_join().is_empty());
        // It counts for the HW from now on.
        s.on_leader_append(120, 4);
        s.on_follower_fetch(2, 120, 120, 5);
        assert_eq!(s.high_watermark(), 100);
        s.on_follower_fetch(3, 120, 120, 6);
        assert_eq!(s.high_watermark(), 120);
    }

    #[test]
    fn a_new_leader_gives_its_isr_a_full_lag_bound_and_its_high_watermark_waits_for_fetches() {
        let mut s = three_in_sync(50_000);
        assert!(s.out_of_sync(100, 50_000 + LAG).is_empty());
        assert_eq!(s.out_of_sync(100, 50_000 + LAG + 1), vec![2, 3]);
        // Unknown follower offsets never move the HW, forwards or back.
        assert_eq!(s.on_leader_append(130, 50_001), None);
        assert_eq!(s.high_watermark(), 100);
        // Unknown replicas are ignored.
        assert_eq!(s.on_follower_fetch(9, 130, 130, 50_002), None);
    }
}
