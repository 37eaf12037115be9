//! Weights files that carry the SHA-256 of their tensor data in the safetensors
//! metadata (`medssl.sha256`), so a file damaged on disk or in a copy is refused when
//! loaded instead of turning into a network with silently wrong weights. Files from
//! other tools have no such entry and load unchecked.

use medssl_io::checksum::sha256_hex;

use crate::error::ModelError;

/// The metadata key holding the SHA-256 (hex) of everything after the header.
pub const CHECKSUM_KEY: &str = "medssl.sha256";

/// The safetensors file `bytes` (written without metadata) with the metadata
/// `{"format": "pt", "medssl.sha256": ...}`. The header is assembled here, not by the
/// safetensors crate, so its key order, and with it the file's bytes, are the same on
/// every run.
pub fn seal(bytes: &[u8]) -> Result<Vec<u8>, ModelError> {
    let (header, data) = split(bytes)?;
    let entries = header
        .trim_end()
        .strip_prefix('{')
        .ok_or_else(|| bad("the safetensors header is not a JSON object"))?;
    if header.contains("\"__metadata__\"") {
        return Err(bad("the safetensors header already has metadata"));
    }
    let separator = if entries.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    let mut sealed = format!(
        "{{\"__metadata__\":{{\"format\":\"pt\",\"{CHECKSUM_KEY}\":\"{}\"}}{separator}{entries}",
        sha256_hex(data)
    );
    while sealed.len() % 8 != 0 {
        sealed.push(' ');
    }
    let mut out = Vec::with_capacity(8 + sealed.len() + data.len());
    out.extend_from_slice(&(sealed.len() as u64).to_le_bytes());
    out.extend_from_slice(sealed.as_bytes());
    out.extend_from_slice(data);
    Ok(out)
}

/// Checks a safetensors file's recorded checksum: `Ok(true)` when it matches,
/// `Ok(false)` when the file records none, `Err` naming the problem when the data does
/// not match (or the header cannot be read).
pub fn verify(bytes: &[u8]) -> Result<bool, ModelError> {
    let (_, metadata) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(ModelError::Unreadable)?;
    let Some(expected) = metadata
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CHECKSUM_KEY))
    else {
        return Ok(false);
    };
    let (_, data) = split(bytes)?;
    let actual = sha256_hex(data);
    if &actual != expected {
        return Err(ModelError::Corrupt {
            actual,
            expected: expected.clone(),
        });
    }
    Ok(true)
}

/// The header text and the data of a safetensors file.
fn split(bytes: &[u8]) -> Result<(&str, &[u8]), ModelError> {
    let too_short = || {
        bad(format!(
            "{} bytes are too few for a safetensors file",
            bytes.len()
        ))
    };
    let length: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(too_short)?;
    let end = usize::try_from(u64::from_le_bytes(length))
        .ok()
        .and_then(|n| n.checked_add(8))
        .filter(|&end| end <= bytes.len())
        .ok_or_else(too_short)?;
    let header = std::str::from_utf8(&bytes[8..end])
        .map_err(|_| bad("the safetensors header is not UTF-8"))?;
    Ok((header, &bytes[end..]))
}

/// Bytes that are not laid out as a safetensors file.
fn bad(problem: impl Into<String>) -> ModelError {
    ModelError::Safetensors(problem.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::Dtype;
    use safetensors::tensor::TensorView;

    fn plain() -> Vec<u8> {
        let a: Vec<u8> = (0..24).collect();
        let b: Vec<u8> = (100..108).collect();
        let views = vec![
            ("a", TensorView::new(Dtype::F32, vec![2, 3], &a).unwrap()),
            ("b", TensorView::new(Dtype::I64, vec![1], &b).unwrap()),
        ];
        safetensors::serialize(views, None).unwrap()
    }

    #[test]
    fn sealed_files_read_back_and_catch_any_flipped_data_byte() {
        let sealed = seal(&plain()).unwrap();
        assert_eq!(seal(&plain()).unwrap(), sealed, "sealing is deterministic");
        let parsed = safetensors::SafeTensors::deserialize(&sealed).unwrap();
        assert_eq!(
            parsed.tensor("a").unwrap().data(),
            (0..24).collect::<Vec<u8>>()
        );
        assert_eq!(parsed.tensor("b").unwrap().shape(), [1]);
        let (n, metadata) = safetensors::SafeTensors::read_metadata(&sealed).unwrap();
        assert_eq!(n % 8, 0);
        let metadata = metadata.metadata().clone().unwrap();
        assert_eq!(metadata["format"], "pt");
        assert!(verify(&sealed).unwrap());
        assert!(
            !verify(&plain()).unwrap(),
            "files of other tools pass unchecked"
        );
        for at in [sealed.len() - 32, sealed.len() - 1] {
            let mut broken = sealed.clone();
            broken[at] ^= 0x10;
            let err = verify(&broken).unwrap_err();
            assert!(matches!(err, ModelError::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains("corrupt"), "{err}");
        }
        assert!(verify(&sealed[..4]).is_err());
    }

    #[test]
    fn a_file_without_tensors_is_sealed_too() {
        let empty = safetensors::serialize(Vec::<(&str, TensorView<'_>)>::new(), None).unwrap();
        let sealed = seal(&empty).unwrap();
        assert!(verify(&sealed).unwrap());
        assert_eq!(
            seal(&sealed).unwrap_err().to_string(),
            "the safetensors header already has metadata",
            "metadata is not added twice"
        );
    }
}
