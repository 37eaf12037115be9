//! A walk over a DICOM file's element headers that checks every declared value length
//! against the bytes that remain, before the file is parsed. The parser allocates each
//! value at its declared size (up to 4 GiB) before reading it, so a damaged length in a
//! small file would otherwise cost gigabytes and seconds before failing.

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

/// One element header: tag, explicit VR (if any), value length and header size.
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
        let left = self.bytes.len() - at;
        if left < 8 {
            return None;
        }
        let (group, element) = (self.u16_at(at), self.u16_at(at + 2));
        if group == 0xFFFE || self.encoding == Encoding::ImplicitLittle {
            return Some(Header {
                group,
                element,
                vr: None,
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

    /// Walks from `at` to the end (or to the first element outside group 2 when
    /// `meta_only`), stepping into sequences and items; returns where it stopped and the
    /// transfer syntax UID when the walk met one.
    fn walk(&self, mut at: usize, meta_only: bool) -> Result<(usize, Option<String>), String> {
        let mut syntax = None;
        // Inside encapsulated pixel data, items are compressed fragments, not data sets.
        let mut fragments = false;
        while let Some(h) = self.header(at) {
            if meta_only && h.group != 0x0002 {
                break;
            }
            if h.vr == Some(*b"UN") && h.length == UNDEFINED {
                // An implicit-VR data set inside an explicit one: left to the parser.
                break;
            }
            let value = at + h.size;
            if (h.group, h.element) == (0xFFFE, 0xE0DD) {
                fragments = false;
            }
            let item = h.group == 0xFFFE && !(fragments && h.element == 0xE000);
            let step_into = item
                || (h.length == UNDEFINED && h.group != 0xFFFE)
                || h.vr == Some(*b"SQ")
                || (h.vr.is_none() && self.starts_item(value));
            if h.length == UNDEFINED && h.group != 0xFFFE && h.vr.is_some_and(|vr| vr != *b"SQ") {
                fragments = true;
            }
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
            if (h.group, h.element) == (0x0002, 0x0010) {
                let uid = &self.bytes[value..value + h.length as usize];
                syntax = Some(
                    String::from_utf8_lossy(uid)
                        .trim_end_matches(['\0', ' '])
                        .to_string(),
                );
            }
            at = if step_into {
                value
            } else {
                value + h.length as usize
            };
        }
        Ok((at, syntax))
    }

    /// True when the bytes at `at` are an item tag (FFFE,E000): the value of an
    /// implicit-VR sequence.
    fn starts_item(&self, at: usize) -> bool {
        at + 4 <= self.bytes.len() && self.u16_at(at) == 0xFFFE && self.u16_at(at + 2) == 0xE000
    }
}

/// Checks that no element of the DICOM file `bytes` declares a value longer than the
/// rest of the file. Files this walk cannot follow (deflated data sets, no file meta
/// group) are left to the parser.
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
    let (data_set, syntax) = meta.walk(start, true)?;
    let encoding = match syntax.as_deref() {
        Some("1.2.840.10008.1.2") => Encoding::ImplicitLittle,
        Some("1.2.840.10008.1.2.2") => Encoding::ExplicitBig,
        Some("1.2.840.10008.1.2.1.99") | None => return Ok(()),
        Some(_) => Encoding::ExplicitLittle,
    };
    Walker { bytes, encoding }.walk(data_set, false).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file with a meta group naming `syntax` and the data set `body`.
    fn file(syntax: &str, body: &[u8]) -> Vec<u8> {
        let mut uid = syntax.as_bytes().to_vec();
        if uid.len() % 2 == 1 {
            uid.push(0);
        }
        let mut out = vec![0u8; 128];
        out.extend_from_slice(b"DICM");
        out.extend_from_slice(&[0x02, 0x00, 0x10, 0x00, b'U', b'I']);
        out.extend_from_slice(&(uid.len() as u16).to_le_bytes());
        out.extend_from_slice(&uid);
        out.extend_from_slice(body);
        out
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
        let huge = explicit_le((0x7FE0, 0x0010), b"OW", &[0; 32], Some(1_443_001_346));
        let bad = file(EXPLICIT, &[rows, huge].concat());
        let err = check_declared_lengths(&bad).unwrap_err();
        assert!(
            err.contains("(7FE0,0010)") && err.contains("1443001346") && err.contains("32 remain"),
            "{err}"
        );
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

        // Implicit VR: tag, 4-byte length, value.
        let mut body = Vec::new();
        body.extend_from_slice(&[0x28, 0x00, 0x10, 0x00, 2, 0, 0, 0, 4, 0]);
        assert_eq!(
            check_declared_lengths(&file("1.2.840.10008.1.2", &body)),
            Ok(())
        );
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
