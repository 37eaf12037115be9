//! Solids the phantoms are built from, in world millimetres (RAS+: x toward the
//! patient's right, y anterior, z superior). Each solid answers "is this point inside?"
//! and gives a conservative bounding box, so the rasteriser only visits the voxels that
//! can be inside.

use rand::RngExt;

use medssl_data::rng::Rng;

/// A point or vector in world millimetres.
pub(crate) type P3 = [f64; 3];

pub(crate) fn sub(a: P3, b: P3) -> P3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub(crate) fn add(a: P3, b: P3) -> P3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

pub(crate) fn scale(a: P3, s: f64) -> P3 {
    [a[0] * s, a[1] * s, a[2] * s]
}

pub(crate) fn dot(a: P3, b: P3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// `a + (b - a) t`.
pub(crate) fn lerp(a: P3, b: P3, t: f64) -> P3 {
    add(a, scale(sub(b, a), t))
}

/// An axis-aligned box `[lo, hi]` in world millimetres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Aabb {
    pub lo: P3,
    pub hi: P3,
}

impl Aabb {
    /// The box around a centre with the given half-extents.
    pub fn around(centre: P3, half: P3) -> Aabb {
        Aabb {
            lo: sub(centre, half),
            hi: add(centre, half),
        }
    }

    /// The smallest box holding both.
    pub fn union(self, other: Aabb) -> Aabb {
        Aabb {
            lo: std::array::from_fn(|a| self.lo[a].min(other.lo[a])),
            hi: std::array::from_fn(|a| self.hi[a].max(other.hi[a])),
        }
    }
}

/// A region of space: a point test and a box that holds every point inside.
pub(crate) trait Solid: Send + Sync {
    /// Whether the point is inside.
    fn contains(&self, p: P3) -> bool;
    /// A box holding every point for which `contains` is true.
    fn bbox(&self) -> Aabb;
}

/// Rotation matrix (rows) for angles in radians about x, then y, then z.
pub(crate) fn rotation(angles: P3) -> [P3; 3] {
    let (sa, ca) = angles[0].sin_cos();
    let (sb, cb) = angles[1].sin_cos();
    let (sc, cc) = angles[2].sin_cos();
    // R = Rz(c) * Ry(b) * Rx(a)
    [
        [cc * cb, cc * sb * sa - sc * ca, cc * sb * ca + sc * sa],
        [sc * cb, sc * sb * sa + cc * ca, sc * sb * ca - cc * sa],
        [-sb, cb * sa, cb * ca],
    ]
}

/// One low-frequency wave of a blob's surface: `amp * sin(freq . q + phase)` in the
/// blob's normalised coordinates.
#[derive(Debug, Clone, Copy)]
struct Wave {
    freq: P3,
    phase: f64,
    amp: f64,
}

/// An ellipsoid whose surface is pushed in and out by a few random low-frequency waves:
/// the generic organ shape. Its radius in normalised coordinates is `1 + sum of waves`,
/// so `roughness` (the sum of the wave amplitudes) bounds how far it strays from the
/// ellipsoid.
#[derive(Debug, Clone)]
pub(crate) struct Blob {
    centre: P3,
    semi: P3,
    rot: [P3; 3],
    /// Rows: the local axes divided by their semi-axis lengths (world -> normalised).
    to_local: [P3; 3],
    waves: Vec<Wave>,
    slack: f64,
    bbox: Aabb,
}

impl Blob {
    /// A blob at `centre` with semi-axes `semi` (mm, along the local axes), rotated by
    /// `angles` (radians about x, y, z) and deformed by `roughness` (0 = ellipsoid).
    pub fn new(centre: P3, semi: P3, angles: P3, roughness: f64, rng: &mut Rng) -> Blob {
        const WAVES: usize = 5;
        let weights: [f64; WAVES] = std::array::from_fn(|_| rng.random_range(0.3..1.0));
        let total: f64 = weights.iter().sum();
        let waves = weights
            .iter()
            .map(|w| {
                let dir = random_direction(rng);
                let freq = rng.random_range(1.5..3.5);
                Wave {
                    freq: scale(dir, freq),
                    phase: rng.random_range(0.0..std::f64::consts::TAU),
                    amp: roughness * w / total,
                }
            })
            .collect();
        Blob::build(centre, semi, rotation(angles), waves)
    }

