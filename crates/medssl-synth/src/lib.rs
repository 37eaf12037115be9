//! Synthetic CT/MRI phantoms (`medssl synth`): abdomen CT and MRI, head-and-neck CT,
//! tumour CT, written as MSD tasks or pretraining collections, so every stage of a study
//! runs on a laptop without data.
//!
//! Each case is a random patient: a painting program of smooth solids (deformed
//! ellipsoids, tapered tubes, swept body sections) placed within anatomical constraints,
//! rasterised to tissue classes, then rendered with the modality's tissue contrast,
//! smooth within-organ texture, partial-volume blur and scanner noise (Gaussian in CT,
//! Rician with a multiplicative bias field in MRI). Organ intensities overlap (liver,
//! spleen, pancreas, muscle and bowel within about 20 HU; left and right kidney
//! identical), so segmenting them takes shape and context, not a threshold.
//!
//! Coordinates are RAS+ millimetres (x toward the patient's right, y anterior, z
//! superior) with the grid centred on the origin; the affine is diagonal (`RAS`
//! orientation). The anatomy is fixed in millimetres: the default spacing fits each
//! kind's field of view ([`Kind::field_of_view`]) to the grid, and an explicit spacing
//! gives a larger or smaller field of view around the same patient.
//!
//! Case `n` of seed `s` depends only on `(s, n)` (its own [`rng::stream`]), not on the
//! other cases, the thread count or, for the anatomy, the grid: the same patient comes
//! out at any resolution, and `abdomen-ct` and `abdomen-mri` share it.

mod anatomy;
mod ct;
mod filters;
mod headneck;
mod mri;
mod scene;
mod shapes;
mod tissue;
mod tumor;
pub mod writer;

use std::fmt;
use std::str::FromStr;

use medssl_io::{Affine, Volume};
use ndarray::Array4;

use medssl_data::error::{DataError, Result};
use medssl_data::rng;
use medssl_data::sample::Sample;

pub use writer::{Task, Written, write_task};

/// The kinds of phantom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Abdominal CT (arterial phase) with six organ labels.
    AbdomenCt,
    /// The same anatomy as T1- or T2-weighted MRI (chosen per case): the transfer task.
    AbdomenMri,
    /// Head-and-neck CT with eight small structures.
    HeadNeckCt,
    /// Abdominal CT with lesions in liver, kidneys and pancreas.
    TumorCt,
}

/// Label names of the abdomen kinds, index = label value.
const ABDOMEN_LABELS: [&str; 7] = [
    "background",
    "liver",
    "spleen",
    "kidney_left",
    "kidney_right",
    "pancreas",
    "aorta",
];

/// Label names of `headneck-ct`.
const HEADNECK_LABELS: [&str; 9] = [
    "background",
    "brainstem",
    "parotid_left",
    "parotid_right",
    "mandible",
    "spinal_cord",
    "optic_nerve_left",
    "optic_nerve_right",
    "chiasm",
];

/// Label names of `tumor-ct`: the lesion-bearing organs (liver, kidneys, pancreas)
/// together, and the lesions in them.
const TUMOR_LABELS: [&str; 3] = ["background", "organ", "lesion"];

impl Kind {
    /// Every kind, in the order the help text lists them.
    pub const ALL: [Kind; 4] = [
        Kind::AbdomenCt,
        Kind::AbdomenMri,
        Kind::HeadNeckCt,
        Kind::TumorCt,
    ];

