use super::*;

const MB2: u64 = 2 << 20;

/// A descriptor buffer as large as the GHCB shared buffer, with `entries` from 0.
fn descriptor(cur_entry: u16, end_entry: u16, entries: &[PscEntry]) -> [u8; PSC_MAX_SIZE] {
    let mut buf = [0u8; PSC_MAX_SIZE];
    let header = PscHeader {
        cur_entry,
        end_entry,
        reserved: 0,
    };
    buf[..8].copy_from_slice(&header.to_bytes());
    for (i, entry) in entries.iter().enumerate() {
        buf[8 + i * 8..16 + i * 8].copy_from_slice(&entry.encode().to_le_bytes());
    }
    buf
}

fn small(gfn: u64, op: PscOp) -> PscEntry {
    PscEntry::new(gfn, op, false)
}

fn huge(gfn: u64, op: PscOp) -> PscEntry {
    PscEntry::new(gfn, op, true)
}

fn done(entry: PscEntry, cur_page: u16) -> PscEntry {
    PscEntry { cur_page, ..entry }
}

/// Run a descriptor to the end as a hypervisor converting at most `per_step` pages per
/// range would; returns the (gpa, pages, to_private) pieces converted.
fn drain(buf: &mut [u8], per_step: u64) -> std::vec::Vec<(u64, u64, bool)> {
    let mut pieces = std::vec::Vec::new();
    let mut psc = PscDescriptor::parse(buf).expect("valid descriptor");
    let mut steps = 0;
    while let Some(range) = psc.next_range() {
        let pages = range.pages.min(per_step);
        pieces.push((range.gpa, pages, range.to_private()));
        psc.complete(&range, pages);
        steps += 1;
        assert!(steps < 10_000, "no progress");
    }
    assert!(psc.is_done());
    pieces
}

extern crate std;

#[test]
fn entry_bits_match_linux_psc_entry() {
    // cur_page : 12, gfn : 40, operation : 4, pagesize : 1, reserved : 7.
    let entry = PscEntry {
        cur_page: 0x123,
        gfn: 0xab_cdef_0123,
        op: PscOp::SHARED,
        huge: true,
        reserved: 0,
    };
    assert_eq!(entry.encode(), 0x012a_bcde_f012_3123);
    assert_eq!(PscEntry::decode(entry.encode()), entry);
    let all_ones = PscEntry::decode(u64::MAX);
    assert_eq!(
        all_ones,
        PscEntry {
            cur_page: 0xfff,
            gfn: (1 << 40) - 1,
            op: PscOp(0xf),
            huge: true,
            reserved: 0x7f
        }
    );
    assert_eq!(all_ones.encode(), u64::MAX);
    assert_eq!(all_ones.remaining(), 0);
    // The header: cur_entry u16, end_entry u16, reserved u32.
    let header = PscHeader {
        cur_entry: 0x0102,
        end_entry: 0x0304,
        reserved: 0x0506_0708,
    };
    assert_eq!(header.to_bytes(), [2, 1, 4, 3, 8, 7, 6, 5]);
    assert_eq!(PscHeader::read(&header.to_bytes()), Some(header));
    assert_eq!(PscHeader::read(&[0; 7]), None);
    // Error values of sev-common.h.
    assert_eq!(PSC_ERROR_INVALID_HDR, 0x1_0000_0001);
    assert_eq!(PSC_ERROR_INVALID_ENTRY, 0x1_0000_0002);
    assert_eq!(PSC_ERROR_GENERIC, 0x100_0000_0000);
    assert_eq!(PSC_MAX_SIZE, 2032);
}

