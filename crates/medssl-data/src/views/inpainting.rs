//! In-painting corruption for masked-volume reconstruction (Tang et al. 2022, SwinUNETR
//! pretraining): random boxes of the input are replaced and the network reconstructs the
//! clean volume.
//!
//! The boxes follow `patch_rand_drop` in SwinUNETR's pretraining code
//! (`Pretrain/utils/ops.py`). For a volume of `N` voxels the share to drop is drawn
//! uniformly from `[0, max_drop)`, and boxes are added until the sum of their voxel
//! counts (overlaps counted twice) reaches that share of `N`. On each axis of size `n`,
//! with `t = ⌊min_block·n⌋` and `m = ⌊max_block·n⌋`, a box starts uniformly in
//! `[0, n − t)` and its side is uniform in `[max(t, 1), m)`, cut at the border. Tang's
//! code draws sides from `[t, m)`, whose empty boxes cannot drop anything; the lower
//! bound of one voxel only removes those draws.
//!
//! Inner cutout (Tang's) fills each box with Gaussian noise min-max normalised to
//! `[0, 1]` within the box (the range of the `[0, 1]`-scaled CT the recipe uses; a box
//! holding a single value gets 0.5). Outer cutout keeps only the boxes and fills the rest
//! of the volume that way. Tang's `aug_rand` then runs a second pass with fresh boxes
//! copied from another volume of the batch (the donor) at the same positions when the
//! drawn batch index differs from the sample's own; pass that volume as `donor`.

use medssl_io::Volume;
use ndarray::{Array3, Array4, s};
use rand::RngExt;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::rng::Rng;

/// Which voxels a corruption pass replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cutout {
    /// The boxes (Tang et al.).
    Inner,
    /// Everything but the boxes.
    Outer,
}

/// Box-corruption parameters; the defaults are Tang et al.'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Inpainting {
    /// Upper bound of the drawn share of voxels to drop (0.3).
    pub max_drop: f64,
    /// Box sides are below this fraction of the axis (0.25).
    pub max_block: f64,
    /// Box sides are at least this fraction of the axis; starts leave this fraction free
    /// at the end (0.05).
    pub min_block: f64,
    /// Replace the boxes (inner) or everything else (outer).
    pub cutout: Cutout,
}

impl Default for Inpainting {
    fn default() -> Inpainting {
        Inpainting {
            max_drop: 0.3,
            max_block: 0.25,
            min_block: 0.05,
            cutout: Cutout::Inner,
        }
    }
}

/// A box `[start, end)` in voxels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutBox {
    /// First voxel.
    pub start: [usize; 3],
    /// One past the last voxel.
    pub end: [usize; 3],
}

impl CutBox {
    /// Number of voxels in the box.
    pub fn voxels(&self) -> usize {
        (0..3).map(|a| self.end[a] - self.start[a]).product()
    }
}

/// A corrupted volume and what the network should reconstruct.
#[derive(Debug, Clone, PartialEq)]
pub struct Corruption {
    /// The network's input.
    pub corrupted: Volume,
    /// The clean volume (the reconstruction target), equal to the input.
    pub target: Volume,
    /// Boxes of the noise pass.
    pub noise_boxes: Vec<CutBox>,
    /// Boxes of the donor pass (empty without a donor).
    pub donor_boxes: Vec<CutBox>,
}

impl Inpainting {
    /// Corrupts `volume`: a noise pass, then a donor pass when `donor` (same shape) is
    /// given. Donors are defined for inner cutout only, as in Tang et al.
    pub fn corrupt(
        &self,
        volume: &Volume,
        donor: Option<&Volume>,
        rng: &mut Rng,
    ) -> Result<Corruption> {
        let sides = self.box_sides(volume.spatial_shape())?;
        if let Some(donor) = donor {
            if self.cutout == Cutout::Outer {
                return Err(DataError::Config(
                    "in-painting: a donor volume is only used with inner cutout".into(),
                ));
            }
            if donor.data().shape() != volume.data().shape() {
                return Err(DataError::Config(format!(
                    "in-painting: donor shape {:?} differs from volume shape {:?}",
                    donor.data().shape(),
                    volume.data().shape()
                )));
            }
        }
        let mut data = volume.data().clone();
        let shape = volume.spatial_shape();
        let noise_boxes = self.draw_boxes(shape, &sides, rng);
        match self.cutout {
            Cutout::Inner => {
                for b in &noise_boxes {
                    let mut region = data.slice_mut(s![
                        ..,
                        b.start[0]..b.end[0],
                        b.start[1]..b.end[1],
                        b.start[2]..b.end[2]
                    ]);
                    let noise = normalised_noise(region.len(), rng);
                    region.iter_mut().zip(noise).for_each(|(x, n)| *x = n);
                }
            }
            Cutout::Outer => fill_outside(&mut data, &noise_boxes, rng),
        }
        let donor_boxes = match donor {
            Some(donor) => {
                let boxes = self.draw_boxes(shape, &sides, rng);
                for b in &boxes {
                    let range = s![
                        ..,
                        b.start[0]..b.end[0],
                        b.start[1]..b.end[1],
                        b.start[2]..b.end[2]
                    ];
                    data.slice_mut(range).assign(&donor.data().slice(range));
                }
                boxes
            }
            None => Vec::new(),
        };
        Ok(Corruption {
            corrupted: Volume::new(data, *volume.affine()),
            target: volume.clone(),
            noise_boxes,
            donor_boxes,
        })
    }

