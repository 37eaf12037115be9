//! The abdomen generator shared by `abdomen-ct`, `abdomen-mri` and `tumor-ct`.
//!
//! One random patient per case, built from the outside in: body outline, subcutaneous
//! fat, muscle wall, the spine with paraspinal and psoas muscles, aorta and IVC, heart
//! and lung bases above the diaphragm, ribs, then the organs, each grown only into the
//! remaining visceral fat, then stomach, colon and small bowel in what is left.
//! Placement follows anatomy (RAS+: x toward the patient's right): the liver fills the
//! right upper abdomen under the higher right dome of the diaphragm with its left lobe
//! crossing the midline in front; the spleen lies left and posterior under the left
//! dome; the kidneys lie posterior on both sides of the spine, the right one lower; the
//! aorta runs in front of the vertebrae slightly to the left, the IVC to the right; the
//! pancreas arches from its head beside the duodenum, in front of the aorta, to its
//! tail at the splenic hilum.

use rand::RngExt;

use super::scene::{Mask, Scene};
use super::shapes::{Aabb, Blob, Capsule, CutZ, Cylinder, P3, Section, Solid, lerp};
use super::tissue::Class;
use medssl_data::rng::Rng;

/// The label each organ gets (0: not labelled).
pub(crate) struct OrganLabels {
    pub liver: u8,
    pub spleen: u8,
    pub kidney_left: u8,
    pub kidney_right: u8,
    pub pancreas: u8,
    pub aorta: u8,
}

/// `abdomen-ct` / `abdomen-mri`: one label per organ.
pub(crate) const ORGAN_LABELS: OrganLabels = OrganLabels {
    liver: 1,
    spleen: 2,
    kidney_left: 3,
    kidney_right: 4,
    pancreas: 5,
    aorta: 6,
};

/// `tumor-ct`: the organs that may hold lesions are label 1, the rest background.
pub(crate) const TUMOR_HOST_LABELS: OrganLabels = OrganLabels {
    liver: 1,
    spleen: 0,
    kidney_left: 1,
    kidney_right: 1,
    pancreas: 1,
    aorta: 0,
};

/// An organ that can hold lesions: its tissues, its main class, and a box around it.
pub(crate) struct Organ {
    pub tissues: Mask,
    pub class: Class,
    pub region: Aabb,
}

/// A generated abdomen: the scene and the organs lesions may grow in.
pub(crate) struct Abdomen {
    pub scene: Scene,
    pub liver: Organ,
    pub kidneys: [Organ; 2],
    pub pancreas: Organ,
}

fn uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    rng.random_range(lo..hi)
}

/// Kidney long-axis tilt in the coronal plane (upper pole medial), radians.
const KIDNEY_TILT: (f64, f64) = (0.15, 0.3);

/// Diaphragm: how far (mm) the surface drops from a dome's peak toward the side walls
/// (per squared normalised x distance) and toward front and back (per squared
/// normalised y).
const DOME_DROP: [f64; 2] = [180.0, 70.0];

/// The region above the diaphragm (plus `offset` mm) inside the body cavity: two domes,
/// the right one higher, over the liver and spleen.
struct AboveDiaphragm {
    cavity: Section,
    /// Peak height of the right and left domes.
    peaks: [f64; 2],
    offset: f64,
}

impl AboveDiaphragm {
    fn height(&self, x: f64, y: f64) -> f64 {
        let [a, b] = self.cavity.semi;
        let peak = if x >= 0.0 {
            self.peaks[0]
        } else {
            self.peaks[1]
        };
        let u = (x.abs() - 0.45 * a) / a;
        let v = y / b;
        peak - DOME_DROP[0] * u * u - DOME_DROP[1] * v * v
    }
}

impl Solid for AboveDiaphragm {
    fn contains(&self, p: P3) -> bool {
        p[2] > self.height(p[0], p[1]) + self.offset && self.cavity.contains(p)
    }

