//! A way to the platform model that also records, in one order, every RMP instruction,
//! firmware command and WBINVD the hooks issue through it (the model keeps separate
//! logs), and can play another CPU changing the RMP between two of them.

use cloister_svm::sev::firmware::{FwCall, SevCommand};
use cloister_svm::sev::platform_model::{ModelAccess, SevModel};
use cloister_svm::sev::rmp::{RmpCall, RmpState};
use std::cell::RefCell;
use std::rc::Rc;

/// One platform operation, in the order the hooks issued them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Rmp(RmpCall),
    Fw(FwCall),
    Wbinvd,
}

impl Step {
    /// The firmware command, if the step is one.
    pub fn command(&self) -> Option<SevCommand> {
        match self {
            Self::Fw(call) => Some(call.command),
            _ => None,
        }
    }

    /// The RMPUPDATE's address and new state, if the step is one.
    pub fn rmpupdate(&self) -> Option<(u64, RmpState)> {
        match *self {
            Self::Rmp(RmpCall::Rmpupdate { pa, state, .. }) => Some((pa, state)),
            _ => None,
        }
    }
}

/// Runs before each operation until it returns `false`.
pub type Hook = Box<dyn FnMut(&mut SevModel) -> bool>;

#[derive(Clone)]
pub struct Probe {
    pub model: Rc<RefCell<SevModel>>,
    pub trace: Rc<RefCell<Vec<Step>>>,
    hook: Rc<RefCell<Option<Hook>>>,
}

impl Probe {
    pub fn new(model: Rc<RefCell<SevModel>>) -> Self {
        Self {
            model,
            trace: Rc::default(),
            hook: Rc::default(),
        }
    }

    pub fn take_trace(&self) -> Vec<Step> {
        core::mem::take(&mut self.trace.borrow_mut())
    }

    /// Run `hook` on the model before each of the next operations, until it returns
    /// `false` (another CPU at work between the hypervisor's instructions).
    pub fn before_each(&self, hook: impl FnMut(&mut SevModel) -> bool + 'static) {
        *self.hook.borrow_mut() = Some(Box::new(hook));
    }
}

impl ModelAccess for Probe {
    fn with<R>(&self, f: impl FnOnce(&mut SevModel) -> R) -> R {
        let mut model = self.model.borrow_mut();
        let mut hook = self.hook.borrow_mut();
        if let Some(run) = hook.as_mut()
            && !run(&mut model)
        {
            *hook = None;
        }
        drop(hook);
        let rmp_calls = model.firmware.rmp.log().len();
        let fw_calls = model.firmware.log().len();
        let wbinvds = model.firmware.rmp.counts().wbinvds;
        let result = f(&mut model);
        let mut trace = self.trace.borrow_mut();
        let rmp = &model.firmware.rmp;
        trace.extend(rmp.log()[rmp_calls..].iter().copied().map(Step::Rmp));
        trace.extend(
            model.firmware.log()[fw_calls..]
                .iter()
                .copied()
                .map(Step::Fw),
        );
        for _ in wbinvds..rmp.counts().wbinvds {
            trace.push(Step::Wbinvd);
        }
        result
    }
}
