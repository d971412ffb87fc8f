//! `memcpy`, `memmove`, `memset`, `memcmp`, `bcmp` and `rust_eh_personality`.
//!
//! Bare-metal images are built for `x86_64-unknown-linux-gnu` against the prebuilt
//! `core`, whose `compiler_builtins` exports no mem functions for this target (it expects
//! libc), and which is built with unwinding, so it references a personality routine.
//! Only link this crate into `#![no_std]` images: in a hosted program these symbols
//! would collide with libc's.
//!
//! Copies and fills use `rep movsq`/`rep stosq` for the bulk and the byte forms for the
//! tail (QEMU's instruction counting counts each repetition, so 8 bytes per step is 8
//! times cheaper to measure, and as fast as ERMSB on hardware); the compare loop reads through `read_volatile` so
//! LLVM cannot recognise it as a `memcmp` idiom and make the function call itself.
#![no_std]

use core::arch::asm;

/// # Safety
/// `dest` and `src` must be valid for `n` bytes and must not overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges are valid and disjoint; the string
    // instructions copy forwards, which is correct for disjoint ranges: the bulk 8 bytes
    // at a time, then the tail. DF is clear per the SysV ABI.
    unsafe {
        asm!("rep movsq", "mov rcx, {tail}", "rep movsb",
             tail = in(reg) n % 8,
             inout("rcx") n / 8 => _, inout("rdi") dest => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// `dest` and `src` must be valid for `n` bytes; they may overlap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // SAFETY: dest does not start inside [src, src + n), so a forward copy never
        // overwrites a byte before reading it.
        return unsafe { memcpy(dest, src, n) };
    }
    // SAFETY: dest lies inside the source range: copy backwards (DF=1) from the last
    // byte, then restore DF=0 as the ABI requires.
    unsafe {
        asm!("std", "rep movsb", "cld",
             inout("rcx") n => _,
             inout("rdi") dest.add(n).wrapping_sub(1) => _,
             inout("rsi") src.add(n).wrapping_sub(1) => _,
             options(nostack));
    }
    dest
}

/// # Safety
/// `dest` must be valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, value: i32, n: usize) -> *mut u8 {
    let pattern = u64::from(value as u8) * 0x0101_0101_0101_0101;
    // SAFETY: the caller guarantees `dest` is valid for `n` bytes: the bulk is stored 8
    // bytes at a time, then the tail. DF is clear per the SysV ABI.
    unsafe {
        asm!("rep stosq", "mov rcx, {tail}", "rep stosb",
             tail = in(reg) n % 8,
             inout("rcx") n / 8 => _, inout("rdi") dest => _, in("rax") pattern,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// `a` and `b` must be valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: i < n and the caller guarantees both are valid for n bytes.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// # Safety
/// `a` and `b` must be valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

/// Referenced by the prebuilt `core` (built with unwinding); never called because every
/// image is built with `panic = "abort"`.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}
