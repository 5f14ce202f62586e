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

/// Runs `f` on a worker thread of the pool, so the parallel loops inside it queue their work
/// locally; from outside the pool every loop would go through rayon's global injector, which
/// allocates a queue block every few dozen loops.
pub fn on_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "threads")]
    return rayon::scope(|_| f());
    #[cfg(not(feature = "threads"))]
    return f();
}