    fn bbox(&self) -> Aabb {
        let mut b = self.cavity.bbox();
        // The lowest the surface gets within the cavity's box.
        let a = self.cavity.semi[0];
        let u = (b.hi[0] - 0.45 * a).max(0.45 * a) / a;
        let v = b.hi[1].max(-b.lo[1]) / self.cavity.semi[1];
        let low = self.peaks[0].min(self.peaks[1]) - DOME_DROP[0] * u * u - DOME_DROP[1] * v * v;
        b.lo[2] = b.lo[2].max(low + self.offset);
        b
    }
}

/// Ribs: bands of bone in the muscle wall at the sides and back, above the costal
/// margin, each running from the spine around the body and downward, so an axial slice
/// cuts them into short segments.
struct Ribs {
    outer: Section,
    inner: Section,
    pitch: f64,
    thickness: f64,
    phase: f64,
    /// How far (mm) a rib descends per radian around the body from the spine.
    descent: f64,
    /// Lowest rib level at the back; the margin rises toward the front.
    margin: f64,
}

impl Solid for Ribs {
    fn contains(&self, p: P3) -> bool {
        let [x, y, z] = p;
        let [a, b] = self.outer.semi;
        if z <= self.margin + 60.0 * (y / b + 1.0).max(0.0) || y >= 0.6 * b {
            return false;
        }
        let around = (x.abs() / a).atan2(-y / b);
        (z + self.descent * around - self.phase).rem_euclid(self.pitch) < self.thickness
            && self.outer.contains(p)
            && !self.inner.contains(p)
    }

    fn bbox(&self) -> Aabb {
        let mut b = self.outer.bbox();
        b.lo[2] = b.lo[2].max(self.margin);
        b
    }
}

/// The body, its layers and the spine: the cavity outline and the tissue ids later
/// strokes need.
struct Frame {
    cavity: Section,
    /// Half-width and half-depth of the cavity at z = 0.
    half: [f64; 2],
    /// Centre (y) of the vertebral bodies and their semi-axes (x, y).
    spine_y: f64,
    spine_semi: [f64; 2],
    wall: u8,
    visceral: u8,
}

