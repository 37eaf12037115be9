//! Block-wise random masking on the token grid (SimMIM/SMIT/iBOT), as token and voxel masks.
//!
//! A volume of `[D, H, W]` voxels is cut into tokens of `p³` voxels (the patch
//! embedding's patch size, 2 for SwinUNETR) and into mask blocks of `b³` voxels (16 in
//! SMIT, 32 in SimMIM's 2-D recipe), each block covering `(b/p)³` tokens. Masking picks
//! whole blocks: as SimMIM's `MaskGenerator`, a uniformly random permutation of the block
//! indices (raster order) whose first `k` entries are masked, so every set of `k` blocks
//! is equally likely and the mask never depends on anything but the random stream.
//!
//! The number of masked blocks is `k = round(ratio × n)` for `n` blocks (computed in
//! `f64`, halves rounded up), so the masked fraction `k / n` differs from the requested
//! ratio by at most half a block, `1 / (2n)`. SimMIM rounds up (`ceil`) instead; the two
//! differ by at most one block.
//!
//! iBOT draws the ratio per sample: uniformly from `[min, max]` (its `pred_ratio ±
//! pred_ratio_var`, `0.3 ± 0.2` by default) and leaves a sample unmasked with probability
//! `1 − probability` (its `pred_ratio = [0, 0.3]` choice, one half by default).
//! [`MaskRatio`] covers both recipes.

use ndarray::{Array3, s};
use rand::RngExt;
use rand::seq::SliceRandom;

use crate::error::{DataError, Result};
use crate::rng::Rng;

/// How much of a sample to mask: a ratio drawn uniformly from `[min, max]` with
/// probability `probability`, otherwise nothing. `MaskRatio::fixed(0.7)` is SimMIM's and
/// SMIT's setting; `MaskRatio::range(0.1, 0.5, 0.5)` is iBOT's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskRatio {
    min: f64,
    max: f64,
    probability: f64,
}

impl MaskRatio {
    /// Every sample masked at exactly `ratio` (in `[0, 1]`).
    pub fn fixed(ratio: f64) -> Result<MaskRatio> {
        MaskRatio::range(ratio, ratio, 1.0)
    }

    /// A sample is masked with probability `probability`, at a ratio drawn uniformly
    /// from `[min, max]`; otherwise it is left whole. All three lie in `[0, 1]`.
    pub fn range(min: f64, max: f64, probability: f64) -> Result<MaskRatio> {
        for (name, value) in [("min", min), ("max", max), ("probability", probability)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(DataError::Config(format!(
                    "mask ratio: {name} = {value} is not in [0, 1]"
                )));
            }
        }
        if min > max {
            return Err(DataError::Config(format!(
                "mask ratio: min = {min} is larger than max = {max}"
            )));
        }
        Ok(MaskRatio {
            min,
            max,
            probability,
        })
    }

    /// The ratio for one sample (0 when it is left unmasked). Draws the masking decision
    /// only when `probability < 1` and the ratio only when `min < max`, so a fixed ratio
    /// consumes no randomness.
    pub fn draw(&self, rng: &mut Rng) -> f64 {
        if self.probability < 1.0 && !rng.random_bool(self.probability) {
            return 0.0;
        }
        if self.min < self.max {
            rng.random_range(self.min..=self.max)
        } else {
            self.min
        }
    }
}

/// The token and block grids of one input size: which blocks exist and which tokens each
/// covers. Built once per input size and reused for every sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaskGrid {
    shape: [usize; 3],
    patch: usize,
    block: usize,
}

impl MaskGrid {
    /// The grid for volumes of `shape` voxels, tokens of `patch_size³` voxels and mask
    /// blocks of `block_size³` voxels. Every side of `shape` must be a positive multiple
    /// of `block_size`, which must be a multiple of `patch_size`.
    pub fn new(shape: [usize; 3], patch_size: usize, block_size: usize) -> Result<MaskGrid> {
        if patch_size == 0 || block_size == 0 || block_size % patch_size != 0 {
            return Err(DataError::Config(format!(
                "mask block size {block_size} is not a positive multiple of the patch size \
                 {patch_size}"
            )));
        }
        if shape.iter().any(|&n| n == 0 || n % block_size != 0) {
            return Err(DataError::Config(format!(
                "volume size {shape:?} is not a multiple of the mask block size {block_size} \
                 on every axis"
            )));
        }
        Ok(MaskGrid {
            shape,
            patch: patch_size,
            block: block_size,
        })
    }

    /// `[D/p, H/p, W/p]`: the shape of the token masks.
    pub fn token_shape(&self) -> [usize; 3] {
        self.shape.map(|n| n / self.patch)
    }

