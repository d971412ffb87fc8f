//! The TDX module model behind a recorder that writes every call into the journal the
//! host shares, so tests can check the order of SEAMCALLs against frame clears.

use super::host::{Event, Journal};
use cloister_tdx::model::TdxModel;
use cloister_tdx::{Level, Status, TdPages, TdxModule};

pub struct Recorder {
    pub model: TdxModel,
    journal: Journal,
}

impl Recorder {
    pub fn new(model: TdxModel, journal: Journal) -> Self {
        Self { model, journal }
    }

    fn note(&self, name: &'static str, at: u64) {
        self.journal.borrow_mut().push(Event::Module(name, at));
    }
}

impl TdxModule for Recorder {
    fn sept_add(&mut self, gpa: u64, level: Level, page: u64) -> Result<(), Status> {
        self.note("SEPT.ADD", gpa);
        self.model.sept_add(gpa, level, page)
    }
    fn page_add(&mut self, gpa: u64, page: u64, source: u64) -> Result<(), Status> {
        self.note("PAGE.ADD", gpa);
        self.model.page_add(gpa, page, source)
    }
    fn page_aug(&mut self, gpa: u64, level: Level, page: u64) -> Result<(), Status> {
        self.note("PAGE.AUG", gpa);
        self.model.page_aug(gpa, level, page)
    }
    fn range_block(&mut self, gpa: u64, level: Level) -> Result<(), Status> {
        self.note("RANGE.BLOCK", gpa);
        self.model.range_block(gpa, level)
    }
    fn range_unblock(&mut self, gpa: u64, level: Level) -> Result<(), Status> {
        self.note("RANGE.UNBLOCK", gpa);
        self.model.range_unblock(gpa, level)
    }
    fn track(&mut self) -> Result<(), Status> {
        self.note("TRACK", 0);
        self.model.track()
    }
    fn page_remove(&mut self, gpa: u64, level: Level) -> Result<u64, Status> {
        self.note("PAGE.REMOVE", gpa);
        self.model.page_remove(gpa, level)
    }
    fn sept_remove(&mut self, gpa: u64, level: Level) -> Result<u64, Status> {
        self.note("SEPT.REMOVE", gpa);
        self.model.sept_remove(gpa, level)
    }
    fn mr_extend(&mut self, gpa: u64) -> Result<(), Status> {
        self.note("MR.EXTEND", gpa);
        self.model.mr_extend(gpa)
    }
    fn mr_finalize(&mut self) -> Result<(), Status> {
        self.note("MR.FINALIZE", 0);
        self.model.mr_finalize()
    }
    fn page_wbinvd(&mut self, page: u64) -> Result<(), Status> {
        self.note("PAGE.WBINVD", page);
        self.model.page_wbinvd(page)
    }
    fn vp_flush(&mut self, vcpu: usize) -> Result<(), Status> {
        self.note("VP.FLUSH", vcpu as u64);
        self.model.vp_flush(vcpu)
    }
    fn vpflushdone(&mut self) -> Result<(), Status> {
        self.note("VPFLUSHDONE", 0);
        self.model.vpflushdone()
    }
    fn cache_wb(&mut self, resume: bool) -> Result<(), Status> {
        self.note("CACHE.WB", u64::from(resume));
        self.model.cache_wb(resume)
    }
    fn key_freeid(&mut self) -> Result<(), Status> {
        self.note("KEY.FREEID", 0);
        self.model.key_freeid()
    }
    fn page_reclaim(&mut self, page: u64) -> Result<(), Status> {
        self.note("PAGE.RECLAIM", page);
        self.model.page_reclaim(page)
    }
    fn kick_vcpus(&mut self) {
        self.note("kick", 0);
        self.model.kick_vcpus();
    }
    fn vcpu_count(&self) -> usize {
        self.model.vcpu_count()
    }
    fn td_pages(&self) -> TdPages {
        self.model.td_pages()
    }
}
