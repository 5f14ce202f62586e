//! Data-parallel loops over fixed-size chunks.
//!
//! Chunk sizes never depend on the thread count, and every reduction sums per-chunk partials in
//! chunk order, so results are bit-identical whether one thread or many run them.

#[cfg(feature = "threads")]
use rayon::prelude::*;

/// Calls `f(i, chunk_i)` for each `chunk_len`-sized chunk of `a`, in parallel when threads are on.
pub fn for_each_chunk<A: Send>(a: &mut [A], chunk_len: usize, f: impl Fn(usize, &mut [A]) + Sync + Send) {
    if a.len() <= chunk_len {
        // One chunk: not worth a hand-off to the pool (per-sample training makes millions of these).
        return f(0, a);
    }
    #[cfg(feature = "threads")]
    a.par_chunks_mut(chunk_len).enumerate().for_each(|(i, x)| f(i, x));
    #[cfg(not(feature = "threads"))]
    a.chunks_mut(chunk_len).enumerate().for_each(|(i, x)| f(i, x));
}

/// Calls `f(i)` for i in 0..count, in parallel when threads are on.
pub fn for_each_index(count: usize, f: impl Fn(usize) + Sync + Send) {
    #[cfg(feature = "threads")]
    (0..count).into_par_iter().for_each(f);
    #[cfg(not(feature = "threads"))]
    (0..count).for_each(f);
}

/// Like [`for_each_chunk`], walking two slices in step (e.g. an output and its per-chunk scratch).
pub fn for_each_chunk2<A: Send, B: Send>(
    a: &mut [A],
    a_len: usize,
    b: &mut [B],
    b_len: usize,
    f: impl Fn(usize, &mut [A], &mut [B]) + Sync + Send,
) {
    if a.len() <= a_len {
        let n = b_len.min(b.len());
        return f(0, a, &mut b[..n]);
    }
    #[cfg(feature = "threads")]
    a.par_chunks_mut(a_len).zip(b.par_chunks_mut(b_len)).enumerate().for_each(|(i, (x, y))| f(i, x, y));
    #[cfg(not(feature = "threads"))]
    a.chunks_mut(a_len).zip(b.chunks_mut(b_len)).enumerate().for_each(|(i, (x, y))| f(i, x, y));
}

/// Number of threads the kernels may use.
pub fn threads() -> usize {
    #[cfg(feature = "threads")]
    return rayon::current_num_threads();
    #[cfg(not(feature = "threads"))]
    return 1;
}

/// Whether work of `macs` multiply-adds per batch is best run with the pool kept awake
/// ([`on_worker_awake`]): large enough to be split across threads (products from 2M
/// multiply-adds), small enough that waking a sleeping worker for each split would cost a large
/// share of it (below ~1 ms of products). The MLP's batches of 64 (7M) are; the CNN's (1.3G) and
/// per-sample steps (0.1M, nothing to split) are not. Nor is a pool with more threads than cores,
/// where spinning workers would take turns with the one doing the work.
pub fn keeps_pool_awake(macs: usize) -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (1 << 21..1 << 26).contains(&macs) && (2..=cores).contains(&threads())
}

/// Runs batched work of `macs` multiply-adds per batch on a pool worker, keeping the pool awake
/// when [`keeps_pool_awake`] says so. Which of the two only changes scheduling: the thread count
/// it depends on must never reach the results.
pub fn on_worker_for<R: Send>(macs: usize, f: impl FnOnce() -> R + Send) -> R {
    if keeps_pool_awake(macs) { on_worker_awake(f) } else { on_worker(f) }
}

/// Runs `f` on a worker thread of the pool, so the parallel loops inside it queue their work
/// locally; from outside the pool every loop would go through rayon's global injector, which
/// allocates a queue block every few dozen loops.
pub fn on_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "threads")]
    return rayon::scope(|_| f());
    #[cfg(not(feature = "threads"))]
    return f();
}

/// [`on_worker`], keeping the pool's other workers awake, polling for work, while `f` runs,
/// instead of letting them sleep between parallel loops: waking a sleeping worker costs about
/// what splitting the MLP's products saves (BENCHMARKS.md). The price is a busy core for the
/// duration of `f`, so it is for work made of many short parallel loops.
pub fn on_worker_awake<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "threads")]
    {
        let done = &std::sync::atomic::AtomicBool::new(false);
        rayon::scope(|s| {
            let owner = rayon::current_thread_index();
            for _ in 1..rayon::current_num_threads() {
                s.spawn(move |_| keep_awake(done, owner));
            }
            let _done = SetOnDrop(done);
            f()
        })
    }
    #[cfg(not(feature = "threads"))]
    return f();
}

/// Sets the flag when dropped, so helpers stop even if the work panics.
#[cfg(feature = "threads")]
struct SetOnDrop<'a>(&'a std::sync::atomic::AtomicBool);
#[cfg(feature = "threads")]
impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Runs pool work as it appears until `done`. On the thread running the main work (which may pop
/// this job itself while it waits inside a loop) it returns at once: spinning there would wait on
/// its own caller.
#[cfg(feature = "threads")]
fn keep_awake(done: &std::sync::atomic::AtomicBool, owner: Option<usize>) {
    if rayon::current_thread_index() == owner {
        return;
    }
    while !done.load(std::sync::atomic::Ordering::Acquire) {
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
        }
    }
}

#[cfg(all(test, feature = "threads"))]
mod tests {
    use super::*;

    #[test]
    fn awake_pool_runs_loops_and_stops_its_helpers_even_after_a_panic() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        pool.install(|| {
            let mut v = vec![1u64; 100_000];
            let sum = on_worker_awake(|| {
                for _ in 0..50 {
                    for_each_chunk(&mut v, 1000, |i, c| c.iter_mut().for_each(|x| *x += i as u64 % 2));
                }
                v.iter().sum::<u64>()
            });
            assert_eq!(sum, 100_000 + 50 * 50_000);
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                on_worker_awake(|| {
                    for_each_index(8, |i| assert!(i != 5, "boom"));
                })
            }));
            assert!(caught.is_err());
            // The pool is free again: a plain loop completes.
            assert_eq!(on_worker(|| 7), 7);
        });
    }
}
