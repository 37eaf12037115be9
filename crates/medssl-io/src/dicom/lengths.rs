//! A walk over a DICOM file's element headers that checks every declared value length
//! against the bytes that remain, before the file is parsed. The parser allocates each
//! value at its declared size (up to 4 GiB) before reading it, so a damaged length in a
//! small file would otherwise cost gigabytes and seconds before failing.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

const UNDEFINED: u32 = 0xFFFF_FFFF;
/// Explicit VRs with a 2-byte length. Every other VR (OB, SQ, UN, an unknown one...)
/// has 2 reserved bytes and a 4-byte length, as the parser reads it.
const SHORT_VRS: [&[u8; 2]; 21] = [
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
    b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
];

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    ExplicitLittle,
    ExplicitBig,
    ImplicitLittle,
}

struct Walker<'a> {
    bytes: &'a [u8],
    encoding: Encoding,
}

/// One element header: tag, VR (explicit, or the dictionary's in an implicit data set;
/// none for items and delimiters), value length and header size.
struct Header {
    group: u16,
    element: u16,
    vr: Option<[u8; 2]>,
    length: u32,
    size: usize,
}

impl Walker<'_> {
    fn u16_at(&self, at: usize) -> u16 {
        let b = [self.bytes[at], self.bytes[at + 1]];
        match self.encoding {
            Encoding::ExplicitBig => u16::from_be_bytes(b),
            _ => u16::from_le_bytes(b),
        }
    }

    fn u32_at(&self, at: usize) -> u32 {
        let b = [
            self.bytes[at],
            self.bytes[at + 1],
            self.bytes[at + 2],
            self.bytes[at + 3],
        ];
        match self.encoding {
            Encoding::ExplicitBig => u32::from_be_bytes(b),
            _ => u32::from_le_bytes(b),
        }
    }

    /// The header at `at`, or `None` when fewer bytes than a header remain.
    fn header(&self, at: usize) -> Option<Header> {
        let left = self.bytes.len().saturating_sub(at);
        if left < 8 {
            return None;
        }
        let (group, element) = (self.u16_at(at), self.u16_at(at + 2));
        if group == 0xFFFE || self.encoding == Encoding::ImplicitLittle {
            return Some(Header {
                group,
                element,
                vr: (group != 0xFFFE).then(|| implicit_vr(group, element)),
                length: self.u32_at(at + 4),
                size: 8,
            });
        }
        let vr = [self.bytes[at + 4], self.bytes[at + 5]];
        if !SHORT_VRS.contains(&&vr) {
            if left < 12 {
                return None;
            }
            Some(Header {
                group,
                element,
                vr: Some(vr),
                length: self.u32_at(at + 8),
                size: 12,
            })
        } else {
            Some(Header {
                group,
                element,
                vr: Some(vr),
                length: u32::from(self.u16_at(at + 6)),
                size: 8,
            })
        }
    }

    /// Walks the file meta group at `at` as the parser reads it: a group length
    /// (0002,0000) first, then elements of any group until that many bytes are read.
    /// Returns where the data set starts and its transfer syntax UID; `None` when the
    /// parser refuses the group before reaching the data set.
    fn meta(&self, at: usize) -> Result<Option<(usize, String)>, String> {
        let Some(first) = self.header(at) else {
            return Ok(None);
        };
        if (first.group, first.element, first.length) != (0x0002, 0x0000, 4) {
            return Ok(None);
        }
        let value = self.value_start(&first, at)?;
        let group_length = u64::from(self.u32_at(value));
        let mut at = value + 4;
        let (mut read, mut syntax) = (0u64, None);
        while read < group_length {
            let Some(h) = self.header(at) else {
                return Ok(None);
            };
            if h.length == UNDEFINED {
                return Ok(None);
            }
            let value = self.value_start(&h, at)?;
            if (h.group, h.element) == (0x0002, 0x0010) {
                let uid = &self.bytes[value..value + h.length as usize];
                // Trimmed as the parser trims it: any trailing whitespace and NULs.
                syntax = Some(
                    String::from_utf8_lossy(uid)
                        .trim_end_matches(|c: char| c.is_whitespace() || c == '\0')
                        .to_string(),
                );
            }
            read += (h.size + h.length as usize) as u64;
            at = value + h.length as usize;
        }
        Ok(syntax.map(|syntax| (at, syntax)))
    }

    /// Where the value of `h` (the header at `at`) starts, once its declared length is
    /// known to fit in the rest of the file (an undefined length always fits).
    fn value_start(&self, h: &Header, at: usize) -> Result<usize, String> {
        let value = at + h.size;
        if h.length != UNDEFINED && h.length as usize > self.bytes.len() - value {
            return Err(format!(
                "element ({:04X},{:04X}) at byte {at} declares {} bytes of value, but only \
                 {} remain in the file (damaged or truncated)",
                h.group,
                h.element,
                h.length,
                self.bytes.len() - value
            ));
        }
        Ok(value)
    }

    /// Walks the data set from `at` to the end as the parser reads it: elements, the
    /// sequences and items they open (closed by their length or a delimiter), and the
    /// fragments of encapsulated pixel data.
    fn walk(&self, mut at: usize) -> Result<(), String> {
        let mut open: Vec<Open> = Vec::new();
        // Right after a sequence starts or an item ends, the parser expects an item or
        // a sequence delimiter, not an element.
        let mut in_sequence = false;
        loop {
            while let Some(top) = open.last() {
                match top.end {
                    Some(end) if end == at => {
                        in_sequence = top.item;
                        open.pop();
                    }
                    Some(end) if end < at => {
                        return Err(format!(
                            "a sequence or item declared to end at byte {end} holds an \
                             element ending at byte {at} (damaged)"
                        ));
                    }
                    _ => break,
                }
            }
            let Some(h) = self.header(at) else {
                return Ok(());
            };
            let tag = (h.group, h.element);
            if in_sequence {
                match tag {
                    (0xFFFE, 0xE000) => {
                        let value = self.value_start(&h, at)?;
                        let pixel_data = open.last().is_some_and(|o| o.pixel_data);
                        let end = (h.length != UNDEFINED).then(|| value + h.length as usize);
                        if pixel_data && end.is_none() {
                            return Err(format!(
                                "pixel data fragment at byte {at} has an undefined length \
                                 (damaged)"
                            ));
                        }
                        open.push(Open {
                            item: true,
                            pixel_data,
                            end,
                        });
                        in_sequence = false;
                        // A fragment is compressed bytes, not a data set.
                        at = if pixel_data {
                            end.unwrap_or(value)
                        } else {
                            value
                        };
                    }
                    (0xFFFE, 0xE0DD) => {
                        open.pop();
                        in_sequence = false;
                        at += h.size;
                    }
                    // The parser refuses the file here.
                    _ => return Ok(()),
                }
                continue;
            }
            let value = self.value_start(&h, at)?;
            if tag == (0xFFFE, 0xE00D) {
                if open.pop().is_some() {
                    in_sequence = true;
                }
                at = value;
                continue;
            }
            check_value_size(&h, at)?;
            let pixel_data = tag == (0x7FE0, 0x0010) && h.length == UNDEFINED;
            // As the parser does, any element of undefined length (UN included) is read
            // as a sequence in the data set's own encoding.
            if h.vr == Some(*b"SQ") || h.length == UNDEFINED {
                open.push(Open {
                    item: false,
                    pixel_data,
                    end: (h.length != UNDEFINED).then(|| value + h.length as usize),
                });
                in_sequence = true;
                at = value;
            } else {
                at = value + h.length as usize;
            }
        }
    }
}

