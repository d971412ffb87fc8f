//! The FROZEN-entry protocol as core implements it keeps every property in every
//! interleaving loom explores.

use cloister_loom_models::models::Racer;
use cloister_loom_models::{Flaw, check, models};

/// Run a model that must pass, and show that it raced: a model whose threads never
/// interleave proves nothing.
fn passes(model: impl Fn() + Sync + Send + 'static) {
    let interleavings = check(model);
    println!("{interleavings} interleavings");
    assert!(interleavings > 1, "the threads never interleaved");
}

#[test]
fn two_vcpus_faulting_one_gpa_push_it_to_the_sept_once() {
    passes(models::two_vcpus_fault_one_gpa(Flaw::None));
}

#[test]
fn a_fault_racing_a_zap_of_a_mapped_gpa_leaves_mirror_and_sept_agreeing() {
    for first in [Racer::Fault, Racer::Zap] {
        passes(models::fault_races_zap(true, true, first));
    }
}

#[test]
fn a_zap_racing_the_fault_that_maps_a_gpa_skips_its_frozen_entry() {
    for first in [Racer::Fault, Racer::Zap] {
        passes(models::fault_races_zap(false, true, first));
    }
}

#[test]
fn two_vcpus_faulting_under_one_unlinked_table_link_it_once() {
    passes(models::two_vcpus_link_one_table(Flaw::None));
}