    /// Tang et al.'s `aug_rand` over the volumes of one batch, in place: each volume in
    /// turn gets a noise pass and, when an index drawn uniformly from the batch is not
    /// its own, a donor pass from that volume as the batch then holds it (already
    /// corrupted if it came earlier, as in Tang's in-place loop). Volume `i` draws from
    /// `rngs[i]` (its donor index first, then its boxes), so a volume's corruption does
    /// not depend on how many draws the others made.
    pub fn corrupt_batch(&self, volumes: &mut [Volume], rngs: &mut [Rng]) -> Result<()> {
        if rngs.len() != volumes.len() {
            return Err(DataError::Config(format!(
                "in-painting: {} random streams for {} volumes",
                rngs.len(),
                volumes.len()
            )));
        }
        for i in 0..volumes.len() {
            let rng = &mut rngs[i];
            let drawn = rng.random_range(0..volumes.len());
            let donor = (drawn != i).then(|| volumes[drawn].clone());
            volumes[i] = self.corrupt(&volumes[i], donor.as_ref(), rng)?.corrupted;
        }
        Ok(())
    }

    /// Per axis: `(t, lowest side, one past the highest side)`; an error when the
    /// parameters or the volume leave no valid box.
    fn box_sides(&self, shape: [usize; 3]) -> Result<[(usize, usize, usize); 3]> {
        let fractions_ok = (0.0..=1.0).contains(&self.max_drop)
            && (0.0..=1.0).contains(&self.min_block)
            && (0.0..=1.0).contains(&self.max_block)
            && self.min_block < self.max_block;
        if !fractions_ok {
            return Err(DataError::Config(format!(
                "in-painting: need 0 <= max_drop <= 1 and 0 <= min_block < max_block <= 1, \
                 got max_drop = {}, min_block = {}, max_block = {}",
                self.max_drop, self.min_block, self.max_block
            )));
        }
        let mut sides = [(0, 0, 0); 3];
        for (a, &n) in shape.iter().enumerate() {
            let t = (self.min_block * n as f64) as usize;
            let m = (self.max_block * n as f64) as usize;
            if m <= t.max(1) {
                return Err(DataError::Config(format!(
                    "in-painting: volume of shape {shape:?} is too small for boxes of \
                     {} to {} of a side (axis {a} allows no box side)",
                    self.min_block, self.max_block
                )));
            }
            sides[a] = (t, t.max(1), m);
        }
        Ok(sides)
    }

    /// Tang's box sequence: boxes until their summed voxel count reaches the drawn share.
    fn draw_boxes(
        &self,
        shape: [usize; 3],
        sides: &[(usize, usize, usize); 3],
        rng: &mut Rng,
    ) -> Vec<CutBox> {
        let total = shape.iter().product::<usize>() as f64;
        let target = rng.random::<f64>() * self.max_drop * total;
        let mut boxes = Vec::new();
        let mut dropped = 0usize;
        while (dropped as f64) < target {
            let start: [usize; 3] =
                std::array::from_fn(|a| rng.random_range(0..shape[a] - sides[a].0));
            let end: [usize; 3] = std::array::from_fn(|a| {
                (start[a] + rng.random_range(sides[a].1..sides[a].2)).min(shape[a])
            });
            let cut = CutBox { start, end };
            dropped += cut.voxels();
            boxes.push(cut);
        }
        boxes
    }
}

/// `len` standard-normal values min-max normalised to `[0, 1]`.
fn normalised_noise(len: usize, rng: &mut Rng) -> Vec<f32> {
    let mut noise: Vec<f32> = (0..len).map(|_| rng.sample(StandardNormal)).collect();
    let (lo, hi) = noise
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        });
    if hi > lo {
        let range = hi - lo;
        noise.iter_mut().for_each(|x| *x = (*x - lo) / range);
    } else {
        noise.fill(0.5);
    }
    noise
}

/// Outer cutout: every voxel outside the union of `boxes` (all channels) becomes
/// normalised noise.
fn fill_outside(data: &mut Array4<f32>, boxes: &[CutBox], rng: &mut Rng) {
    let (_, i, j, k) = data.dim();
    let mut keep = Array3::from_elem((i, j, k), false);
    for b in boxes {
        keep.slice_mut(s![
            b.start[0]..b.end[0],
            b.start[1]..b.end[1],
            b.start[2]..b.end[2]
        ])
        .fill(true);
    }
    let keep = keep.as_slice().expect("fresh array is standard layout");
    let outside = keep.iter().filter(|&&kept| !kept).count();
    let mut noise = normalised_noise(outside * data.dim().0, rng).into_iter();
    let data = data.as_slice_mut().expect("volumes are standard layout");
    for channel in data.chunks_exact_mut(keep.len()) {
        for (x, _) in channel.iter_mut().zip(keep).filter(|(_, kept)| !**kept) {
            *x = noise.next().expect("one noise value per replaced voxel");
        }
    }
}