    /// The command-line name, e.g. `abdomen-ct`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::AbdomenCt => "abdomen-ct",
            Kind::AbdomenMri => "abdomen-mri",
            Kind::HeadNeckCt => "headneck-ct",
            Kind::TumorCt => "tumor-ct",
        }
    }

    /// Label names, indexed by label value (0 is `background`).
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            Kind::AbdomenCt | Kind::AbdomenMri => &ABDOMEN_LABELS,
            Kind::HeadNeckCt => &HEADNECK_LABELS,
            Kind::TumorCt => &TUMOR_LABELS,
        }
    }

    /// `CT` or `MRI`, as MSD's `modality` names it.
    pub fn modality(self) -> &'static str {
        match self {
            Kind::AbdomenMri => "MRI",
            _ => "CT",
        }
    }

    /// The field of view (mm along x, y, z) the default spacing covers.
    pub fn field_of_view(self) -> [f64; 3] {
        match self {
            Kind::AbdomenCt | Kind::AbdomenMri | Kind::TumorCt => [360.0, 300.0, 280.0],
            Kind::HeadNeckCt => [200.0, 220.0, 200.0],
        }
    }

    /// One sentence for `dataset.json`'s `description`.
    pub fn description(self) -> &'static str {
        match self {
            Kind::AbdomenCt => {
                "Synthetic arterial-phase abdominal CT phantoms (HU): liver, spleen, kidneys, \
                 pancreas and aorta among fat, muscle, bone, bowel and lung bases"
            }
            Kind::AbdomenMri => {
                "Synthetic abdominal MRI phantoms (T1- or T2-weighted per case, bias field, \
                 Rician noise) of the abdomen-ct anatomy"
            }
            Kind::HeadNeckCt => {
                "Synthetic head-and-neck CT phantoms (HU): brainstem, parotids, mandible, \
                 spinal cord, optic nerves and chiasm"
            }
            Kind::TumorCt => {
                "Synthetic abdominal CT phantoms (HU) with 0-8 lesions of 4-70 mm, hypo-, \
                 hyper- or barely dense, in liver, kidneys and pancreas"
            }
        }
    }

    /// Whether images are CT in HU (written as int16) rather than MRI (float32).
    pub fn is_ct(self) -> bool {
        self.modality() == "CT"
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Kind::ALL.iter().map(|k| k.name()).collect();
                DataError::Config(format!(
                    "unknown phantom kind `{s}` (valid kinds: {})",
                    names.join(", ")
                ))
            })
    }
}

/// The voxel grid of a phantom: shape `[I, J, K]` and spacing (mm), axes along RAS+ x,
/// y, z, centred on the world origin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    shape: [usize; 3],
    spacing: [f64; 3],
}

impl Grid {
    /// Smallest and largest size per axis: below 8 voxels no organ is recognisable;
    /// above 1024 one volume would not fit in memory.
    pub const SIZE_RANGE: std::ops::RangeInclusive<usize> = 8..=1024;

    /// A grid; fails on sizes outside [`Grid::SIZE_RANGE`] or spacings that are not
    /// positive and finite.
    pub fn new(shape: [usize; 3], spacing: [f64; 3]) -> Result<Grid> {
        if let Some(n) = shape.iter().find(|n| !Grid::SIZE_RANGE.contains(n)) {
            return Err(DataError::Config(format!(
                "phantom size {n} out of range {}..={} (shape {shape:?})",
                Grid::SIZE_RANGE.start(),
                Grid::SIZE_RANGE.end()
            )));
        }
        if spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(DataError::Config(format!(
                "phantom spacing must be positive and finite, got {spacing:?}"
            )));
        }
        Ok(Grid { shape, spacing })
    }

    /// The grid of `shape` voxels covering `kind`'s field of view.
    pub fn fitted(kind: Kind, shape: [usize; 3]) -> Result<Grid> {
        let fov = kind.field_of_view();
        Grid::new(shape, std::array::from_fn(|a| fov[a] / shape[a] as f64))
    }

    /// `[I, J, K]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Voxel size in mm along I, J, K.
    pub fn spacing(&self) -> [f64; 3] {
        self.spacing
    }

    /// World position of voxel (0, 0, 0): the grid is centred on the origin.
    pub fn origin(&self) -> [f64; 3] {
        std::array::from_fn(|a| -0.5 * (self.shape[a] as f64 - 1.0) * self.spacing[a])
    }

    /// Voxel index to RAS+ mm.
    pub fn affine(&self) -> Affine {
        let o = self.origin();
        let s = self.spacing;
        Affine::new(
            s[0], 0.0, 0.0, o[0], //
            0.0, s[1], 0.0, o[1], //
            0.0, 0.0, s[2], o[2], //
            0.0, 0.0, 0.0, 1.0,
        )
    }

    fn volume(&self, data: Vec<f32>) -> Volume {
        let [i, j, k] = self.shape;
        let data = Array4::from_shape_vec((1, i, j, k), data).expect("data has the grid's size");
        Volume::new(data, self.affine())
    }
}

/// Sub-streams of a case, after its anatomy stream `stream(seed, &[case])`.
#[derive(Clone, Copy)]
enum Stage {
    /// Per-case tissue intensities, noise level, MRI weighting.
    Looks = 1,
    /// The smooth within-organ texture field.
    Texture = 2,
    /// Image noise (and the real part of MRI noise).
    Noise = 3,
    /// The imaginary part of MRI noise.
    NoiseImaginary = 4,
    /// The MRI bias field.
    Bias = 5,
    /// The field of a [`texture`] volume.
    TextureVolume = 6,
}

