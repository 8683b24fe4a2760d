//! Proves the per-packet path of `OggOpusWriter` allocates nothing in steady state.
//!
//! A counting global allocator needs a binary of its own, so this is an integration test
//! with a single test function. Only the test's own thread is counted: libtest's main thread
//! allocates now and then while it waits (a loaded CI machine saw 4 such allocations).

use media_core::ogg::{OggOpusWriter, OpusHead};
use media_core::opus;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // Const-initialised and without a destructor: reading it never allocates.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_writes_allocate_nothing() {
    COUNTED.with(|c| c.set(true));
    let head = OpusHead {
        channels: 2,
        pre_skip: 312,
        input_sample_rate: 48_000,
        output_gain: 0,
    };
    let mut w = OggOpusWriter::new(9, head, &[("CALL_ID", "alloc")]);
    let small = [0x5Au8; 80];
    let large = [0xA5u8; 1275];
    let mut sink = 0usize;
    let mut step = |w: &mut OggOpusWriter, i: u64| {
        // A realistic mix: 20 ms packets, a big one now and then, a timer flush every
        // 700 ms, and a gap filled with silence every 3 s.
        let p: &[u8] = if i % 97 == 0 { &large } else { &small };
        w.write_packet(p, 960);
        if i % 35 == 0 {
            w.flush();
        }
        if i % 150 == 0 {
            opus::silence_fill(12_345, 2, |p, n| w.write_packet(p, n));
        }
        // The caller writes the pages out and clears the buffer.
        sink += w.output().len();
        w.output().clear();
    };
    for i in 0..1_000 {
        step(&mut w, i);
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    // The counter works: building the writer and its buffers allocated.
    assert!(before > 0);
    for i in 1_000..50_000 {
        step(&mut w, i);
    }
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(after - before, 0, "allocations in steady state");
    assert!(sink > 0);
    assert!(w.pages_written() > 1_000);
}
