//! Pushing into an existing series and reading into warm buffers never allocates.
//!
//! Its own test binary with a single test, because it swaps in a counting global allocator.
#![allow(unsafe_code)] // a GlobalAlloc wrapper cannot be written without it

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

use medic_core::{TargetId, Timestamp};
use medic_store::{PushOutcome, Windows};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Only the measuring thread counts: libtest's own threads allocate whenever they like.
    // A const-initialised Cell needs no allocation and no destructor, so the allocator may
    // read it.
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if MEASURING.with(Cell::get) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn warm_windows_do_not_allocate() {
    let mut win = Windows::new(NonZeroUsize::new(64).unwrap(), 1000);
    let targets: Vec<TargetId> = (0..20)
        .map(|i| TargetId::new(format!("agent-{i}")))
        .collect();
    let names = ["rss", "latency_p99", "errors_total", "queue_depth"];
    // Warm up: register every series once.
    for t in &targets {
        for n in names {
            win.push(t, n, Timestamp::ZERO, 0.0).unwrap();
        }
    }
    let id = win.find("agent-3", "rss").unwrap();
    let mut times = Vec::with_capacity(64);
    let mut values = Vec::with_capacity(64);

    let before = ALLOCS.load(Ordering::Relaxed);
    MEASURING.with(|m| m.set(true));
    let mut overwrote = 0;
    for step in 1..=500u64 {
        for t in &targets {
            for n in names {
                if win
                    .push(t, n, Timestamp::from_secs(step), step as f64)
                    .unwrap()
                    == PushOutcome::Overwrote
                {
                    overwrote += 1;
                }
            }
        }
        win.read(id, &mut times, &mut values);
    }
    MEASURING.with(|m| m.set(false));
    let after = ALLOCS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "allocations on the warm push/read path");
    assert!(overwrote > 0);
    assert_eq!(values.len(), 64);
    assert_eq!(values.last(), Some(&500.0));
    assert_eq!(times.first(), Some(&Timestamp::from_secs(437)));
}