#[test]
fn entry_checks_follow_kvm() {
    let ok = [
        small(7, PscOp::PRIVATE),
        done(small(7, PscOp::SHARED), 1),
        huge(512, PscOp::PSMASH),
        done(huge(1024, PscOp::UNSMASH), 512),
    ];
    for entry in ok {
        assert_eq!(entry.check(3), Ok(()), "{entry:?}");
    }
    let bad = [
        small(7, PscOp(0)),
        small(7, PscOp(5)),
        small(7, PscOp(0xf)),
        done(small(7, PscOp::SHARED), 2),
        done(huge(512, PscOp::SHARED), 513),
        huge(513, PscOp::SHARED),
        PscEntry {
            reserved: 1,
            ..small(7, PscOp::SHARED)
        },
    ];
    for entry in bad {
        assert_eq!(
            entry.check(3),
            Err(PscError::InvalidEntry { index: 3 }),
            "{entry:?}"
        );
    }
}

#[test]
fn headers_are_checked_before_anything_else() {
    let entries = [small(1, PscOp::SHARED); PSC_MAX_ENTRIES];
    // end_entry must be below 253, whatever cur_entry says (KVM checks it first).
    for end in [253, 254, 0x7fff, 0xffff] {
        let buf = descriptor(0xffff, end, &entries);
        assert_eq!(
            PscDescriptor::parse(&buf[..]).err(),
            Some(PscError::InvalidHeader)
        );
    }
    // The entries up to end_entry must fit the buffer.
    let buf = descriptor(0, 252, &entries);
    assert!(PscDescriptor::parse(&buf[..]).is_ok());
    assert_eq!(
        PscDescriptor::parse(&buf[..PSC_MAX_SIZE - 1]).err(),
        Some(PscError::InvalidHeader)
    );
    let buf = descriptor(0, 3, &entries);
    assert_eq!(
        PscDescriptor::parse(&buf[..39]).err(),
        Some(PscError::InvalidHeader)
    );
    assert!(PscDescriptor::parse(&buf[..40]).is_ok());
    for len in 0..8 {
        assert_eq!(
            PscDescriptor::parse(&buf[..len]).err(),
            Some(PscError::InvalidHeader)
        );
    }
    assert_eq!(PscError::InvalidHeader.code(), PSC_ERROR_INVALID_HDR);
}

#[test]
fn entries_from_cur_entry_to_end_entry_are_validated_whole() {
    let bad = small(9, PscOp(7));
    let good = small(1, PscOp::SHARED);
    // An invalid entry anywhere in the request refuses all of it.
    let buf = descriptor(0, 2, &[good, good, bad]);
    let error = PscDescriptor::parse(&buf[..]).err();
    assert_eq!(error, Some(PscError::InvalidEntry { index: 2 }));
    assert_eq!(error.map(PscError::code), Some(PSC_ERROR_INVALID_ENTRY));
    // Entries before cur_entry and after end_entry are not part of it.
    let buf = descriptor(1, 1, &[bad, good, bad]);
    assert!(PscDescriptor::parse(&buf[..]).is_ok());
    // cur_entry past end_entry: nothing to do, nothing checked.
    let mut buf = descriptor(5, 2, &[bad, bad, bad]);
    let mut psc = PscDescriptor::parse(&mut buf[..]).unwrap();
    assert!(psc.is_done());
    assert_eq!(psc.next_range(), None);
}

#[test]
fn contiguous_entries_with_the_same_op_and_size_merge() {
    let s = PscOp::SHARED;
    let entries = [
        small(0x100, s),
        small(0x101, s),
        small(0x102, s),
        // A gap ends the run.
        small(0x104, s),
        // Another operation ends it.
        small(0x105, PscOp::PRIVATE),
        // So does another page size.
        huge(0x200, PscOp::PRIVATE),
        huge(0x400, PscOp::PRIVATE),
    ];
    let mut buf = descriptor(0, 6, &entries);
    let mut psc = PscDescriptor::parse(&mut buf[..]).unwrap();
    let first = psc.next_range().unwrap();
    assert_eq!(
        (first.first_entry, first.last_entry, first.gpa, first.pages),
        (0, 2, 0x10_0000, 3)
    );
    assert!(!first.to_private() && !first.huge);
    assert_eq!(first.len(), 3 * 4096);
    // Taking a range changes nothing until it is completed.
    assert_eq!(psc.next_range(), Some(first));
    psc.complete(&first, 3);
    assert_eq!(psc.header().cur_entry, 3);
    let ranges: std::vec::Vec<_> = core::iter::from_fn(|| {
        let range = psc.next_range()?;
        psc.complete(&range, range.pages);
        Some((range.first_entry, range.last_entry, range.pages, range.huge))
    })
    .collect();
    assert_eq!(
        ranges,
        [(3, 3, 1, false), (4, 4, 1, false), (5, 6, 1024, true)]
    );
    for i in 0..7 {
        let entry = psc.entry(i).unwrap();
        assert_eq!(u64::from(entry.cur_page), entry.pages());
    }
    assert_eq!(psc.header().cur_entry, 7);
}

