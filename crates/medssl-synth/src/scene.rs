//! A phantom as a painting program: solids painted one after another, each only over
//! the tissues it may replace (an organ grows into fat and bowel, never into bone or
//! another organ). The program is evaluated at any point ([`Scene::tissue_at`]) or on a
//! voxel grid ([`Scene::rasterise`], which only visits each solid's bounding box); both
//! give the same tissue at every voxel centre.

use rayon::prelude::*;

use super::Grid;
use super::shapes::{P3, Solid};
use super::tissue::Class;

/// A set of tissue ids (0-255).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Mask([u64; 4]);

impl Mask {
    /// The set of the given ids.
    pub fn of(ids: &[u8]) -> Mask {
        let mut m = Mask::default();
        for &id in ids {
            m.0[usize::from(id >> 6)] |= 1 << (id & 63);
        }
        m
    }

    /// Whether `id` is in the set.
    #[inline]
    pub fn has(&self, id: u8) -> bool {
        self.0[usize::from(id >> 6)] >> (id & 63) & 1 == 1
    }

    /// Both sets together.
    pub fn or(self, other: Mask) -> Mask {
        Mask(std::array::from_fn(|i| self.0[i] | other.0[i]))
    }
}

/// One tissue of a scene: its class, the label it counts as, and a relative contrast
/// against its class (lesions: -0.6 is a dark lesion, +0.4 a bright one; CT adds
/// `contrast * 100` HU, MRI multiplies the signal by `1 + contrast`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tissue {
    pub class: Class,
    pub label: u8,
    pub contrast: f32,
}

struct Paint {
    solid: Box<dyn Solid>,
    tissue: u8,
    into: Mask,
}

/// The painting program of one case. Tissue 0 is the air that fills space before the
/// first stroke.
pub(crate) struct Scene {
    tissues: Vec<Tissue>,
    strokes: Vec<Paint>,
}

impl Scene {
    /// An empty scene: air everywhere.
    pub fn new() -> Scene {
        Scene {
            tissues: vec![Tissue {
                class: Class::Air,
                label: 0,
                contrast: 0.0,
            }],
            strokes: Vec::new(),
        }
    }

    /// The outside air.
    pub const AIR: u8 = 0;

    /// Adds a tissue and returns its id. A scene holds at most 256 tissues; the
    /// generators use far fewer (about 40 plus a few lesions).
    pub fn add_tissue(&mut self, class: Class, label: u8, contrast: f32) -> u8 {
        let id = u8::try_from(self.tissues.len()).expect("a scene holds at most 256 tissues");
        self.tissues.push(Tissue {
            class,
            label,
            contrast,
        });
        id
    }

    /// Adds a tissue of `class` with no extra contrast.
    pub fn tissue(&mut self, class: Class, label: u8) -> u8 {
        self.add_tissue(class, label, 0.0)
    }

    /// The tissues, indexed by id.
    pub fn tissues(&self) -> &[Tissue] {
        &self.tissues
    }

    /// Paints `solid` with `tissue` wherever the current tissue is in `into`.
    pub fn paint(&mut self, solid: impl Solid + 'static, tissue: u8, into: Mask) {
        self.strokes.push(Paint {
            solid: Box::new(solid),
            tissue,
            into,
        });
    }

