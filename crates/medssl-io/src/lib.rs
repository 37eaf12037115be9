//! Reading and writing the medical images researchers actually have.
//!
//! - NIfTI-1 and NIfTI-2 (`.nii`, `.nii.gz`, `.hdr`/`.img`), any byte order, the common
//!   datatypes, `scl_slope`/`scl_inter` with nibabel's rule, the affine from sform, qform
//!   or pixdim as nibabel chooses it;
//! - NRRD (`.nrrd`, `.nhdr` with detached data; raw, gzip or ascii), its `space`
//!   geometry turned into RAS, vector/list axes as channels;
//! - DICOM files (multi-frame too) and directories holding series, sorted along the slice
//!   normal, with the modality LUT applied and the RAS affine built from the patient
//!   position and orientation;
//! - ground truth stored as one greyscale PNG per DICOM slice, stacked on the grid of
//!   its series;
//! - reorientation to the closest canonical RAS orientation;
//! - writing NIfTI (float32, int16, uint8) atomically with sform and qform set.
//!
//! Everything is read first into an [`Image`] (stored samples, scaling, geometry), which
//! [`Image::to_volume`] turns into the f32 [`Volume`] the rest of medssl works on. This
//! crate never depends on Burn.

pub mod atomic;
pub mod checksum;
pub mod dicom;
mod error;
pub mod geometry;
mod image;
mod layout;
pub mod nifti;
pub mod nrrd;
pub mod png_slices;
mod samples;
mod volume;

pub use error::{IoError, Result};
pub use geometry::Affine;
pub use image::{AssumedGeometry, Format, Image, ReadOptions, read_image, read_volume};
pub use nalgebra;
pub use ndarray;
pub use samples::{ByteOrder, SampleType, Samples, Scaling, Stats};
pub use volume::Volume;
