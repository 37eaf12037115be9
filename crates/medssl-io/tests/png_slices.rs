//! Per-slice PNG ground truth (as CHAOS ships it): every PNG flavour a label map is saved
//! in reads to its exact integer values, colour and damaged files are errors naming the
//! file, and a PNG stack lands on the voxels of the DICOM slices it belongs to, in the
//! order `series_files` gives.

use std::path::{Path, PathBuf};

use medssl_io::dicom::{read_file, read_series, series_files};
use medssl_io::png_slices::{GraySlice, label_stack, read_png_gray};
use medssl_io::{Format, Image, IoError, Samples, Scaling};
use medssl_test_support::fixtures_dir;
use png::{BitDepth, ColorType};

fn series_dir() -> PathBuf {
    fixtures_dir().join("io/ct_series_oblique")
}

/// Encodes `data` (packed rows, 16-bit samples big-endian, as PNG stores them).
fn write_png(
    path: &Path,
    (width, height): (u32, u32),
    color: ColorType,
    depth: BitDepth,
    palette: Option<&[u8]>,
    data: &[u8],
) {
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut encoder = png::Encoder::new(file, width, height);
    encoder.set_color(color);
    encoder.set_depth(depth);
    if let Some(palette) = palette {
        encoder.set_palette(palette.to_vec());
    }
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(data).unwrap();
    writer.finish().unwrap();
}

fn write_gray16(path: &Path, (width, height): (usize, usize), values: &[u16]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    write_png(
        path,
        (width as u32, height as u32),
        ColorType::Grayscale,
        BitDepth::Sixteen,
        None,
        &bytes,
    );
}

fn gray(width: usize, height: usize, values: &[u16]) -> GraySlice {
    GraySlice {
        width,
        height,
        values: values.to_vec(),
    }
}

/// Asserts that `err` is about `path` and says `words`.
fn assert_names(err: &IoError, path: &Path, words: &str) {
    assert_eq!(err.path(), path, "{err}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains(words), "{text}");
}

#[test]
fn greyscale_8_and_16_bit_read_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let p8 = tmp.path().join("g8.png");
    // 3 wide, 2 high: row 0 first.
    write_png(
        &p8,
        (3, 2),
        ColorType::Grayscale,
        BitDepth::Eight,
        None,
        &[0, 1, 2, 3, 4, 255],
    );
    assert_eq!(
        read_png_gray(&p8).unwrap(),
        gray(3, 2, &[0, 1, 2, 3, 4, 255])
    );

    let p16 = tmp.path().join("g16.png");
    let values = [0, 1, 256, 1000, 40000, 65535];
    write_gray16(&p16, (2, 3), &values);
    assert_eq!(read_png_gray(&p16).unwrap(), gray(2, 3, &values));
}

#[test]
fn low_bit_depths_keep_their_integer_values() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("g2.png");
    // 2 bits per pixel, 5 wide: each row is packed high bits first and padded to a byte.
    // Row 0: 0 1 2 3 | 1; row 1: 3 2 1 0 | 2.
    let rows = [0b0001_1011, 0b0100_0000, 0b1110_0100, 0b1000_0000];
    write_png(
        &path,
        (5, 2),
        ColorType::Grayscale,
        BitDepth::Two,
        None,
        &rows,
    );
    assert_eq!(
        read_png_gray(&path).unwrap(),
        gray(5, 2, &[0, 1, 2, 3, 1, 3, 2, 1, 0, 2])
    );
}

#[test]
fn alpha_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ga.png");
    write_png(
        &path,
        (2, 1),
        ColorType::GrayscaleAlpha,
        BitDepth::Eight,
        None,
        &[7, 0, 9, 255],
    );
    assert_eq!(read_png_gray(&path).unwrap(), gray(2, 1, &[7, 9]));
}

