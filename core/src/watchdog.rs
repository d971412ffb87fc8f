//! The workload watchdog: a workload that makes no hypercall for the configured time is
//! stopped as unresponsive, whatever it does meanwhile (an endless loop with its
//! interrupts off included).
//!
//! Time comes from the board's preemption tick: a periodic host timer whose every
//! interrupt while the workload runs is an [`crate::exit::Exit::Interrupt`]. Core only
//! counts those exits, so it needs no clock.

/// The watchdog's setting: stop after `limit_ms` without a hypercall, counted in ticks of
/// `tick_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchdogSetting {
    pub limit_ms: u64,
    pub tick_ms: u64,
}

impl WatchdogSetting {
    /// Ticks that must pass without a hypercall (at least one; a partial tick counts
    /// whole, so the workload always gets at least `limit_ms`).
    fn ticks(&self) -> u64 {
        self.limit_ms.div_ceil(self.tick_ms.max(1)).max(1)
    }
}

/// The watchdog's state: the hypercall count at the last tick, and the ticks since it
/// last changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Watchdog {
    setting: WatchdogSetting,
    hypercalls_seen: u64,
    quiet_ticks: u64,
}

impl Watchdog {
    pub(crate) fn new(setting: WatchdogSetting) -> Self {
        Self {
            setting,
            hypercalls_seen: 0,
            quiet_ticks: 0,
        }
    }

    /// One tick passed and the workload has made `hypercalls` so far: `true` when it has
    /// now been quiet for the whole limit.
    pub(crate) fn tick(&mut self, hypercalls: u64) -> bool {
        if hypercalls != self.hypercalls_seen {
            self.hypercalls_seen = hypercalls;
            self.quiet_ticks = 0;
        }
        self.quiet_ticks += 1;
        self.quiet_ticks >= self.setting.ticks()
    }

    pub(crate) fn limit_ms(&self) -> u64 {
        self.setting.limit_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watchdog(limit_ms: u64, tick_ms: u64) -> Watchdog {
        Watchdog::new(WatchdogSetting { limit_ms, tick_ms })
    }

    #[test]
    fn a_quiet_workload_is_caught_after_the_limit_in_ticks() {
        let mut dog = watchdog(50, 10);
        let fired: [bool; 5] = core::array::from_fn(|_| dog.tick(0));
        assert_eq!(fired, [false, false, false, false, true]);
    }

    #[test]
    fn a_hypercall_between_ticks_restarts_the_count() {
        let mut dog = watchdog(30, 10);
        assert!(!dog.tick(0));
        assert!(!dog.tick(0));
        assert!(!dog.tick(1), "a hypercall since the last tick");
        assert!(!dog.tick(1));
        assert!(dog.tick(1));
    }

    #[test]
    fn a_limit_below_one_tick_still_waits_one_tick_and_partial_ticks_round_up() {
        assert!(watchdog(1, 10).tick(0));
        let mut dog = watchdog(25, 10);
        assert!(!dog.tick(0));
        assert!(!dog.tick(0));
        assert!(dog.tick(0));
    }
}
