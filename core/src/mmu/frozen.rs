//! The FROZEN-entry protocol: how one table entry is locked while its external copy (the
//! TDX S-EPT) changes, so that no other walker ever acts on a half-made change.
//!
//! An entry holding [`PteFormat::FROZEN`] belongs to whoever froze it. Freezing is a
//! compare-exchange from the value the freezer saw, so of two walkers racing for one
//! entry exactly one wins; the loser is told [`MmuError::Frozen`] and retries from a
//! fresh walk (where it finds the winner's result). The holder makes its external change
//! and then unlocks, publishing the new value or putting the old one back; only the
//! holder may write a frozen entry.
//!
//! The transitions are written over [`EntryCell`], so the single-threaded table runs
//! them on a [`Cell<u64>`] (plain loads and stores) and concurrent walkers on an
//! [`AtomicU64`]: the same code the loom models in `tools/loom-models` check in every
//! interleaving.

use super::format::PteFormat;
use super::table::MmuError;
use core::cell::Cell;
#[cfg(target_has_atomic = "64")]
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering;

/// One table entry as the protocol reaches it.
///
/// A concurrent implementation loads with [`LOAD_ORDER`] and compare-exchanges with
/// [`EXCHANGE_ORDER`]/[`EXCHANGE_FAILURE_ORDER`]: whoever sees a value an unfreeze
/// published then also sees the external change made before it. There is no plain
/// store: even the holder unlocks with a compare-exchange, so a broken lock is reported
/// ([`Refusal::LockBroken`]) instead of overwritten.
pub trait EntryCell {
    fn load(&self) -> u64;
    /// Write `new` if the entry holds `current`, as one indivisible step. Returns the
    /// value found: `Ok(current)` when written, `Err(found)` when not.
    fn compare_exchange(&self, current: u64, new: u64) -> Result<u64, u64>;
}

pub const LOAD_ORDER: Ordering = Ordering::Acquire;
pub const EXCHANGE_ORDER: Ordering = Ordering::AcqRel;
pub const EXCHANGE_FAILURE_ORDER: Ordering = Ordering::Acquire;

/// An entry only one thread reaches: the table's own, through `&mut`.
impl EntryCell for Cell<u64> {
    #[inline]
    fn load(&self) -> u64 {
        self.get()
    }

    #[inline]
    fn compare_exchange(&self, current: u64, new: u64) -> Result<u64, u64> {
        let found = self.get();
        if found != current {
            return Err(found);
        }
        self.set(new);
        Ok(found)
    }
}

/// An entry walkers on several CPUs share.
#[cfg(target_has_atomic = "64")]
impl EntryCell for AtomicU64 {
    #[inline]
    fn load(&self) -> u64 {
        AtomicU64::load(self, LOAD_ORDER)
    }

    #[inline]
    fn compare_exchange(&self, current: u64, new: u64) -> Result<u64, u64> {
        AtomicU64::compare_exchange(self, current, new, EXCHANGE_ORDER, EXCHANGE_FAILURE_ORDER)
    }
}

/// Why a change under the lock did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal<E> {
    /// Another walker holds the entry, or changed it since it was read: nothing was done.
    /// Retry from a fresh walk (a zap skips the entry).
    Contended,
    /// The external change failed; the entry holds its old value again.
    Refused(E),
    /// The entry no longer held FROZEN when its holder came to unlock it: something broke
    /// the lock. `pte` is what it held, and it was left alone.
    LockBroken { pte: u64 },
}

impl From<Refusal<MmuError>> for MmuError {
    fn from(refusal: Refusal<MmuError>) -> Self {
        match refusal {
            Refusal::Contended => MmuError::Frozen,
            Refusal::Refused(e) => e,
            Refusal::LockBroken { pte } => MmuError::NotFrozen { pte },
        }
    }
}

/// Whether a new leaf or table may go where `pte` is: frozen entries are refused as
/// contention (retry), present ones as already mapped.
#[inline]
pub fn check_vacant<F: PteFormat>(pte: u64) -> Result<(), MmuError> {
    if pte == F::FROZEN {
        Err(MmuError::Frozen)
    } else if F::is_present(pte) {
        Err(MmuError::AlreadyMapped { pte })
    } else {
        Ok(())
    }
}