    /// Number of blocks along each axis, `[D/b, H/b, W/b]`.
    pub fn block_shape(&self) -> [usize; 3] {
        self.shape.map(|n| n / self.block)
    }

    /// Total number of mask blocks.
    pub fn block_count(&self) -> usize {
        self.block_shape().iter().product()
    }

    /// Blocks masked at `ratio`: `round(ratio × block_count)`.
    pub fn masked_block_count(&self, ratio: f64) -> usize {
        let n = self.block_count();
        ((ratio * n as f64).round() as usize).min(n)
    }

    /// A fresh mask for one sample: the ratio drawn from `ratio`, then that many blocks
    /// chosen uniformly without replacement.
    pub fn generate(&self, ratio: &MaskRatio, rng: &mut Rng) -> TokenMask {
        let ratio = ratio.draw(rng);
        let k = self.masked_block_count(ratio);
        let mut order: Vec<u32> = (0..self.block_count() as u32).collect();
        // `partial_shuffle` moves a uniformly random k-subset, in random order, to the
        // end: the first k entries of a random permutation, as SimMIM takes them.
        let (chosen, _) = order.partial_shuffle(rng, k);
        let [_, bh, bw] = self.block_shape();
        let step = self.block / self.patch;
        let mut tokens = Array3::from_elem(self.token_shape(), false);
        for &index in chosen.iter() {
            let index = index as usize;
            let (bi, bj, bk) = (index / (bh * bw), index / bw % bh, index % bw);
            tokens
                .slice_mut(s![
                    bi * step..(bi + 1) * step,
                    bj * step..(bj + 1) * step,
                    bk * step..(bk + 1) * step
                ])
                .fill(true);
        }
        TokenMask {
            tokens,
            patch: self.patch,
            ratio,
            masked_blocks: k,
        }
    }
}

/// One sample's mask: `true` marks a masked token (the model replaces its embedding by
/// the mask token and the loss reconstructs its voxels).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenMask {
    tokens: Array3<bool>,
    patch: usize,
    ratio: f64,
    masked_blocks: usize,
}

impl TokenMask {
    /// The token grid, `[D/p, H/p, W/p]`.
    pub fn tokens(&self) -> &Array3<bool> {
        &self.tokens
    }

    /// Gives up the token grid.
    pub fn into_tokens(self) -> Array3<bool> {
        self.tokens
    }

    /// Voxels per token along each axis.
    pub fn patch_size(&self) -> usize {
        self.patch
    }

    /// The ratio drawn for this sample (0 when it was left unmasked).
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// Number of masked blocks, `round(ratio × block_count)`.
    pub fn masked_blocks(&self) -> usize {
        self.masked_blocks
    }

    /// Number of masked tokens.
    pub fn masked_tokens(&self) -> usize {
        self.tokens.iter().filter(|&&m| m).count()
    }

    /// The mask at voxel resolution, `[D, H, W]`: every token's `p³` voxels take its
    /// value (for reconstruction losses over masked voxels only).
    pub fn voxel_mask(&self) -> Array3<bool> {
        let p = self.patch;
        let (td, th, tw) = self.tokens.dim();
        let (d, h, w) = (td * p, th * p, tw * p);
        let tokens = self.tokens.as_standard_layout();
        let tokens = tokens.as_slice().expect("standard layout");
        let mut voxels = vec![false; d * h * w];
        // Build each voxel row once per token row, then copy it to the other p − 1
        // rows and p − 1 slices the same tokens cover.
        for (ti, plane) in voxels.chunks_exact_mut(p * h * w).enumerate() {
            let (first_slice, other_slices) = plane.split_at_mut(h * w);
            for (tj, rows) in first_slice.chunks_exact_mut(p * w).enumerate() {
                let token_row = &tokens[(ti * th + tj) * tw..][..tw];
                let (first_row, other_rows) = rows.split_at_mut(w);
                for (cell, &m) in first_row.chunks_exact_mut(p).zip(token_row) {
                    cell.fill(m);
                }
                for row in other_rows.chunks_exact_mut(w) {
                    row.copy_from_slice(first_row);
                }
            }
            for slice in other_slices.chunks_exact_mut(h * w) {
                slice.copy_from_slice(first_slice);
            }
        }
        Array3::from_shape_vec((d, h, w), voxels).expect("shape matches length")
    }

    /// Fraction of voxels (equally, of tokens) masked.
    pub fn masked_fraction(&self) -> f64 {
        self.masked_tokens() as f64 / self.tokens.len() as f64
    }
}