#[test]
fn grey_palette_is_expanded() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("palette.png");
    let palette = [0, 0, 0, 63, 63, 63, 126, 126, 126, 252, 252, 252];
    // 4-bit indices: row 0 = 3 0, row 1 = 1 2.
    write_png(
        &path,
        (2, 2),
        ColorType::Indexed,
        BitDepth::Four,
        Some(&palette),
        &[0x30, 0x12],
    );
    assert_eq!(
        read_png_gray(&path).unwrap(),
        gray(2, 2, &[252, 0, 63, 126])
    );

    let colour = tmp.path().join("colour_palette.png");
    write_png(
        &colour,
        (2, 1),
        ColorType::Indexed,
        BitDepth::Eight,
        Some(&[0, 0, 0, 255, 0, 0]),
        &[0, 1],
    );
    let err = read_png_gray(&colour).unwrap_err();
    assert_names(&err, &colour, "colour PNG, expected greyscale ground truth");
}

#[test]
fn rgb_is_read_only_when_grey() {
    let tmp = tempfile::tempdir().unwrap();
    let grey = tmp.path().join("rgb_grey.png");
    write_png(
        &grey,
        (2, 1),
        ColorType::Rgb,
        BitDepth::Eight,
        None,
        &[5, 5, 5, 200, 200, 200],
    );
    assert_eq!(read_png_gray(&grey).unwrap(), gray(2, 1, &[5, 200]));

    let rgba = tmp.path().join("rgba_grey.png");
    write_png(
        &rgba,
        (1, 2),
        ColorType::Rgba,
        BitDepth::Eight,
        None,
        &[9, 9, 9, 255, 4, 4, 4, 0],
    );
    assert_eq!(read_png_gray(&rgba).unwrap(), gray(1, 2, &[9, 4]));

    let colour = tmp.path().join("rgb_colour.png");
    write_png(
        &colour,
        (2, 1),
        ColorType::Rgb,
        BitDepth::Eight,
        None,
        &[5, 5, 5, 200, 0, 0],
    );
    let err = read_png_gray(&colour).unwrap_err();
    assert!(matches!(err, IoError::Invalid { .. }), "{err:?}");
    assert_names(&err, &colour, "colour PNG, expected greyscale ground truth");
    assert!(err.to_string().contains("row 0, column 1"), "{err}");
}

#[test]
fn damaged_files_are_errors_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole.png");
    let values: Vec<u16> = (0..64 * 64).map(|i| (i * 37 % 65536) as u16).collect();
    write_gray16(&whole, (64, 64), &values);
    let bytes = std::fs::read(&whole).unwrap();
    for (name, keep) in [
        ("half.png", bytes.len() / 2),
        ("header_only.png", 20),
        ("no_end.png", bytes.len() - 12),
    ] {
        let cut = tmp.path().join(name);
        std::fs::write(&cut, &bytes[..keep]).unwrap();
        let err = read_png_gray(&cut).unwrap_err();
        assert!(matches!(err, IoError::Invalid { .. }), "{name}: {err:?}");
        assert_names(&err, &cut, "PNG");
    }
    let not_png = tmp.path().join("text.png");
    std::fs::write(&not_png, b"not a PNG at all").unwrap();
    assert_names(&read_png_gray(&not_png).unwrap_err(), &not_png, "PNG");

    let missing = tmp.path().join("missing.png");
    let err = read_png_gray(&missing).unwrap_err();
    assert!(matches!(err, IoError::Os { .. }), "{err:?}");
    assert_eq!(err.path(), missing);
}

#[test]
fn series_files_are_the_slices_of_read_series_in_order() {
    let dir = series_dir();
    let series = read_series(&dir, None).unwrap();
    assert_eq!(series.shape, vec![64, 64, 40]);
    let files = series_files(&dir, None).unwrap();
    assert_eq!(files.len(), 40);
    let mut by_name = files.clone();
    by_name.sort();
    assert_ne!(files, by_name, "the fixture's names are not in slice order");
    let Samples::I16(all) = &series.samples else {
        panic!("the series stores int16, not {:?}", series.stored_type)
    };
    let slice_len = 64 * 64;
    for (k, file) in files.iter().enumerate() {
        let one = read_file(file).unwrap();
        assert_eq!(one.shape, vec![64, 64, 1], "{}", file.display());
        assert_eq!(one.scaling, series.scaling, "{}", file.display());
        let Samples::I16(values) = &one.samples else {
            panic!("{} stores {:?}", file.display(), one.stored_type)
        };
        assert_eq!(
            values.as_slice(),
            &all[k * slice_len..(k + 1) * slice_len],
            "slice {k} is {}",
            file.display()
        );
    }
}