    /// An undeformed ellipsoid.
    pub fn ellipsoid(centre: P3, semi: P3, angles: P3) -> Blob {
        Blob::build(centre, semi, rotation(angles), Vec::new())
    }

    /// The same blob with every semi-axis `mm` shorter and the same surface waves: the
    /// lumen of a hollow organ, the core of a lesion.
    pub fn shrunk(&self, mm: f64) -> Blob {
        let semi = self.semi.map(|s| (s - mm).max(0.5));
        Blob::build(self.centre, semi, self.rot, self.waves.clone())
    }

    /// The same blob scaled by `factor` about `centre`.
    pub fn scaled(&self, centre: P3, factor: f64) -> Blob {
        let semi = self.semi.map(|s| s * factor);
        Blob::build(centre, semi, self.rot, self.waves.clone())
    }

    fn build(centre: P3, semi: P3, rot: [P3; 3], waves: Vec<Wave>) -> Blob {
        // Column e of `rot` is local axis e in world coordinates.
        let axis = |e: usize| [rot[0][e], rot[1][e], rot[2][e]];
        let to_local = std::array::from_fn(|e| scale(axis(e), 1.0 / semi[e]));
        let slack: f64 = waves.iter().map(|w| w.amp.abs()).sum();
        let half = std::array::from_fn(|w| {
            (1.0 + slack)
                * (0..3)
                    .map(|e| (rot[w][e] * semi[e]).powi(2))
                    .sum::<f64>()
                    .sqrt()
        });
        Blob {
            centre,
            semi,
            rot,
            to_local,
            waves,
            slack,
            bbox: Aabb::around(centre, half),
        }
    }

    /// The centre.
    pub fn centre(&self) -> P3 {
        self.centre
    }
}

impl Solid for Blob {
    fn contains(&self, p: P3) -> bool {
        let d = sub(p, self.centre);
        let q = [
            dot(self.to_local[0], d),
            dot(self.to_local[1], d),
            dot(self.to_local[2], d),
        ];
        let r2 = dot(q, q);
        let (outer, inner) = (1.0 + self.slack, 1.0 - self.slack);
        if r2 >= outer * outer {
            return false;
        }
        if inner > 0.0 && r2 < inner * inner {
            return true;
        }
        let bump: f64 = self
            .waves
            .iter()
            .map(|w| w.amp * (dot(w.freq, q) + w.phase).sin())
            .sum();
        r2.sqrt() < 1.0 + bump
    }

    fn bbox(&self) -> Aabb {
        self.bbox
    }
}

/// A uniformly random unit vector.
pub(crate) fn random_direction(rng: &mut Rng) -> P3 {
    let z: f64 = rng.random_range(-1.0..1.0);
    let phi: f64 = rng.random_range(0.0..std::f64::consts::TAU);
    let r = (1.0 - z * z).sqrt();
    [r * phi.cos(), r * phi.sin(), z]
}

/// A segment with rounded ends whose radius changes linearly from `a` to `b`: vessels,
/// bowel, nerves and other tubes are chains of these.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Capsule {
    a: P3,
    b: P3,
    ra: f64,
    rb: f64,
}

impl Capsule {
    /// The capsule from `a` (radius `ra`) to `b` (radius `rb`).
    pub fn new(a: P3, b: P3, ra: f64, rb: f64) -> Capsule {
        Capsule { a, b, ra, rb }
    }

    /// The capsules of a tube through `points` with radii `radii` (one per point).
    pub fn chain(points: &[P3], radii: &[f64]) -> Vec<Capsule> {
        points
            .windows(2)
            .zip(radii.windows(2))
            .map(|(p, r)| Capsule::new(p[0], p[1], r[0], r[1]))
            .collect()
    }

    /// The same axis with the radii changed by `delta` mm (negative: the lumen of a
    /// tube whose wall is `-delta` thick).
    pub fn grown(&self, delta: f64) -> Capsule {
        Capsule::new(self.a, self.b, self.ra + delta, self.rb + delta)
    }
}

