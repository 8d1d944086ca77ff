//! A parallel map over a slice with scoped threads, keeping input order.
//!
//! Validation is mostly independent work per file (parsing, the schema) and
//! per definition (task and launch-plan checks, canonical digests);
//! spreading it over the cores is what
//! keeps a 10,000-definition repository under a second on two cores. No
//! thread pool crate: the work is coarse and one call per phase.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Items per thread below which spawning is not worth it.
const MIN_ITEMS_PER_THREAD: usize = 16;

/// `items.iter().map(f).collect()`, on up to `available_parallelism` threads.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(items.len() / MIN_ITEMS_PER_THREAD + 1);
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            done.push((i, f(item)));
        }
        done
    };
    // The calling thread is one of the workers: one thread fewer to start,
    // and one fewer to share the allocator's arenas (capped at two, see
    // `reconcile::limit_arenas`), where two threads on one arena wait on
    // each other's every allocation.
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut results = work();
        for other in others {
            results.extend(
                other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        results
    });
    results.sort_unstable_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order() {
        let items: Vec<u32> = (0..1000).collect();
        assert_eq!(
            super::map(&items, |x| x * 2),
            items.iter().map(|x| x * 2).collect::<Vec<_>>()
        );
    }
}