    /// Paints every solid of `solids` in turn.
    pub fn paint_all<S: Solid + 'static>(
        &mut self,
        solids: impl IntoIterator<Item = S>,
        tissue: u8,
        into: Mask,
    ) {
        for s in solids {
            self.paint(s, tissue, into);
        }
    }

    /// The tissue at world point `p` (mm).
    pub fn tissue_at(&self, p: P3) -> u8 {
        self.strokes.iter().fold(Scene::AIR, |t, s| {
            if s.into.has(t) && s.solid.contains(p) {
                s.tissue
            } else {
                t
            }
        })
    }

    /// The tissue id of every voxel centre of `grid`, in `[I, J, K]` standard order.
    pub fn rasterise(&self, grid: &Grid) -> Vec<u8> {
        let [ni, nj, nk] = grid.shape();
        let slab = nj * nk;
        let mut out = vec![Scene::AIR; ni * slab];
        let origin = grid.origin();
        let spacing = grid.spacing();
        for stroke in &self.strokes {
            let b = stroke.solid.bbox();
            // Voxel index ranges that can hold inside points (conservative: the solid's
            // own test decides).
            let range = |a: usize| {
                let n = grid.shape()[a] as f64;
                let lo = ((b.lo[a] - origin[a]) / spacing[a]).floor().clamp(0.0, n);
                let hi = ((b.hi[a] - origin[a]) / spacing[a] + 1.0)
                    .ceil()
                    .clamp(0.0, n);
                (lo as usize, hi as usize)
            };
            let ((i0, i1), (j0, j1), (k0, k1)) = (range(0), range(1), range(2));
            if i0 >= i1 || j0 >= j1 || k0 >= k1 {
                continue;
            }
            out[i0 * slab..i1 * slab]
                .par_chunks_mut(slab)
                .enumerate()
                .for_each(|(di, plane)| {
                    let x = origin[0] + (i0 + di) as f64 * spacing[0];
                    for j in j0..j1 {
                        let y = origin[1] + j as f64 * spacing[1];
                        let row = &mut plane[j * nk..(j + 1) * nk];
                        for (k, voxel) in row.iter_mut().enumerate().take(k1).skip(k0) {
                            if stroke.into.has(*voxel) {
                                let z = origin[2] + k as f64 * spacing[2];
                                if stroke.solid.contains([x, y, z]) {
                                    *voxel = stroke.tissue;
                                }
                            }
                        }
                    }
                });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shapes::{Blob, Capsule};
    use medssl_data::rng::stream;

    #[test]
    fn masks_hold_exactly_their_ids() {
        let m = Mask::of(&[0, 63, 64, 200, 255]);
        for id in 0..=255u8 {
            assert_eq!(m.has(id), [0, 63, 64, 200, 255].contains(&id), "{id}");
        }
        assert!(m.or(Mask::of(&[5])).has(5));
    }

    #[test]
    fn rasterising_equals_evaluating_every_voxel_centre() {
        let mut rng = stream(11, &[]);
        let mut scene = Scene::new();
        let fat = scene.tissue(Class::Fat, 0);
        let organ = scene.tissue(Class::Liver, 1);
        let vessel = scene.tissue(Class::Vein, 0);
        let body = Blob::new([0.0; 3], [40.0, 30.0, 35.0], [0.1, 0.2, 0.3], 0.2, &mut rng);
        scene.paint(body, fat, Mask::of(&[Scene::AIR]));
        let liver = Blob::new(
            [10.0, 0.0, 5.0],
            [20.0, 15.0, 25.0],
            [0.5, 0.0, 0.0],
            0.3,
            &mut rng,
        );
        scene.paint(liver, organ, Mask::of(&[fat]));
        // Only replaces the organ, and reaches outside the body (where it must not paint).
        scene.paint(
            Capsule::new([-60.0, 0.0, 0.0], [60.0, 5.0, 10.0], 6.0, 4.0),
            vessel,
            Mask::of(&[organ]),
        );
        let grid = Grid::new([23, 19, 17], [4.0, 3.5, 5.0]).unwrap();
        let map = scene.rasterise(&grid);
        let origin = grid.origin();
        let mut counts = [0usize; 4];
        for i in 0..23 {
            for j in 0..19 {
                for k in 0..17 {
                    let p = [
                        origin[0] + i as f64 * 4.0,
                        origin[1] + j as f64 * 3.5,
                        origin[2] + k as f64 * 5.0,
                    ];
                    let t = map[(i * 19 + j) * 17 + k];
                    assert_eq!(t, scene.tissue_at(p), "voxel {i},{j},{k}");
                    counts[usize::from(t)] += 1;
                }
            }
        }
        assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
    }
}