/// A sequence or item the walk is inside.
struct Open {
    item: bool,
    /// The sequence of encapsulated pixel data, or one of its fragments.
    pixel_data: bool,
    /// Where it ends; `None` for an undefined length (ended by a delimiter).
    end: Option<usize>,
}

/// The VR the parser gives an element of an implicit-VR data set: the dictionary's
/// (pixel and overlay data: OW), UN for a tag it does not know.
fn implicit_vr(group: u16, element: u16) -> [u8; 2] {
    if (group, element) == (0x7FE0, 0x0010) || (group >> 8 == 0x60 && element == 0x3000) {
        return *b"OW";
    }
    StandardDataDictionary
        .by_tag(Tag(group, element))
        .map_or(VR::UN, |entry| entry.vr().relaxed())
        .to_bytes()
}

/// Fails when a value of a VR made of 2-, 4- or 8-byte numbers has a length that is not
/// a multiple of that size. The parser reads only the whole numbers and then loses its
/// place in the file, so the rest of the walk would no longer match it.
fn check_value_size(h: &Header, at: usize) -> Result<(), String> {
    let Some(vr) = h.vr else {
        return Ok(());
    };
    let size = match &vr {
        b"US" | b"SS" | b"OW" => 2,
        b"AT" | b"UL" | b"SL" | b"FL" | b"OL" | b"OF" => 4,
        b"FD" | b"OD" | b"SV" | b"UV" | b"OV" => 8,
        _ => return Ok(()),
    };
    if h.length == UNDEFINED || h.length % size == 0 {
        return Ok(());
    }
    Err(format!(
        "element ({:04X},{:04X}) at byte {at} is {} with {} bytes of value, not a multiple of \
         its {size}-byte numbers (damaged)",
        h.group,
        h.element,
        String::from_utf8_lossy(&vr),
        h.length
    ))
}

