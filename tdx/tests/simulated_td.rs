//! Thousands of random workload steps on a simulated TD (two vCPUs entering and leaving,
//! ACCEPTs, accesses, MapGPA conversions both ways) against core + the TDX hooks + the
//! TDX module model, checking after every step that the mirror and the S-EPT agree
//! (TDX-01), that private frames never move (PIN-03), that memory keeps what the guest
//! wrote, and the model's own invariants.

mod common;

use cloister_abi::MemoryKind;
use cloister_tdx::abi::tdcall;
use common::td::{PAGE, SimTd, VCPUS};

/// xorshift64*: deterministic, so a failing seed replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PRIVATE: u64 = 8 << 20;
/// The guest plays above the launch pages (boot area and image).
const FIRST: u64 = 0x40_0000;
const STEPS: usize = 3000;

fn run(seed: u64) {
    let mut td = SimTd::launched(PRIVATE);
    td.check();
    let mut rng = Rng(seed);
    let pages = (PRIVATE - FIRST) / PAGE;
    for step in 0..STEPS {
        let v = rng.below(VCPUS as u64) as usize;
        let page = FIRST + rng.below(pages) * PAGE;
        match rng.below(10) {
            0 => td.enter(v),
            1 => td.leave(v),
            2..=6 => {
                let marker = rng.below(255) as u8 + 1;
                if let Err(stop) = td.touch(v, page, marker) {
                    panic!("seed {seed} step {step}: touch {page:#x} stopped the TD: {stop}");
                }
            }
            _ => {
                // A range of up to 1 MiB, clipped to memory, often unaligned to 2 MiB.
                let len = ((rng.below(256) + 1) * PAGE).min(PRIVATE - page);
                let to = if rng.below(2) == 0 {
                    MemoryKind::Shared
                } else {
                    MemoryKind::Private
                };
                let status = td.map_gpa(v, page, len, to);
                assert_eq!(status, tdcall::VMCALL_SUCCESS, "seed {seed} step {step}");
            }
        }
        td.check();
        if let Err(broken) = td.model().check_invariants() {
            panic!("seed {seed} step {step}: model invariant: {broken}");
        }
    }
}

#[test]
fn random_workloads_keep_mirror_and_s_ept_equal_seed_1() {
    run(0x9e37_79b9_7f4a_7c15);
}

#[test]
fn random_workloads_keep_mirror_and_s_ept_equal_seed_2() {
    run(0xdead_beef_cafe_f00d);
}

#[test]
fn random_workloads_keep_mirror_and_s_ept_equal_seed_3() {
    run(42);
}
