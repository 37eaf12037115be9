//! Reading attribute values the way real files need: numbers stored as text (DS/IS),
//! binary (FL/FD/US/SS) or, after a careless anonymiser, as VR `UN` bytes holding the
//! text; and attributes nested in the functional-group sequences of multi-frame files.

use dicom_core::{Tag, VR};
use dicom_object::InMemDicomObject;

/// Numbers of a (possibly multi-valued) numeric attribute; `None` when absent, empty
/// or not numeric.
pub fn floats(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    let elem = obj.element_opt(tag).ok()??;
    let values = if elem.vr() == VR::UN {
        let bytes = elem.to_bytes().ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        text.trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .split('\\')
            .map(|v| v.trim().parse::<f64>().ok())
            .collect::<Option<Vec<f64>>>()?
    } else {
        elem.to_multi_float64().ok()?
    };
    (!values.is_empty() && values.iter().all(|v| v.is_finite())).then_some(values)
}

/// A single number (the first value of the attribute).
pub fn float(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    floats(obj, tag).map(|v| v[0])
}

/// Exactly `N` numbers, or `None`.
pub fn float_array<const N: usize>(obj: &InMemDicomObject, tag: Tag) -> Option<[f64; N]> {
    floats(obj, tag)?.try_into().ok()
}

/// An integer attribute.
pub fn int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    float(obj, tag).map(|v| v as i64)
}

/// A text attribute, trimmed of DICOM padding.
pub fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let elem = obj.element_opt(tag).ok()??;
    let s = elem.to_str().ok()?;
    let s = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!s.is_empty()).then(|| s.to_string())
}

/// The first item of a sequence attribute.
pub fn first_item(obj: &InMemDicomObject, seq: Tag) -> Option<&InMemDicomObject> {
    obj.element_opt(seq).ok()??.items()?.first()
}

/// The items of a sequence attribute (empty when absent).
pub fn items(obj: &InMemDicomObject, seq: Tag) -> &[InMemDicomObject] {
    obj.element_opt(seq)
        .ok()
        .flatten()
        .and_then(|e| e.items())
        .unwrap_or(&[])
}

/// Looks `tag` up inside `macro_seq` of a functional-group item (e.g. Pixel Measures
/// inside the Shared Functional Groups), then at the top level of `obj`.
pub fn in_group<T>(
    group: Option<&InMemDicomObject>,
    macro_seq: Tag,
    obj: &InMemDicomObject,
    get: impl Fn(&InMemDicomObject) -> Option<T>,
) -> Option<T> {
    group
        .and_then(|g| first_item(g, macro_seq))
        .and_then(&get)
        .or_else(|| get(obj))
}
