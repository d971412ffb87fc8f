//! Launch: place the workload image, boot info and initial page tables in private
//! memory. Only those pages are touched; the rest of memory is populated on demand, so
//! launch cost does not grow with memory size.

use crate::elf::ElfImage;
use crate::exit::Access;
use crate::host::Host;
use crate::mmu::{MmuError, PteFormat, VendorMmu};
use crate::stop::Stop;
use crate::vcpu::EntryState;
use crate::vm::{FaultError, Pinning, Vm};
use cloister_abi::boot::{self, BOOT_INFO_MAGIC, BootInfo, MAX_REGIONS, MemoryRegion, NAME_LEN};
use cloister_abi::{ABI_VERSION, MemoryKind};

const PAGE: u64 = 4096;
const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const HUGE: u64 = 1 << 7;
/// Bytes of boot stack that are launch pages where the workload must accept memory
/// before touching it (TDX, SEV-SNP).
pub const LAUNCH_STACK: u64 = 4 * PAGE;

impl<F: PteFormat, V: VendorMmu> Vm<F, V> {
    /// Load `image` and prepare the boot state; returns where the workload starts.
    pub fn launch(&mut self, image: &[u8], host: &mut impl Host) -> Result<EntryState, Stop> {
        let boot_area = self.slot_containing(0, boot::IMAGE_MIN_GPA);
        if boot_area.is_none_or(|s| s.kind() != MemoryKind::Private) {
            return Err(Stop::NoBootArea);
        }
        let elf = ElfImage::parse(image).map_err(|error| Stop::BadImage { error })?;
        for segment in elf.segments() {
            let segment = segment.map_err(|error| Stop::BadImage { error })?;
            self.check_image_range(segment.gpa, segment.mem_size)?;
            self.write(segment.gpa, segment.data, host)?;
        }
        self.check_image_range(elf.entry, 1)?;
        self.write(boot::BOOT_INFO_GPA, &self.boot_info().to_bytes(), host)?;
        self.write_identity_map(host)?;
        if V::LAUNCH_PAGES {
            // A TD (or an SNP guest) touches no private page it has not accepted
            // (validated), and accepting takes a stack: the top of the boot stack comes
            // with the launch pages.
            let stack = [0u8; LAUNCH_STACK as usize];
            self.write(boot::STACK_TOP_GPA - LAUNCH_STACK, &stack, host)?;
        }
        if self.pinning() == Pinning::Upfront {
            self.prepare_all(host)?;
        }
        if V::LAUNCH_PAGES {
            self.add_launch_pages(host)?;
        }
        self.finish_vendor_launch()?;
        self.measurement.finish();
        Ok(EntryState {
            rip: elf.entry,
            rsp: boot::STACK_TOP_GPA,
            rdi: boot::BOOT_INFO_GPA,
            cr3: boot::PAGE_TABLES_GPA,
        })
    }

    fn check_image_range(&self, gpa: u64, size: u64) -> Result<(), Stop> {
        let private = self
            .slot_containing(gpa, size)
            .is_some_and(|s| s.kind() == MemoryKind::Private);
        if gpa < boot::IMAGE_MIN_GPA || !private {
            return Err(Stop::ImageOutsideMemory { gpa, size });
        }
        Ok(())
    }

    pub(crate) fn boot_info(&self) -> BootInfo {
        let mut info = BootInfo {
            magic: BOOT_INFO_MAGIC,
            abi_version: ABI_VERSION,
            region_count: 0,
            allowed_calls: self.allowed_calls,
            features: cloister_abi::hypercall::FEATURES | V::BOOT_FEATURES,
            name: [0; NAME_LEN],
            regions: [MemoryRegion::EMPTY; MAX_REGIONS],
        };
        info.name[..self.name.len()].copy_from_slice(self.name.as_bytes());
        for (entry, slot) in info.regions.iter_mut().zip(&self.slots) {
            *entry = slot.region();
            info.region_count += 1;
        }
        info.regions[..info.region_count as usize].sort_unstable_by_key(|r| r.gpa);
        info
    }

    /// PML4 -> one PDPT of 1 GiB pages covering [0, 512 GiB).
    fn write_identity_map(&mut self, host: &mut impl Host) -> Result<(), Stop> {
        let pml4 = boot::PAGE_TABLES_GPA;
        let pdpt = pml4 + PAGE;
        self.write(pml4, &(pdpt | PRESENT | WRITABLE).to_le_bytes(), host)?;
        let mut table = [0u8; PAGE as usize];
        for (i, entry) in table.chunks_exact_mut(8).enumerate() {
            let gib = (i as u64) << 30;
            entry.copy_from_slice(&(gib | PRESENT | WRITABLE | HUGE).to_le_bytes());
        }
        self.write(pdpt, &table, host)
    }

    /// Hand every page launch wrote to the external side (TDX: PAGE.ADD from a copy in
    /// a hypervisor page, then MR.EXTEND): the writes above went to premapped frames
    /// with the hypervisor's key, and the vendor takes the contents in under the
    /// workload's. Each page goes exactly once, whatever number of writes filled it.
    fn add_launch_pages(&mut self, host: &mut impl Host) -> Result<(), Stop> {
        let source = host.alloc_table().ok_or(Stop::Mmu {
            error: MmuError::OutOfTables,
            gpa: 0,
        })?;
        let mut result = Ok(());
        for (gpa, pa) in self.private_pages(host) {
            let mut words = [0u64; PAGE as usize / 8];
            host.with_frame(pa, |frame| {
                for (word, bytes) in words.iter_mut().zip(frame.chunks_exact(8)) {
                    *word = u64::from_le_bytes(bytes.try_into().unwrap_or_default());
                }
            });
            host.table(source).copy_from_slice(&words);
            if let Err(error) = self.vendor_mut().add_launch_page(gpa, pa, source) {
                result = Err(Stop::Mmu {
                    error: MmuError::External(error),
                    gpa,
                });
                break;
            }
        }
        // The page held launch data: leave nothing behind in the table pool.
        host.table(source).fill(0);
        host.free_table(source);
        result
    }

    fn finish_vendor_launch(&mut self) -> Result<(), Stop> {
        self.vendor_mut()
            .finish_launch()
            .map_err(|error| Stop::Mmu {
                error: MmuError::External(error),
                gpa: 0,
            })
    }

    /// Copy `data` into private memory at `gpa`, populating pages as needed.
    fn write(&mut self, gpa: u64, data: &[u8], host: &mut impl Host) -> Result<(), Stop> {
        self.measurement.write(gpa, data);
        let mut done = 0;
        while done < data.len() {
            let at = gpa + done as u64;
            let populated = self.fault_in(at, host).map_err(|e| match e {
                FaultError::Outside => Stop::ImageOutsideMemory { gpa: at, size: 1 },
                other => other.into_stop(at, Access::Write, 0),
            })?;
            self.stats.launch_prepared += populated.prepared;
            let pa = populated.pa;
            let offset = (at % PAGE) as usize;
            let n = (data.len() - done).min(PAGE as usize - offset);
            host.with_frame(pa, |frame| {
                frame[offset..offset + n].copy_from_slice(&data[done..done + n]);
            });
            done += n;
        }
        Ok(())
    }
}
