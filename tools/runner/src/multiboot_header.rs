//! Finding and hiding an image's Multiboot v1 header.
//!
//! A Multiboot loader searches the first 8 KiB of the file, at 4-byte aligned offsets,
//! for the magic 0x1BADB002 followed by a flags word and a checksum that makes the three
//! sum to zero (mod 2^32). Zeroing the magic makes the loader pass the image by; QEMU then
//! falls back to the ELF's PVH note.

/// The first word of a Multiboot v1 header.
const MAGIC: u32 = 0x1bad_b002;
/// The header must lie wholly within this many bytes from the start of the file.
const SEARCH_LIMIT: usize = 8192;
/// magic, flags, checksum.
const HEADER_LEN: usize = 12;

/// Offset of the first valid Multiboot v1 header in `image`, as a loader finds it.
pub(crate) fn find(image: &[u8]) -> Option<usize> {
    let searched = &image[..image.len().min(SEARCH_LIMIT)];
    (0..searched.len().saturating_sub(HEADER_LEN - 1))
        .step_by(4)
        .find(|&at| is_header(&searched[at..at + HEADER_LEN]))
}

fn is_header(words: &[u8]) -> bool {
    let word = |i: usize| u32::from_le_bytes(words[i * 4..i * 4 + 4].try_into().unwrap());
    word(0) == MAGIC && MAGIC.wrapping_add(word(1)).wrapping_add(word(2)) == 0
}

/// Zero the magic of every valid Multiboot header in `image`, so no loader finds one;
/// returns how many there were. Every one, not just the first: the first gone, a loader
/// would take the next.
pub(crate) fn hide(image: &mut [u8]) -> usize {
    let mut hidden = 0;
    while let Some(at) = find(image) {
        image[at..at + 4].fill(0);
        hidden += 1;
    }
    hidden
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid header with `flags`, as little-endian bytes.
    fn header(flags: u32) -> Vec<u8> {
        let checksum = 0u32.wrapping_sub(MAGIC).wrapping_sub(flags);
        [MAGIC, flags, checksum]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect()
    }

    /// `len` bytes of 0xee with `bytes` at `at`.
    fn image_with(len: usize, at: usize, bytes: &[u8]) -> Vec<u8> {
        let mut image = vec![0xee; len];
        image[at..at + bytes.len()].copy_from_slice(bytes);
        image
    }

    #[test]
    fn finds_the_header_where_cloister_images_have_it() {
        // Flags 0x00010003, as the image's boot code declares them.
        let image = image_with(0x4000, 0x1000, &header(0x0001_0003));
        assert_eq!(find(&image), Some(0x1000));
        assert_eq!(&image[0x1000..0x1004], [0x02, 0xb0, 0xad, 0x1b]);
    }

    #[test]
    fn hiding_zeroes_exactly_the_four_magic_bytes() {
        let original = image_with(0x4000, 0x1000, &header(0x0001_0003));
        let mut image = original.clone();
        assert_eq!(hide(&mut image), 1);
        assert_eq!(&image[0x1000..0x1004], [0, 0, 0, 0]);
        assert_eq!(image[..0x1000], original[..0x1000]);
        assert_eq!(image[0x1004..], original[0x1004..]);
        assert_eq!(find(&image), None);
    }

    #[test]
    fn the_header_must_be_4_byte_aligned() {
        let image = image_with(0x2000, 0x1002, &header(0));
        assert_eq!(find(&image), None);
    }

    #[test]
    fn the_checksum_must_balance() {
        let mut bad = header(3);
        bad[8] ^= 1;
        assert_eq!(find(&image_with(0x2000, 0x100, &bad)), None);
        // The magic alone, as any binary may contain it, is not a header.
        assert_eq!(find(&image_with(0x2000, 0x100, &MAGIC.to_le_bytes())), None);
    }

    #[test]
    fn the_header_must_lie_within_the_first_8_kib() {
        let last_fit = SEARCH_LIMIT - HEADER_LEN;
        assert_eq!(
            find(&image_with(0x4000, last_fit, &header(0))),
            Some(last_fit)
        );
        assert_eq!(find(&image_with(0x4000, last_fit + 4, &header(0))), None);
        assert_eq!(find(&image_with(0x4000, SEARCH_LIMIT, &header(0))), None);
    }

    #[test]
    fn short_files_are_searched_without_reading_past_their_end() {
        assert_eq!(find(&header(0)), Some(0));
        assert_eq!(find(&header(0)[..11]), None);
        assert_eq!(find(&[]), None);
    }

    #[test]
    fn every_header_is_hidden_not_just_the_first() {
        let mut image = image_with(0x2000, 0x40, &header(0));
        image[0x800..0x80c].copy_from_slice(&header(2));
        assert_eq!(hide(&mut image), 2);
        assert_eq!(find(&image), None);
        assert_eq!(hide(&mut image), 0);
    }
}
