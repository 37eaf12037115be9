//! Finding a dataset's files: sorted folder listings, NIfTI names with either ending,
//! natural order of numbered names, and errors that say which layout was expected.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

use super::catalogue::KindInfo;
use crate::error::{DataError, Result};

/// NIfTI endings datasets are published with.
const NIFTI_ENDINGS: [&str; 2] = [".nii.gz", ".nii"];

/// The entries of `dir` (files and folders, hidden ones such as macOS `._x` left out),
/// in natural order.
pub(super) fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::os(dir, e))? {
        let path = entry.map_err(|e| DataError::os(dir, e))?.path();
        if !name(&path).starts_with('.') {
            out.push(path);
        }
    }
    out.sort_by(|a, b| natural_cmp(&name(a), &name(b)));
    Ok(out)
}

/// The subfolders of `dir`, in natural order.
pub(super) fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(entries(dir)?.into_iter().filter(|p| p.is_dir()).collect())
}

/// The NIfTI files of `dir` with their names' stems (the name without `.nii.gz` or
/// `.nii`), in natural order.
pub(super) fn nifti_files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    Ok(entries(dir)?
        .into_iter()
        .filter(|p| p.is_file())
        .filter_map(|p| nifti_stem(&p).map(|stem| (stem.to_string(), p.clone())))
        .collect())
}

/// `path`'s file name without a NIfTI ending, or `None` for other files.
pub(super) fn nifti_stem(path: &Path) -> Option<String> {
    let name = name(path);
    NIFTI_ENDINGS
        .iter()
        .find_map(|e| name.strip_suffix(e))
        .map(str::to_string)
}

/// `dir/stem.nii.gz` or `dir/stem.nii`, whichever exists.
pub(super) fn find_nifti(dir: &Path, stem: &str) -> Option<PathBuf> {
    NIFTI_ENDINGS
        .iter()
        .map(|e| dir.join(format!("{stem}{e}")))
        .find(|p| p.is_file())
}

/// `path`'s file name as text.
pub(super) fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `dir`, checked to be a folder; otherwise an error saying what the kind expects.
pub(super) fn require_dir(dir: PathBuf, info: &KindInfo) -> Result<PathBuf> {
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(layout_error(&dir, info, "no such folder"))
    }
}

/// An error about the source's layout, naming what the kind expects.
pub(super) fn layout_error(path: &Path, info: &KindInfo, problem: &str) -> DataError {
    DataError::file(
        path,
        format!("{problem}; {} expects {}", info.title, info.source_layout),
    )
}

/// Compares names the way people number files: digit runs by value (`img2` before
/// `img10`), the rest as text.
pub(super) fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.is_empty(), b.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let (ra, rest_a) = run(a);
        let (rb, rest_b) = run(b);
        let order = match (ra.parse::<u128>(), rb.parse::<u128>()) {
            (Ok(x), Ok(y)) => x.cmp(&y).then(ra.len().cmp(&rb.len())),
            _ => ra.cmp(rb),
        };
        if order != Ordering::Equal {
            return order;
        }
        (a, b) = (rest_a, rest_b);
    }
}

/// The leading run of digits or of non-digits of a non-empty `s`, and the rest.
fn run(s: &str) -> (&str, &str) {
    let digit = s.starts_with(|c: char| c.is_ascii_digit());
    let end = s
        .find(|c: char| c.is_ascii_digit() != digit)
        .unwrap_or(s.len());
    s.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_puts_numbers_by_value() {
        let mut names = vec!["img10", "img2", "img1", "a", "img02", "img2b"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["a", "img1", "img2", "img2b", "img02", "img10"]);
    }
}
