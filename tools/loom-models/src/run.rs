//! Running a model in every interleaving, and proving a broken one fails.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Preemptions loom allows per execution. Each model is two threads of a few atomic
/// steps, so 3 explores 70 to 140 interleavings per model in well under a second. It
/// is also what catches the seeded zap bug with the fault spawned first: loom 0.7's
/// unbounded search runs only 9 interleavings of that model and misses it.
pub const PREEMPTION_BOUND: usize = 3;

/// Run `model` in every interleaving up to [`PREEMPTION_BOUND`] preemptions; a panic in
/// any of them (an invariant, or loom's own race and deadlock checks) fails the caller.
/// Returns how many interleavings ran.
pub fn check(model: impl Fn() + Sync + Send + 'static) -> usize {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(PREEMPTION_BOUND);
    builder.location = true;
    builder.check(move || {
        counted.fetch_add(1, Ordering::Relaxed);
        model();
    });
    runs.load(Ordering::Relaxed)
}

/// Run `model` as [`check`] does and return the message of the violation loom found.
/// Panics if every interleaving passed: a seeded bug that escapes is a failed test.
pub fn violation(model: impl Fn() + Sync + Send + 'static) -> String {
    let result = catch_unwind(AssertUnwindSafe(|| check(model)));
    let Err(payload) = result else {
        panic!("loom explored every interleaving and found no violation");
    };
    if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else {
        "a panic without a message".to_owned()
    }
}
