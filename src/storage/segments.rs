//! `LogSegments`: a log's segments in offset order, the sealed ones and the
//! active one (which always exists, so a log is never without a place to
//! append), with lookup by offset. Memory only: the files are the segments'.

use super::segment::LogSegment;
use std::collections::BTreeMap;

pub struct LogSegments {
    sealed: BTreeMap<i64, LogSegment>,
    active: LogSegment,
}

impl LogSegments {
    pub fn new(active: LogSegment) -> Self {
        LogSegments {
            sealed: BTreeMap::new(),
            active,
        }
    }

    /// The segments found on disk, the last one active. None when there are none.
    pub fn from_segments(segments: impl IntoIterator<Item = LogSegment>) -> Option<Self> {
        let mut sealed: BTreeMap<i64, LogSegment> = segments.into_iter().map(|s| (s.base_offset(), s)).collect();
        let (_, active) = sealed.pop_last()?;
        Some(LogSegments { sealed, active })
    }

    pub fn active(&self) -> &LogSegment {
        &self.active
    }

    pub fn active_mut(&mut self) -> &mut LogSegment {
        &mut self.active
    }

    pub fn len(&self) -> usize {
        self.sealed.len() + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn first_base(&self) -> i64 {
        self.sealed.keys().next().copied().unwrap_or(self.active.base_offset())
    }

    pub fn bases(&self) -> impl DoubleEndedIterator<Item = i64> + '_ {
        self.iter().map(LogSegment::base_offset)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &LogSegment> {
        self.sealed.values().chain(std::iter::once(&self.active))
    }

    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut LogSegment> {
        self.sealed.values_mut().chain(std::iter::once(&mut self.active))
    }

    pub fn sealed_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut LogSegment> {
        self.sealed.values_mut()
    }

    pub fn size_bytes(&self) -> u64 {
        self.iter().map(LogSegment::size).sum()
    }

    /// The base offset of the segment that would hold `offset`: the last one
    /// starting at or before it.
    pub fn floor_base(&self, offset: i64) -> Option<i64> {
        if offset >= self.active.base_offset() {
            return Some(self.active.base_offset());
        }
        self.sealed.range(..=offset).next_back().map(|(base, _)| *base)
    }

    /// The segments from the one holding `offset` (or the first) onwards.
    pub fn from_offset_mut(&mut self, offset: i64) -> impl Iterator<Item = &mut LogSegment> {
        let start = self.floor_base(offset).unwrap_or(i64::MIN);
        self.sealed
            .range_mut(start..)
            .map(|(_, s)| s)
            .chain(std::iter::once(&mut self.active))
    }

    pub fn get(&self, base: i64) -> Option<&LogSegment> {
        if base == self.active.base_offset() {
            return Some(&self.active);
        }
        self.sealed.get(&base)
    }

    pub fn get_mut(&mut self, base: i64) -> Option<&mut LogSegment> {
        if base == self.active.base_offset() {
            return Some(&mut self.active);
        }
        self.sealed.get_mut(&base)
    }

    /// Where the segment at `base` ends: the next segment's base offset.
    /// None for the active segment (it ends at the log end).
    pub fn end_of(&self, base: i64) -> Option<i64> {
        if base >= self.active.base_offset() {
            return None;
        }
        let next = self.sealed.range(base + 1..).next().map(|(b, _)| *b);
        Some(next.unwrap_or(self.active.base_offset()))
    }

    /// Makes `next` the active segment; the active one joins the sealed.
    pub fn push_active(&mut self, next: LogSegment) {
        let previous = std::mem::replace(&mut self.active, next);
        self.sealed.insert(previous.base_offset(), previous);
    }

    /// Makes `segment` the active one in place of the current, which is
    /// returned (truncation: a sealed segment is written again).
    pub fn replace_active(&mut self, segment: LogSegment) -> LogSegment {
        std::mem::replace(&mut self.active, segment)
    }

    /// Takes a sealed segment out (the active one stays).
    pub fn remove_sealed(&mut self, base: i64) -> Option<LogSegment> {
        self.sealed.remove(&base)
    }

    /// Adds a sealed segment (below the active one), or replaces the one
    /// with its base offset.
    pub fn insert_sealed(&mut self, segment: LogSegment) {
        self.sealed.insert(segment.base_offset(), segment);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_segment_holding_an_offset_and_where_each_ends() {
        let dir = tempfile::tempdir().unwrap();
        let segment = |base| LogSegment::create(dir.path(), base, 100, 0).unwrap();
        let mut segments = LogSegments::from_segments([segment(20), segment(0), segment(10)]).unwrap();
        assert_eq!(segments.active().base_offset(), 20);
        assert_eq!(segments.bases().collect::<Vec<_>>(), vec![0, 10, 20]);
        assert_eq!(
            [-1, 0, 9, 10, 25].map(|o| segments.floor_base(o)),
            [None, Some(0), Some(0), Some(10), Some(20)]
        );
        assert_eq!([0, 10, 20].map(|b| segments.end_of(b)), [Some(10), Some(20), None]);
        let from: Vec<i64> = segments.from_offset_mut(12).map(|s| s.base_offset()).collect();
        assert_eq!(from, vec![10, 20]);
        segments.push_active(segment(30));
        assert_eq!((segments.len(), segments.end_of(20)), (4, Some(30)));
        assert!(segments.remove_sealed(0).is_some() && segments.remove_sealed(30).is_none());
        assert_eq!(segments.first_base(), 10);
        assert!(LogSegments::from_segments([]).is_none());
    }
}
