//! What a KIP-848-style group's members looked like before an operation
//! (consumer and streams groups alike), so that the operation writes only
//! the records of what it changed. Only the `watched` member's state is
//! copied: an operation changes one member, and may remove others.

use std::collections::BTreeMap;

/// Per member: its metadata `M` and its current assignment `C`, copied for
/// the watched member only (None: the member was there, not watched).
pub struct MemberSnapshots<M, C> {
    members: BTreeMap<String, Option<(M, C)>>,
}

impl<M: PartialEq, C: PartialEq> MemberSnapshots<M, C> {
    pub fn of<'a, T: 'a>(
        members: impl Iterator<Item = (&'a String, &'a T)>,
        watched: Option<&str>,
        snapshot: impl Fn(&T) -> (M, C),
    ) -> Self {
        MemberSnapshots {
            members: members
                .map(|(id, m)| (id.clone(), (watched == Some(id.as_str())).then(|| snapshot(m))))
                .collect(),
        }
    }

    pub fn none() -> Self {
        MemberSnapshots {
            members: BTreeMap::new(),
        }
    }

    /// What changed in the members, `now` against before: the members
    /// gone, then those whose metadata and whose current assignment are new
    /// or differ (`snapshot` reads both from a member), in id order.
    pub fn changes<'a, T>(
        &'a self,
        now: &'a BTreeMap<String, T>,
        snapshot: impl Fn(&T) -> (M, C),
    ) -> MemberChanges<'a, M, C> {
        let mut out = MemberChanges {
            gone: self.members.keys().filter(|id| !now.contains_key(*id)).collect(),
            metadata: Vec::new(),
            current: Vec::new(),
        };
        for (id, m) in now {
            let (metadata, current) = snapshot(m);
            let before = self.members.get(id);
            if before.is_none_or(|b| b.as_ref().is_some_and(|(b, _)| *b != metadata)) {
                out.metadata.push((id, metadata));
            }
            if before.is_none_or(|b| b.as_ref().is_some_and(|(_, b)| *b != current)) {
                out.current.push((id, current));
            }
        }
        out
    }
}

pub struct MemberChanges<'a, M, C> {
    pub gone: Vec<&'a String>,
    pub metadata: Vec<(&'a String, M)>,
    pub current: Vec<(&'a String, C)>,
}
