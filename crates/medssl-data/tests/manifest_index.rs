//! Indexing pretraining collections built from the reference fixtures: shapes and
//! spacings must match nibabel's and SimpleITK's (from `io/expected.json`), unreadable
//! entries are recorded rather than fatal, and the cache is reused for unchanged files
//! and refreshed for changed, new and removed ones.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use medssl_data::manifest::{Entry, IndexStats, Kind, MANIFEST_FILE, Manifest};
use medssl_io::geometry::affine_from_rows;
use medssl_io::ndarray::Array4;
use medssl_io::nifti::{OutputType, write_volume};
use medssl_test_support::{fixtures_dir, json_f64s};
use serde_json::Value;

fn expected() -> Value {
    let text = std::fs::read_to_string(fixtures_dir().join("io/expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The fixture's `nifti` record for `file`.
fn nifti_reference(file: &str) -> Value {
    expected()["nifti"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["file"] == file)
        .unwrap()
        .clone()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

/// A small volume of `shape` with 1.5 mm voxels.
fn write_small(path: &Path, shape: (usize, usize, usize)) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let affine = affine_from_rows([
        [1.5, 0.0, 0.0, 0.0],
        [0.0, 1.5, 0.0, 0.0],
        [0.0, 0.0, 1.5, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]);
    let volume = medssl_io::Volume::new(Array4::zeros((1, shape.0, shape.1, shape.2)), affine);
    write_volume(path, &volume, OutputType::Int16).unwrap();
}

/// A collection: a DICOM CT series, two NIfTI fixtures (one 4-D), one small NIfTI,
/// a corrupt `.nii.gz`, and files that are not scans.
fn collection(root: &Path) {
    let io = fixtures_dir().join("io");
    copy_dir(
        &io.join("ct_series_oblique"),
        &root.join("ct/patient1/series7"),
    );
    copy(
        &io.join("nifti/anatomical.nii"),
        &root.join("mr/anatomical.nii"),
    );
    copy(
        &io.join("nifti/example4d.nii.gz"),
        &root.join("mr/deeper/example4d.nii.gz"),
    );
    write_small(&root.join("small.nii.gz"), (4, 5, 6));
    std::fs::write(root.join("mr/corrupt.nii.gz"), b"this is not a NIfTI file").unwrap();
    std::fs::write(root.join("notes.txt"), b"not a scan").unwrap();
    std::fs::create_dir_all(root.join(".hidden")).unwrap();
    copy(
        &io.join("nifti/anatomical.nii"),
        &root.join(".hidden/ignored.nii"),
    );
}

fn entry<'a>(manifest: &'a Manifest, path: &Path) -> &'a Entry {
    manifest
        .entries
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("no entry {}", path.display()))
}

fn assert_close(actual: [f64; 3], expected: &[f64], tolerance: f64) {
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() <= tolerance, "{actual:?} vs {expected:?}");
    }
}

/// Sets the modification time of `path` to `seconds` after 2020-09-13.
fn set_modified(path: &Path, seconds: u64) {
    let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000 + seconds);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