impl Solid for Capsule {
    fn contains(&self, p: P3) -> bool {
        let d = sub(self.b, self.a);
        let len2 = dot(d, d);
        let t = if len2 > 0.0 {
            (dot(sub(p, self.a), d) / len2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let off = sub(p, lerp(self.a, self.b, t));
        let r = self.ra + (self.rb - self.ra) * t;
        r > 0.0 && dot(off, off) < r * r
    }

    fn bbox(&self) -> Aabb {
        let (ra, rb) = (self.ra.max(0.0), self.rb.max(0.0));
        Aabb::around(self.a, [ra; 3]).union(Aabb::around(self.b, [rb; 3]))
    }
}

/// An elliptic cylinder along z: vertebral bodies, discs, the spinal canal.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cylinder {
    pub centre: [f64; 2],
    pub radii: [f64; 2],
    pub z: [f64; 2],
}

impl Solid for Cylinder {
    fn contains(&self, p: P3) -> bool {
        let u = (p[0] - self.centre[0]) / self.radii[0];
        let v = (p[1] - self.centre[1]) / self.radii[1];
        u * u + v * v < 1.0 && self.z[0] <= p[2] && p[2] < self.z[1]
    }

    fn bbox(&self) -> Aabb {
        Aabb {
            lo: [
                self.centre[0] - self.radii[0],
                self.centre[1] - self.radii[1],
                self.z[0],
            ],
            hi: [
                self.centre[0] + self.radii[0],
                self.centre[1] + self.radii[1],
                self.z[1],
            ],
        }
    }
}

/// The points of `solid` above (`above = true`) or below the plane `z = level`: gas over
/// fluid in bowel, the skull above its base.
pub(crate) struct CutZ<S> {
    pub solid: S,
    pub level: f64,
    pub above: bool,
}

impl<S: Solid> Solid for CutZ<S> {
    fn contains(&self, p: P3) -> bool {
        (p[2] >= self.level) == self.above && self.solid.contains(p)
    }

    fn bbox(&self) -> Aabb {
        let mut b = self.solid.bbox();
        if self.above {
            b.lo[2] = b.lo[2].max(self.level);
        } else {
            b.hi[2] = b.hi[2].min(self.level);
        }
        b
    }
}

/// A body cross-section swept along z: an ellipse in front (y > 0), a flatter
/// superellipse behind, semi-axes that change slowly with z, and a gentle angular
/// ripple. `inset` shrinks it by that many mm to give the inner layers (fat, muscle
/// wall, cavity) of the same outline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Section {
    /// Semi-axes (x, y) at z = 0.
    pub semi: [f64; 2],
    /// Relative change of each semi-axis with t = z / `z_scale`: `1 + c1 t + c2 t^2`.
    pub taper: [[f64; 2]; 2],
    pub z_scale: f64,
    /// Coefficients of cos 2θ, sin 2θ, cos 3θ, sin 3θ of the radius.
    pub ripple: [f64; 4],
    pub inset: f64,
    /// The part along z that exists.
    pub z: [f64; 2],
}

impl Section {
    /// The same outline shrunk by `inset` more mm.
    pub fn inset(&self, mm: f64) -> Section {
        Section {
            inset: self.inset + mm,
            ..*self
        }
    }

    /// The semi-axes (x, y) at height z, before the inset.
    pub fn semi_at(&self, z: f64) -> [f64; 2] {
        let t = (z / self.z_scale).clamp(-1.0, 1.0);
        std::array::from_fn(|a| {
            self.semi[a] * (1.0 + self.taper[a][0] * t + self.taper[a][1] * t * t)
        })
    }
}

impl Solid for Section {
    fn contains(&self, p: P3) -> bool {
        if p[2] < self.z[0] || p[2] >= self.z[1] {
            return false;
        }
        let [a, b] = self.semi_at(p[2]);
        let (a, b) = (a - self.inset, b - self.inset);
        if a <= 0.0 || b <= 0.0 {
            return false;
        }
        let inv = 1.0 / (a * b);
        let (u, v) = (p[0] * b * inv, p[1] * a * inv);
        let (u2, v2) = (u * u, v * v);
        let rho2 = u2 + v2;
        // The ripple scales the radius by at most 1 +- its amplitude, so most points are
        // decided by the unrippled outline (ellipse in front, superellipse behind):
        // compare its norm (squared in front, to the fourth behind) with those bounds.
        let amplitude: f64 = self.ripple.iter().map(|c| c.abs()).sum();
        let (outer, inner) = ((1.0 + amplitude).powi(2), (1.0 - amplitude).powi(2));
        let (norm, outer, inner) = if v >= 0.0 {
            (rho2, outer, inner)
        } else {
            (u2 * u2 + v2 * v2, outer * outer, inner * inner)
        };
        if norm >= outer {
            return false;
        }
        if norm < inner {
            return true;
        }
        let rho = rho2.sqrt();
        let (c, s) = (u / rho, v / rho);
        let [c2, s2, c3, s3] = self.ripple;
        let wobble = c2 * (c * c - s * s)
            + s2 * 2.0 * c * s
            + c3 * c * (4.0 * c * c - 3.0)
            + s3 * s * (3.0 - 4.0 * s * s);
        let (u, v) = (u / (1.0 + wobble), v / (1.0 + wobble));
        if v >= 0.0 {
            u * u + v * v < 1.0
        } else {
            let (u2, v2) = (u * u, v * v);
            u2 * u2 + v2 * v2 < 1.0
        }
    }