/// Checks that no element of the DICOM file `bytes` declares a value longer than the
/// rest of the file. Files the parser refuses before their data set (no preamble, a
/// damaged file meta group) and deflated data sets are left to the parser.
pub(crate) fn check_declared_lengths(bytes: &[u8]) -> Result<(), String> {
    let start = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        132
    } else {
        return Ok(());
    };
    let meta = Walker {
        bytes,
        encoding: Encoding::ExplicitLittle,
    };
    let Some((data_set, syntax)) = meta.meta(start)? else {
        return Ok(());
    };
    let encoding = match syntax.as_str() {
        "1.2.840.10008.1.2" => Encoding::ImplicitLittle,
        "1.2.840.10008.1.2.2" => Encoding::ExplicitBig,
        "1.2.840.10008.1.2.1.99" => return Ok(()),
        _ => Encoding::ExplicitLittle,
    };
    Walker { bytes, encoding }.walk(data_set)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with a meta group of `meta` elements and the transfer syntax `syntax`,
    /// then the data set `body`.
    fn file_with_meta(meta: &[u8], syntax: &str, body: &[u8]) -> Vec<u8> {
        let mut uid = syntax.as_bytes().to_vec();
        if uid.len() % 2 == 1 {
            uid.push(0);
        }
        let group = [meta, &explicit_le((0x0002, 0x0010), b"UI", &uid, None)].concat();
        let length = (group.len() as u32).to_le_bytes();
        let mut out = vec![0u8; 128];
        out.extend_from_slice(b"DICM");
        out.extend_from_slice(&explicit_le((0x0002, 0x0000), b"UL", &length, None));
        out.extend_from_slice(&group);
        out.extend_from_slice(body);
        out
    }

    /// A file with a meta group naming `syntax` and the data set `body`.
    fn file(syntax: &str, body: &[u8]) -> Vec<u8> {
        file_with_meta(&[], syntax, body)
    }

    fn explicit_le(tag: (u16, u16), vr: &[u8; 2], value: &[u8], declared: Option<u32>) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&tag.0.to_le_bytes());
        out.extend_from_slice(&tag.1.to_le_bytes());
        out.extend_from_slice(vr);
        let len = declared.unwrap_or(value.len() as u32);
        if !SHORT_VRS.contains(&vr) {
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&len.to_le_bytes());
        } else {
            out.extend_from_slice(&(len as u16).to_le_bytes());
        }
        out.extend_from_slice(value);
        out
    }

    const EXPLICIT: &str = "1.2.840.10008.1.2.1";

    #[test]
    fn whole_files_pass_and_an_overlong_value_is_named() {
        let rows = explicit_le((0x0028, 0x0010), b"US", &[4, 0], None);
        let pixels = explicit_le((0x7FE0, 0x0010), b"OW", &[0; 32], None);
        let good = file(EXPLICIT, &[rows.clone(), pixels].concat());
        assert_eq!(check_declared_lengths(&good), Ok(()));
        // An unknown VR has a 4-byte length, as for UN.
        let mut unknown = explicit_le((0x0020, 0x000D), b"OW", &[], Some(775_040_561));
        unknown[4..6].copy_from_slice(b"\0\x01");
        let err = check_declared_lengths(&file(EXPLICIT, &unknown)).unwrap_err();
        assert!(
            err.contains("(0020,000D)") && err.contains("775040561"),
            "{err}"
        );
        // A UL of 10 bytes: the parser would read two numbers and lose its place.
        let ul = explicit_le((0x0008, 0x0005), b"UL", b"ISO_IR 100", None);
        let err = check_declared_lengths(&file(EXPLICIT, &ul)).unwrap_err();
        assert!(
            err.contains("(0008,0005)") && err.contains("UL with 10 bytes"),
            "{err}"
        );
        let huge = explicit_le((0x7FE0, 0x0010), b"OW", &[0; 32], Some(1_443_001_346));
        let bad = file(EXPLICIT, &[rows, huge].concat());
        let err = check_declared_lengths(&bad).unwrap_err();
        assert!(
            err.contains("(7FE0,0010)") && err.contains("1443001346") && err.contains("32 remain"),
            "{err}"
        );
    }

    #[test]
    fn the_meta_group_is_walked_by_its_group_length_whatever_its_tags() {
        // A damaged tag of group 0x0200 inside the meta group: the parser reads on by the
        // group length to the transfer syntax, so the data set is still checked.
        let off_group = explicit_le((0x0200, 0x0001), b"OB", &[0, 1], None);
        let huge = explicit_le((0x0000, 0x0000), b"\0\0", &[0; 4], Some(2_946_535_551));
        let bad = file_with_meta(&off_group, "1.2.840.10008.1.2.5", &huge);
        let err = check_declared_lengths(&bad).unwrap_err();
        assert!(err.contains("2946535551"), "{err}");
        // An overlong element in the meta group itself.
        let long = explicit_le((0x0002, 0x0013), b"SH", b"AB", Some(9_000));
        let err = check_declared_lengths(&file_with_meta(&long, EXPLICIT, &[])).unwrap_err();
        assert!(err.contains("(0002,0013)") && err.contains("9000"), "{err}");
        // A transfer syntax UID padded with a newline is still implicit VR to the parser.
        let rows = [0x28, 0x00, 0x10, 0x00, 3, 0, 0, 0, 4, 0, 0];
        let err = check_declared_lengths(&file("1.2.840.10008.1.2\0\n", &rows)).unwrap_err();
        assert!(err.contains("US with 3 bytes"), "{err}");
        // A meta group the parser refuses (no group length first) is left to it.
        // A group length cut off by the end of the file.
        let mut cut = file(EXPLICIT, &[]);
        cut.truncate(132 + 10);
        assert!(check_declared_lengths(&cut).is_err());
        let mut refused = file(EXPLICIT, &huge);
        refused[132..134].copy_from_slice(&[0x02, 0x01]);
        assert_eq!(check_declared_lengths(&refused), Ok(()));
    }

    #[test]
    fn fragments_of_encapsulated_pixel_data_are_not_read_as_elements() {
        // Pixel data of undefined length: an empty offset table, then one fragment
        // whose bytes would read as an element declaring 0xFFFF bytes.
        let mut value = vec![0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0];
        value.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 8, 0, 0, 0]);
        value.extend_from_slice(&[0x08, 0x00, 0x10, 0x00, b'S', b'H', 0xFF, 0xFF]);
        value.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
        let pixels = explicit_le((0x7FE0, 0x0010), b"OB", &value, Some(UNDEFINED));
        assert_eq!(
            check_declared_lengths(&file("1.2.840.10008.1.2.4.90", &pixels)),
            Ok(())
        );
        // A fragment of undefined length, which the parser refuses too.
        let mut value = vec![0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0];
        value.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2]);
        let pixels = explicit_le((0x7FE0, 0x0010), b"OB", &value, Some(UNDEFINED));
        let err = check_declared_lengths(&file("1.2.840.10008.1.2.5", &pixels)).unwrap_err();
        assert!(err.contains("undefined length"), "{err}");
    }

    #[test]
    fn lengths_inside_sequences_and_implicit_files_are_checked() {
        // An explicit SQ of undefined length holding one item with an overlong element.
        let inner = explicit_le((0x0008, 0x0100), b"SH", b"AB", Some(60_000));
        let mut item = vec![0xFE, 0xFF, 0x00, 0xE0];
        item.extend_from_slice(&(inner.len() as u32).to_le_bytes());
        item.extend_from_slice(&inner);
        let sequence = explicit_le((0x0008, 0x1140), b"SQ", &item, Some(UNDEFINED));
        let err = check_declared_lengths(&file(EXPLICIT, &sequence)).unwrap_err();
        assert!(err.contains("(0008,0100)"), "{err}");
        // Outside a sequence, the parser reads an item tag as an element: its 3 bytes
        // are skipped, and what follows is read from there.
        let mut stray = vec![0xFE, 0xFF, 0x00, 0xE0, 3, 0, 0, 0, 1, 2, 3];
        stray.extend_from_slice(&explicit_le((0x0010, 0x0020), b"OB", &[], Some(70_000)));
        let err = check_declared_lengths(&file(EXPLICIT, &stray)).unwrap_err();
        assert!(
            err.contains("(0010,0020) at byte 183") && err.contains("70000"),
            "{err}"
        );
        // The parser reads an UN of undefined length as such a sequence too.
        let unknown = explicit_le((0x0009, 0x1010), b"UN", &item, Some(UNDEFINED));
        let err = check_declared_lengths(&file(EXPLICIT, &unknown)).unwrap_err();
        assert!(err.contains("(0008,0100)"), "{err}");

        // Implicit VR: tag, 4-byte length, value.
        let mut body = Vec::new();
        body.extend_from_slice(&[0x28, 0x00, 0x10, 0x00, 2, 0, 0, 0, 4, 0]);
        assert_eq!(
            check_declared_lengths(&file("1.2.840.10008.1.2", &body)),
            Ok(())
        );
        // Implicit VR comes from the dictionary: Rows is US, so 3 bytes are damaged.
        let mut rows = body.clone();
        rows[4] = 3;
        rows.push(0);
        let err = check_declared_lengths(&file("1.2.840.10008.1.2", &rows)).unwrap_err();
        assert!(err.contains("US with 3 bytes"), "{err}");
        body.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, 0, 0, 0, 0x10]);
        assert!(check_declared_lengths(&file("1.2.840.10008.1.2", &body)).is_err());
        // Deflated data sets and files without a meta group are left to the parser.
        assert_eq!(
            check_declared_lengths(&file("1.2.840.10008.1.2.1.99", &body)),
            Ok(())
        );
        assert_eq!(check_declared_lengths(&body), Ok(()));
    }
}