#[test]
fn a_partly_done_2mib_entry_continues_as_4kib_pages() {
    let p = PscOp::PRIVATE;
    // 2 MiB at 0x200000 with 100 pages done, then the 4 KiB page right after it.
    let entries = [done(huge(0x200, p), 100), small(0x400, p), huge(0x600, p)];
    let mut buf = descriptor(0, 2, &entries);
    let mut psc = PscDescriptor::parse(&mut buf[..]).unwrap();
    let range = psc.next_range().unwrap();
    assert_eq!((range.gpa, range.pages), (0x200000 + 100 * 4096, 412 + 1));
    assert_eq!((range.first_entry, range.last_entry), (0, 1));
    assert!(!range.huge && range.to_private());
    // Part of it: the first entry's cur_page moves on, cur_entry stays.
    psc.complete(&range, 12);
    assert_eq!(psc.entry(0).unwrap().cur_page, 112);
    assert_eq!(psc.header().cur_entry, 0);
    // The rest of the first entry exactly: cur_entry moves to the 4 KiB entry.
    let range = psc.next_range().unwrap();
    assert_eq!(range.gpa, 0x200000 + 112 * 4096);
    psc.complete(&range, 400);
    assert_eq!(psc.entry(0).unwrap().cur_page, 512);
    assert_eq!(psc.entry(1).unwrap().cur_page, 0);
    assert_eq!(psc.header().cur_entry, 1);
    // The 4 KiB entry does not merge with the 2 MiB one after it.
    let range = psc.next_range().unwrap();
    assert_eq!(
        (range.first_entry, range.last_entry, range.pages),
        (1, 1, 1)
    );
}

#[test]
fn a_partly_done_entry_merges_only_with_what_really_follows_it() {
    let p = PscOp::PRIVATE;
    // KVM compares the next GFN with the first entry's unadjusted GFN plus the pages
    // left (0x200 + 412 = 0x39c): an entry there overlaps the first and must not merge.
    let entries = [done(huge(0x200, p), 100), small(0x39c, p)];
    let mut buf = descriptor(0, 1, &entries);
    let mut psc = PscDescriptor::parse(&mut buf[..]).unwrap();
    let range = psc.next_range().unwrap();
    assert_eq!((range.last_entry, range.pages), (0, 412));
}

#[test]
fn done_entries_are_stepped_over_and_psmash_unsmash_complete_on_the_spot() {
    let s = PscOp::SHARED;
    let entries = [
        done(small(1, s), 1),
        huge(0x200, PscOp::PSMASH),
        done(huge(0x400, PscOp::UNSMASH), 3),
        huge(0x600, PscOp::UNSMASH),
        done(huge(0x800, s), 512),
        small(0x1000, s),
        huge(0xa00, PscOp::PSMASH),
    ];
    let mut buf = descriptor(0, 6, &entries);
    let mut psc = PscDescriptor::parse(&mut buf[..]).unwrap();
    let range = psc.next_range().unwrap();
    assert_eq!(
        (range.first_entry, range.gpa, range.pages),
        (5, 0x100_0000, 1)
    );
    assert_eq!(psc.header().cur_entry, 5);
    for i in 1..4 {
        assert_eq!(psc.entry(i).unwrap().cur_page, 512, "entry {i}");
    }
    psc.complete(&range, 1);
    // The trailing PSMASH completes without a range, and the request is done.
    assert_eq!(psc.next_range(), None);
    assert_eq!(psc.header().cur_entry, 7);
    assert_eq!(psc.entry(6).unwrap().cur_page, 512);
    // Only hints: nothing to convert at all.
    let mut buf = descriptor(0, 1, &[huge(0, PscOp::PSMASH), small(9, PscOp::UNSMASH)]);
    let mut psc = PscDescriptor::parse(&mut buf[..]).unwrap();
    assert_eq!(psc.next_range(), None);
    assert!(psc.is_done());
}