/// Paints the body layers, the back muscles (erector spinae, psoas, quadratus
/// lumborum) and the spine.
fn body_and_spine(scene: &mut Scene, rng: &mut Rng) -> Frame {
    let semi = [uniform(rng, 135.0, 175.0), uniform(rng, 95.0, 125.0)];
    let body = Section {
        semi,
        taper: std::array::from_fn(|_| [uniform(rng, -0.08, 0.05), uniform(rng, -0.05, 0.05)]),
        z_scale: 150.0,
        ripple: std::array::from_fn(|_| uniform(rng, -0.04, 0.04)),
        inset: 0.0,
        z: [-1e4, 1e4],
    };
    let fat_mm = uniform(rng, 8.0, 30.0);
    let wall_mm = uniform(rng, 10.0, 18.0);
    let cavity = body.inset(fat_mm + wall_mm);

    let subcutaneous = scene.tissue(Class::Fat, 0);
    let wall = scene.tissue(Class::Muscle, 0);
    let visceral = scene.tissue(Class::Fat, 0);
    scene.paint(body, subcutaneous, Mask::of(&[Scene::AIR]));
    scene.paint(body.inset(fat_mm), wall, Mask::of(&[subcutaneous]));
    scene.paint(cavity, visceral, Mask::of(&[wall]));

    // Spine: vertebral bodies about 62% of the half-depth in front of the back.
    let spine_y = -semi[1] + 0.62 * semi[1] + uniform(rng, -5.0, 5.0);
    let spine_semi = [uniform(rng, 19.0, 24.0), uniform(rng, 15.0, 19.0)];
    let canal_y = spine_y - spine_semi[1] - 11.0;
    let back = scene.tissue(Class::Muscle, 0);
    let psoas = scene.tissue(Class::Muscle, 0);
    let muscle_width = uniform(rng, 24.0, 32.0);
    for side in [-1.0, 1.0] {
        scene.paint(
            Cylinder {
                centre: [side * (muscle_width + 8.0), canal_y - 14.0],
                radii: [muscle_width, uniform(rng, 28.0, 36.0)],
                z: [-1e4, 1e4],
            },
            back,
            Mask::of(&[visceral, wall]),
        );
        scene.paint(
            Capsule::new(
                [side * (spine_semi[0] + 4.0), spine_y + 2.0, 30.0],
                [
                    side * (spine_semi[0] + uniform(rng, 22.0, 30.0)),
                    spine_y + 12.0,
                    -170.0,
                ],
                5.0,
                uniform(rng, 20.0, 27.0),
            ),
            psoas,
            Mask::of(&[visceral]),
        );
        // Quadratus lumborum, behind the kidneys beside the psoas.
        scene.paint(
            Capsule::new(
                [side * (spine_semi[0] + 30.0), spine_y - 22.0, 40.0],
                [
                    side * (spine_semi[0] + uniform(rng, 45.0, 60.0)),
                    spine_y - 24.0,
                    -150.0,
                ],
                8.0,
                uniform(rng, 15.0, 20.0),
            ),
            psoas,
            Mask::of(&[visceral]),
        );
    }

    let cortical = scene.tissue(Class::CorticalBone, 0);
    let marrow = scene.tissue(Class::Marrow, 0);
    let disc = scene.tissue(Class::Disc, 0);
    let csf = scene.tissue(Class::Csf, 0);
    let soft = Mask::of(&[visceral, wall, back, psoas]);
    let level = uniform(rng, 30.0, 34.0);
    let disc_mm = uniform(rng, 6.0, 9.0);
    let start = -250.0 - uniform(rng, 0.0, level);
    let mut z = start;
    while z < 250.0 {
        let body_z = [z + disc_mm, z + level];
        scene.paint(
            Cylinder {
                centre: [0.0, spine_y],
                radii: spine_semi,
                z: [z, z + disc_mm],
            },
            disc,
            soft,
        );
        scene.paint(
            Cylinder {
                centre: [0.0, spine_y],
                radii: spine_semi,
                z: body_z,
            },
            cortical,
            soft,
        );
        scene.paint(
            Cylinder {
                centre: [0.0, spine_y],
                radii: spine_semi.map(|r| r - 3.0),
                z: body_z,
            },
            marrow,
            Mask::of(&[cortical]),
        );
        let mid = 0.5 * (body_z[0] + body_z[1]);
        let arch = [
            // Arch around the canal, spinous process, transverse processes.
            Capsule::new([0.0, canal_y, mid], [0.0, canal_y, mid], 16.0, 16.0),
            Capsule::new(
                [0.0, canal_y - 10.0, mid],
                [0.0, canal_y - 42.0, mid - 12.0],
                5.0,
                4.0,
            ),
            Capsule::new(
                [-36.0, canal_y + 2.0, mid],
                [36.0, canal_y + 2.0, mid],
                5.0,
                5.0,
            ),
        ];
        scene.paint_all(arch, cortical, soft);
        z += level;
    }
    scene.paint(
        Cylinder {
            centre: [0.0, canal_y],
            radii: [9.0, 8.0],
            z: [-1e4, 1e4],
        },
        csf,
        Mask::of(&[cortical, marrow, disc, visceral, back]),
    );
    let half = cavity.semi.map(|s| s - fat_mm - wall_mm);
    Frame {
        cavity,
        half,
        spine_y,
        spine_semi,
        wall,
        visceral,
    }
}

/// The tissues of hollow bowel and where it may grow.
#[derive(Clone, Copy)]
struct Gut {
    wall: u8,
    fluid: u8,
    gas: u8,
    into: Mask,
}

