//! Miniature source trees for the dataset converters' tests: tiny volumes with values
//! that tell every voxel, case and channel apart, written in each dataset's formats
//! (NIfTI, NRRD, DICOM copies, greyscale PNG), and the checks on what a conversion
//! wrote.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use medssl_data::convert::{self, ConvertOptions, ConvertedTask};
use medssl_data::dataset::Task;
use medssl_io::nalgebra::Matrix4;
use medssl_io::ndarray::Array4;
use medssl_io::nifti::{OutputType, write_volume};
use medssl_io::{Affine, ReadOptions, Volume, read_volume};

/// The array shape of every miniature volume.
pub const SHAPE: [usize; 3] = [6, 5, 4];

/// A grid of [`SHAPE`] with the given spacing and origin, axes along RAS.
pub fn grid(spacing: [f64; 3], origin: [f64; 3]) -> Affine {
    let mut a = Matrix4::identity();
    for axis in 0..3 {
        a[(axis, axis)] = spacing[axis];
        a[(axis, 3)] = origin[axis];
    }
    a
}

/// The grid most cases use.
pub fn default_grid() -> Affine {
    grid([0.8, 0.8, 2.5], [-10.0, 4.0, 7.0])
}

/// A one-channel volume of `shape` on `affine` with `f(i, j, k)` at each voxel.
pub fn volume_of(
    shape: [usize; 3],
    affine: Affine,
    f: impl Fn(usize, usize, usize) -> f32,
) -> Volume {
    let data = Array4::from_shape_fn((1, shape[0], shape[1], shape[2]), |(_, i, j, k)| f(i, j, k));
    Volume::new(data, affine)
}

/// A CT-like image of case `seed`: integer values in HU, distinct per voxel and case.
pub fn ct(seed: usize) -> Volume {
    volume_of(SHAPE, default_grid(), move |i, j, k| {
        (seed * 100 + i * 20 + j * 4 + k) as f32 - 1000.0
    })
}

/// A label map of values `0..classes`, varied over the volume and by `seed`.
pub fn labels(seed: usize, classes: usize) -> Volume {
    volume_of(SHAPE, default_grid(), move |i, j, k| {
        ((i + 2 * j + 3 * k + seed) % classes) as f32
    })
}

/// Writes `volume` at `path` (NIfTI by its ending), creating folders, in the smallest
/// exact type.
pub fn write(path: &Path, volume: &Volume) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    write_volume(path, volume, OutputType::smallest_exact(volume)).unwrap();
}

/// Writes a one-channel `volume` as an NRRD file with attached raw int16 data in LPS
/// space, as 3D Slicer writes HaN-Seg's files.
pub fn write_nrrd(path: &Path, volume: &Volume) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let [ni, nj, nk] = volume.spatial_shape();
    let a = volume.affine();
    // RAS to LPS: the first two world axes change sign.
    let lps = |row: usize, col: usize| {
        if row < 2 {
            -a[(row, col)]
        } else {
            a[(row, col)]
        }
    };
    let direction = |col: usize| format!("({},{},{})", lps(0, col), lps(1, col), lps(2, col));
    let mut bytes = format!(
        "NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: {ni} \
         {nj} {nk}\nspace directions: {} {} {}\nkinds: domain domain domain\nendian: \
         little\nencoding: raw\nspace origin: {}\n\n",
        direction(0),
        direction(1),
        direction(2),
        direction(3),
    )
    .into_bytes();
    for k in 0..nk {
        for j in 0..nj {
            for i in 0..ni {
                bytes.extend((volume.data()[[0, i, j, k]] as i16).to_le_bytes());
            }
        }
    }
    std::fs::write(path, bytes).unwrap();
}

/// Writes an 8-bit greyscale PNG of `rows` x `columns` with `f(row, column)`.
pub fn write_png(path: &Path, rows: usize, columns: usize, f: impl Fn(usize, usize) -> u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut encoder = png::Encoder::new(file, columns as u32, rows as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let pixels: Vec<u8> = (0..rows)
        .flat_map(|r| (0..columns).map(move |c| (r, c)))
        .map(|(r, c)| f(r, c))
        .collect();
    encoder
        .write_header()
        .unwrap()
        .write_image_data(&pixels)
        .unwrap();
}

/// Every file below `dir` with its content, to show a conversion left the source as it
/// was.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()]
        .into_iter()
        .filter(|d| d.exists())
        .collect();
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// Converts `kind` from `source` into `out`, checks the source is unchanged, and
/// returns the tasks written.
pub fn convert_ok(kind: &str, source: &Path, out: &Path) -> Vec<ConvertedTask> {
    convert_with(kind, source, out, &ConvertOptions::default()).unwrap()
}

/// [`convert_ok`] with options, returning the error as text.
pub fn convert_with(
    kind: &str,
    source: &Path,
    out: &Path,
    options: &ConvertOptions,
) -> Result<Vec<ConvertedTask>, String> {
    let before = snapshot(source);
    let result = convert::convert(kind, source, out, options, &|_| {});
    assert!(
        before == snapshot(source),
        "converting {kind} changed its source"
    );
    result.map_err(|e| e.to_string())
}

/// The error of converting `kind`, which must fail.
pub fn convert_err(kind: &str, source: &Path, out: &Path) -> String {
    match convert_with(kind, source, out, &ConvertOptions::default()) {
        Ok(tasks) => panic!("converting {kind} succeeded: {tasks:?}"),
        Err(e) => e,
    }
}

/// Asserts `message` holds every fragment.
pub fn assert_mentions(message: &str, fragments: &[&str]) {
    for f in fragments {
        assert!(message.contains(f), "{f:?} is not in: {message}");
    }
}

/// Opens the written task `dir` with every case checked, and asserts its channels,
/// labels and case ids (training, then test).
pub fn check_task(
    dir: &Path,
    channels: &[&str],
    labels: &[&str],
    training: &[&str],
    test: &[&str],
) -> Task {
    let (task, _) = Task::open_checked(dir).unwrap();
    assert_eq!(task.channels, channels, "{}", dir.display());
    assert_eq!(task.labels, labels, "{}", dir.display());
    let ids = |cases: &[medssl_data::dataset::Case]| {
        let mut ids: Vec<String> = cases.iter().map(|c| c.id.clone()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&task.training), training, "{}", dir.display());
    assert_eq!(ids(&task.test), test, "{}", dir.display());
    task
}

/// Reads a written file.
pub fn read(path: &Path) -> Volume {
    read_volume(path, &ReadOptions::default()).unwrap()
}

/// Asserts two volumes have the same grid and exactly the same values.
pub fn assert_same(what: &str, got: &Volume, want: &Volume) {
    assert_eq!(got.spatial_shape(), want.spatial_shape(), "{what}: shape");
    let diff = (got.affine() - want.affine()).abs().max();
    assert!(diff < 1e-4, "{what}: affines differ by {diff}");
    assert_eq!(got.data(), want.data(), "{what}: values");
}

/// The written image of channel `c` of `case` in `task` (`imagesTr` or `imagesTs`).
pub fn written_image(task: &Path, folder: &str, case: &str, c: usize) -> Volume {
    read(&task.join(folder).join(format!("{case}_{c:04}.nii.gz")))
}

/// The written label map of `case` in `task`.
pub fn written_label(task: &Path, case: &str) -> Volume {
    read(&task.join("labelsTr").join(format!("{case}.nii.gz")))
}