#[test]
fn complete_records_progress_across_merged_entries() {
    let s = PscOp::SHARED;
    let entries = [huge(0, s), huge(0x200, s), huge(0x400, s)];
    let mut buf = descriptor(0, 2, &entries);
    let mut psc = PscDescriptor::parse(&mut buf[..]).unwrap();
    let range = psc.next_range().unwrap();
    assert_eq!((range.pages, range.huge), (1536, true));
    // Nothing done: nothing changes.
    psc.complete(&range, 0);
    assert_eq!(psc.header().cur_entry, 0);
    assert_eq!(psc.entry(0).unwrap().cur_page, 0);
    // 700 pages: the first entry done, the second at 188.
    psc.complete(&range, range.pages_before(700 * 4096));
    assert_eq!(psc.entry(0).unwrap().cur_page, 512);
    assert_eq!(psc.entry(1).unwrap().cur_page, 188);
    assert_eq!(psc.entry(2).unwrap().cur_page, 0);
    assert_eq!(psc.header().cur_entry, 1);
    // The rest resumes at the partly done entry, as 4 KiB pages; the last one, a fresh
    // 2 MiB entry, is another run.
    let range = psc.next_range().unwrap();
    assert_eq!(
        (range.gpa, range.pages, range.huge),
        (700 * 4096, 324, false)
    );
    // More than the range counts as all of it.
    psc.complete(&range, u64::MAX);
    assert_eq!(psc.header().cur_entry, 2);
    let range = psc.next_range().unwrap();
    psc.complete(&range, range.pages);
    assert!(psc.is_done());
    assert_eq!(psc.next_range(), None);
}

#[test]
fn other_bits_of_an_entry_survive_completion() {
    let entries = [huge(0xff_ffff_fe00, PscOp::PRIVATE)];
    let mut buf = descriptor(0, 0, &entries);
    let before = u64::from_le_bytes(buf[8..16].try_into().unwrap());
    let mut psc = PscDescriptor::parse(&mut buf[..]).unwrap();
    let range = psc.next_range().unwrap();
    assert_eq!(range.gpa, 0xf_ffff_ffe0_0000);
    psc.complete(&range, 5);
    let after = u64::from_le_bytes(buf[8..16].try_into().unwrap());
    assert_eq!(after, before | 5);
}

#[test]
fn pages_before_is_clamped_to_the_range() {
    let mut buf = descriptor(0, 0, &[huge(0x200, PscOp::SHARED)]);
    let mut psc = PscDescriptor::parse(&mut buf[..]).unwrap();
    let range = psc.next_range().unwrap();
    assert_eq!(range.pages_before(0), 0);
    assert_eq!(range.pages_before(range.gpa), 0);
    assert_eq!(range.pages_before(range.gpa + 4096 * 3 + 5), 3);
    assert_eq!(range.pages_before(u64::MAX), 512);
    assert!(!range.is_empty());
}

