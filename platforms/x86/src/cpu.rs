//! Descriptor tables: a GDT with a 64-bit TSS whose IST stacks catch every exception
//! (prebuilt `core` may use the red zone, so no exception may land on the interrupted
//! stack), and an IDT routing all 32 exception vectors to the crash report and the
//! preemption tick's vectors to [`crate::timer`].

use crate::exceptions::STUB_STRIDE;
use crate::timer::IDT_VECTORS;
use core::cell::UnsafeCell;
use x86::Ring;
use x86::bits64::segmentation::Descriptor64;
use x86::bits64::task::TaskStateSegment;
use x86::dtables::{DescriptorTablePointer, lgdt, lidt};
use x86::segmentation::{
    BuildDescriptor, CodeSegmentType, DataSegmentType, Descriptor, DescriptorBuilder,
    GateDescriptorBuilder, SegmentDescriptorBuilder, SegmentSelector,
};

const STACK_SIZE: usize = 16 * 1024;
/// IST 1: ordinary exceptions; 2: #DF; 3: NMI; 4: #MC. Separate stacks so a fault while
/// reporting a fault still gets a clean stack.
const IST_STACKS: usize = 4;

pub const CODE_SELECTOR: SegmentSelector = SegmentSelector::new(1, Ring::Ring0);
pub const DATA_SELECTOR: SegmentSelector = SegmentSelector::new(2, Ring::Ring0);
pub const TSS_SELECTOR: SegmentSelector = SegmentSelector::new(3, Ring::Ring0);

#[repr(C, align(16))]
struct Stacks([[u8; STACK_SIZE]; IST_STACKS]);

#[repr(C, align(16))]
struct Tables {
    gdt: [u64; 5],
    tss: TaskStateSegment,
    idt: [Descriptor64; IDT_VECTORS],
    stacks: Stacks,
}

struct TablesCell(UnsafeCell<Tables>);
// SAFETY: written once by `init` on the boot CPU before anything reads it.
unsafe impl Sync for TablesCell {}

static TABLES: TablesCell = TablesCell(UnsafeCell::new(Tables {
    gdt: [0; 5],
    tss: TaskStateSegment::new(),
    idt: [Descriptor64::NULL; IDT_VECTORS],
    stacks: Stacks([[0; STACK_SIZE]; IST_STACKS]),
}));

fn ist_for(vector: usize) -> u8 {
    match vector {
        8 => 2,
        2 => 3,
        18 => 4,
        _ => 1,
    }
}

/// Load the GDT, TSS and IDT. Call once, early, on the boot CPU.
pub fn init() {
    // SAFETY: single-threaded early boot; TABLES is not referenced anywhere else yet.
    let t = unsafe { &mut *TABLES.0.get() };
    let code: Descriptor =
        DescriptorBuilder::code_descriptor(0, 0xfffff, CodeSegmentType::ExecuteRead)
            .present()
            .dpl(Ring::Ring0)
            .l()
            .limit_granularity_4kb()
            .finish();
    let data: Descriptor =
        DescriptorBuilder::data_descriptor(0, 0xfffff, DataSegmentType::ReadWrite)
            .present()
            .dpl(Ring::Ring0)
            .db()
            .limit_granularity_4kb()
            .finish();
    for (i, stack) in t.stacks.0.iter().enumerate() {
        let top = stack.as_ptr_range().end as u64;
        t.tss.set_ist(i, top);
    }
    let tss_base = core::ptr::from_ref(&t.tss) as u64;
    let tss_limit = core::mem::size_of::<TaskStateSegment>() as u64 - 1;
    let tss: Descriptor64 = <DescriptorBuilder as GateDescriptorBuilder<u64>>::tss_descriptor(
        tss_base, tss_limit, true,
    )
    .present()
    .dpl(Ring::Ring0)
    .finish();
    // SAFETY: Descriptor64 is two plain u64 words.
    let tss_words: [u64; 2] = unsafe { core::mem::transmute(tss) };
    t.gdt = [0, code.as_u64(), data.as_u64(), tss_words[0], tss_words[1]];

    let stubs = crate::exceptions::stubs_base();
    for (vector, entry) in t.idt.iter_mut().enumerate() {
        let handler = match crate::timer::handler(vector) {
            Some(handler) => handler,
            None if vector < 32 => stubs + (vector * STUB_STRIDE) as u64,
            // Nothing raises the rest; one that arrived would meet a not-present gate
            // (#NP) and end in the crash report.
            None => continue,
        };
        *entry = <DescriptorBuilder as GateDescriptorBuilder<u64>>::interrupt_descriptor(
            CODE_SELECTOR,
            handler,
        )
        .present()
        .dpl(Ring::Ring0)
        .ist(ist_for(vector))
        .finish();
    }

    // SAFETY: the tables are static and complete; the selectors match the GDT layout
    // (the same as the boot GDT's for code and data, so CS stays valid across lgdt).
    unsafe {
        lgdt(&DescriptorTablePointer::new(&t.gdt));
        x86::segmentation::load_ds(DATA_SELECTOR);
        x86::segmentation::load_es(DATA_SELECTOR);
        x86::segmentation::load_ss(DATA_SELECTOR);
        x86::task::load_tr(TSS_SELECTOR);
        lidt(&DescriptorTablePointer::new(&t.idt));
    }
}
