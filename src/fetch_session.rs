//! Incremental fetch sessions (KIP-227). A fetcher that opens a session sends
//! its partitions once; later fetches name only what changed (new offsets,
//! partitions added or forgotten), and the answers carry only the partitions
//! with something to say: records, a moved high watermark or log start, an
//! error, a diverging epoch or a preferred read replica. At thousands of
//! partitions this keeps requests and responses small.
//!
//! As in Kafka: sessions live in a broker-wide cache of
//! `max.incremental.fetch.session.cache.slots` entries; a full cache makes
//! room by evicting a session unused for two minutes, else a smaller one
//! (followers' sessions before consumers' are kept). Partitions that answered
//! move to the back of their session, so the fetch budget goes round them.

use indexmap::IndexMap;
use kafka_protocol::messages::TopicName;
use kafka_protocol::ResponseError;
use std::collections::HashMap;
use std::sync::Mutex;
use uuid::Uuid;

/// A session unused this long may be evicted for any new one (Kafka's
/// MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS); younger ones only for a
/// bigger or privileged one once they are this old.
const EVICTION_MS: i64 = 120_000;

/// The epoch of a full fetch that asks for a session.
pub const INITIAL_EPOCH: i32 = 0;
/// The epoch of a full fetch that wants no session (and closes its own).
pub const FINAL_EPOCH: i32 = -1;

/// A partition as the fetcher names it: by topic id from Fetch v13, by
/// name before (the other left empty).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    pub topic_id: Uuid,
    pub topic: TopicName,
    pub partition: i32,
}

/// What a fetcher asks of one partition.
#[derive(Debug, Clone)]
pub struct PartitionRequest {
    pub key: PartitionKey,
    pub fetch_offset: i64,
    pub max_bytes: i32,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
    pub log_start_offset: i64,
}

/// What the last answer for a partition told the fetcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Told {
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// Whether an answer must be sent in an incremental response.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub told: Told,
    pub has_records: bool,
    pub error: bool,
    /// A diverging epoch or a preferred read replica: news by itself.
    pub redirect: bool,
}

/// A partition in a session: what was asked of it (its key is the map's)
/// and what it was told.
struct Cached {
    asked: Asked,
    /// None until answered, and after an error: the next answer is sent.
    told: Option<Told>,
}

/// A `PartitionRequest` without its key: sessions of thousands of
/// partitions stay small.
#[derive(Clone, Copy)]
struct Asked {
    fetch_offset: i64,
    max_bytes: i32,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
    log_start_offset: i64,
}

impl Asked {
    fn of(r: &PartitionRequest) -> Asked {
        Asked {
            fetch_offset: r.fetch_offset,
            max_bytes: r.max_bytes,
            current_leader_epoch: r.current_leader_epoch,
            last_fetched_epoch: r.last_fetched_epoch,
            log_start_offset: r.log_start_offset,
        }
    }

    fn request(&self, key: &PartitionKey) -> PartitionRequest {
        PartitionRequest {
            key: key.clone(),
            fetch_offset: self.fetch_offset,
            max_bytes: self.max_bytes,
            current_leader_epoch: self.current_leader_epoch,
            last_fetched_epoch: self.last_fetched_epoch,
            log_start_offset: self.log_start_offset,
        }
    }
}

struct Session {
    privileged: bool,
    by_id: bool,
    created_ms: i64,
    last_used_ms: i64,
    /// The epoch the next incremental fetch must carry.
    epoch: i32,
    partitions: IndexMap<PartitionKey, Cached>,
}

/// How to answer one Fetch.
#[derive(Debug)]
pub enum FetchContext {
    /// Answer the request's partitions in full; no session.
    Sessionless,
    /// Answer in full, then open a session of those partitions.
    Full,
    /// Answer the session's partitions (in its order), sending only news.
    Incremental {
        id: i32,
        /// The session's epoch after this fetch (checked again when answering).
        epoch: i32,
        partitions: Vec<PartitionRequest>,
    },
    /// A session error: the code, and nothing else in the response.
    Error(i16),
}