#[test]
fn the_builder_uses_2mib_entries_where_aligned() {
    let mut buf = [0u8; PSC_MAX_SIZE];
    let mut builder = PscBuilder::new(&mut buf);
    // 1 page before a 2 MiB boundary, two 2 MiB pages, 3 pages after.
    let gpa = 4 * MB2 - 4096;
    assert_eq!(builder.push(gpa, 1 + 1024 + 3, PscOp::SHARED), Ok(1028));
    // A second range, private.
    assert_eq!(builder.push(0x10_0000, 2, PscOp::PRIVATE), Ok(2));
    assert_eq!(builder.len(), 1 + 2 + 3 + 2);
    let header = builder.finish().unwrap();
    assert_eq!((header.cur_entry, header.end_entry), (0, 7));
    let psc = PscDescriptor::parse(&buf[..]).unwrap();
    let sizes: std::vec::Vec<_> = (0..8).map(|i| psc.entry(i).unwrap().huge).collect();
    assert_eq!(
        sizes,
        [false, true, true, false, false, false, false, false]
    );
    assert_eq!(psc.entry(1).unwrap().gpa(), 4 * MB2);
    // A hypervisor converting 512 pages at a time sees exactly the ranges.
    let pieces = drain(&mut buf, 512);
    let total_shared: u64 = pieces.iter().filter(|p| !p.2).map(|p| p.1).sum();
    let total_private: u64 = pieces.iter().filter(|p| p.2).map(|p| p.1).sum();
    assert_eq!((total_shared, total_private), (1028, 2));
    assert_eq!(pieces[0], (gpa, 1, false));
    assert_eq!(pieces[1], (4 * MB2, 512, false));
}

#[test]
fn the_builder_stops_at_the_entry_limit() {
    let mut buf = [0u8; PSC_MAX_SIZE];
    let mut builder = PscBuilder::new(&mut buf);
    // 300 unaligned pages: only 253 entries fit.
    assert_eq!(builder.push(0x1000, 300, PscOp::SHARED), Ok(253));
    assert!(builder.is_full());
    assert_eq!(builder.push(0x1000 + 253 * 4096, 47, PscOp::SHARED), Ok(0));
    assert_eq!(builder.finish().unwrap().end_entry, 252);
    // 2 MiB entries carry 253 * 512 pages in one request.
    let mut builder = PscBuilder::new(&mut buf);
    assert_eq!(builder.push(0, 1 << 20, PscOp::PRIVATE), Ok(253 * 512));
    // A smaller buffer holds fewer entries; one without room for an entry holds none.
    let mut small_buf = [0u8; 8 + 3 * 8 + 7];
    let mut builder = PscBuilder::new(&mut small_buf);
    assert_eq!(builder.push(0x1000, 10, PscOp::SHARED), Ok(3));
    let mut tiny = [0u8; 12];
    let mut builder = PscBuilder::new(&mut tiny);
    assert_eq!(builder.push(0x1000, 10, PscOp::SHARED), Ok(0));
    assert!(builder.is_empty());
    assert_eq!(builder.finish(), None);
    assert_eq!(tiny, [0; 12]);
}

#[test]
fn the_builder_refuses_what_an_entry_cannot_name() {
    let mut buf = [0u8; PSC_MAX_SIZE];
    let mut builder = PscBuilder::new(&mut buf);
    let refused = Err(PscError::InvalidEntry { index: 0 });
    assert_eq!(builder.push(0x1001, 1, PscOp::SHARED), refused);
    assert_eq!(builder.push(!0xfff_u64, 2, PscOp::SHARED), refused);
    assert_eq!(builder.push(0, u64::MAX, PscOp::SHARED), refused);
    assert_eq!(builder.push((1 << 52) - 4096, 2, PscOp::SHARED), refused);
    assert_eq!(builder.push(0x1000, 1, PscOp(0)), refused);
    assert_eq!(builder.push(0x1000, 1, PscOp(9)), refused);
    assert!(builder.is_empty());
    // The highest page an entry can name is fine, and so is an empty range.
    assert_eq!(builder.push((1 << 52) - 4096, 1, PscOp::SHARED), Ok(1));
    assert_eq!(builder.push(0x5000, 0, PscOp::SHARED), Ok(0));
    assert_eq!(builder.len(), 1);
}