#[test]
fn directory_tree_is_indexed_with_reference_geometry() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap().join("collection");
    collection(&root);
    let cache = tmp.path().join("cache");
    let (manifest, stats) = Manifest::index(&root, Some(&cache)).unwrap();

    let paths: Vec<&PathBuf> = manifest.entries.iter().map(|e| &e.path).collect();
    assert_eq!(
        paths,
        [
            &root.join("ct/patient1/series7"),
            &root.join("mr/anatomical.nii"),
            &root.join("mr/deeper/example4d.nii.gz"),
            &root.join("small.nii.gz"),
        ]
    );
    assert_eq!(manifest.source, root);
    assert_eq!(
        stats,
        IndexStats {
            found: 5,
            read: 5,
            ..IndexStats::default()
        }
    );

    // The series: SimpleITK's spacing, nibabel's shape of the series written as NIfTI.
    let series = &expected()["dicom_series"][0];
    let ct = entry(&manifest, &root.join("ct/patient1/series7"));
    assert_eq!(ct.kind, Kind::Dicom);
    let shape: Vec<usize> = json_f64s(&series["ras_geometry"]["nifti_shape"])
        .iter()
        .map(|&d| d as usize)
        .collect();
    assert_eq!(ct.shape.to_vec(), shape);
    assert_eq!(ct.channels, 1);
    assert_close(
        ct.spacing,
        &json_f64s(&series["simpleitk_crosscheck"]["spacing"]),
        1e-9,
    );
    assert_eq!(ct.modality.as_deref(), Some("CT"));
    assert_eq!(
        ct.stamp.files,
        series["num_files_in_dir"].as_u64().unwrap() as usize
    );

    // NIfTI: nibabel's shape (the 4th dimension becomes channels) and zooms.
    for (file, path) in [
        ("nifti/anatomical.nii", root.join("mr/anatomical.nii")),
        (
            "nifti/example4d.nii.gz",
            root.join("mr/deeper/example4d.nii.gz"),
        ),
    ] {
        let reference = nifti_reference(file);
        let shape: Vec<usize> = json_f64s(&reference["shape"])
            .iter()
            .map(|&d| d as usize)
            .collect();
        let found = entry(&manifest, &path);
        assert_eq!(found.kind, Kind::Nifti);
        assert_eq!(found.shape.to_vec(), shape[..3]);
        assert_eq!(found.channels, shape.get(3).copied().unwrap_or(1));
        assert_close(
            found.spacing,
            &json_f64s(&reference["voxel_spacing_from_affine_columns"]),
            1e-6,
        );
        assert_eq!(found.modality, None);
        assert_eq!(found.stamp.bytes, std::fs::metadata(&path).unwrap().len());
    }

    assert_eq!(manifest.skipped.len(), 1);
    let skipped = &manifest.skipped[0];
    assert_eq!(skipped.path, root.join("mr/corrupt.nii.gz"));
    assert!(
        skipped
            .reason
            .contains(&root.join("mr/corrupt.nii.gz").display().to_string()),
        "{}",
        skipped.reason
    );

    let cached: Manifest =
        serde_json::from_str(&std::fs::read_to_string(cache.join(MANIFEST_FILE)).unwrap()).unwrap();
    assert_eq!(cached, manifest);
}

#[test]
fn unchanged_collection_is_not_read_again_and_changes_are_found() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap().join("collection");
    collection(&root);
    let cache = tmp.path().join("cache");
    let (first, _) = Manifest::index(&root, Some(&cache)).unwrap();
    let cache_file = cache.join(MANIFEST_FILE);
    let cache_time = std::fs::metadata(&cache_file).unwrap().modified().unwrap();

    let (second, stats) = Manifest::index(&root, Some(&cache)).unwrap();
    assert_eq!(second, first);
    assert_eq!(
        stats,
        IndexStats {
            found: 5,
            reused: 5,
            ..IndexStats::default()
        },
        "the corrupt file is not retried either"
    );
    assert_eq!(
        std::fs::metadata(&cache_file).unwrap().modified().unwrap(),
        cache_time,
        "an unchanged manifest is not rewritten"
    );

    // Rewritten with another shape, touched only, new, removed, and a slice removed
    // from the end of the series (the first in position order, so spacing stays even).
    write_small(&root.join("small.nii.gz"), (7, 5, 6));
    set_modified(&root.join("mr/anatomical.nii"), 42);
    write_small(&root.join("new/added.nii.gz"), (2, 3, 4));
    std::fs::remove_file(root.join("mr/deeper/example4d.nii.gz")).unwrap();
    let series = &expected()["dicom_series"][0];
    let first_slice = series["sorted_files"][0].as_str().unwrap();
    std::fs::remove_file(root.join("ct/patient1/series7").join(first_slice)).unwrap();

    let (third, stats) = Manifest::index(&root, Some(&cache)).unwrap();
    assert_eq!(
        stats,
        IndexStats {
            found: 5,
            reused: 1,
            read: 4,
            removed: 1,
            cache_discarded: None,
        }
    );
    assert_eq!(entry(&third, &root.join("small.nii.gz")).shape, [7, 5, 6]);
    assert_eq!(
        entry(&third, &root.join("new/added.nii.gz")).shape,
        [2, 3, 4]
    );
    let ct = entry(&third, &root.join("ct/patient1/series7"));
    assert_eq!(ct.shape, [64, 64, 39]);
    assert_eq!(ct.stamp.files, 40);
    assert!(
        third
            .entries
            .iter()
            .all(|e| !e.path.ends_with("example4d.nii.gz"))
    );
    let anatomical = entry(&third, &root.join("mr/anatomical.nii"));
    assert_eq!(
        anatomical.shape,
        entry(&first, &root.join("mr/anatomical.nii")).shape
    );
    assert_ne!(
        anatomical.stamp,
        entry(&first, &root.join("mr/anatomical.nii")).stamp
    );

    // The cache now holds the new state: nothing left to read.
    let (_, stats) = Manifest::index(&root, Some(&cache)).unwrap();
    assert_eq!((stats.read, stats.reused), (0, 5));
}

