//! The AWS Glue Schema Registry's framing, and where its schema versions come from.
//!
//! A framed record is: byte 0 the header version (3), byte 1 the compression
//! (0 none, 5 zlib of everything after the header), bytes 2–17 the schema
//! version's UUID, then the payload. The codec has no AWS client: whoever
//! builds the decoder hands it a [`GlueSchemaSource`] (the server's asks
//! `GetSchemaVersion` with the source's role); it is called only for an id
//! not in the decoder's bounded cache.

use std::fmt;

use crate::avro::RegistryError;
use crate::rejection::Reason;
use crate::schema_cache::Fetched;

/// Byte 0 of every Glue-framed record.
pub const GLUE_HEADER_VERSION: u8 = 3;
/// Byte 1: the payload is not compressed.
pub const GLUE_COMPRESSION_NONE: u8 = 0;
/// Byte 1: the payload is zlib-deflated.
pub const GLUE_COMPRESSION_ZLIB: u8 = 5;
/// Header version, compression, UUID.
pub const GLUE_HEADER_LEN: usize = 18;
/// A compressed payload may inflate to this many bytes at most (a Kinesis
/// record is at most 10 MiB; a record that inflates past this is a bomb).
pub const MAX_INFLATED_BYTES: usize = 32 * 1024 * 1024;

/// One schema version as the registry describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlueSchemaVersion {
    /// `AVRO`, `JSON` or `PROTOBUF`.
    pub data_format: String,
    /// `AVAILABLE`, `PENDING`, `FAILURE` or `DELETING`.
    pub status: String,
    /// The schema text.
    pub definition: String,
}

/// Where a decoder gets Glue schema versions it has not met yet. Blocking:
/// decoders that use one run where blocking is allowed.
pub trait GlueSchemaSource: Send + Sync + fmt::Debug {
    /// The version with this UUID; `Ok(None)` when the registry does not know
    /// it; `Err` when the registry could not be asked (the record is retried).
    fn schema_version(&self, id: u128) -> Result<Option<GlueSchemaVersion>, RegistryError>;
}

/// A framed record, taken apart.
#[derive(Debug)]
pub(crate) struct Unframed<'a> {
    /// The schema version's UUID.
    pub(crate) id: u128,
    /// The payload, inflated when it was compressed.
    pub(crate) body: &'a [u8],
}

/// Inflates zlib payloads, keeping its state and output buffer from record
/// to record (a fresh inflater per record costs more than inflating one).
#[derive(Default)]
pub(crate) struct Inflater {
    state: Option<flate2::Decompress>,
    out: Vec<u8>,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater").field("buffered", &self.out.capacity()).finish_non_exhaustive()
    }
}

/// An inflated payload's buffer is given back down to this after a larger one.
const KEPT_INFLATE_CAPACITY: usize = 1024 * 1024;

impl Inflater {
    /// Inflates `compressed`, refusing output past `limit` bytes.
    fn inflate(&mut self, compressed: &[u8], limit: usize) -> Result<&[u8], Reason> {
        let state = self.state.get_or_insert_with(|| flate2::Decompress::new(true));
        state.reset(true);
        self.out.clear();
        if self.out.capacity() > KEPT_INFLATE_CAPACITY {
            self.out.shrink_to(KEPT_INFLATE_CAPACITY);
        }
        // One byte past the limit tells "too large" from "exactly the limit".
        let ceiling = limit.saturating_add(1);
        loop {
            if self.out.len() == self.out.capacity() {
                if self.out.len() >= ceiling {
                    return Err(Reason::DecompressedTooLarge(limit));
                }
                let wanted = (self.out.capacity().max(compressed.len().saturating_mul(4)).max(256)).saturating_mul(2);
                self.out.reserve_exact(wanted.min(ceiling) - self.out.len());
            }
            let (read_before, written_before) = (state.total_in(), state.total_out());
            let consumed = usize::try_from(read_before).unwrap_or(usize::MAX).min(compressed.len());
            let status = state
                .decompress_vec(&compressed[consumed..], &mut self.out, flate2::FlushDecompress::None)
                .map_err(|_| Reason::BadCompression)?;
            if self.out.len() > limit {
                return Err(Reason::DecompressedTooLarge(limit));
            }
            if status == flate2::Status::StreamEnd {
                return Ok(&self.out);
            }
            // With room to write, no progress means the stream was cut short.
            // (`Finish` would mean "the output buffer holds it all" to miniz, so `None`.)
            let stalled = state.total_in() == read_before && state.total_out() == written_before;
            if stalled && self.out.len() < self.out.capacity() {
                return Err(Reason::BadCompression);
            }
        }
    }
}

/// Takes the Glue header off `payload`, inflating a zlib payload (up to
/// `MAX_INFLATED_BYTES`) with `inflater`.
#[inline]
pub(crate) fn unframe<'a>(payload: &'a [u8], inflater: &'a mut Inflater) -> Result<Unframed<'a>, Reason> {
    let Some((header, body)) = payload.split_first_chunk::<GLUE_HEADER_LEN>() else {
        return Err(Reason::BadFraming("shorter than the 18-byte Glue Schema Registry header"));
    };
    if header[0] != GLUE_HEADER_VERSION {
        return Err(Reason::BadFraming("not Glue Schema Registry framing: byte 0 is not header version 3"));
    }
    let [_, compression, id_bytes @ ..] = header;
    let id = u128::from_be_bytes(*id_bytes);
    let body = match *compression {
        GLUE_COMPRESSION_NONE => body,
        GLUE_COMPRESSION_ZLIB => inflater.inflate(body, MAX_INFLATED_BYTES)?,
        _ => return Err(compression_error()),
    };
    Ok(Unframed { id, body })
}

