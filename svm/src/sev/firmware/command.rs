//! The commands [`super::SevFirmware`] issues, with their IDs (Linux `enum sev_cmd`,
//! AMD-ASPFW `sev_mcmd_id_t`).

/// One PSP command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SevCommand {
    Init,
    DfFlush,
    Decommission,
    Activate,
    Deactivate,
    LaunchStart,
    LaunchUpdateData,
    LaunchMeasure,
    LaunchFinish,
    SnpInit,
    SnpDfFlush,
    SnpDecommission,
    SnpActivate,
    SnpGctxCreate,
    SnpLaunchStart,
    SnpLaunchUpdate,
    SnpLaunchFinish,
    SnpPageReclaim,
}

impl SevCommand {
    /// The command ID (written to CmdResp from bit 16).
    pub const fn id(self) -> u32 {
        match self {
            Self::Init => 0x001,
            Self::DfFlush => 0x00a,
            Self::Decommission => 0x020,
            Self::Activate => 0x021,
            Self::Deactivate => 0x022,
            Self::LaunchStart => 0x030,
            Self::LaunchUpdateData => 0x031,
            Self::LaunchMeasure => 0x033,
            Self::LaunchFinish => 0x035,
            Self::SnpInit => 0x081,
            Self::SnpDfFlush => 0x084,
            Self::SnpDecommission => 0x090,
            Self::SnpActivate => 0x091,
            Self::SnpGctxCreate => 0x093,
            Self::SnpLaunchStart => 0x0a0,
            Self::SnpLaunchUpdate => 0x0a1,
            Self::SnpLaunchFinish => 0x0a2,
            Self::SnpPageReclaim => 0x0c7,
        }
    }

    /// Linux's name without the `SEV_CMD_` prefix.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Init => "INIT",
            Self::DfFlush => "DF_FLUSH",
            Self::Decommission => "DECOMMISSION",
            Self::Activate => "ACTIVATE",
            Self::Deactivate => "DEACTIVATE",
            Self::LaunchStart => "LAUNCH_START",
            Self::LaunchUpdateData => "LAUNCH_UPDATE_DATA",
            Self::LaunchMeasure => "LAUNCH_MEASURE",
            Self::LaunchFinish => "LAUNCH_FINISH",
            Self::SnpInit => "SNP_INIT",
            Self::SnpDfFlush => "SNP_DF_FLUSH",
            Self::SnpDecommission => "SNP_DECOMMISSION",
            Self::SnpActivate => "SNP_ACTIVATE",
            Self::SnpGctxCreate => "SNP_GCTX_CREATE",
            Self::SnpLaunchStart => "SNP_LAUNCH_START",
            Self::SnpLaunchUpdate => "SNP_LAUNCH_UPDATE",
            Self::SnpLaunchFinish => "SNP_LAUNCH_FINISH",
            Self::SnpPageReclaim => "SNP_PAGE_RECLAIM",
        }
    }
}
