//! Stride-1 "same" 3-D convolution on `f32` slices: odd cubic kernel, zero padding of
//! half the kernel, one group, no bias; forward, input gradient and weight gradient.
//!
//! Each channel is laid out once on a zero-padded grid. On that grid, the input a kernel
//! tap reads for output voxel `(z, y, x)` sits at a fixed offset from position
//! `z·plane + y·Wp + x` (`Wp`, `plane` the padded row and plane lengths). So for a run
//! of consecutive positions, a tap's inputs are a `[channels, run]` block of the padded
//! grid, and the convolution is one matrix product per tap read straight from that
//! grid: no im2col copy, no index arithmetic, no bounds checks. Positions with `y ≥ H`
//! or `x ≥ W` fall in the padding and are computed, then dropped (6% extra work at 64³).

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

/// Output positions per tile: long runs amortise the matrix products' packing, and the
/// tile's `out × TILE` results stay in cache across the taps.
const TILE: usize = 512;

/// Groups of tiles whose weight-gradient sums run in parallel (each holds one copy of
/// the weight gradient).
const GROUPS: usize = 8;

/// The shape of one convolution: `batch × channels × d × h × w` input, `k³` kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub batch: usize,
    pub channels: usize,
    pub size: [usize; 3],
    pub kernel: usize,
}

impl Geometry {
    /// The geometry of an input `[batch, channels, d, h, w]` convolved with a weight
    /// `[out, channels, k, k, k]`, and `out`.
    ///
    /// # Panics
    /// Unless the weight's input channels equal the input's, its kernel is cubic and
    /// odd, and the input's spatial sizes, channels and `out` are at least 1 (the
    /// message gives both shapes).
    pub fn of(x: [usize; 5], weight: [usize; 5]) -> (Geometry, usize) {
        let [batch, channels, d, h, w] = x;
        let [out, weight_channels, k0, k1, k2] = weight;
        assert!(
            weight_channels == channels
                && k0 == k1
                && k1 == k2
                && k0 % 2 == 1
                && out > 0
                && channels > 0
                && d > 0
                && h > 0
                && w > 0,
            "same conv3d: input {x:?} and weight {weight:?} do not fit: expected input \
             [batch, channels, d, h, w] and weight [out, channels, k, k, k] with k odd and \
             every size but batch at least 1"
        );
        let geom = Geometry {
            batch,
            channels,
            size: [d, h, w],
            kernel: k0,
        };
        (geom, out)
    }

    /// The input's shape `[batch, channels, d, h, w]`.
    pub fn input_shape(&self) -> [usize; 5] {
        let [d, h, w] = self.size;
        [self.batch, self.channels, d, h, w]
    }

    /// The weight's shape `[out, channels, k, k, k]`.
    pub fn weight_shape(&self, out: usize) -> [usize; 5] {
        let k = self.kernel;
        [out, self.channels, k, k, k]
    }

    /// The output's shape (and its gradient's) `[batch, out, d, h, w]`.
    pub fn output_shape(&self, out: usize) -> [usize; 5] {
        let [d, h, w] = self.size;
        [self.batch, out, d, h, w]
    }

    /// Panics unless `operand` (named `name`, one of `op`'s) holds exactly the values of
    /// `shape`, and the geometry is one the kernels handle (odd kernel, every size but
    /// the batch at least 1): the raw-pointer loops rely on it to stay in bounds.
    fn check(&self, op: &str, name: &str, operand: &[f32], shape: [usize; 5]) {
        let Geometry {
            batch,
            channels,
            size: [d, h, w],
            kernel,
        } = *self;
        assert!(
            kernel % 2 == 1 && channels > 0 && d > 0 && h > 0 && w > 0,
            "same conv3d {op}: unsupported geometry batch {batch}, channels {channels}, \
             size {:?}, kernel {kernel} (the kernel must be odd, every size but the batch \
             at least 1)",
            self.size
        );
        let needed = shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
        assert!(
            needed == Some(operand.len()),
            "same conv3d {op}: {name} holds {} values, its shape {shape:?} needs {}",
            operand.len(),
            needed.map_or_else(|| "more than usize::MAX".into(), |n| n.to_string())
        );
    }

    fn pad(&self) -> usize {
        self.kernel / 2
    }

    fn row(&self) -> usize {
        self.size[2] + 2 * self.pad()
    }

    fn plane(&self) -> usize {
        (self.size[1] + 2 * self.pad()) * self.row()
    }

    fn taps(&self) -> usize {
        self.kernel.pow(3)
    }

    fn voxels(&self) -> usize {
        self.size.iter().product()
    }

