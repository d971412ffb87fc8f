//! `backend = "tdx"` on this board: find out whether the CPU has SEAM mode, say plainly
//! that the workload cannot run, and leave QEMU with [`Outcome::BackendUnavailable`].
//!
//! QEMU's emulation has neither SEAM mode nor a TDX module, so under QEMU the image
//! always stops here. On a CPU with TDX it stops too, for now: this board cannot create
//! TDs (TDH.MNG.CREATE and the rest of TD build) nor enter them (TDH.VP.ENTER) yet. The
//! TDX backend is tested against its software model (`cargo test -p cloister-tdx`).

use crate::debug_exit::{self, Outcome};
use cloister_tdx::TdxModule;
use cloister_tdx::seamcall::{self, Seamcall};
use cloister_x86::{println, set_phase};

/// Runs after boot and heap setup, instead of anything SVM; never returns.
pub fn stop() -> ! {
    set_phase("tdx detection");
    link_seamcall_wrappers();
    match seamcall::detect() {
        Err(why) => {
            defmt::info!("TDX unavailable: {=str}", why.reason());
            println!(
                "cloister: backend \"tdx\" cannot run here: TDX needs a CPU with SEAM mode and \
                 a loaded TDX module, and QEMU's emulation provides neither (the TDX backend \
                 is tested against its software model: cargo test -p cloister-tdx)"
            );
        }
        Ok(()) => {
            defmt::info!("SEAM mode is enabled on this CPU");
            println!(
                "cloister: backend \"tdx\" cannot run here yet: this CPU has SEAM mode, but \
                 this board cannot build TDs (TD creation and TDH.VP.ENTER are not \
                 implemented)"
            );
        }
    }
    debug_exit::exit(Outcome::BackendUnavailable)
}

/// Keep the real SEAMCALL wrappers in the image, as the TD code will use them: a
/// `TdxModule` vtable for [`Seamcall`] names every method, and `black_box` keeps the
/// linker from dropping it. No `Seamcall` is created, so no SEAMCALL is issued.
fn link_seamcall_wrappers() {
    let wrappers: *const dyn TdxModule = core::ptr::null::<Seamcall>();
    core::hint::black_box(wrappers);
}
