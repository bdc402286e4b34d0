//! Lease expiry as KCL judges it: never by a timestamp in the row (clocks of
//! different machines disagree), but by a counter this process saw stand
//! still for the failover time on its own monotonic clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::Lease;

/// When this process last saw each lease's counter move.
#[derive(Debug, Clone)]
pub struct LeaseObserver {
    failover: Duration,
    seen: HashMap<String, Seen>,
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    counter: u64,
    since: Instant,
}

impl LeaseObserver {
    /// An observer that declares a lease expired after `failover` without a renewal (KCL's default is 10 s).
    pub fn new(failover: Duration) -> LeaseObserver {
        LeaseObserver { failover, seen: HashMap::new() }
    }

    /// Notes a scan's leases at `now`: a counter that changed restarts its
    /// lease's clock; leases no longer in the table are forgotten.
    pub fn observe(&mut self, leases: &[Lease], now: Instant) {
        self.seen.retain(|key, _| leases.iter().any(|lease| &lease.key == key));
        for lease in leases {
            let seen = self.seen.entry(lease.key.clone()).or_insert(Seen { counter: lease.counter, since: now });
            if seen.counter != lease.counter {
                *seen = Seen { counter: lease.counter, since: now };
            }
        }
    }

    /// How long this process has seen `lease`'s counter stand still at `now`.
    pub fn age(&self, lease: &Lease, now: Instant) -> Duration {
        self.seen.get(&lease.key).map_or(Duration::ZERO, |seen| now.saturating_duration_since(seen.since))
    }

    /// Whether `lease` may be taken at `now`: unowned leases at once, owned
    /// ones once their counter stood still for the failover time since this
    /// process first saw that counter (a lease seen for the first time is not expired).
    pub fn is_expired(&self, lease: &Lease, now: Instant) -> bool {
        if lease.owner.is_none() {
            return true;
        }
        self.seen.get(&lease.key).is_some_and(|seen| {
            seen.counter == lease.counter && now.saturating_duration_since(seen.since) >= self.failover
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(key: &str, counter: u64) -> Lease {
        Lease { owner: Some("worker-a".to_owned()), counter, ..Lease::new(key, Vec::new(), None) }
    }

    #[test]
    fn a_lease_expires_when_its_counter_stands_still_for_the_failover_time() {
        let start = Instant::now();
        let failover = Duration::from_secs(10);
        let mut observer = LeaseObserver::new(failover);
        let lease = owned("shard-0", 7);
        assert!(!observer.is_expired(&lease, start), "never seen: not expired");
        observer.observe(std::slice::from_ref(&lease), start);
        assert!(!observer.is_expired(&lease, start + Duration::from_secs(9)));
        // Renewed at 9 s: the clock starts again from when the change was seen.
        let renewed = owned("shard-0", 8);
        observer.observe(std::slice::from_ref(&renewed), start + Duration::from_secs(9));
        assert!(!observer.is_expired(&renewed, start + Duration::from_secs(15)));
        assert!(observer.is_expired(&renewed, start + Duration::from_secs(19)));
        // The lease as last seen, but its counter has moved since: not judged on the old clock.
        assert!(!observer.is_expired(&owned("shard-0", 9), start + Duration::from_secs(19)));
    }

    #[test]
    fn unowned_leases_are_free_and_forgotten_leases_start_over() {
        let start = Instant::now();
        let mut observer = LeaseObserver::new(Duration::from_secs(10));
        let free = Lease::new("shard-1", Vec::new(), None);
        assert!(observer.is_expired(&free, start), "an unowned lease is free at once");
        observer.observe(&[owned("shard-2", 1)], start);
        observer.observe(&[], start + Duration::from_secs(5));
        observer.observe(&[owned("shard-2", 1)], start + Duration::from_secs(11));
        assert!(!observer.is_expired(&owned("shard-2", 1), start + Duration::from_secs(12)), "its clock started again");
    }
}
