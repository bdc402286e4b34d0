//! Which leases a process should take in one round: the KCL 2.x rules,
//! with a move budget larger than KCL's one steal per round (its users'
//! complaint: rebalancing took minutes).
//!
//! - A lease is *workable* when its shard is not finished (`SHARD_END`) and
//!   every parent still in the table is: children start only after their
//!   parents were read to the end, as KCL requires.
//! - The live processes are the owners of leases that have not expired, and
//!   this one. Each should hold `ceil(workable / live)` leases (the target).
//! - Below the target, a process takes free leases (unowned, or whose owner
//!   stopped renewing) up to the target at once, as KCL does, then steals from
//!   the most loaded process, but only while that process holds at least two
//!   more than the stealer would: each move narrows the spread, so two
//!   processes never trade a lease back and forth, and holdings end within one
//!   of each other. At most `budget` leases are stolen per round.

use std::collections::{BTreeMap, HashSet};

use crate::{Lease, LeaseCheckpoint};

/// What a process knows of its cluster beyond the lease table.
#[derive(Clone, Copy)]
pub struct ClusterHint<'a> {
    /// How many processes are live (0: unknown; then only lease owners count).
    pub nodes: usize,
    /// Whether a lease has been free for so long that it is taken whatever the share
    /// (a process counted in `nodes` is not taking it).
    pub long_free: &'a dyn Fn(&Lease) -> bool,
}

/// The leases process `me` should try to take now (each as observed, for
/// a conditional take), given which leases `is_expired` says lost their owner.
pub fn leases_to_take(leases: &[Lease], me: &str, is_expired: &dyn Fn(&Lease) -> bool, budget: usize) -> Vec<Lease> {
    leases_to_take_among(leases, me, is_expired, budget, ClusterHint { nodes: 0, long_free: &|_| false })
}

