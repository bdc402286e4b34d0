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
#[derive(Clone)]
pub(crate) enum CompactStr<const N: usize> {
    Inline { len: u8, bytes: [u8; N] },
    Shared(Arc<str>),
}

impl<const N: usize> CompactStr<N> {
    const FITS_U8: () = assert!(N < 256, "the inline length is one byte");

    pub(crate) fn new(text: &str) -> CompactStr<N> {
        let () = Self::FITS_U8;
        match u8::try_from(text.len()) {
            Ok(len) if text.len() <= N => {
                let mut bytes = [0u8; N];
                bytes[..text.len()].copy_from_slice(text.as_bytes());
                CompactStr::Inline { len, bytes }
            }
            _ => CompactStr::Shared(Arc::from(text)),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            // Copied from a `&str` whole, so always valid; the check is a few nanoseconds of ASCII.
            CompactStr::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default(),
            CompactStr::Shared(text) => text,
        }
    }

    /// The UTF-8 bytes, unchecked: what comparisons and hashes need.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            CompactStr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            CompactStr::Shared(text) => text.as_bytes(),
        }
    }
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
            assert!(matches!(compact, CompactStr::Inline { .. }), "{text:?} is inline");
            assert_eq!(compact.as_str(), text);
        }
        let long = "a partition key longer than twenty-two bytes";
        let compact = CompactStr::<22>::new(long);
        assert!(matches!(compact, CompactStr::Shared(_)));
        assert_eq!(compact.as_str(), long);
        assert_eq!(compact, CompactStr::<22>::new(long));
        assert_ne!(CompactStr::<22>::new("a"), CompactStr::<22>::new("b"));
    }
}