/// The sessions of this broker.
pub struct FetchSessions {
    slots: usize,
    sessions: Mutex<HashMap<i32, Session>>,
}

fn next_epoch(epoch: i32) -> i32 {
    if epoch < 0 {
        INITIAL_EPOCH
    } else if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

impl FetchSessions {
    pub fn new(slots: usize) -> FetchSessions {
        FetchSessions {
            slots,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sessions open, and the partitions they hold.
    pub fn size(&self) -> (usize, usize) {
        let sessions = self.lock();
        (sessions.len(), sessions.values().map(|s| s.partitions.len()).sum())
    }

    /// Kafka's FetchManager.newContext: what this fetch is, given its session
    /// id and epoch, the partitions it names and the ones it forgets.
    pub fn context(
        &self,
        session_id: i32,
        epoch: i32,
        by_id: bool,
        requested: &[PartitionRequest],
        forgotten: &[PartitionKey],
        now_ms: i64,
    ) -> FetchContext {
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            // A full fetch closes the session it names.
            if session_id != 0 {
                self.lock().remove(&session_id);
            }
            return match epoch {
                FINAL_EPOCH => FetchContext::Sessionless,
                _ => FetchContext::Full,
            };
        }
        let mut sessions = self.lock();
        let Some(session) = sessions.get_mut(&session_id) else {
            return FetchContext::Error(ResponseError::FetchSessionIdNotFound.code());
        };
        if session.epoch != epoch {
            return FetchContext::Error(ResponseError::InvalidFetchSessionEpoch.code());
        }
        if session.by_id != by_id {
            return FetchContext::Error(ResponseError::FetchSessionTopicIdError.code());
        }
        for r in requested {
            match session.partitions.get_mut(&r.key) {
                Some(cached) => cached.asked = Asked::of(r),
                None => {
                    let asked = Asked::of(r);
                    session.partitions.insert(r.key.clone(), Cached { asked, told: None });
                }
            }
        }
        for key in forgotten {
            session.partitions.shift_remove(key);
        }
        if session.partitions.is_empty() {
            sessions.remove(&session_id);
            return FetchContext::Sessionless;
        }
        session.last_used_ms = now_ms;
        session.epoch = next_epoch(session.epoch);
        FetchContext::Incremental {
            id: session_id,
            epoch: session.epoch,
            partitions: session.partitions.iter().map(|(k, c)| c.asked.request(k)).collect(),
        }
    }

    /// After a full fetch: opens a session of its partitions and what they
    /// were told, if there is room or a session can be evicted for it.
    /// Returns its id, or 0 (no session: the fetcher goes on with full fetches).
    pub fn open(
        &self,
        privileged: bool,
        by_id: bool,
        answered: impl ExactSizeIterator<Item = (PartitionRequest, Answer)>,
        now_ms: i64,
    ) -> i32 {
        if self.slots == 0 || answered.len() == 0 {
            return 0;
        }
        // Built before the lock: thousands of partitions take a while.
        let partitions: IndexMap<PartitionKey, Cached> = answered
            .map(|(request, answer)| {
                let told = (!answer.error).then_some(answer.told);
                let asked = Asked::of(&request);
                (request.key, Cached { asked, told })
            })
            .collect();
        let mut sessions = self.lock();
        if sessions.len() >= self.slots && !evict_for(&mut sessions, privileged, partitions.len(), now_ms) {
            return 0;
        }
        let id = loop {
            let id = rand::random_range(1..i32::MAX);
            if !sessions.contains_key(&id) {
                break id;
            }
        };
        sessions.insert(
            id,
            Session {
                privileged,
                by_id,
                created_ms: now_ms,
                last_used_ms: now_ms,
                epoch: next_epoch(INITIAL_EPOCH),
                partitions,
            },
        );
        id
    }

    /// For an incremental fetch's answers (in the order of its partitions,
    /// which no other fetch can change while the epoch holds): which to
    /// send. Records what each sent one told, and moves those to the back of
    /// the session. Err when the session changed meanwhile (a duplicate
    /// request): the code to answer with.
    pub fn news(&self, id: i32, epoch: i32, answers: &[Answer]) -> Result<Vec<bool>, i16> {
        let mut sessions = self.lock();
        let Some(session) = sessions
            .get_mut(&id)
            .filter(|s| s.epoch == epoch && s.partitions.len() == answers.len())
        else {
            return Err(ResponseError::InvalidFetchSessionEpoch.code());
        };
        let mut send = Vec::with_capacity(answers.len());
        let mut moved = 0;
        for (cached, answer) in session.partitions.values_mut().zip(answers) {
            let news = answer.has_records || answer.error || answer.redirect || cached.told != Some(answer.told);
            cached.told = (!answer.error).then_some(answer.told);
            moved += usize::from(news);
            send.push(news);
        }
        if moved > 0 {
            // Rebuilt rather than moved one by one: O(n) for any number sent.
            let (back, front): (Vec<_>, Vec<_>) = std::mem::take(&mut session.partitions)
                .into_iter()
                .zip(&send)
                .partition(|(_, sent)| **sent);
            session.partitions = front.into_iter().chain(back).map(|(entry, _)| entry).collect();
        }
        Ok(send)
    }
}

/// Kafka's tryEvict: a session unused for EVICTION_MS goes first; else the
/// least valuable evictable one (consumer before follower, then fewer
/// partitions) if the new one is worth more.
fn evict_for(sessions: &mut HashMap<i32, Session>, privileged: bool, size: usize, now_ms: i64) -> bool {
    let stalest = sessions.iter().min_by_key(|(id, s)| (s.last_used_ms, **id));
    if let Some((&id, s)) = stalest {
        if now_ms - s.last_used_ms > EVICTION_MS {
            sessions.remove(&id);
            return true;
        }
    }
    let old = |s: &Session| now_ms - s.created_ms > EVICTION_MS;
    let candidate = sessions
        .iter()
        .filter(|(_, s)| old(s) || (privileged && !s.privileged))
        .min_by_key(|(id, s)| (s.privileged, s.partitions.len(), **id));
    match candidate {
        Some((&id, s)) if (privileged, size) > (s.privileged, s.partitions.len()) => {
            sessions.remove(&id);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> PartitionKey {
        PartitionKey {
            topic_id: Uuid::nil(),
            topic: TopicName(kafka_protocol::protocol::StrBytes::from_static_str("t")),
            partition: p,
        }
    }

    fn request(p: i32, offset: i64) -> PartitionRequest {
        PartitionRequest {
            key: key(p),
            fetch_offset: offset,
            max_bytes: 1024,
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
            log_start_offset: -1,
        }
    }

    fn answer(hw: i64, has_records: bool) -> Answer {
        Answer {
            told: Told {
                high_watermark: hw,
                log_start_offset: 0,
            },
            has_records,
            error: false,
            redirect: false,
        }
    }

    fn open(sessions: &FetchSessions, partitions: i32, privileged: bool, now: i64) -> i32 {
        let answered = (0..partitions).map(|p| (request(p, 0), answer(5, true)));
        sessions.open(privileged, false, answered, now)
    }

    fn order(context: &FetchContext) -> Vec<i32> {
        match context {
            FetchContext::Incremental { partitions, .. } => partitions.iter().map(|p| p.key.partition).collect(),
            other => panic!("not incremental: {other:?}"),
        }
    }

    #[test]
    fn only_news_is_sent_and_what_answered_goes_to_the_back() {
        let sessions = FetchSessions::new(10);
        let id = open(&sessions, 3, false, 0);
        assert!(id > 0);
        let context = sessions.context(id, 1, false, &[], &[], 1);
        assert_eq!(order(&context), vec![0, 1, 2]);
        // Partition 1 has records, 2 a moved high watermark, 0 nothing new.
        let answers = vec![answer(5, false), answer(5, true), answer(6, false)];
        assert_eq!(sessions.news(id, 2, &answers), Ok(vec![false, true, true]));
        let context = sessions.context(id, 2, false, &[request(0, 7)], &[], 2);
        assert_eq!(order(&context), vec![0, 1, 2]);
        let FetchContext::Incremental { partitions, .. } = &context else {
            unreachable!()
        };
        assert_eq!(partitions[0].fetch_offset, 7);
        // The high watermark told last time is not news again.
        let answers = vec![answer(5, true), answer(5, false), answer(6, false)];
        assert_eq!(sessions.news(id, 3, &answers), Ok(vec![true, false, false]));
        assert_eq!(order(&sessions.context(id, 3, false, &[], &[key(1)], 3)), vec![2, 0]);
    }

    #[test]
    fn an_error_is_always_sent_and_the_answer_after_it_too() {
        let sessions = FetchSessions::new(10);
        let id = open(&sessions, 1, false, 0);
        sessions.context(id, 1, false, &[], &[], 1);
        let mut failed = answer(5, false);
        failed.error = true;
        assert_eq!(sessions.news(id, 2, &[failed]), Ok(vec![true]));
        sessions.context(id, 2, false, &[], &[], 1);
        assert_eq!(sessions.news(id, 3, &[answer(5, false)]), Ok(vec![true]));
    }

    #[test]
    fn wrong_epochs_unknown_ids_and_a_change_of_naming_are_refused() {
        let sessions = FetchSessions::new(10);
        let id = open(&sessions, 2, false, 0);
        let refused = |c: FetchContext| match c {
            FetchContext::Error(code) => code,
            other => panic!("accepted: {other:?}"),
        };
        assert_eq!(refused(sessions.context(id, 5, false, &[], &[], 1)), 71);
        assert_eq!(refused(sessions.context(id + 1, 1, false, &[], &[], 1)), 70);
        assert_eq!(refused(sessions.context(id, 1, true, &[], &[], 1)), 106);
        // A duplicate of a fetch already answered: its epoch has moved on.
        sessions.context(id, 1, false, &[], &[], 1);
        assert_eq!(sessions.news(id, 1, &[]), Err(71));
        // A full fetch naming the session closes it.
        assert!(matches!(
            sessions.context(id, FINAL_EPOCH, false, &[], &[], 1),
            FetchContext::Sessionless
        ));
        assert_eq!(sessions.size(), (0, 0));
    }

    #[test]
    fn forgetting_every_partition_closes_the_session() {
        let sessions = FetchSessions::new(10);
        let id = open(&sessions, 2, false, 0);
        let context = sessions.context(id, 1, false, &[], &[key(0), key(1)], 1);
        assert!(matches!(context, FetchContext::Sessionless));
        assert_eq!(sessions.size(), (0, 0));
    }

    #[test]
    fn a_full_cache_evicts_stale_then_smaller_sessions_and_keeps_followers() {
        let sessions = FetchSessions::new(2);
        let small = open(&sessions, 1, false, 0);
        let follower = open(&sessions, 1, true, 0);
        // Both young: a new consumer session finds no room.
        assert_eq!(open(&sessions, 5, false, 1_000), 0);
        // A follower's session may take a consumer's place at once.
        let second_follower = open(&sessions, 1, true, 1_000);
        assert!(second_follower > 0);
        assert!(matches!(
            sessions.context(small, 1, false, &[], &[], 1_000),
            FetchContext::Error(70)
        ));
        // Old enough, a bigger consumer session takes no follower's place...
        sessions.context(follower, 1, false, &[], &[], 100_000);
        sessions.context(second_follower, 1, false, &[], &[], 100_000);
        assert_eq!(open(&sessions, 5, false, 130_000), 0);
        // ...but one unused for two minutes goes for anyone.
        assert!(open(&sessions, 1, false, 221_000) > 0);
        assert_eq!(sessions.size().0, 2);
    }

    #[test]
    fn no_slots_means_no_sessions_and_epochs_wrap_past_zero() {
        assert_eq!(open(&FetchSessions::new(0), 3, false, 0), 0);
        assert_eq!(next_epoch(i32::MAX), 1);
        assert_eq!(next_epoch(INITIAL_EPOCH), 1);
    }
}
