//! Short strings kept inline.
//!
//! Every record carries a sequence number and a partition key, built once per
//! record and dropped with it. Nearly all fit in a few dozen bytes, so keeping
//! them inline costs a copy instead of an allocation and a free per record;
//! longer ones share one heap copy.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A string held inline when it has at most `N` bytes (`N` < 256).
///
/// The inline bytes are always UTF-8: the only constructors take a `&str` or
/// bytes they check are ASCII digits, and the fields are private to this module.
#[derive(Clone)]
pub(crate) struct CompactStr<const N: usize>(Repr<N>);

#[derive(Clone)]
enum Repr<const N: usize> {
    Inline { len: u8, bytes: [u8; N] },
    Shared(Arc<str>),
}

impl<const N: usize> CompactStr<N> {
    const FITS_U8: () = assert!(N < 256, "the inline length is one byte");

    pub(crate) fn new(text: &str) -> CompactStr<N> {
        CompactStr::inline(text.as_bytes()).unwrap_or_else(|| CompactStr(Repr::Shared(Arc::from(text))))
    }

    /// `digits` when every byte is an ASCII digit (sequence numbers): the one
    /// check also proves them UTF-8, so no second pass is needed.
    pub(crate) fn from_digits(digits: &[u8]) -> Option<CompactStr<N>> {
        if !all_digits(digits) {
            return None;
        }
        CompactStr::inline(digits).or_else(|| std::str::from_utf8(digits).ok().map(CompactStr::new))
    }

    /// `bytes` inline, when they fit. Callers pass bytes known to be UTF-8.
    fn inline(bytes: &[u8]) -> Option<CompactStr<N>> {
        let () = Self::FITS_U8;
        let len = u8::try_from(bytes.len()).ok().filter(|_| bytes.len() <= N)?;
        let mut inline = [0u8; N];
        inline[..bytes.len()].copy_from_slice(bytes);
        Some(CompactStr(Repr::Inline { len, bytes: inline }))
    }

    pub(crate) fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                let bytes = &bytes[..usize::from(*len)];
                // Read once or twice per record: checking it again each time showed in profiles.
                // SAFETY: inline bytes come whole from a `&str` or from bytes checked to be ASCII
                // digits (see the constructors above), and nothing else writes them.
                #[allow(unsafe_code)]
                unsafe {
                    std::str::from_utf8_unchecked(bytes)
                }
            }
            Repr::Shared(text) => text,
        }
    }

    /// The UTF-8 bytes: what comparisons and hashes need.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Shared(text) => text.as_bytes(),
        }
    }
}

/// Whether every byte is an ASCII digit, eight at a time: one per record.
fn all_digits(bytes: &[u8]) -> bool {
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const SIXES: u64 = 0x0606_0606_0606_0606;
    let mut chunks = bytes.chunks_exact(8);
    let words_are_digits = chunks.by_ref().all(|chunk| {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        // Each byte is 0x30..=0x3F, and adding 6 keeps it below 0x40: 0x30..=0x39.
        // (When the first test passes no byte carries into the next.)
        word & HIGH_NIBBLES == ZEROS && word.wrapping_add(SIXES) & HIGH_NIBBLES == ZEROS
    });
    words_are_digits && chunks.remainder().iter().all(u8::is_ascii_digit)
}

// By bytes, as `str` compares and hashes: the cursor compares sequence numbers once per record.
impl<const N: usize> PartialEq for CompactStr<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> Eq for CompactStr<N> {}

impl<const N: usize> Hash for CompactStr<N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
        state.write_u8(0xff);
    }
}

impl<const N: usize> fmt::Debug for CompactStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_are_inline_and_long_ones_shared_and_both_read_back() {
        for text in ["", "k", "customer-42", "é✓🦀", "exactly-twenty-two-by!"] {
            let compact = CompactStr::<22>::new(text);
            assert!(matches!(compact.0, Repr::Inline { .. }), "{text:?} is inline");
            assert_eq!(compact.as_str(), text);
        }
        let long = "a partition key longer than twenty-two bytes";
        let compact = CompactStr::<22>::new(long);
        assert!(matches!(compact.0, Repr::Shared(_)));
        assert_eq!(compact.as_str(), long);
        assert_eq!(compact, CompactStr::<22>::new(long));
        assert_ne!(CompactStr::<22>::new("a"), CompactStr::<22>::new("b"));
    }

    #[test]
    fn only_digits_are_taken_without_a_str() {
        assert_eq!(CompactStr::<4>::from_digits(b"0123").map(|c| c.as_str().to_owned()).as_deref(), Some("0123"));
        assert_eq!(CompactStr::<4>::from_digits(b"01234").map(|c| c.as_str().to_owned()).as_deref(), Some("01234"));
        assert!(CompactStr::<4>::from_digits(b"12a").is_none());
        assert!(CompactStr::<4>::from_digits("é".as_bytes()).is_none());
        assert!(CompactStr::<4>::from_digits(&[0xff]).is_none());
    }
}
