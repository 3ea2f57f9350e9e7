//! Fixed memory: after construction, `update` never allocates.
//!
//! A counting global allocator (this test binary only) observes every allocation; the test
//! runs the detectors over a long series and checks that the count did not move.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use medic_core::Timestamp;
use medic_detect::eval::nab::{Corpus, LabelledFile, Series, detect_corpus};
use medic_detect::stream::{
    AnomalyLikelihood, CombinerWeights, Cusum, Ewma, NabDetector, NabDetectorKind, RollingMad,
    RollingZScore, Seasonal, StreamDetector, TargetStream, Trend,
};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn detectors_do_not_allocate_per_sample() {
    let weights = CombinerWeights {
        iforest: 0.8,
        zscore: 0.6,
        mad: 0.6,
        ewma: 0.5,
        cusum: 0.7,
        trend: 0.4,
    };
    let mut z = RollingZScore::new(100, 3.0).unwrap();
    let mut m = RollingMad::new(0.01, 4.0).unwrap();
    let mut e = Ewma::new(0.2, 3.0, 0.01).unwrap();
    let mut c = Cusum::new(0.5, 8.0, 0.01).unwrap();
    let mut t = Trend::new(60, 0.001).unwrap();
    let mut s = Seasonal::new(86_400_000_000, 288, 0.1, 3, 3.0).unwrap();
    let mut l = AnomalyLikelihood::new(20, 2000, 100, 1e-5).unwrap();
    let mut target = TargetStream::new(weights).unwrap();
    let mut nab = NabDetector::new(NabDetectorKind::Medic);
    let size_before = std::mem::size_of_val(&nab);

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut acc = 0.0;
    for i in 0..200_000u64 {
        let x = ((i * 7919) % 1000) as f64 / 10.0 + if i % 5000 == 0 { 1e4 } else { 0.0 };
        let ts = i as i64 * 300_000_000;
        acc += z.update(x).score + m.update(x).score + e.update(x).score + c.update(x).score;
        acc += t.update(x).score + s.update(ts, x).score + l.update(x / 1e4);
        acc += target
            .update(Timestamp::from_millis(i * 1000), x, Some(0.4))
            .score;
        acc += nab.update(ts, x);
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert!(acc.is_finite());
    assert_eq!(
        after - before,
        0,
        "detectors allocated {} times",
        after - before
    );
    assert_eq!(std::mem::size_of_val(&nab), size_before);

    // The reason string is the one thing that allocates, and only when asked.
    let reason = target.reason();
    assert!(ALLOCATIONS.load(Ordering::Relaxed) > after);
    assert!(!reason.is_empty());

    // Sanity for the corpus runner: one output per row.
    let series = Series {
        timestamp_text: vec!["2014-01-01 00:00:00".into(); 3],
        timestamps: vec![0, 1, 2],
        values: vec![1.0, 2.0, 3.0],
    };
    let corpus = Corpus {
        files: vec![LabelledFile {
            key: "a/b.csv".into(),
            timestamps: vec![0, 1, 2],
            windows: vec![],
        }],
        series: vec![series],
    };
    assert_eq!(detect_corpus(&corpus, NabDetectorKind::Medic)[0].len(), 3);
}