    /// Positions computed per channel: every padded-grid position of the `d` output planes.
    fn positions(&self) -> usize {
        self.size[0] * self.plane()
    }

    /// Length of a padded channel: the padded volume and the slack the last tap reads past
    /// it from the dropped positions.
    fn padded_len(&self) -> usize {
        let p = self.pad();
        (self.size[0] + 2 * p) * self.plane() + 2 * p * (self.row() + 1)
    }

    /// Where voxel `(0, 0, 0)` sits in a padded channel.
    fn origin(&self) -> usize {
        self.pad() * (self.plane() + self.row() + 1)
    }

    /// Offset of tap `t` (`a·k² + b·k + c`) from an output position.
    fn tap_offset(&self, t: usize) -> usize {
        let k = self.kernel;
        (t / (k * k)) * self.plane() + (t / k % k) * self.row() + t % k
    }
}

/// A pointer shared by tiles that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: every user writes a region no other thread touches.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer (a method, so closures capture the `Sync` wrapper, not the field).
    fn at(&self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// `channels` compact volumes of `size` laid out, each in `stride` floats, at `origin`
/// of a zeroed padded grid with rows of `row` and planes of `plane`.
fn embed(src: &[f32], geom: &Geometry, stride: usize, origin: usize) -> Vec<f32> {
    let [d, h, w] = geom.size;
    let (row, plane) = (geom.row(), geom.plane());
    let mut dst = vec![0.0; src.len() / geom.voxels() * stride];
    dst.par_chunks_mut(stride)
        .zip(src.par_chunks(geom.voxels()))
        .for_each(|(dst, src)| {
            for (z, slab) in src.chunks(h * w).enumerate().take(d) {
                for (y, line) in slab.chunks(w).enumerate() {
                    let at = origin + z * plane + y * row;
                    dst[at..at + w].copy_from_slice(line);
                }
            }
        });
    dst
}

/// The valid voxels of computed positions (`[channels, positions]`) as compact volumes.
fn extract(src: &[f32], geom: &Geometry) -> Vec<f32> {
    let [d, h, w] = geom.size;
    let (row, plane, voxels) = (geom.row(), geom.plane(), geom.voxels());
    let mut dst = vec![0.0; src.len() / geom.positions() * voxels];
    dst.par_chunks_mut(voxels)
        .zip(src.par_chunks(geom.positions()))
        .for_each(|(dst, src)| {
            for z in 0..d {
                for y in 0..h {
                    let at = z * plane + y * row;
                    dst[(z * h + y) * w..][..w].copy_from_slice(&src[at..at + w]);
                }
            }
        });
    dst
}

/// `dst (+)= lhs · rhs` for `[m, n, k]` matrices given as (pointer, column stride, row
/// stride), on the calling thread (the callers parallelise over tiles); `dst` is added
/// to when `accumulate`, else overwritten.
///
/// # Safety
/// Every element the strides reach must lie in its allocation, and `dst`'s elements
/// must be written by no one else meanwhile.
unsafe fn multiply(
    [m, n, k]: [usize; 3],
    dst: (*mut f32, usize, usize),
    accumulate: bool,
    lhs: (*const f32, usize, usize),
    rhs: (*const f32, usize, usize),
) {
    let stride = |s: usize| s as isize;
    // SAFETY: the caller's contract.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.0,
            stride(dst.1),
            stride(dst.2),
            accumulate,
            lhs.0,
            stride(lhs.1),
            stride(lhs.2),
            rhs.0,
            stride(rhs.1),
            stride(rhs.2),
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// Tiles of computed positions: (sample, first position, length).
fn tiles(geom: &Geometry) -> Vec<(usize, usize, usize)> {
    let n = geom.positions();
    (0..geom.batch)
        .flat_map(|b| (0..n).step_by(TILE).map(move |s| (b, s, TILE.min(n - s))))
        .collect()
}

/// `y = conv(x, weight)`: `x` `[batch, channels, d, h, w]`, `weight`
/// `[out, channels, k, k, k]`; returns `[batch, out, d, h, w]`.
///
/// # Panics
/// Unless `x` and `weight` hold exactly those shapes' values, `out` is at least 1 and
/// the geometry has an odd kernel and no empty axis but the batch.
pub fn forward(x: &[f32], geom: &Geometry, weight: &[f32], out: usize) -> Vec<f32> {
    assert!(
        out > 0,
        "same conv3d forward: out channels must be at least 1"
    );
    geom.check("forward", "x", x, geom.input_shape());
    geom.check("forward", "weight", weight, geom.weight_shape(out));
    let padded = embed(x, geom, geom.padded_len(), geom.origin());
    let depth = geom.channels * geom.taps();
    let positions = geom.positions();
    let mut computed = vec![0.0f32; geom.batch * out * positions];
    let dst = SharedMut(computed.as_mut_ptr());
    let taps = geom.taps();
    let stride = geom.padded_len();
    tiles(geom).into_par_iter().for_each(|(b, start, len)| {
        let sample = &padded[b * geom.channels * stride..];
        for t in 0..taps {
            // SAFETY: as above; the right operand is `[channels, len]` with row stride
            // `stride`, inside the padded sample; the left is tap `t` of the weights.
            unsafe {
                multiply(
                    [out, len, geom.channels],
                    (dst.at(b * out * positions + start), 1, positions),
                    t > 0,
                    (weight.as_ptr().add(t), taps, depth),
                    (sample.as_ptr().add(start + geom.tap_offset(t)), 1, stride),
                );
            }
        }
    });
    extract(
        &computed,
        &Geometry {
            channels: out,
            ..*geom
        },
    )
}

/// The gradient of [`forward`] with respect to `x`, from the output gradient `grad`
/// (`[batch, out, d, h, w]`): the same convolution of `grad` with the kernel flipped in
/// all three axes and its channel axes swapped.
///
/// # Panics
/// As [`forward`], unless `grad` and `weight` hold exactly those shapes' values.
pub fn input_grad(grad: &[f32], geom: &Geometry, weight: &[f32], out: usize) -> Vec<f32> {
    assert!(
        out > 0,
        "same conv3d input_grad: out channels must be at least 1"
    );
    geom.check("input_grad", "grad", grad, geom.output_shape(out));
    geom.check("input_grad", "weight", weight, geom.weight_shape(out));
    let taps = geom.taps();
    let mut flipped = vec![0.0f32; weight.len()];
    for o in 0..out {
        for c in 0..geom.channels {
            let from = &weight[(o * geom.channels + c) * taps..][..taps];
            let to = &mut flipped[(c * out + o) * taps..][..taps];
            to.iter_mut()
                .zip(from.iter().rev())
                .for_each(|(t, f)| *t = *f);
        }
    }
    let grad_geom = Geometry {
        channels: out,
        ..*geom
    };
    forward(grad, &grad_geom, &flipped, geom.channels)
}

/// The gradient of [`forward`] with respect to `weight` (`[out, channels, k, k, k]`),
/// from the input `x` and the output gradient `grad`.
///
/// # Panics
/// As [`forward`], unless `x` and `grad` hold exactly those shapes' values.
pub fn weight_grad(x: &[f32], geom: &Geometry, grad: &[f32], out: usize) -> Vec<f32> {
    assert!(
        out > 0,
        "same conv3d weight_grad: out channels must be at least 1"
    );
    geom.check("weight_grad", "x", x, geom.input_shape());
    geom.check("weight_grad", "grad", grad, geom.output_shape(out));
    let padded = embed(x, geom, geom.padded_len(), geom.origin());
    let positions = geom.positions();
    let grad_geom = Geometry {
        channels: out,
        ..*geom
    };
    let spread = embed(grad, &grad_geom, positions, 0);
    let depth = geom.channels * geom.taps();
    // Fixed groups of tiles, each summed in order and the groups then in order: the
    // result does not depend on thread count or scheduling (runs resume exactly).
    let tiles = tiles(geom);
    let partials: Vec<Vec<f32>> = tiles
        .par_chunks(tiles.len().div_ceil(GROUPS))
        .map(|group| {
            let mut acc = vec![0.0f32; out * depth];
            for &tile in group {
                add_tile_weight_grad(&mut acc, &padded, &spread, geom, out, tile);
            }
            acc
        })
        .collect();
    let mut sum = vec![0.0f32; out * depth];
    for partial in &partials {
        sum.iter_mut().zip(partial).for_each(|(s, p)| *s += p);
    }
    sum
}

/// Adds one tile's share of the weight gradient to `acc` (`[out, channels, taps]`):
/// per tap, the tile's output-gradient rows times the tap's input rows, transposed.
fn add_tile_weight_grad(
    acc: &mut [f32],
    padded: &[f32],
    spread: &[f32],
    geom: &Geometry,
    out: usize,
    (b, start, len): (usize, usize, usize),
) {
    let (taps, stride, positions) = (geom.taps(), geom.padded_len(), geom.positions());
    let sample = &padded[b * geom.channels * stride..];
    for t in 0..taps {
        // SAFETY: the destination is tap `t` of `acc`; the left operand is columns
        // `start..start + len` of sample `b`'s `out` gradient rows (row stride
        // `positions`); the right operand is the tap's `[channels, len]` input rows (row
        // stride `stride`) read transposed, inside the padded sample.
        unsafe {
            multiply(
                [out, geom.channels, len],
                (acc.as_mut_ptr().add(t), taps, geom.channels * taps),
                true,
                (
                    spread.as_ptr().add(b * out * positions + start),
                    1,
                    positions,
                ),
                (sample.as_ptr().add(start + geom.tap_offset(t)), stride, 1),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct evaluation of the definition, in f64.
    fn reference(x: &[f32], g: &Geometry, w: &[f32], out: usize) -> Vec<f64> {
        let [d, h, wd] = g.size;
        let (k, p) = (g.kernel as isize, g.pad() as isize);
        let mut y = vec![0.0f64; g.batch * out * g.voxels()];
        for b in 0..g.batch {
            for o in 0..out {
                for z in 0..d as isize {
                    for r in 0..h as isize {
                        for c in 0..wd as isize {
                            let mut s = 0.0f64;
                            for ch in 0..g.channels {
                                for t in 0..k * k * k {
                                    let (iz, ir, ic) =
                                        (z + t / (k * k) - p, r + t / k % k - p, c + t % k - p);
                                    if iz < 0 || ir < 0 || ic < 0 {
                                        continue;
                                    }
                                    let (iz, ir, ic) = (iz as usize, ir as usize, ic as usize);
                                    if iz >= d || ir >= h || ic >= wd {
                                        continue;
                                    }
                                    let xi = (((b * g.channels + ch) * d + iz) * h + ir) * wd + ic;
                                    let wi = (o * g.channels + ch) * g.taps() + t as usize;
                                    s += f64::from(x[xi]) * f64::from(w[wi]);
                                }
                            }
                            let yi = (((b * out + o) * d + z as usize) * h + r as usize) * wd
                                + c as usize;
                            y[yi] = s;
                        }
                    }
                }
            }
        }
        y
    }

    fn values(n: usize, seed: u64) -> Vec<f32> {
        crate::test_values::uniform(n, seed, 1.0)
    }

    /// Batch 2, kernels 1/3/5, non-cubic volumes and a map smaller than the kernel; with
    /// the output channel count.
    fn geometries() -> Vec<(Geometry, usize)> {
        let geom = |batch, channels, size, kernel| Geometry {
            batch,
            channels,
            size,
            kernel,
        };
        vec![
            (geom(1, 1, [4, 4, 4], 3), 1),
            (geom(2, 3, [5, 7, 6], 3), 4),
            (geom(1, 2, [3, 9, 17], 5), 3),
            (geom(1, 5, [2, 2, 2], 3), 2),
            (geom(1, 2, [8, 8, 8], 1), 3),
        ]
    }

    fn assert_close(got: &[f32], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(*g) - w).abs() <= 1e-5 * (1.0 + w.abs()),
                "{what}[{i}]: {g} vs {w}"
            );
        }
    }

    #[test]
    fn forward_equals_the_definition() {
        for (g, out) in geometries() {
            let x = values(g.batch * g.channels * g.voxels(), 1);
            let w = values(out * g.channels * g.taps(), 2);
            assert_close(&forward(&x, &g, &w, out), &reference(&x, &g, &w, out), "y");
        }
    }

    /// <grad, conv(x, w)> is linear in x and in w, so the gradients are checked through
    /// the adjoint identities <grad, conv(e, w)> = <input_grad, e> and likewise for w.
    #[test]
    fn gradients_are_the_adjoints_of_the_forward() {
        for (g, out) in geometries() {
            let x = values(g.batch * g.channels * g.voxels(), 3);
            let w = values(out * g.channels * g.taps(), 4);
            let grad = values(g.batch * out * g.voxels(), 5);
            let gx = input_grad(&grad, &g, &w, out);
            let gw = weight_grad(&x, &g, &grad, out);
            let dot =
                |a: &[f64], b: &[f32]| a.iter().zip(b).map(|(a, b)| a * f64::from(*b)).sum::<f64>();
            for i in (0..x.len()).step_by(x.len() / 7 + 1) {
                let mut e = vec![0.0f32; x.len()];
                e[i] = 1.0;
                let want = dot(&reference(&e, &g, &w, out), &grad);
                assert!(
                    (f64::from(gx[i]) - want).abs() < 1e-5,
                    "dx[{i}] {} vs {want}",
                    gx[i]
                );
            }
            for i in 0..w.len() {
                let mut e = vec![0.0f32; w.len()];
                e[i] = 1.0;
                let want = dot(&reference(&x, &g, &e, out), &grad);
                assert!(
                    (f64::from(gw[i]) - want).abs() < 1e-4,
                    "dw[{i}] {} vs {want}",
                    gw[i]
                );
            }
        }
    }

    /// The geometry of the shape checks: operands that do not hold its shapes are
    /// refused, naming the shape, before any pointer into them is formed.
    fn small() -> Geometry {
        Geometry {
            batch: 2,
            channels: 3,
            size: [4, 5, 6],
            kernel: 3,
        }
    }

    #[test]
    #[should_panic(
        expected = "same conv3d forward: x holds 719 values, its shape [2, 3, 4, 5, 6] needs 720"
    )]
    fn forward_refuses_a_short_input() {
        forward(&values(719, 1), &small(), &values(2 * 3 * 27, 2), 2);
    }

    #[test]
    #[should_panic(
        expected = "same conv3d forward: weight holds 160 values, its shape [2, 3, 3, 3, 3] needs 162"
    )]
    fn forward_refuses_a_short_weight() {
        forward(&values(720, 1), &small(), &values(160, 2), 2);
    }

    #[test]
    #[should_panic(
        expected = "same conv3d input_grad: grad holds 720 values, its shape [2, 2, 4, 5, 6] needs 480"
    )]
    fn input_grad_refuses_a_gradient_of_another_shape() {
        input_grad(&values(720, 1), &small(), &values(2 * 3 * 27, 2), 2);
    }

    #[test]
    #[should_panic(
        expected = "same conv3d input_grad: weight holds 81 values, its shape [2, 3, 3, 3, 3] needs 162"
    )]
    fn input_grad_refuses_a_short_weight() {
        input_grad(&values(480, 1), &small(), &values(81, 2), 2);
    }

    #[test]
    #[should_panic(
        expected = "same conv3d weight_grad: x holds 480 values, its shape [2, 3, 4, 5, 6] needs 720"
    )]
    fn weight_grad_refuses_an_input_of_another_shape() {
        weight_grad(&values(480, 1), &small(), &values(480, 2), 2);
    }

    #[test]
    #[should_panic(
        expected = "same conv3d weight_grad: grad holds 479 values, its shape [2, 2, 4, 5, 6] needs 480"
    )]
    fn weight_grad_refuses_a_short_gradient() {
        weight_grad(&values(720, 1), &small(), &values(479, 2), 2);
    }

    #[test]
    #[should_panic(
        expected = "same conv3d forward: unsupported geometry batch 2, channels 3, size [4, 5, 6], kernel 2"
    )]
    fn an_even_kernel_is_refused() {
        let g = Geometry {
            kernel: 2,
            ..small()
        };
        forward(&values(720, 1), &g, &values(2 * 3 * 8, 2), 2);
    }

    #[test]
    #[should_panic(
        expected = "same conv3d: input [1, 3, 4, 4, 4] and weight [2, 4, 3, 3, 3] do not fit"
    )]
    fn a_weight_for_other_input_channels_is_refused() {
        Geometry::of([1, 3, 4, 4, 4], [2, 4, 3, 3, 3]);
    }

    #[test]
    #[should_panic(
        expected = "same conv3d: input [1, 3, 4, 4, 4] and weight [2, 3, 3, 3, 1] do not fit"
    )]
    fn a_non_cubic_kernel_is_refused() {
        Geometry::of([1, 3, 4, 4, 4], [2, 3, 3, 3, 1]);
    }

    #[test]
    fn an_empty_batch_gives_an_empty_output() {
        let g = Geometry {
            batch: 0,
            ..small()
        };
        assert!(forward(&[], &g, &values(2 * 3 * 27, 2), 2).is_empty());
    }

    /// The weight gradient sums its tiles in a fixed order, whatever the thread count,
    /// so that interrupted and resumed runs end with the same weights.
    #[test]
    fn weight_gradient_does_not_depend_on_thread_count() {
        let g = Geometry {
            batch: 2,
            channels: 3,
            size: [16, 16, 16],
            kernel: 3,
        };
        let x = values(g.batch * g.channels * g.voxels(), 6);
        let grad = values(g.batch * 4 * g.voxels(), 7);
        let with_threads = |n| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap();
            pool.install(|| weight_grad(&x, &g, &grad, 4))
        };
        let one = with_threads(1);
        assert_eq!(one, with_threads(3));
        assert_eq!(one, with_threads(5));
    }
}