#[test]
fn list_file_names_entries_relative_to_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    collection(&root.join("data"));
    let list = root.join("lists/pretrain.txt");
    std::fs::create_dir_all(list.parent().unwrap()).unwrap();
    std::fs::write(
        &list,
        "# pretraining scans\n\
         ../data/mr/anatomical.nii\n\
         \n\
         ../data/ct/patient1/series7   \n\
         ../data/mr/anatomical.nii\n\
         ../data/missing.nii.gz\n",
    )
    .unwrap();
    let (manifest, stats) = Manifest::index(&list, None).unwrap();
    assert_eq!(stats.found, 3, "a path named twice counts once");
    let kinds: Vec<(String, Kind)> = manifest
        .entries
        .iter()
        .map(|e| {
            let name = e.path.file_name().unwrap().to_string_lossy().into_owned();
            (name, e.kind)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("series7".to_string(), Kind::Dicom),
            ("anatomical.nii".to_string(), Kind::Nifti),
        ]
    );
    assert_eq!(manifest.skipped.len(), 1);
    assert!(
        manifest.skipped[0].reason.contains("missing.nii.gz"),
        "{}",
        manifest.skipped[0].reason
    );
    assert_eq!(manifest.skipped[0].stamp, None);
}

#[test]
fn empty_or_unreadable_collections_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let empty = root.join("empty");
    std::fs::create_dir_all(empty.join("sub")).unwrap();
    std::fs::write(empty.join("sub/notes.txt"), b"no scans here").unwrap();
    let message = Manifest::index(&empty, None).unwrap_err().to_string();
    assert!(message.contains(&empty.display().to_string()), "{message}");
    assert!(
        message.contains("no NIfTI files (.nii, .nii.gz) or DICOM series found"),
        "{message}"
    );

    let broken = root.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("a.nii"), b"truncated").unwrap();
    let message = Manifest::index(&broken, None).unwrap_err().to_string();
    assert!(
        message.contains("none of the 1 entries could be read; the first:"),
        "{message}"
    );
    assert!(message.contains("a.nii"), "{message}");

    let message = Manifest::index(&broken.join("a.nii"), None)
        .unwrap_err()
        .to_string();
    assert!(message.contains("a NIfTI file, not a list"), "{message}");

    let list = root.join("empty.txt");
    std::fs::write(&list, "# nothing yet\n\n").unwrap();
    let message = Manifest::index(&list, None).unwrap_err().to_string();
    assert!(message.contains("the list names no files"), "{message}");
}

#[test]
fn cache_of_another_collection_or_garbage_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    write_small(&root.join("one/a.nii.gz"), (2, 2, 2));
    write_small(&root.join("two/b.nii.gz"), (3, 3, 3));
    let cache = root.join("cache");
    Manifest::index(&root.join("one"), Some(&cache)).unwrap();

    let (manifest, stats) = Manifest::index(&root.join("two"), Some(&cache)).unwrap();
    assert_eq!(stats.read, 1);
    let reason = stats.cache_discarded.unwrap();
    assert!(
        reason.contains("indexes") && reason.contains("one"),
        "{reason}"
    );
    assert_eq!(manifest.entries[0].shape, [3, 3, 3]);

    std::fs::write(cache.join(MANIFEST_FILE), b"{ half a manifest").unwrap();
    let (_, stats) = Manifest::index(&root.join("two"), Some(&cache)).unwrap();
    assert_eq!(stats.read, 1);
    assert!(
        stats.cache_discarded.unwrap().contains("not a manifest"),
        "corrupt cache is reported"
    );
    let (_, stats) = Manifest::index(&root.join("two"), Some(&cache)).unwrap();
    assert_eq!(
        (stats.read, stats.reused, stats.cache_discarded),
        (0, 1, None)
    );
}