#[test]
fn series_files_of_a_one_file_series_is_that_file() {
    let tmp = tempfile::tempdir().unwrap();
    let source = series_files(&series_dir(), None).unwrap().remove(7);
    let copy = tmp.path().join("only.dcm");
    std::fs::copy(&source, &copy).unwrap();
    assert_eq!(series_files(tmp.path(), None).unwrap(), vec![copy]);
}

/// A label value that differs between transposed, flipped or reordered positions.
fn code(k: usize, r: usize, c: usize) -> u16 {
    (k * 1000 + r * 64 + c) as u16
}

#[test]
fn label_stack_puts_png_pixels_on_the_dicom_voxels() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = series_dir();
    let series = read_series(&dir, None).unwrap();
    let files = series_files(&dir, None).unwrap();
    let (columns, rows) = (64, 64);
    let pngs: Vec<PathBuf> = files
        .iter()
        .enumerate()
        .map(|(k, dcm)| {
            let png = tmp
                .path()
                .join(dcm.file_name().unwrap())
                .with_extension("png");
            let values: Vec<u16> = (0..rows)
                .flat_map(|r| (0..columns).map(move |c| code(k, r, c)))
                .collect();
            write_gray16(&png, (columns, rows), &values);
            png
        })
        .collect();
    let labels = label_stack(&pngs, &series).unwrap();
    assert_eq!(labels.format, Format::PngStack);
    assert_eq!(labels.shape, series.shape);
    assert_eq!(labels.affine, series.affine);
    assert_eq!(labels.scaling, Scaling::IDENTITY);
    assert_eq!(labels.path, tmp.path());
    let Samples::U16(values) = &labels.samples else {
        panic!("labels are u16, not {:?}", labels.stored_type)
    };
    for k in 0..40 {
        for r in 0..rows {
            for c in 0..columns {
                let voxel = c + columns * (r + rows * k);
                assert_eq!(values[voxel], code(k, r, c), "voxel ({c}, {r}, {k})");
            }
        }
    }
    // The volume keeps that placement: index (i, j, k) = (column, row, slice).
    let volume = labels.to_volume().unwrap();
    assert_eq!(volume.data()[[0, 5, 9, 31]], f32::from(code(31, 9, 5)));
}

/// One DICOM slice as the reference, for the size checks.
fn one_slice_reference() -> Image {
    read_file(&series_files(&series_dir(), None).unwrap()[0]).unwrap()
}

#[test]
fn label_stack_rejects_png_of_another_size() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = one_slice_reference();
    let narrow = tmp.path().join("narrow.png");
    write_gray16(&narrow, (63, 64), &vec![1; 63 * 64]);
    let err = label_stack(std::slice::from_ref(&narrow), &reference).unwrap_err();
    assert_names(&err, &narrow, "63x64 pixels");

    let transposed = tmp.path().join("transposed.png");
    write_gray16(&transposed, (64, 32), &vec![1; 64 * 32]);
    let err = label_stack(std::slice::from_ref(&transposed), &reference).unwrap_err();
    assert_names(&err, &transposed, "64x32 pixels");
}

#[test]
fn label_stack_needs_one_png_per_slice() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = one_slice_reference();
    let pngs: Vec<PathBuf> = (0..2)
        .map(|i| {
            let path = tmp.path().join(format!("{i}.png"));
            write_gray16(&path, (64, 64), &vec![0; 64 * 64]);
            path
        })
        .collect();
    let err = label_stack(&pngs, &reference).unwrap_err();
    assert_names(&err, &pngs[1], "2 PNG slices for the 1 slices");

    let series = read_series(&series_dir(), None).unwrap();
    let err = label_stack(&pngs, &series).unwrap_err();
    assert_names(&err, &pngs[1], "2 PNG slices for the 40 slices");
}
