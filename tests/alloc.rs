//! A training step allocates nothing once the batch size is steady: every buffer is reused. The one
//! exception is inside the `gemm` crate, which allocates its packing buffers per call; those are
//! counted apart (and reported), ours must be zero.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use scratchnet::data::Dataset;
use scratchnet::model::Sequential;
use scratchnet::train::{Trainer, preset};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static GEMM_ALLOCS: AtomicUsize = AtomicUsize::new(0);

fn count() {
    if scratchnet::ops::internals::in_gemm() {
        GEMM_ALLOCS.fetch_add(1, Ordering::Relaxed);
    } else {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed on unchanged to the system allocator, which upholds the trait's
// contract; counting allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's promises about `l` are the ones System.alloc needs.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: `p` came from this allocator, i.e. from System, with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        // SAFETY: `p` came from System with layout `l`; the caller guarantees `n` is valid.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn training_steps_do_not_allocate_in_the_steady_state() {
    // The pool's worker threads allocate as they start, whenever the OS runs them: a loaded
    // machine once let that fall inside a measured batch. Start every worker before counting.
    rayon::broadcast(|_| ());
    for name in ["mlp-dropout", "mlp-sgd", "mlp-sgd-momentum", "cnn", "cnn-plus", "cnn-fast", "cnn-best"] {
        let p = preset(name).unwrap();
        let bs = p.train.batch_size;
        // Exactly 6 batches: the last 3 are measured after 3 warm-up batches.
        let n = 6 * bs;
        let data = Dataset::new(
            (0..n * 784).map(|i| (i * 7 % 256) as u8).collect(),
            (0..n).map(|i| (i % 10) as u8).collect(),
            28,
            28,
            (0..10).map(|c| c.to_string()).collect(),
        )
        .unwrap();
        let mut t = Trainer::new(Sequential::new(p.spec, 0).unwrap(), p.train);
        let mut counts = Vec::with_capacity(16);
        t.run_epoch(&data, &mut |done, _| {
            counts.push((done, ALLOCS.load(Ordering::SeqCst), GEMM_ALLOCS.load(Ordering::SeqCst)));
            true
        })
        .unwrap();
        let steady: Vec<(usize, usize)> =
            counts.windows(2).skip(2).map(|w| (w[1].1 - w[0].1, w[1].2 - w[0].2)).collect();
        assert_eq!(steady.len(), 3);
        assert!(
            steady.iter().all(|&(ours, _)| ours == 0),
            "{name}: (ours, inside gemm) allocations per batch: {steady:?}"
        );
        eprintln!("{name}: (ours, inside gemm) allocations per batch after warm-up: {steady:?}");
    }
}
