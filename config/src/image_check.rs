//! Rules about the workload image, checked once it exists (it may be built from the
//! workspace after the configuration is read).

use crate::diagnostic::Diagnostic;
use crate::key_path;
use crate::schema::{Config, PoolKind};
use cloister_abi::boot::IMAGE_MIN_GPA;
use cloister_core::elf::ElfImage;

pub fn check(config: &Config, image: &[u8]) -> Vec<Diagnostic> {
    let key = key_path!["workload", "image"];
    let elf = match ElfImage::parse(image) {
        Ok(elf) => elf,
        Err(e) => {
            return vec![
                Diagnostic::new(
                    key,
                    format!("{:?}: {}", config.workload.image, e.describe()),
                )
                .hint("the workload must be an ELF64 x86-64 executable (see docs/abi.md)"),
            ];
        }
    };
    let private_slot = |gpa: u64, size: u64| {
        config.workload.memory.iter().any(|s| {
            let private = config
                .pool(&s.pool)
                .is_some_and(|p| p.kind == PoolKind::Private);
            private && gpa >= s.gpa.0 && gpa.saturating_add(size) <= s.gpa.0 + s.size.0
        })
    };
    let mut out = Vec::new();
    for segment in elf.segments() {
        match segment {
            Err(e) => out.push(Diagnostic::new(key.clone(), e.describe())),
            Ok(s) if s.gpa < IMAGE_MIN_GPA || !private_slot(s.gpa, s.mem_size) => out.push(
                Diagnostic::new(
                    key.clone(),
                    format!("segment [{:#x}, {:#x}) is not inside a private memory slot above {IMAGE_MIN_GPA:#x}", s.gpa, s.gpa + s.mem_size),
                )
                .hint("link the workload at 0x200000 or above (the SDK's workload.ld does), inside a private workload.memory slot"),
            ),
            Ok(_) => {}
        }
    }
    if elf.entry < IMAGE_MIN_GPA || !private_slot(elf.entry, 1) {
        out.push(Diagnostic::new(
            key,
            format!(
                "entry point {:#x} is not in private memory above {IMAGE_MIN_GPA:#x}",
                elf.entry
            ),
        ));
    }
    out
}