/// Lock `entry`, which the caller read as `seen`. Refused with [`MmuError::Frozen`] if
/// it is frozen already or no longer holds `seen`.
#[inline]
pub fn freeze<F: PteFormat>(entry: &(impl EntryCell + ?Sized), seen: u64) -> Result<(), MmuError> {
    if seen == F::FROZEN {
        return Err(MmuError::Frozen);
    }
    entry
        .compare_exchange(seen, F::FROZEN)
        .map(|_| ())
        .map_err(|_| MmuError::Frozen)
}

/// Unlock a frozen `entry`, storing `value`. Refused with [`MmuError::NotFrozen`] (and
/// nothing written) if it is not frozen.
#[inline]
pub fn unfreeze<F: PteFormat>(
    entry: &(impl EntryCell + ?Sized),
    value: u64,
) -> Result<(), MmuError> {
    entry
        .compare_exchange(F::FROZEN, value)
        .map(|_| ())
        .map_err(|pte| MmuError::NotFrozen { pte })
}

/// Replace `seen` (what the caller read from the entry `entry(mem)` reaches) with the
/// value `change` returns, running `change` while the entry is frozen: publish that value
/// if it succeeds, put `seen` back if it fails.
///
/// `entry` is a function of `mem` rather than a reference so that `change` may use
/// `mem` (allocate pages, reach other entries) while the entry is locked.
#[inline]
pub fn change_frozen<F, M, C, E>(
    mem: &mut M,
    entry: impl Fn(&mut M) -> &C,
    seen: u64,
    change: impl FnOnce(&mut M) -> Result<u64, E>,
) -> Result<(), Refusal<E>>
where
    F: PteFormat,
    C: EntryCell + ?Sized,
{
    freeze::<F>(entry(mem), seen).map_err(|_| Refusal::Contended)?;
    let changed = change(mem);
    let value = *changed.as_ref().unwrap_or(&seen);
    if let Err(MmuError::NotFrozen { pte }) = unfreeze::<F>(entry(mem), value) {
        return Err(Refusal::LockBroken { pte });
    }
    changed.map(|_| ()).map_err(Refusal::Refused)
}

/// Install `new` where nothing is mapped yet, pushing it to the external copy with
/// `push` while the entry is frozen. A present entry is refused with
/// [`MmuError::AlreadyMapped`], a frozen or contended one with [`MmuError::Frozen`].
#[inline]
pub fn install<F, M, C>(
    mem: &mut M,
    entry: impl Fn(&mut M) -> &C,
    new: u64,
    push: impl FnOnce(&mut M) -> Result<(), MmuError>,
) -> Result<(), MmuError>
where
    F: PteFormat,
    C: EntryCell + ?Sized,
{
    let seen = entry(mem).load();
    check_vacant::<F>(seen)?;
    change_frozen::<F, _, _, _>(mem, entry, seen, |mem| push(mem).map(|()| new))
        .map_err(MmuError::from)
}

