//! Contrastive predictive coding input: a volume cut into a regular grid of sub-volumes
//! whose embeddings the method predicts from one another.

use medssl_io::Volume;
use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::{View, ViewStreams, augment, check_crop, random_start};
use crate::error::{DataError, Result};
use crate::rng::Rng;
use crate::sample::Sample;
use crate::spatial::region::{extract, extract_sample};
use crate::transform::Pipeline;

/// Stream roles of the grid's position, its cells' jitter and each cell's augmentation.
const ROLE_POSITION: u64 = 7;
const ROLE_JITTER: u64 = 8;
const ROLE_CELL: u64 = 9;

/// A `grid × grid × grid` arrangement of cells of `cell` voxels. Neighbouring cells
/// share `overlap` voxels (cell stride `cell − overlap`), so the grid spans
/// `(grid − 1)·(cell − overlap) + cell` voxels per axis, centred in the volume (offset
/// `⌊(shape − span) / 2⌋`, padded with `fill` where it reaches past the border). Each cell
/// is then shifted by its own uniform draw from `[−jitter, jitter]` per axis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpcGrid {
    /// Cells per axis.
    pub grid: usize,
    /// Cell size in voxels.
    pub cell: [usize; 3],
    /// Voxels shared by neighbouring cells, below the cell size.
    pub overlap: usize,
    /// Largest random shift of a cell, per axis, in voxels (0: none, no randomness used).
    pub jitter: usize,
    /// Image value of voxels outside the volume.
    pub fill: f32,
}

impl Default for CpcGrid {
    /// 3 × 3 × 3 cells of 32³ (a 96³ crop, cells the Swin encoder accepts), touching,
    /// not jittered.
    fn default() -> CpcGrid {
        CpcGrid {
            grid: 3,
            cell: [32; 3],
            overlap: 0,
            jitter: 0,
            fill: 0.0,
        }
    }
}

/// One cell of the grid.
#[derive(Debug, Clone, PartialEq)]
pub struct GridCell {
    /// Grid coordinates, each in `0..grid`.
    pub position: [usize; 3],
    /// First voxel of the cell in the source volume (after jitter).
    pub start: [isize; 3],
    /// The cell's voxels, affine translated to its first voxel.
    pub volume: Volume,
}

impl CpcGrid {
    /// Voxels the grid spans per axis, `(grid − 1)·(cell − overlap) + cell`.
    pub fn span(&self) -> [usize; 3] {
        self.cell
            .map(|c| self.grid.saturating_sub(1) * c.saturating_sub(self.overlap) + c)
    }

    /// The cells of a grid placed at a uniformly random position in `sample` (padded
    /// with `fill` where the volume is smaller than the span), each an unlabelled view
    /// augmented by `augment` with its own stream, in raster order. A view's `start` is
    /// the cell's first voxel in the source volume.
    pub fn views(
        &self,
        sample: &Sample,
        augment_cell: &Pipeline,
        rng: &mut Rng,
    ) -> Result<Vec<View>> {
        let span = self.span();
        check_crop(sample, "CPC grid", span)?;
        let streams = ViewStreams::new(rng);
        let origin = random_start(
            sample.spatial_shape(),
            span,
            &mut streams.stream(ROLE_POSITION, 0),
        );
        let region = extract_sample(sample, origin, span, self.fill);
        let cells = self.cells(&region.image, &mut streams.stream(ROLE_JITTER, 0))?;
        cells
            .into_iter()
            .enumerate()
            .map(|(i, cell)| {
                let view = Sample::unlabelled(sample.id.clone(), cell.volume);
                Ok(View {
                    sample: augment(view, augment_cell, &mut streams.stream(ROLE_CELL, i))?,
                    start: std::array::from_fn(|a| origin[a] + cell.start[a]),
                    size: self.cell,
                })
            })
            .collect()
    }

    /// The cells of `volume` in raster order (the last grid axis fastest).
    pub fn cells(&self, volume: &Volume, rng: &mut Rng) -> Result<Vec<GridCell>> {
        let smallest = self.cell.iter().copied().min().unwrap_or(0);
        if self.grid == 0 || smallest == 0 || self.overlap >= smallest {
            return Err(DataError::Config(format!(
                "CPC grid: need grid >= 1, cell sides >= 1 and overlap below the cell size, \
                 got grid = {}, cell = {:?}, overlap = {}",
                self.grid, self.cell, self.overlap
            )));
        }
        if volume.data().is_empty() {
            return Err(DataError::Config(format!(
                "CPC grid: volume of shape {:?} is empty",
                volume.data().shape()
            )));
        }
        let shape = volume.spatial_shape();
        let stride = self.cell.map(|c| (c - self.overlap) as isize);
        let origin: [isize; 3] = std::array::from_fn(|a| {
            let span = (self.grid as isize - 1) * stride[a] + self.cell[a] as isize;
            (shape[a] as isize - span).div_euclid(2)
        });
        let jitter = self.jitter as i64;
        let g = self.grid;
        let mut cells = Vec::with_capacity(g * g * g);
        for index in 0..g * g * g {
            let position = [index / (g * g), index / g % g, index % g];
            let start = std::array::from_fn(|a| {
                let shift = if jitter > 0 {
                    rng.random_range(-jitter..=jitter) as isize
                } else {
                    0
                };
                origin[a] + position[a] as isize * stride[a] + shift
            });
            cells.push(GridCell {
                position,
                start,
                volume: extract(volume, start, self.cell, self.fill),
            });
        }
        Ok(cells)
    }
}