/// [`leases_to_take`] in a cluster of `hint.nodes` live processes: the share
/// counts the processes that hold nothing yet, so processes starting together
/// spread without stealing from each other.
pub fn leases_to_take_among(
    leases: &[Lease],
    me: &str,
    is_expired: &dyn Fn(&Lease) -> bool,
    budget: usize,
    hint: ClusterHint<'_>,
) -> Vec<Lease> {
    let finished: HashSet<&str> = leases
        .iter()
        .filter(|lease| lease.checkpoint == LeaseCheckpoint::ShardEnd)
        .map(|lease| lease.key.as_str())
        .collect();
    let present: HashSet<&str> = leases.iter().map(|lease| lease.key.as_str()).collect();
    let workable: Vec<&Lease> = leases
        .iter()
        .filter(|lease| !finished.contains(lease.key.as_str()))
        .filter(|lease| {
            lease
                .parent_shard_ids
                .iter()
                .all(|parent| !present.contains(parent.as_str()) || finished.contains(parent.as_str()))
        })
        .collect();
    let free = |lease: &Lease| lease.owner.as_deref() != Some(me) && (lease.owner.is_none() || is_expired(lease));
    // Live processes and what each holds (leases of expired owners count for nobody).
    let mut held: BTreeMap<&str, Vec<&Lease>> = BTreeMap::from([(me, Vec::new())]);
    for lease in &workable {
        if let Some(owner) = lease.owner.as_deref()
            && (owner == me || !is_expired(lease))
        {
            held.entry(owner).or_default().push(lease);
        }
    }
    // Leases never owned (a new source, a reshard's children) are shared among
    // the cluster's live processes when they are known, so processes starting
    // together spread without stealing; every other lease (released on a
    // clean stop, or of a dead owner) among the owners renewing now, so it is
    // read again at once (the nodes' list lags a stop or a crash).
    let target = workable.len().div_ceil(held.len());
    let mine = held.get(me).map_or(0, Vec::len);
    // A process holding nothing yet shares the never-owned leases still free
    // with the live processes that hold nothing either: 64 leases over three
    // starting one after another go 22, 21, 21, where each taking the whole
    // cluster's share (22) would leave the last 20 and make it steal one.
    let never_owned_free =
        workable.iter().filter(|lease| free(lease) && lease.owner.is_none() && lease.epoch == 0).count();
    let holding = held.values().filter(|leases| !leases.is_empty()).count();
    let waiting = hint.nodes.saturating_sub(holding);
    let mut target_for_new = workable.len().div_ceil(held.len().max(hint.nodes));
    if mine == 0 && waiting > 0 {
        target_for_new = target_for_new.min(never_owned_free.div_ceil(waiting));
    }
    // Free leases up to the share at once (nobody reads them), and any left
    // unowned too long whatever the share; steals within the budget.
    // In a random order, as KCL does: processes taking their share of the
    // same free leases at once then mostly pick different ones, rather than
    // all racing for the first keys (and all but one losing).
    let mut free_now: Vec<&Lease> = workable.iter().copied().filter(|lease| free(lease)).collect();
    fastrand::shuffle(&mut free_now);
    let mut taking: Vec<Lease> = Vec::new();
    for lease in free_now {
        let never_owned = lease.owner.is_none() && lease.epoch == 0;
        let share = if never_owned { target_for_new } else { target };
        if mine + taking.len() < share || (lease.owner.is_none() && (hint.long_free)(lease)) {
            taking.push(lease.clone());
        }
    }
    taking.sort_by(|a, b| a.key.cmp(&b.key));
    let mut wanted = target.saturating_sub(mine + taking.len()).min(budget);
    // Nothing free left: steal from the most loaded, one lease at a time, and
    // only from a process holding at least two more than this one would, so
    // every move narrows the spread and two processes never trade a lease back.
    let mut counts: Vec<(&str, Vec<&Lease>)> = held
        .iter()
        .filter(|(owner, _)| **owner != me)
        .map(|(owner, leases)| {
            // Their newest-keyed leases first: a stable choice, so rounds agree.
            let mut theirs = leases.clone();
            theirs.sort_by(|a, b| a.key.cmp(&b.key));
            (*owner, theirs)
        })
        .collect();
    let mut mine = mine + taking.len();
    while wanted > 0 {
        counts.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
        let Some((_, theirs)) = counts.first_mut().filter(|(_, theirs)| theirs.len() > mine + 1) else { break };
        let Some(lease) = theirs.pop() else { break };
        taking.push(lease.clone());
        mine += 1;
        wanted -= 1;
    }
    taking
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(key: &str, owner: Option<&str>) -> Lease {
        Lease { owner: owner.map(str::to_owned), ..Lease::new(key, Vec::new(), None) }
    }

    fn keys(leases: &[Lease]) -> Vec<&str> {
        leases.iter().map(|lease| lease.key.as_str()).collect()
    }

    const NONE_EXPIRED: &dyn Fn(&Lease) -> bool = &|_| false;

    #[test]
    fn a_new_process_takes_its_share_within_the_budget_and_then_nothing_moves() {
        let mut leases: Vec<Lease> = (0..6).map(|i| lease(&format!("s{i}"), Some("a"))).collect();
        // b joins: target 3; it steals a's surplus, newest first, two per round.
        let first = leases_to_take(&leases, "b", NONE_EXPIRED, 2);
        assert_eq!(keys(&first), ["s5", "s4"]);
        for taken in &first {
            leases.iter_mut().filter(|l| l.key == taken.key).for_each(|l| l.owner = Some("b".into()));
        }
        let second = leases_to_take(&leases, "b", NONE_EXPIRED, 2);
        assert_eq!(keys(&second), ["s3"], "only what a holds above the target");
        leases.iter_mut().filter(|l| l.key == "s3").for_each(|l| l.owner = Some("b".into()));
        assert!(leases_to_take(&leases, "b", NONE_EXPIRED, 2).is_empty());
        assert!(leases_to_take(&leases, "a", NONE_EXPIRED, 2).is_empty(), "a does not take them back");
    }

    #[test]
    fn an_uneven_split_does_not_thrash() {
        let leases = [lease("s0", Some("a")), lease("s1", Some("a")), lease("s2", Some("b"))];
        assert!(leases_to_take(&leases, "a", NONE_EXPIRED, 5).is_empty());
        assert!(leases_to_take(&leases, "b", NONE_EXPIRED, 5).is_empty());
    }

    #[test]
    fn processes_starting_together_take_their_share_of_free_leases_and_long_free_ones_are_taken_anyway() {
        let leases: Vec<Lease> = (0..9).map(|i| lease(&format!("s{i}"), None)).collect();
        let three = ClusterHint { nodes: 3, long_free: &|_| false };
        assert_eq!(leases_to_take_among(&leases, "a", NONE_EXPIRED, 2, three).len(), 3);
        // Each picks its share at random, so processes starting together seldom race for the same leases.
        let picks: HashSet<Vec<String>> = (0..20)
            .map(|_| {
                let taken = leases_to_take_among(&leases, "a", NONE_EXPIRED, 2, three);
                taken.into_iter().map(|lease| lease.key).collect()
            })
            .collect();
        assert!(picks.len() > 1, "always the same three: {picks:?}");
        assert_eq!(leases_to_take(&leases, "a", NONE_EXPIRED, 2).len(), 9, "alone, as far as it knows");
        // Released leases (owned before) are not kept for anyone: taken up to the owners' share.
        let mut released = leases.clone();
        released.iter_mut().for_each(|lease| lease.epoch = 1);
        assert_eq!(leases_to_take_among(&released, "a", NONE_EXPIRED, 2, three).len(), 9);
        // A process counted live never came for its share: after long enough, its leases are taken.
        let mut held = leases.clone();
        for lease in held.iter_mut().take(6) {
            lease.owner = Some(if lease.key.as_str() < "s3" { "a" } else { "b" }.to_owned());
        }
        assert!(leases_to_take_among(&held, "a", NONE_EXPIRED, 2, three).is_empty());
        let stale = ClusterHint { nodes: 3, long_free: &|_| true };
        assert_eq!(keys(&leases_to_take_among(&held, "a", NONE_EXPIRED, 2, stale)), ["s6", "s7", "s8"]);
        // b died (its leases expired) before the nodes' list knows: a takes them at once
        // (the unowned ones stay for the third process until they are free too long).
        let b_dead: &dyn Fn(&Lease) -> bool = &|lease| lease.owner.as_deref() == Some("b");
        assert_eq!(keys(&leases_to_take_among(&held, "a", b_dead, 2, three)), ["s3", "s4", "s5"]);
    }

    #[test]
    fn processes_starting_one_after_another_split_new_leases_without_a_steal() {
        let mut leases: Vec<Lease> = (0..64).map(|i| lease(&format!("s{i:02}"), None)).collect();
        let three = ClusterHint { nodes: 3, long_free: &|_| false };
        for (me, share) in [("a", 22), ("b", 21), ("c", 21)] {
            let taken: HashSet<String> =
                leases_to_take_among(&leases, me, NONE_EXPIRED, 4, three).into_iter().map(|lease| lease.key).collect();
            assert_eq!(taken.len(), share, "{me}");
            for lease in leases.iter_mut().filter(|lease| taken.contains(&lease.key)) {
                lease.owner = Some(me.to_owned());
                lease.epoch = 1;
            }
        }
        assert!(leases.iter().all(|lease| lease.owner.is_some()), "every lease is taken");
        for me in ["a", "b", "c"] {
            assert!(leases_to_take_among(&leases, me, NONE_EXPIRED, 4, three).is_empty(), "{me} steals nothing");
        }
    }

    #[test]
    fn holdings_end_within_one_of_each_other() {
        // 16 leases held 6, 6, 4: the target is 6, but c steals one from the most
        // loaded (6 > 4 + 1), and then nobody moves: 6, 5, 5.
        let owner = |i: usize| {
            if i < 6 {
                "a"
            } else if i < 12 {
                "b"
            } else {
                "c"
            }
        };
        let mut leases: Vec<Lease> = (0..16).map(|i| lease(&format!("s{i:02}"), Some(owner(i)))).collect();
        let taken = leases_to_take(&leases, "c", NONE_EXPIRED, 5);
        assert_eq!(keys(&taken), ["s05"], "a's newest-keyed lease");
        leases[5].owner = Some("c".to_owned());
        for me in ["a", "b", "c"] {
            assert!(leases_to_take(&leases, me, NONE_EXPIRED, 5).is_empty(), "{me} moves nothing");
        }
    }

    #[test]
    fn free_and_expired_leases_go_first_and_a_dead_process_counts_for_nobody() {
        let leases = [lease("s0", Some("dead")), lease("s1", Some("dead")), lease("s2", None), lease("s3", Some("a"))];
        let dead: &dyn Fn(&Lease) -> bool = &|lease| lease.owner.as_deref() == Some("dead");
        // b sees a and itself live: four workable leases, target 2 each; it takes two of
        // the three free ones (picked at random), never a's.
        let taken = leases_to_take(&leases, "b", dead, 10);
        assert_eq!(taken.len(), 2);
        assert!(taken.iter().all(|lease| lease.key != "s3"), "{:?}", keys(&taken));
        // a knows no other live process (b holds nothing yet): it takes every free lease, and
        // b, once it holds one, takes a's surplus in later rounds. The budget limits steals only.
        let taken = leases_to_take(&leases, "a", dead, 10);
        assert_eq!(keys(&taken), ["s0", "s1", "s2"]);
        assert_eq!(keys(&leases_to_take(&leases, "a", dead, 1)), ["s0", "s1", "s2"], "free leases are not stolen");
    }

    #[test]
    fn children_wait_until_every_parent_is_read_to_its_end() {
        let mut parent_a = lease("p0", Some("a"));
        let mut parent_b = lease("p1", Some("a"));
        let child = Lease::new("c2", vec!["p0".into(), "p1".into()], None);
        parent_a.checkpoint = LeaseCheckpoint::ShardEnd;
        let leases = [parent_a.clone(), parent_b.clone(), child.clone()];
        let taken = leases_to_take(&leases, "b", NONE_EXPIRED, 10);
        assert!(!keys(&taken).contains(&"c2"), "p1 is still being read: {taken:?}");
        parent_b.checkpoint = LeaseCheckpoint::ShardEnd;
        let leases = [parent_a, parent_b, child];
        assert_eq!(keys(&leases_to_take(&leases, "b", NONE_EXPIRED, 10)), ["c2"], "finished parents need no owner");
        // A parent already gone from the table does not hold its child back.
        let orphan = Lease::new("c3", vec!["gone".into()], None);
        assert_eq!(keys(&leases_to_take(&[orphan], "b", NONE_EXPIRED, 10)), ["c3"]);
    }
}
