//! Names the model's flows use for statuses of the teardown and key states (now in
//! [`crate::status`]; kept so the model reads like the module source).

use crate::status::Status;

/// A memory or vCPU SEAMCALL after VPFLUSHDONE (`check_td_in_correct_build_state`).
pub const TD_KEYS_NOT_CONFIGURED: Status = Status::TD_KEYS_NOT_CONFIGURED;
/// KEY.FREEID before CACHE.WB completed after VPFLUSHDONE.
pub const WBCACHE_NOT_COMPLETE: Status = Status::WBCACHE_NOT_COMPLETE;
/// CACHE.WB with no key waiting for a write-back; KVM treats it as "already done".
pub const NO_HKID_READY_TO_WBCACHE: Status = Status::NO_HKID_READY_TO_WBCACHE;
/// CACHE.WB with `resume` and no interrupted write-back.
pub const WBCACHE_RESUME_ERROR: Status = Status::WBCACHE_RESUME_ERROR;
