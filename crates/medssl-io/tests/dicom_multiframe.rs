//! Enhanced multi-frame DICOM (geometry in functional-group sequences) and transfer
//! syntaxes without a decoder, built here from the reference CT series.

use std::path::{Path, PathBuf};

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use medssl_io::nalgebra::Vector4;
use medssl_io::{Format, ReadOptions, Samples, read_image};
use medssl_test_support::fixtures_dir;

fn series_dir() -> PathBuf {
    fixtures_dir().join("io/ct_series_oblique")
}

fn first_dicom_file() -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(series_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "dcm"))
        .collect();
    files.sort();
    files.remove(0)
}

fn decimals(values: &[f64]) -> PrimitiveValue {
    let text: Vec<String> = values.iter().map(|v| format!("{v:.6}")).collect();
    PrimitiveValue::Strs(text.into())
}

fn item(elements: Vec<DataElement<InMemDicomObject>>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elements)
}

fn sequence(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

fn explicit_vr_little_endian(obj: &mut DefaultDicomObject) {
    obj.update_meta(|m| m.transfer_syntax = "1.2.840.10008.1.2.1\0".to_string());
}

/// Writes the series as one enhanced multi-frame file with its frames in descending
/// order along the slice normal.
fn write_multiframe(path: &Path) {
    let series = read_image(&series_dir(), &ReadOptions::default()).unwrap();
    let Samples::I16(values) = &series.samples else {
        panic!("the series stores int16")
    };
    let affine = series.affine.unwrap();
    let frame_len = 64 * 64;
    let frames = 40;
    let mut pixels: Vec<u16> = Vec::with_capacity(values.len());
    let mut per_frame = Vec::new();
    for k in (0..frames).rev() {
        pixels.extend(
            values[k * frame_len..(k + 1) * frame_len]
                .iter()
                .map(|&v| v as u16),
        );
        let ras = affine * Vector4::new(0.0, 0.0, k as f64, 1.0);
        let lps = [-ras[0], -ras[1], ras[2]];
        per_frame.push(item(vec![sequence(
            tags::PLANE_POSITION_SEQUENCE,
            vec![item(vec![DataElement::new(
                tags::IMAGE_POSITION_PATIENT,
                VR::DS,
                decimals(&lps),
            )])],
        )]));
    }
    let mut obj = dicom_object::open_file(first_dicom_file()).unwrap();
    explicit_vr_little_endian(&mut obj);
    for tag in [
        tags::IMAGE_POSITION_PATIENT,
        tags::IMAGE_ORIENTATION_PATIENT,
        tags::PIXEL_SPACING,
        tags::SLICE_THICKNESS,
    ] {
        obj.remove_element(tag);
    }
    let shared = item(vec![
        sequence(
            tags::PIXEL_MEASURES_SEQUENCE,
            vec![item(vec![
                DataElement::new(tags::PIXEL_SPACING, VR::DS, decimals(&[0.9, 0.75])),
                DataElement::new(tags::SLICE_THICKNESS, VR::DS, decimals(&[2.5])),
            ])],
        ),
        sequence(
            tags::PLANE_ORIENTATION_SEQUENCE,
            vec![item(vec![DataElement::new(
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                decimals(&[0.96, 0.28, 0.0, -0.2791936, 0.9572352, 0.07584]),
            )])],
        ),
    ]);
    obj.put(sequence(
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        vec![shared],
    ));
    obj.put(sequence(
        tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
        per_frame,
    ));
    obj.put(DataElement::new(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        PrimitiveValue::from("40"),
    ));
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(pixels.into()),
    ));
    obj.write_to_file(path).unwrap();
}

#[test]
fn multiframe_file_matches_the_series_it_was_built_from() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("enhanced_ct");
    write_multiframe(&path);
    let series = read_image(&series_dir(), &ReadOptions::default()).unwrap();
    let multi = read_image(&path, &ReadOptions::default()).unwrap();
    assert_eq!(multi.format, Format::Dicom);
    assert_eq!(multi.shape, vec![64, 64, 40]);
    assert_eq!(multi.scaling, series.scaling);
    let (a_multi, a_series) = (multi.affine.unwrap(), series.affine.unwrap());
    // Frames run backwards: multi-frame voxel (i, j, k) is series voxel (i, j, 39 - k),
    // at the same world position and with the same value.
    let multi_volume = multi.to_volume().unwrap();
    let series_volume = series.to_volume().unwrap();
    for (i, j, k) in [(0, 0, 0), (63, 10, 5), (20, 63, 39), (31, 32, 17)] {
        let p = a_multi * Vector4::new(i as f64, j as f64, k as f64, 1.0);
        let q = a_series * Vector4::new(i as f64, j as f64, (39 - k) as f64, 1.0);
        assert!((p - q).norm() < 1e-4, "world position of ({i},{j},{k})");
        assert_eq!(
            multi_volume.data()[[0, i, j, k]],
            series_volume.data()[[0, i, j, 39 - k]]
        );
    }
    assert_eq!(multi.stats().sum, series.stats().sum);
}

#[test]
fn transfer_syntax_without_decoder_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("jpegls.dcm");
    let mut obj = dicom_object::open_file(fixtures_dir().join("io/dicom/MR_small.dcm")).unwrap();
    obj.update_meta(|m| m.transfer_syntax = "1.2.840.10008.1.2.4.80\0".to_string());
    obj.write_to_file(&path).unwrap();
    let err = read_image(&path, &ReadOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("jpegls.dcm"), "{text}");
    assert!(text.contains("1.2.840.10008.1.2.4.80"), "{text}");
    assert!(text.contains("JPEG-LS"), "{text}");
}