    fn bbox(&self) -> Aabb {
        let grow = 1.0 + self.ripple.iter().map(|c| c.abs()).sum::<f64>();
        let half = std::array::from_fn::<f64, 2, _>(|a| {
            let [c1, c2] = self.taper[a];
            self.semi[a] * (1.0 + c1.abs() + c2.abs()) * grow
        });
        Aabb {
            lo: [-half[0], -half[1], self.z[0]],
            hi: [half[0], half[1], self.z[1]],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medssl_data::rng::stream;

    /// Every inside point found on a fine lattice lies in the bounding box, and the box
    /// is not grossly larger than the points found.
    fn check_bbox(solid: &dyn Solid) {
        let b = solid.bbox();
        let pad = 5.0;
        let steps = 40;
        let mut found = Aabb {
            lo: [f64::INFINITY; 3],
            hi: [f64::NEG_INFINITY; 3],
        };
        for i in 0..=steps {
            for j in 0..=steps {
                for k in 0..=steps {
                    let p = std::array::from_fn(|a| {
                        let t = [i, j, k][a] as f64 / steps as f64;
                        b.lo[a] - pad + (b.hi[a] - b.lo[a] + 2.0 * pad) * t
                    });
                    if solid.contains(p) {
                        assert!(
                            (0..3).all(|a| b.lo[a] <= p[a] && p[a] <= b.hi[a]),
                            "{p:?} inside but outside {b:?}"
                        );
                        found = found.union(Aabb { lo: p, hi: p });
                    }
                }
            }
        }
        for a in 0..3 {
            let size = b.hi[a] - b.lo[a];
            assert!(found.hi[a] - found.lo[a] > 0.5 * size, "{b:?} vs {found:?}");
        }
    }

    #[test]
    fn bounding_boxes_hold_their_solids() {
        let mut rng = stream(3, &[]);
        check_bbox(&Blob::new(
            [10.0, -5.0, 3.0],
            [30.0, 12.0, 20.0],
            [0.4, -0.3, 1.1],
            0.3,
            &mut rng,
        ));
        check_bbox(&Capsule::new(
            [0.0, 0.0, 0.0],
            [40.0, 10.0, -30.0],
            8.0,
            3.0,
        ));
        let section = Section {
            semi: [150.0, 110.0],
            taper: [[0.1, -0.05], [0.05, 0.02]],
            z_scale: 150.0,
            ripple: [0.05, -0.03, 0.02, 0.01],
            inset: 10.0,
            z: [-50.0, 50.0],
        };
        check_bbox(&section);
    }

    #[test]
    fn ellipsoid_matches_its_equation() {
        // Rotated by 90 degrees about z: local x (semi 30) lies along world y.
        let e = Blob::ellipsoid(
            [5.0, 0.0, 0.0],
            [30.0, 10.0, 20.0],
            [0.0, 0.0, std::f64::consts::FRAC_PI_2],
        );
        assert!(e.contains([5.0, 29.0, 0.0]));
        assert!(!e.contains([5.0, 31.0, 0.0]));
        assert!(e.contains([14.0, 0.0, 0.0]));
        assert!(!e.contains([16.0, 0.0, 0.0]));
        assert!(e.contains([5.0, 0.0, -19.0]));
        assert!(!e.contains([5.0, 0.0, -21.0]));
    }

    #[test]
    fn capsule_radius_tapers_along_the_axis() {
        let c = Capsule::new([0.0, 0.0, 0.0], [0.0, 0.0, 100.0], 10.0, 2.0);
        assert!(c.contains([9.0, 0.0, 0.0]));
        assert!(c.contains([0.0, 5.5, 50.0]));
        assert!(!c.contains([0.0, 6.5, 50.0]));
        assert!(!c.contains([0.0, 2.5, 100.0]));
        assert!(!c.contains([0.0, 0.0, 103.0]));
    }
}