/// Clear the present leaf `seen`, telling `remove` it went. With `freeze` (a table with
/// an external copy) the entry stays frozen while `remove` takes the leaf out of that
/// copy, so no walker sees the entry vacant before the external copy is; without, it is
/// cleared first. A refusal from `remove` puts `seen` back either way.
///
/// A table with an external copy must always freeze here: a fault that finds the entry
/// vacant would push a new leaf to an external copy still holding the old one.
#[inline]
pub fn take_leaf<F, M, C, E>(
    mem: &mut M,
    entry: impl Fn(&mut M) -> &C,
    seen: u64,
    freeze: bool,
    remove: impl FnOnce(&mut M) -> Result<(), E>,
) -> Result<(), Refusal<E>>
where
    F: PteFormat,
    C: EntryCell + ?Sized,
{
    if freeze {
        return change_frozen::<F, _, _, _>(mem, entry, seen, |mem| remove(mem).map(|()| 0));
    }
    if entry(mem).compare_exchange(seen, 0).is_err() {
        return Err(Refusal::Contended);
    }
    remove(mem).map_err(|e| {
        // Unlocked: a walker may have filled the entry meanwhile, and keeps what it made.
        let _ = entry(mem).compare_exchange(0, seen);
        Refusal::Refused(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmu::{PageSize, Perms};
    use crate::testing::TestFormat;
    use std::sync::atomic::AtomicUsize;

    fn leaf(pa: u64) -> u64 {
        TestFormat::leaf(pa, PageSize::Size4K, Perms::ALL)
    }

    #[test]
    fn freezing_needs_the_value_seen_and_an_unfrozen_entry() {
        let entry = Cell::new(leaf(0x9000));
        assert_eq!(freeze::<TestFormat>(&entry, 0), Err(MmuError::Frozen));
        assert_eq!(entry.get(), leaf(0x9000), "a stale freeze writes nothing");
        freeze::<TestFormat>(&entry, leaf(0x9000)).unwrap();
        assert_eq!(entry.get(), TestFormat::FROZEN);
        assert_eq!(
            freeze::<TestFormat>(&entry, TestFormat::FROZEN),
            Err(MmuError::Frozen)
        );
        unfreeze::<TestFormat>(&entry, 0).unwrap();
        assert_eq!(
            unfreeze::<TestFormat>(&entry, leaf(0x9000)),
            Err(MmuError::NotFrozen { pte: 0 })
        );
        assert_eq!(entry.get(), 0, "a stray unfreeze writes nothing");
    }

    #[test]
    fn install_pushes_while_frozen_and_restores_on_refusal() {
        let mut entry = Cell::new(0);
        let refused = install::<TestFormat, _, _>(
            &mut entry,
            |e| &*e,
            leaf(0x9000),
            |e| {
                assert_eq!(e.get(), TestFormat::FROZEN);
                Err(MmuError::OutOfTables)
            },
        );
        assert_eq!(refused, Err(MmuError::OutOfTables));
        assert_eq!(entry.get(), 0);
        install::<TestFormat, _, _>(
            &mut entry,
            |e| &*e,
            leaf(0x9000),
            |e| {
                assert_eq!(e.get(), TestFormat::FROZEN);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(entry.get(), leaf(0x9000));
        let again = install::<TestFormat, _, _>(
            &mut entry,
            |e| &*e,
            leaf(0xa000),
            |_| panic!("no push over a present entry"),
        );
        assert_eq!(again, Err(MmuError::AlreadyMapped { pte: leaf(0x9000) }));
    }

    #[test]
    fn a_change_that_overwrites_its_own_frozen_entry_is_reported_not_hidden() {
        let mut entry = Cell::new(0);
        let broken = change_frozen::<TestFormat, _, _, ()>(
            &mut entry,
            |e| &*e,
            0,
            |e| {
                e.set(leaf(0xb000));
                Ok(leaf(0x9000))
            },
        );
        assert_eq!(broken, Err(Refusal::LockBroken { pte: leaf(0xb000) }));
        assert_eq!(entry.get(), leaf(0xb000));
    }

    #[test]
    fn take_leaf_keeps_a_mirrored_entry_frozen_until_the_external_copy_let_go() {
        let mut entry = Cell::new(leaf(0x9000));
        let seen = entry.get();
        take_leaf::<TestFormat, _, _, ()>(
            &mut entry,
            |e| &*e,
            seen,
            true,
            |e| {
                assert_eq!(e.get(), TestFormat::FROZEN);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(entry.get(), 0);

        entry.set(seen);
        let refused = take_leaf::<TestFormat, _, _, _>(
            &mut entry,
            |e| &*e,
            seen,
            false,
            |e| {
                assert_eq!(e.get(), 0, "unmirrored entries are cleared first");
                Err("busy")
            },
        );
        assert_eq!(refused, Err(Refusal::Refused("busy")));
        assert_eq!(entry.get(), seen, "the refused leaf is back");
    }

    /// The same transitions on a real atomic, raced by real threads: exactly one of the
    /// racers pushes, every racer ends up seeing its leaf. (The loom models check this
    /// in every interleaving; this checks the `AtomicU64` cell itself.)
    #[test]
    fn racing_installs_on_an_atomic_entry_push_exactly_once() {
        for _ in 0..200 {
            let entry = AtomicU64::new(0);
            let pushes = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for pa in [0x9000, 0xa000] {
                    let (entry, pushes) = (&entry, &pushes);
                    s.spawn(move || {
                        loop {
                            let mut at = entry;
                            let done = install::<TestFormat, _, _>(
                                &mut at,
                                |e| *e,
                                leaf(pa),
                                |e| {
                                    assert_eq!(EntryCell::load(*e), TestFormat::FROZEN);
                                    pushes.fetch_add(1, Ordering::Relaxed);
                                    Ok(())
                                },
                            );
                            match done {
                                Ok(()) | Err(MmuError::AlreadyMapped { .. }) => break,
                                Err(MmuError::Frozen) => std::thread::yield_now(),
                                Err(e) => panic!("{e:?}"),
                            }
                        }
                    });
                }
            });
            assert_eq!(pushes.load(Ordering::Relaxed), 1);
            assert!(TestFormat::is_present(EntryCell::load(&entry)));
        }
    }
}