impl Gut {
    /// Bowel along `points` (radii per point) with a wall of `wall_mm`. Each segment's
    /// lumen holds gas or fluid with the probabilities `[gas, fluid]`, or is collapsed
    /// (all wall) otherwise.
    fn paint(
        &self,
        scene: &mut Scene,
        rng: &mut Rng,
        points: &[P3],
        radii: &[f64],
        wall_mm: f64,
        [gas, fluid]: [f64; 2],
    ) {
        let outer = Capsule::chain(points, radii);
        scene.paint_all(outer.iter().copied(), self.wall, self.into);
        for segment in outer {
            let draw: f64 = rng.random_range(0.0..1.0);
            let content = if draw < gas {
                self.gas
            } else if draw < gas + fluid {
                self.fluid
            } else {
                continue;
            };
            scene.paint(segment.grown(-wall_mm), content, Mask::of(&[self.wall]));
        }
    }
}

/// A random walk of `steps` steps of about `step` mm from `start`, turning smoothly.
fn random_walk(rng: &mut Rng, start: P3, steps: usize, step: f64) -> Vec<P3> {
    let mut dir = super::shapes::random_direction(rng);
    let mut points = vec![start];
    for _ in 0..steps {
        let turn = super::shapes::random_direction(rng);
        let d: P3 = std::array::from_fn(|a| dir[a] + 0.9 * turn[a]);
        let n = super::shapes::dot(d, d).sqrt().max(1e-6);
        dir = d.map(|v| v / n);
        let last = *points.last().expect("walk has a start");
        let len = uniform(rng, 0.8 * step, 1.2 * step);
        points.push(std::array::from_fn(|a| last[a] + len * dir[a]));
    }
    points
}