/// xorshift64*: deterministic bytes for the hostile-input test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn hostile_descriptors_never_panic_and_always_finish() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for round in 0..20_000 {
        let mut buf = [0u8; PSC_MAX_SIZE];
        let len = (rng.next() % (PSC_MAX_SIZE as u64 + 1)) as usize;
        // Mostly plausible entries (so that many parse), some pure noise.
        for chunk in buf.chunks_exact_mut(8) {
            let raw = rng.next();
            // One in 256 of each kind of defect: misaligned, cur_page too large,
            // undefined operation, reserved bits.
            let defect = |shift: u32| raw >> shift & 0xff == 0;
            let huge = raw & 1 == 1;
            let pages: u64 = if huge { 512 } else { 1 };
            // Aligned GFNs in a small space, so that runs merge.
            let gfn = (raw >> 4 & 0x3f) * pages + u64::from(defect(10) && huge);
            let cur_page = match raw >> 18 & 3 {
                0 => (raw >> 20) as u16 % (pages as u16 + 1),
                _ => 0,
            } + u16::from(defect(30)) * pages as u16;
            let op = if defect(38) {
                0
            } else {
                1 + (raw >> 46) as u8 % 4
            };
            let plausible = PscEntry {
                cur_page,
                gfn,
                op: PscOp(op),
                huge,
                reserved: u8::from(defect(50)),
            };
            let value = if round % 4 == 0 {
                raw
            } else {
                plausible.encode()
            };
            chunk.copy_from_slice(&value.to_le_bytes());
        }
        let header = PscHeader {
            cur_entry: (rng.next() % 8) as u16,
            end_entry: match round % 5 {
                0 => rng.next() as u16,
                1 => (rng.next() % 260) as u16,
                _ => (rng.next() % 40) as u16,
            },
            reserved: rng.next() as u32,
        };
        buf[..8].copy_from_slice(&header.to_bytes());
        let Ok(mut psc) = PscDescriptor::parse(&mut buf[..len]) else {
            continue;
        };
        accepted += 1;
        let end = psc.header().end_entry;
        let mut steps = 0;
        while let Some(range) = psc.next_range() {
            assert!(range.first_entry <= range.last_entry && range.last_entry <= end);
            assert!(range.pages > 0 && range.op.converts());
            let step = rng.next() % (range.pages + 2);
            psc.complete(&range, step);
            steps += 1;
            // Every step with pages does some; at most 253 * 512 pages in all.
            assert!(steps < 1_000_000);
            if step == 0 {
                psc.complete(&range, range.pages);
            }
        }
        assert!(psc.is_done());
        let final_cur = psc.header().cur_entry;
        if header.cur_entry <= end {
            assert_eq!(final_cur, end + 1);
        } else {
            assert_eq!(final_cur, header.cur_entry);
        }
        for i in 0..=end {
            let entry = psc.entry(i).unwrap();
            if i >= header.cur_entry {
                assert_eq!(u64::from(entry.cur_page), entry.pages(), "entry {i}");
            }
        }
    }
    assert!(accepted > 1000, "only {accepted} descriptors parsed");
}

#[test]
fn pieces_cover_every_page_exactly_once_whatever_the_step() {
    let mut template = [0u8; PSC_MAX_SIZE];
    let mut builder = PscBuilder::new(&mut template);
    builder
        .push(MB2 - 3 * 4096, 3 + 2048 + 5, PscOp::SHARED)
        .unwrap();
    builder.push(64 * MB2, 700, PscOp::PRIVATE).unwrap();
    builder.finish().unwrap();
    for step in [1, 7, 300, 512, 513, 100_000] {
        let mut buf = template;
        let mut pieces = drain(&mut buf, step);
        pieces.sort_unstable();
        let mut pages = std::vec::Vec::new();
        for (gpa, n, to_private) in pieces {
            for p in 0..n {
                pages.push((gpa + p * 4096, to_private));
            }
        }
        let shared = (0..2056).map(|p| (MB2 - 3 * 4096 + p * 4096, false));
        let private = (0..700).map(|p| (64 * MB2 + p * 4096, true));
        let mut expected: std::vec::Vec<_> = shared.chain(private).collect();
        expected.sort_unstable();
        assert_eq!(pages, expected, "step {step}");
    }
}