impl Stage {
    fn stream(self, seed: u64, case: u64) -> rng::Rng {
        rng::stream(seed, &[case, self as u64])
    }

    fn path(self, case: u64) -> [u64; 2] {
        [case, self as u64]
    }
}

/// The file stem of case `index`, e.g. `abdomen_ct_0007`.
pub fn case_name(kind: Kind, index: u64) -> String {
    format!("{}_{index:04}", kind.name().replace('-', "_"))
}

/// Case `case` of `seed`: image (CT in whole HU, or MRI signal) and label map on `grid`.
pub fn generate(kind: Kind, grid: &Grid, seed: u64, case: u64) -> Sample {
    let mut anatomy = rng::stream(seed, &[case]);
    let scene = match kind {
        Kind::AbdomenCt | Kind::AbdomenMri => {
            anatomy::abdomen(&mut anatomy, &anatomy::ORGAN_LABELS).scene
        }
        Kind::TumorCt => {
            let abdomen = anatomy::abdomen(&mut anatomy, &anatomy::TUMOR_HOST_LABELS);
            tumor::with_lesions(abdomen, &mut anatomy)
        }
        Kind::HeadNeckCt => headneck::scene(&mut anatomy),
    };
    let tissue = scene.rasterise(grid);
    let image = if kind.is_ct() {
        ct::render(&scene, &tissue, grid, seed, case)
    } else {
        mri::render(&scene, &tissue, grid, seed, case)
    };
    let labels: Vec<f32> = scene.tissues().iter().map(|t| f32::from(t.label)).collect();
    let label = tissue.iter().map(|&t| labels[usize::from(t)]).collect();
    Sample {
        id: case_name(kind, case),
        image: grid.volume(image),
        label: Some(grid.volume(label)),
    }
}

/// Unlabelled texture volume `case` of `seed`: a smooth random field in whole HU (a
/// unit-variance lattice times 500, clipped to ±1000) with features about `cell` voxels
/// across, on a 1 mm grid of `shape`.
///
/// Every volume differs everywhere, and two crops of one volume share content exactly
/// where they overlap: the collection on which the instance-discrimination and
/// self-distillation methods show in a short run whether their positive views share
/// content. (Anatomy phantoms, alike from case to case, make that slow; textures have no
/// up or down, so the rotation methods need the phantoms.)
pub fn texture(shape: [usize; 3], cell: f64, seed: u64, case: u64) -> Result<Sample> {
    let grid = Grid::new(shape, [1.0; 3])?;
    let field = filters::smooth_field(&grid, cell, &mut Stage::TextureVolume.stream(seed, case));
    let image = field
        .into_iter()
        .map(|v| (v * 500.0).clamp(-1000.0, 1000.0).round())
        .collect();
    Ok(Sample {
        id: format!("texture_{case:04}"),
        image: grid.volume(image),
        label: None,
    })
}

/// Partial-volume blur: the scanner's point spread function as a Gaussian of this many
/// voxels.
const PSF_SIGMA: f64 = 0.6;

/// Size (mm) of the texture's features: a few voxels at typical spacings.
const TEXTURE_CELL: f64 = 15.0;

/// The image through the scanner's point spread function: each voxel's tissue mean plus
/// its texture amplitude times the smooth field, plus `noise` (white noise and its
/// gain) when the noise goes through the same blur (CT, whose noise is then slightly
/// correlated), blurred by [`PSF_SIGMA`].
fn blurred_image(
    tissue: &[u8],
    (mean, texture): (&[f32], &[f32]),
    noise: Option<(&[f32], f32)>,
    grid: &Grid,
    seed: u64,
    case: u64,
) -> Vec<f32> {
    use rayon::prelude::*;
    let field = filters::smooth_field(grid, TEXTURE_CELL, &mut Stage::Texture.stream(seed, case));
    let mut image: Vec<f32> = tissue
        .par_iter()
        .zip(field.par_iter())
        .map(|(&t, &f)| {
            let t = usize::from(t);
            mean[t] + texture[t] * f
        })
        .collect();
    if let Some((white, gain)) = noise {
        image
            .par_iter_mut()
            .zip(white)
            .for_each(|(v, &n)| *v += gain * n);
    }
    filters::blur(&mut image, grid.shape(), [PSF_SIGMA; 3]);
    image
}