/// One random abdomen with the given organ labels.
pub(crate) fn abdomen(rng: &mut Rng, labels: &OrganLabels) -> Abdomen {
    let mut scene = Scene::new();
    let frame = body_and_spine(&mut scene, rng);
    let visceral = frame.visceral;
    let free = Mask::of(&[visceral]);
    let [ac, bc] = frame.half;
    let spine_y = frame.spine_y;
    let front_of_spine = spine_y + frame.spine_semi[1];

    // Great vessels in front of the spine: aorta left of the midline, IVC right.
    let aorta_id = scene.tissue(Class::Artery, labels.aorta);
    let vein = scene.tissue(Class::Vein, 0);
    let aorta_r = uniform(rng, 9.0, 13.0);
    let aorta_x = -uniform(rng, 10.0, 20.0);
    let levels = [260.0, 120.0, 0.0, -120.0, -260.0];
    let aorta_points: Vec<P3> = levels
        .iter()
        .map(|&z| {
            [
                aorta_x + uniform(rng, -4.0, 4.0),
                front_of_spine + aorta_r + uniform(rng, 2.0, 6.0),
                z,
            ]
        })
        .collect();
    let aorta_radii: Vec<f64> = levels
        .iter()
        .map(|&z| aorta_r * (1.0 + 0.08 * z / 260.0))
        .collect();
    scene.paint_all(Capsule::chain(&aorta_points, &aorta_radii), aorta_id, free);
    let ivc_r = uniform(rng, 9.0, 12.0);
    let ivc_points: Vec<P3> = levels
        .iter()
        .map(|&z| {
            [
                uniform(rng, 18.0, 28.0),
                front_of_spine + ivc_r + uniform(rng, 0.0, 6.0),
                z,
            ]
        })
        .collect();
    scene.paint_all(Capsule::chain(&ivc_points, &[ivc_r; 5]), vein, free);

    // Diaphragm domes, heart on the central part, lung bases above.
    let right_peak = uniform(rng, 95.0, 120.0);
    let peaks = [right_peak, right_peak - uniform(rng, 5.0, 20.0)];
    let heart_muscle = scene.tissue(Class::Muscle, 0);
    let heart_blood = scene.tissue(Class::Artery, 0);
    let heart = Blob::new(
        [
            -uniform(rng, 5.0, 25.0),
            0.3 * bc,
            right_peak + uniform(rng, 5.0, 20.0),
        ],
        [
            uniform(rng, 50.0, 65.0),
            uniform(rng, 45.0, 55.0),
            uniform(rng, 45.0, 55.0),
        ],
        [0.0, 0.0, uniform(rng, -0.5, -0.2)],
        0.1,
        rng,
    );
    scene.paint(heart.shrunk(10.0), heart_blood, free);
    scene.paint(heart, heart_muscle, free);
    let diaphragm = scene.tissue(Class::Muscle, 0);
    let lung = scene.tissue(Class::Lung, 0);
    let dome = |offset| AboveDiaphragm {
        cavity: frame.cavity,
        peaks,
        offset,
    };
    scene.paint(dome(0.0), diaphragm, free);
    scene.paint(dome(5.0), lung, Mask::of(&[visceral, diaphragm]));
    let rib = scene.tissue(Class::CorticalBone, 0);
    let wall = frame.wall;
    scene.paint(
        Ribs {
            outer: frame.cavity.inset(-13.0),
            inner: frame.cavity.inset(-2.0),
            pitch: uniform(rng, 25.0, 32.0),
            thickness: uniform(rng, 7.0, 10.0),
            phase: uniform(rng, 0.0, 30.0),
            descent: uniform(rng, 25.0, 40.0),
            margin: uniform(rng, -70.0, -40.0),
        },
        rib,
        Mask::of(&[wall]),
    );

    // Kidneys, posterior beside the spine; the right one lower.
    let cortex_ids = [
        scene.tissue(Class::KidneyCortex, labels.kidney_left),
        scene.tissue(Class::KidneyCortex, labels.kidney_right),
    ];
    let medulla_ids = [
        scene.tissue(Class::KidneyMedulla, labels.kidney_left),
        scene.tissue(Class::KidneyMedulla, labels.kidney_right),
    ];
    let left_z = uniform(rng, -15.0, 15.0);
    let kidney_z = [left_z, left_z - uniform(rng, 5.0, 25.0)];
    let mut kidney_regions = Vec::new();
    for (n, side) in [-1.0f64, 1.0].into_iter().enumerate() {
        let semi = [
            uniform(rng, 22.0, 28.0),
            uniform(rng, 20.0, 26.0),
            uniform(rng, 45.0, 58.0),
        ];
        let centre = [
            side * (frame.spine_semi[0] + semi[0] + uniform(rng, 18.0, 30.0)),
            spine_y + uniform(rng, 0.0, 12.0),
            kidney_z[n],
        ];
        let tilt = uniform(rng, KIDNEY_TILT.0, KIDNEY_TILT.1);
        let angles = [0.0, -side * tilt, side * uniform(rng, 0.3, 0.6)];
        let cortex = Blob::new(centre, semi, angles, 0.12, rng);
        let medial: P3 = [-side * 0.25 * semi[0], 0.1 * semi[1], 0.0];
        let medulla = Blob::new(
            std::array::from_fn(|a| centre[a] + medial[a]),
            semi.map(|s| 0.55 * s),
            angles,
            0.25,
            rng,
        );
        let sinus = Blob::ellipsoid(
            [
                centre[0] - side * 0.75 * semi[0],
                centre[1] + 0.3 * semi[1],
                centre[2],
            ],
            [0.4 * semi[0], 0.35 * semi[1], 0.35 * semi[2]],
            angles,
        );
        kidney_regions.push(cortex.bbox());
        scene.paint(cortex, cortex_ids[n], free);
        scene.paint(medulla, medulla_ids[n], Mask::of(&[cortex_ids[n]]));
        scene.paint(sinus, visceral, Mask::of(&[cortex_ids[n], medulla_ids[n]]));
        // Renal vein to the IVC and artery from the aorta.
        let hilum = [
            centre[0] - side * 0.9 * semi[0],
            centre[1] + 0.2 * semi[1],
            centre[2],
        ];
        let ivc_at = [ivc_points[2][0], ivc_points[2][1], centre[2] + 5.0];
        let aorta_at = [aorta_points[2][0], aorta_points[2][1], centre[2] + 12.0];
        scene.paint(Capsule::new(hilum, ivc_at, 4.5, 5.5), vein, free);
        scene.paint(Capsule::new(hilum, aorta_at, 3.0, 3.5), aorta_id, free);
    }

    // Pancreas: head right of the midline beside the duodenum, neck and body in front of
    // the aorta, tail rising to the splenic hilum; painted before spleen and liver, which
    // wrap around it.
    let pancreas_id = scene.tissue(Class::Pancreas, labels.pancreas);
    let head = [
        uniform(rng, 20.0, 35.0),
        spine_y + uniform(rng, 45.0, 60.0),
        uniform(rng, -25.0, -5.0),
    ];
    let neck = [
        uniform(rng, -5.0, 10.0),
        spine_y + uniform(rng, 55.0, 70.0),
        head[2] + uniform(rng, 5.0, 15.0),
    ];
    let body = [
        -uniform(rng, 25.0, 40.0),
        spine_y + uniform(rng, 50.0, 65.0),
        neck[2] + uniform(rng, 0.0, 12.0),
    ];
    let tail = [
        -ac * uniform(rng, 0.5, 0.62),
        spine_y + uniform(rng, 20.0, 40.0),
        body[2] + uniform(rng, 5.0, 20.0),
    ];
    let pancreas_points = [head, neck, body, tail];
    let pancreas_radii = [
        uniform(rng, 15.0, 20.0),
        uniform(rng, 9.0, 12.0),
        uniform(rng, 10.0, 13.0),
        uniform(rng, 8.0, 11.0),
    ];
    let pancreas = Capsule::chain(&pancreas_points, &pancreas_radii);
    let pancreas_region = pancreas
        .iter()
        .map(Solid::bbox)
        .reduce(Aabb::union)
        .expect("the pancreas has segments");
    scene.paint_all(pancreas, pancreas_id, free);

    // Spleen: left, posterior and lateral, under the left dome, along the ribs.
    let spleen_id = scene.tissue(Class::Spleen, labels.spleen);
    let spleen = Blob::new(
        [
            -ac * uniform(rng, 0.58, 0.72),
            spine_y + uniform(rng, 5.0, 25.0),
            peaks[1] - uniform(rng, 45.0, 65.0),
        ],
        [
            uniform(rng, 18.0, 26.0),
            uniform(rng, 45.0, 60.0),
            uniform(rng, 40.0, 55.0),
        ],
        [uniform(rng, -0.2, 0.2), 0.0, uniform(rng, 0.35, 0.8)],
        0.2,
        rng,
    );
    scene.paint(spleen, spleen_id, free);

    // Liver: a right lobe filling the right upper abdomen, a left lobe crossing the
    // midline in front, sometimes a long inferior tip; portal and hepatic veins inside.
    let liver_id = scene.tissue(Class::Liver, labels.liver);
    let liver_vessel = scene.tissue(Class::LiverVessel, labels.liver);
    let small_tilt = |rng: &mut Rng| {
        [
            uniform(rng, -0.1, 0.1),
            uniform(rng, -0.1, 0.1),
            uniform(rng, -0.2, 0.2),
        ]
    };
    let mut lobes = vec![
        Blob::new(
            [
                ac * uniform(rng, 0.35, 0.5),
                bc * uniform(rng, -0.05, 0.15),
                right_peak - uniform(rng, 50.0, 65.0),
            ],
            [
                ac * uniform(rng, 0.45, 0.55),
                bc * uniform(rng, 0.75, 0.9),
                uniform(rng, 65.0, 85.0),
            ],
            small_tilt(rng),
            0.15,
            rng,
        ),
        Blob::new(
            [
                -ac * uniform(rng, 0.05, 0.25),
                bc * uniform(rng, 0.3, 0.45),
                right_peak - uniform(rng, 35.0, 55.0),
            ],
            [
                ac * uniform(rng, 0.35, 0.5),
                bc * uniform(rng, 0.25, 0.35),
                uniform(rng, 25.0, 40.0),
            ],
            small_tilt(rng),
            0.2,
            rng,
        ),
    ];
    if rng.random_bool(0.5) {
        lobes.push(Blob::new(
            [
                ac * uniform(rng, 0.5, 0.6),
                bc * uniform(rng, -0.1, 0.1),
                right_peak - uniform(rng, 110.0, 130.0),
            ],
            [
                uniform(rng, 30.0, 40.0),
                uniform(rng, 40.0, 55.0),
                uniform(rng, 35.0, 50.0),
            ],
            small_tilt(rng),
            0.2,
            rng,
        ));
    }
    let liver_region = lobes
        .iter()
        .map(Solid::bbox)
        .reduce(Aabb::union)
        .expect("the liver has lobes");
    let hilum = [ac * 0.25, bc * 0.05, right_peak - uniform(rng, 85.0, 100.0)];
    let lobe_centres: Vec<P3> = lobes.iter().map(Blob::centre).collect();
    scene.paint_all(lobes, liver_id, free);
    let in_liver = Mask::of(&[liver_id]);
    for target in &lobe_centres {
        for _ in 0..3 {
            let end: P3 = std::array::from_fn(|a| target[a] + uniform(rng, -30.0, 30.0));
            let mid = lerp(hilum, end, 0.5);
            scene.paint_all(
                Capsule::chain(&[hilum, mid, end], &[7.0, 4.5, 2.5]),
                liver_vessel,
                in_liver,
            );
        }
    }
    let ivc_top = [ivc_points[1][0], ivc_points[1][1], right_peak - 20.0];
    for toward in [[ac * 0.6, bc * 0.3], [0.0, bc * 0.6], [-ac * 0.3, bc * 0.5]] {
        let end = [toward[0], toward[1], right_peak - uniform(rng, 30.0, 60.0)];
        scene.paint(Capsule::new(ivc_top, end, 6.0, 2.5), liver_vessel, in_liver);
    }
    if rng.random_bool(0.8) {
        let bile = scene.tissue(Class::BowelFluid, 0);
        scene.paint(
            Blob::new(
                [
                    ac * uniform(rng, 0.2, 0.35),
                    bc * uniform(rng, 0.35, 0.5),
                    right_peak - uniform(rng, 100.0, 120.0),
                ],
                [
                    uniform(rng, 12.0, 17.0),
                    uniform(rng, 15.0, 20.0),
                    uniform(rng, 28.0, 40.0),
                ],
                [uniform(rng, -0.4, 0.4), 0.0, 0.0],
                0.1,
                rng,
            ),
            bile,
            Mask::of(&[liver_id, liver_vessel, visceral]),
        );
    }

    // Splenic vein behind the body and tail, portal vein up to the liver hilum, superior
    // mesenteric vein and artery down from the neck.
    let behind = |p: P3, r: f64| [p[0], p[1] - r - 4.0, p[2]];
    let splenic: Vec<P3> = (1..4)
        .map(|n| behind(pancreas_points[n], pancreas_radii[n]))
        .collect();
    scene.paint_all(Capsule::chain(&splenic, &[5.0, 4.5, 4.0]), vein, free);
    scene.paint(Capsule::new(splenic[0], hilum, 6.0, 7.0), vein, free);
    scene.paint(
        Capsule::new(splenic[0], [neck[0], neck[1] - 5.0, -130.0], 5.5, 4.0),
        vein,
        free,
    );
    let sma_start = [
        aorta_points[2][0],
        aorta_points[2][1] + aorta_r,
        neck[2] + 15.0,
    ];
    scene.paint(
        Capsule::new(sma_start, [neck[0] - 10.0, neck[1] - 8.0, -130.0], 3.5, 3.0),
        aorta_id,
        free,
    );

    // Stomach, colon and small bowel fill what is left.
    let ids = Gut {
        wall: scene.tissue(Class::BowelWall, 0),
        fluid: scene.tissue(Class::BowelFluid, 0),
        gas: scene.tissue(Class::Gas, 0),
        into: free,
    };
    let stomach = Blob::new(
        [
            -ac * uniform(rng, 0.25, 0.45),
            bc * uniform(rng, 0.2, 0.45),
            peaks[1] - uniform(rng, 40.0, 70.0),
        ],
        [
            uniform(rng, 35.0, 55.0),
            uniform(rng, 25.0, 40.0),
            uniform(rng, 40.0, 60.0),
        ],
        [0.0, uniform(rng, -0.4, 0.4), uniform(rng, -0.5, 0.5)],
        0.2,
        rng,
    );
    // Contents: fluid or food (soft-tissue density), with a gas cap above a level.
    let level = stomach.centre()[2] + uniform(rng, 0.0, 30.0);
    let lumen = stomach.shrunk(5.0);
    let content = if rng.random_bool(0.4) {
        scene.tissue(Class::BowelWall, 0)
    } else {
        ids.fluid
    };
    scene.paint(stomach, ids.wall, free);
    scene.paint(lumen.clone(), content, Mask::of(&[ids.wall]));
    scene.paint(
        CutZ {
            solid: lumen,
            level,
            above: true,
        },
        ids.gas,
        Mask::of(&[content]),
    );
    let mut jitter = |p: [f64; 3]| p.map(|v| v + uniform(rng, -12.0, 12.0));
    let colon_path = [
        jitter([ac * 0.6, 0.0, -130.0]),
        jitter([ac * 0.65, -bc * 0.05, -40.0]),
        jitter([ac * 0.5, bc * 0.35, -10.0]),
        jitter([0.0, bc * 0.6, -30.0]),
        jitter([-ac * 0.6, bc * 0.1, 25.0]),
        jitter([-ac * 0.7, -bc * 0.1, -40.0]),
        jitter([-ac * 0.65, -bc * 0.05, -150.0]),
    ];
    let colon_radii: Vec<f64> = (0..colon_path.len())
        .map(|_| uniform(rng, 16.0, 24.0))
        .collect();
    ids.paint(&mut scene, rng, &colon_path, &colon_radii, 4.0, [0.5, 0.35]);
    let loops = rng.random_range(6..12);
    for _ in 0..loops {
        let start = [
            ac * uniform(rng, -0.45, 0.45),
            uniform(rng, front_of_spine + 30.0, 0.75 * bc),
            uniform(rng, -150.0, -10.0),
        ];
        let path = random_walk(rng, start, 8, 22.0);
        let r = uniform(rng, 9.0, 14.0);
        ids.paint(
            &mut scene,
            rng,
            &path,
            &vec![r; path.len()],
            3.0,
            [0.2, 0.45],
        );
    }

    Abdomen {
        scene,
        liver: Organ {
            tissues: Mask::of(&[liver_id, liver_vessel]),
            class: Class::Liver,
            region: liver_region,
        },
        kidneys: std::array::from_fn(|n| Organ {
            tissues: Mask::of(&[cortex_ids[n], medulla_ids[n]]),
            class: Class::KidneyCortex,
            region: kidney_regions[n],
        }),
        pancreas: Organ {
            tissues: Mask::of(&[pancreas_id]),
            class: Class::Pancreas,
            region: pancreas_region,
        },
    }
}