/// A Glue-framed payload's schema version and body, inflated (for showing a
/// stored payload; decoders keep an inflater of their own).
pub fn glue_unframed(payload: &[u8]) -> Result<(u128, Vec<u8>), String> {
    let mut inflater = Inflater::default();
    unframe(payload, &mut inflater).map(|u| (u.id, u.body.to_vec())).map_err(|reason| reason.to_string())
}

#[cold]
fn compression_error() -> Reason {
    Reason::BadFraming("Glue Schema Registry compression byte is neither 0 (none) nor 5 (zlib)")
}

/// Frames `body` as a Glue record (tests, benchmarks and fixtures).
pub fn glue_frame(id: u128, body: &[u8], zlib: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(GLUE_HEADER_LEN + body.len());
    out.push(GLUE_HEADER_VERSION);
    out.push(if zlib { GLUE_COMPRESSION_ZLIB } else { GLUE_COMPRESSION_NONE });
    out.extend_from_slice(&id.to_be_bytes());
    if zlib {
        let mut encoder = flate2::write::ZlibEncoder::new(out, flate2::Compression::default());
        // Writing to a Vec cannot fail.
        let _ = std::io::Write::write_all(&mut encoder, body);
        encoder.finish().unwrap_or_default()
    } else {
        out.extend_from_slice(body);
        out
    }
}

/// A UUID in its usual text form, `8-4-4-4-12` lower-case hex digits.
pub fn uuid_text(id: u128) -> String {
    let hex = format!("{id:032x}");
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Parses a UUID's text form (hyphens optional).
pub fn parse_uuid(text: &str) -> Option<u128> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(&hex, 16).ok()
}

/// Version `id` from `versions`, ready for this source: `None` when the registry
/// does not know it; a fault when it is not `AVAILABLE`, not of `wanted_format`, or
/// its text does not `compile` (a SCHEMA_MISMATCH naming `what` and the version).
pub(crate) fn fetch_version<T>(
    versions: &dyn GlueSchemaSource,
    id: u128,
    wanted_format: &str,
    what: &str,
    compile: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Fetched<T>, RegistryError> {
    Ok(versions.schema_version(id)?.map(|version| {
        check_version(id, &version, wanted_format)?;
        compile(&version.definition)
            .map_err(|e| Reason::SchemaMismatch(format!("{what} version {}: {e}", uuid_text(id)).into()))
    }))
}

/// Why a registered version cannot be read by this source, before its text is even compiled.
fn check_version(id: u128, version: &GlueSchemaVersion, wanted_format: &str) -> Result<(), Reason> {
    if version.status != "AVAILABLE" {
        return Err(Reason::SchemaVersionNotAvailable { id, status: version.status.as_str().into() });
    }
    if !version.data_format.eq_ignore_ascii_case(wanted_format) {
        return Err(Reason::SchemaMismatch(
            format!(
                "schema version {} is {}, but the source reads {}",
                uuid_text(id),
                version.data_format,
                wanted_format.to_ascii_lowercase()
            )
            .into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: u128 = 0x0123_4567_89ab_cdef_0123_4567_89ab_cdef;

    #[test]
    fn framing_round_trips_with_and_without_zlib() {
        for zlib in [false, true] {
            let framed = glue_frame(ID, b"{\"a\": 1}", zlib);
            assert_eq!(framed[0], 3);
            assert_eq!(framed[1], if zlib { 5 } else { 0 });
            let mut inflater = Inflater::default();
            let unframed = unframe(&framed, &mut inflater).expect("frame");
            assert_eq!(unframed.id, ID);
            assert_eq!(unframed.body, b"{\"a\": 1}");
        }
    }

    #[test]
    fn bad_headers_and_bombs_are_reasons_not_panics() {
        let mut inflater = Inflater::default();
        let mut unframe = |bytes: &[u8]| unframe(bytes, &mut inflater).map(|u| u.body.len());
        assert!(matches!(unframe(&[3, 0, 1]), Err(Reason::BadFraming(_))));
        let mut framed = glue_frame(ID, b"x", false);
        framed[0] = 2;
        assert!(matches!(unframe(&framed), Err(Reason::BadFraming(_))));
        framed[0] = 3;
        framed[1] = 4;
        assert!(matches!(unframe(&framed), Err(Reason::BadFraming(_))));
        let mut corrupt = glue_frame(ID, b"hello", true);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert_eq!(unframe(&corrupt), Err(Reason::BadCompression));
        let whole = glue_frame(ID, &[7u8; 5000], true);
        assert_eq!(unframe(&whole[..whole.len() - 10]), Err(Reason::BadCompression), "a stream cut short");
        let bomb = glue_frame(ID, &vec![0u8; MAX_INFLATED_BYTES + 1], true);
        assert!(bomb.len() < 100_000, "zeros deflate well: {}", bomb.len());
        assert_eq!(unframe(&bomb), Err(Reason::DecompressedTooLarge(MAX_INFLATED_BYTES)));
        let just_fits = glue_frame(ID, &vec![0u8; MAX_INFLATED_BYTES], true);
        assert_eq!(unframe(&just_fits), Ok(MAX_INFLATED_BYTES));
        // The inflater is reused: records after a failure or a big one read as they should.
        for size in [0, 1, 300, 70_000] {
            let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            assert_eq!(unframe(&glue_frame(ID, &body, true)), Ok(size));
        }
        assert_eq!(unframe(&glue_frame(ID, b"plain", false)), Ok(5));
    }

    #[test]
    fn uuids_print_and_parse() {
        let text = uuid_text(ID);
        assert_eq!(text, "01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(parse_uuid(&text), Some(ID));
        assert_eq!(parse_uuid("not-a-uuid"), None);
    }
}
