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
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, f(item)));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
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
