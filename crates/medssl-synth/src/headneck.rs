//! The head-and-neck generator (`headneck-ct`): small organs at risk of radiotherapy
//! inside a head and neck outline.
//!
//! Landmarks (RAS+ mm before a per-case scale of 0.9-1.1 and a few mm of jitter): eyes
//! at z = 48 on either side in front; optic nerves run back and inward through the
//! orbital fat to the chiasm above the pituitary at the midline; the brainstem descends
//! from the midbrain behind the chiasm to the foramen magnum at z = 2, where the spinal
//! cord continues down the canal of the cervical spine; the mandible's body arches
//! around the front at z = -35 to -55 and its rami rise to the jaw joints in front of
//! the ears; the parotids lie behind the rami. Around them: skull, brain with
//! ventricles and cisterns, skull base, orbits and extraocular muscles, nasal cavity
//! and airway, maxilla and teeth, neck muscles, carotids and jugulars, submandibular
//! glands and thyroid. The labelled structures have the intensity of their
//! surroundings (white matter in brain, gland in muscle and fat, bone among bones).

use rand::RngExt;

use super::scene::{Mask, Scene};
use super::shapes::{Aabb, Blob, Capsule, Cylinder, P3, Solid};
use super::tissue::Class;
use medssl_data::rng::Rng;

/// Label values (see [`super::Kind::labels`]).
const BRAINSTEM: u8 = 1;
const PAROTID: [u8; 2] = [2, 3];
const MANDIBLE: u8 = 4;
const SPINAL_CORD: u8 = 5;
const OPTIC_NERVE: [u8; 2] = [6, 7];
const CHIASM: u8 = 8;

/// Patient left and right: x signs in RAS+, in label order (left first).
const SIDES: [f64; 2] = [-1.0, 1.0];

/// The part of a solid above (or below) the skull base, a surface that rises from the
/// posterior fossa (z = `low`) to the anterior fossa (z = `high`) around y = `mid`.
struct SkullBase {
    solid: Blob,
    low: f64,
    high: f64,
    mid: f64,
    above: bool,
}

impl SkullBase {
    fn height(&self, y: f64) -> f64 {
        let t = ((y - self.mid) / 15.0).tanh();
        self.low + 0.5 * (self.high - self.low) * (1.0 + t)
    }
}

impl Solid for SkullBase {
    fn contains(&self, p: P3) -> bool {
        (p[2] > self.height(p[1])) == self.above && self.solid.contains(p)
    }

    fn bbox(&self) -> Aabb {
        let mut b = self.solid.bbox();
        if self.above {
            b.lo[2] = b.lo[2].max(self.low);
        } else {
            b.hi[2] = b.hi[2].min(self.high);
        }
        b
    }
}

/// One random head and neck.
pub(crate) fn scene(rng: &mut Rng) -> Scene {
    let s = rng.random_range(0.9..1.1);
    // A landmark scaled to this patient and moved by up to `mm` along each axis.
    let jitter = |rng: &mut Rng, p: P3, mm: f64| p.map(|v| v * s + rng.random_range(-mm..=mm));
    let mut scene = Scene::new();
    let fat = scene.tissue(Class::Fat, 0);
    let muscle = scene.tissue(Class::Muscle, 0);
    let bone = scene.tissue(Class::CorticalBone, 0);
    let brain = scene.tissue(Class::Brain, 0);
    let csf = scene.tissue(Class::Csf, 0);
    let white = scene.tissue(Class::WhiteMatter, 0);
    let air = scene.tissue(Class::Gas, 0);
    let gland = scene.tissue(Class::Gland, 0);
    let marrow = scene.tissue(Class::Marrow, 0);
    let teeth = scene.tissue(Class::Teeth, 0);
    let outside = Mask::of(&[Scene::AIR]);
    let soft = Mask::of(&[fat, muscle]);

    // Outline: cranium, face and neck, with fat under the skin and muscle inside.
    let cranium = Blob::new(
        jitter(rng, [0.0, -15.0, 50.0], 3.0),
        [72.0 * s, 92.0 * s, 75.0 * s],
        [0.0; 3],
        0.04,
        rng,
    );
    let face = Blob::new(
        jitter(rng, [0.0, 45.0, 5.0], 3.0),
        [62.0 * s, 50.0 * s, 65.0 * s],
        [0.0; 3],
        0.06,
        rng,
    );
    let neck_radii = [
        55.0 * s + rng.random_range(-5.0..5.0),
        60.0 * s + rng.random_range(-5.0..5.0),
    ];
    let neck = Cylinder {
        centre: [0.0, 0.0],
        radii: neck_radii,
        z: [-1e4, 10.0 * s],
    };
    scene.paint(cranium.clone(), fat, outside);
    scene.paint(face.clone(), fat, outside);
    scene.paint(neck, fat, outside);
    scene.paint(face.shrunk(8.0), muscle, Mask::of(&[fat]));
    scene.paint(
        Cylinder {
            radii: neck_radii.map(|r| r - 8.0),
            z: [-1e4, 0.0],
            ..neck
        },
        muscle,
        Mask::of(&[fat]),
    );

    // Skull and brain above the skull base (a 14 mm plate of bone at the base), neck
    // muscle behind and below it.
    let base = |solid: Blob, lower: f64, above| SkullBase {
        solid,
        low: 7.0 * s - lower,
        high: 37.0 * s - lower,
        mid: 5.0 * s,
        above,
    };
    scene.paint(base(cranium.shrunk(4.0), 14.0, true), bone, soft);
    scene.paint(
        base(cranium.shrunk(10.0), 0.0, true),
        brain,
        Mask::of(&[bone]),
    );
    scene.paint(
        base(cranium.shrunk(8.0), 14.0, false),
        muscle,
        Mask::of(&[fat]),
    );
    for side in SIDES {
        let ventricle = Blob::new(
            jitter(rng, [side * 14.0, -10.0, 78.0], 2.0),
            [6.0, 26.0, 9.0],
            [0.0; 3],
            0.2,
            rng,
        );
        scene.paint(ventricle, csf, Mask::of(&[brain]));
    }

    // Orbits, eyes, extraocular muscles.
    let orbit_fat = scene.tissue(Class::Fat, 0);
    let vitreous = scene.tissue(Class::Vitreous, 0);
    let any_inside = Mask::of(&[fat, muscle, bone, brain, marrow]);
    let mut globe_backs = [[0.0; 3]; 2];
    for (n, side) in SIDES.into_iter().enumerate() {
        let eye = jitter(rng, [side * 32.0, 62.0, 48.0], 2.0);
        let radius = 12.0 * s;
        scene.paint(
            Blob::ellipsoid(
                [eye[0] - side * 2.0, eye[1] - 14.0, eye[2]],
                [18.0 * s, 28.0 * s, 17.0 * s],
                [0.0; 3],
            ),
            orbit_fat,
            any_inside,
        );
        scene.paint(
            Capsule::new(eye, eye, radius, radius),
            vitreous,
            Mask::of(&[orbit_fat, fat, muscle, bone]),
        );
        let apex = [side * 18.0 * s, eye[1] - 36.0 * s, eye[2] + 1.0];
        for (dx, dz) in [(8.0, 0.0), (-8.0, 0.0), (0.0, 8.0), (0.0, -8.0)] {
            let end = [eye[0] + dx * s, eye[1] - 8.0 * s, eye[2] + dz * s];
            scene.paint(
                Capsule::new(apex, end, 2.0, 3.0),
                muscle,
                Mask::of(&[orbit_fat]),
            );
        }
        globe_backs[n] = [eye[0] - side * 1.0, eye[1] - radius + 1.0, eye[2]];
    }

    // Chiasm in the suprasellar cistern above the pituitary; optic nerves from the eyes;
    // optic tracts behind.
    let chiasm_at = jitter(rng, [0.0, 10.0, 52.0], 2.0);
    scene.paint(
        Blob::ellipsoid(
            [chiasm_at[0], chiasm_at[1] - 2.0, chiasm_at[2] - 2.0],
            [14.0 * s, 12.0 * s, 8.0 * s],
            [0.0; 3],
        ),
        csf,
        Mask::of(&[brain, bone, muscle]),
    );
    scene.paint(
        Blob::ellipsoid(
            [chiasm_at[0], chiasm_at[1] - 2.0, chiasm_at[2] - 14.0 * s],
            [6.0, 5.0, 4.0],
            [0.0; 3],
        ),
        gland,
        Mask::of(&[bone, muscle, csf]),
    );
    let chiasm = scene.tissue(Class::WhiteMatter, CHIASM);
    let half_width = rng.random_range(6.5..8.5);
    scene.paint(
        Blob::new(
            chiasm_at,
            [half_width * s, 4.5 * s, rng.random_range(2.4..3.0)],
            [0.0; 3],
            0.1,
            rng,
        ),
        chiasm,
        Mask::of(&[csf, brain]),
    );
    let nerve_into = Mask::of(&[orbit_fat, muscle, bone, brain, csf, fat, marrow]);
    for (n, side) in SIDES.into_iter().enumerate() {
        let nerve = scene.tissue(Class::WhiteMatter, OPTIC_NERVE[n]);
        let back = globe_backs[n];
        let apex = [side * 18.0 * s, back[1] - 24.0 * s, back[2] + 1.0];
        let end = [
            chiasm_at[0] + side * 0.8 * half_width * s,
            chiasm_at[1] + 2.0,
            chiasm_at[2],
        ];
        let r = rng.random_range(2.2..2.8);
        scene.paint_all(
            Capsule::chain(&[back, apex, end], &[r, r, r * 0.9]),
            nerve,
            nerve_into,
        );
        let tract_end = [side * 22.0 * s, chiasm_at[1] - 18.0 * s, chiasm_at[2] + 2.0];
        scene.paint(
            Capsule::new(
                [chiasm_at[0] + side * 5.0, chiasm_at[1] - 3.0, chiasm_at[2]],
                tract_end,
                2.5,
                2.5,
            ),
            white,
            Mask::of(&[brain, csf]),
        );
    }

    // Brainstem in front of the cerebellum with the prepontine cistern; spinal cord in
    // the canal below the foramen magnum.
    let stem_points = [
        jitter(rng, [0.0, -12.0, 52.0], 2.0),
        jitter(rng, [0.0, -12.0, 30.0], 2.0),
        jitter(rng, [0.0, -22.0, 12.0], 2.0),
        [0.0, -26.0 * s, 2.0 * s],
    ];
    let stem_radii = [11.0, 13.5, 9.5, 7.5].map(|r| r * s);
    let cistern: Vec<P3> = stem_points
        .iter()
        .map(|p| [p[0], p[1] + 5.0, p[2]])
        .collect();
    scene.paint_all(
        Capsule::chain(&cistern, &stem_radii.map(|r| r + 3.0)),
        csf,
        Mask::of(&[brain, bone, muscle]),
    );
    let brainstem = scene.tissue(Class::WhiteMatter, BRAINSTEM);
    scene.paint_all(
        Capsule::chain(&stem_points, &stem_radii),
        brainstem,
        Mask::of(&[brain, csf, bone, muscle]),
    );
    let canal = [
        [0.0, -26.0 * s, 4.0 * s],
        jitter(rng, [0.0, -22.0, -60.0], 3.0),
        jitter(rng, [0.0, -18.0, -210.0], 3.0),
    ];
    let spine_front = |z: f64| {
        let t = ((z - canal[1][2]) / (canal[2][2] - canal[1][2])).clamp(0.0, 1.0);
        canal[1][1] + t * (canal[2][1] - canal[1][1])
    };

    // Cervical vertebrae: bodies in front of the canal, arches, processes.
    let level = 17.0 * s;
    let mut z = -5.0 * s;
    while z > -260.0 {
        let y = spine_front(z);
        let body_z = [z - level + 4.0, z];
        scene.paint(
            Cylinder {
                centre: [0.0, y + 19.0],
                radii: [13.0 * s, 10.0 * s],
                z: body_z,
            },
            bone,
            soft,
        );
        scene.paint(
            Cylinder {
                centre: [0.0, y + 19.0],
                radii: [10.0 * s, 7.0 * s],
                z: body_z,
            },
            marrow,
            Mask::of(&[bone]),
        );
        let mid = z - 0.5 * level;
        let arch = [
            Capsule::new([0.0, y, mid], [0.0, y, mid], 13.0, 13.0),
            Capsule::new([0.0, y - 10.0, mid], [0.0, y - 32.0, mid - 8.0], 4.0, 3.5),
            Capsule::new(
                [-25.0 * s, y + 8.0, mid],
                [25.0 * s, y + 8.0, mid],
                4.0,
                4.0,
            ),
        ];
        scene.paint_all(arch, bone, soft);
        z -= level;
    }
    scene.paint_all(
        Capsule::chain(&canal, &[8.5, 8.0, 7.5]),
        csf,
        Mask::of(&[bone, marrow, muscle, fat, brain]),
    );
    let cord = scene.tissue(Class::WhiteMatter, SPINAL_CORD);
    let cord_r = rng.random_range(4.5..5.5);
    scene.paint_all(Capsule::chain(&canal, &[cord_r; 3]), cord, Mask::of(&[csf]));

    // Airway: nasal cavity, pharynx, larynx and trachea.
    let air_into = Mask::of(&[fat, muscle, bone, marrow]);
    scene.paint(
        Blob::new(
            jitter(rng, [0.0, 62.0, 25.0], 2.0),
            [14.0 * s, 28.0 * s, 18.0 * s],
            [0.0; 3],
            0.15,
            rng,
        ),
        air,
        air_into,
    );
    let airway = [
        jitter(rng, [0.0, 35.0, 22.0], 2.0),
        jitter(rng, [0.0, 18.0, 5.0], 2.0),
        jitter(rng, [0.0, 20.0, -30.0], 3.0),
        jitter(rng, [0.0, 28.0, -60.0], 3.0),
        jitter(rng, [0.0, 35.0, -120.0], 3.0),
    ];
    let airway_r: Vec<f64> = (0..5).map(|_| rng.random_range(7.0..10.0) * s).collect();
    scene.paint_all(Capsule::chain(&airway, &airway_r), air, air_into);

    // Maxilla, hard palate and upper teeth.
    let upper_arch = [
        [-30.0, 38.0, 2.0],
        [-26.0, 66.0, 2.0],
        [0.0, 80.0, 2.0],
        [26.0, 66.0, 2.0],
        [30.0, 38.0, 2.0],
    ]
    .map(|p| jitter(rng, p, 2.0));
    scene.paint_all(Capsule::chain(&upper_arch, &[6.0; 5]), bone, soft);
    scene.paint(
        Blob::ellipsoid(
            [0.0, 58.0 * s, 6.0 * s],
            [24.0 * s, 24.0 * s, 3.0],
            [0.0; 3],
        ),
        bone,
        soft.or(Mask::of(&[air])),
    );
    let upper_teeth: Vec<P3> = upper_arch
        .iter()
        .map(|p| [p[0], p[1], p[2] - 8.0])
        .collect();
    scene.paint_all(Capsule::chain(&upper_teeth, &[4.5; 5]), teeth, soft);

    // Parotids behind the rami, painted before the mandible so the bone cuts them.
    let mut parotids = [0; 2];
    for (n, side) in SIDES.into_iter().enumerate() {
        let parotid = scene.tissue(Class::Parotid, PAROTID[n]);
        parotids[n] = parotid;
        let blob = Blob::new(
            jitter(rng, [side * 47.0, -8.0, -8.0], 3.0),
            [
                rng.random_range(9.0..13.0) * s,
                rng.random_range(14.0..19.0) * s,
                rng.random_range(18.0..25.0) * s,
            ],
            [
                rng.random_range(-0.2..0.2),
                0.0,
                side * rng.random_range(0.0..0.3),
            ],
            0.25,
            rng,
        );
        // Over the lowest, most lateral part of the skull outline too (the mastoid).
        scene.paint(blob, parotid, soft.or(Mask::of(&[bone])));
    }

    // Mandible: body arch, rami up to the condyles, coronoid processes; marrow core
    // (labelled too); lower teeth on top (not labelled).
    let mandible = scene.tissue(Class::CorticalBone, MANDIBLE);
    let mandible_marrow = scene.tissue(Class::Marrow, MANDIBLE);
    let angle_z = -35.0;
    let chin_drop = rng.random_range(-5.0..5.0);
    let arch: Vec<P3> = [
        [-46.0, 5.0, angle_z],
        [-38.0, 40.0, -45.0],
        [-20.0, 70.0, -52.0],
        [0.0, 82.0, -55.0],
        [20.0, 70.0, -52.0],
        [38.0, 40.0, -45.0],
        [46.0, 5.0, angle_z],
    ]
    .iter()
    .map(|&p| {
        let q = jitter(rng, p, 2.0);
        [q[0], q[1], q[2] + chin_drop * (p[1] / 82.0)]
    })
    .collect();
    let thickness = rng.random_range(6.0..7.5);
    let upper: Vec<P3> = arch.iter().map(|p| [p[0], p[1], p[2] + 9.0 * s]).collect();
    let mut bones: Vec<Capsule> = Capsule::chain(&arch, &[thickness; 7]);
    bones.extend(Capsule::chain(&upper, &[thickness * 0.85; 7]));
    for (n, side) in SIDES.into_iter().enumerate() {
        let angle = if n == 0 { arch[0] } else { arch[6] };
        let condyle = jitter(rng, [side * 50.0, -2.0, 18.0], 2.0);
        bones.push(Capsule::new(angle, condyle, 6.5, 5.5));
        bones.push(Capsule::new(condyle, condyle, 7.0, 7.0));
        bones.push(Capsule::new(
            [angle[0] - side * 2.0, angle[1] + 10.0, angle[2] + 20.0],
            jitter(rng, [side * 42.0, 25.0, 8.0], 2.0),
            4.5,
            3.5,
        ));
    }
    let into = Mask::of(&[fat, muscle, air, gland, parotids[0], parotids[1]]);
    scene.paint_all(bones.iter().copied(), mandible, into);
    scene.paint_all(
        bones.iter().map(|c| c.grown(-3.0)),
        mandible_marrow,
        Mask::of(&[mandible]),
    );
    let lower_teeth: Vec<P3> = upper.iter().map(|p| [p[0], p[1], p[2] + 8.0]).collect();
    scene.paint_all(
        Capsule::chain(&lower_teeth[1..6], &[4.5; 5]),
        teeth,
        Mask::of(&[fat, muscle, air]),
    );

    // Neck muscles, vessels and glands.
    for side in SIDES {
        scene.paint(
            Capsule::new(
                jitter(rng, [side * 52.0, -20.0, 0.0], 3.0),
                jitter(rng, [side * 25.0, 35.0, -110.0], 3.0),
                9.0,
                8.0,
            ),
            muscle,
            Mask::of(&[fat]),
        );
        scene.paint(
            Capsule::new(
                jitter(rng, [side * 54.0, 10.0, 10.0], 2.0),
                jitter(rng, [side * 52.0, 12.0, -35.0], 2.0),
                7.0,
                6.0,
            ),
            muscle,
            Mask::of(&[fat]),
        );
        let artery = scene.tissue(Class::Artery, 0);
        let vein = scene.tissue(Class::Vein, 0);
        scene.paint(
            Capsule::new(
                [side * 22.0 * s, 8.0 * s, -200.0],
                jitter(rng, [side * 24.0, 10.0, 5.0], 2.0),
                3.5,
                3.0,
            ),
            artery,
            soft,
        );
        scene.paint(
            Capsule::new(
                [side * 30.0 * s, -2.0 * s, -200.0],
                jitter(rng, [side * 34.0, -6.0, 5.0], 2.0),
                5.5,
                4.5,
            ),
            vein,
            soft,
        );
        let submandibular = Blob::new(
            jitter(rng, [side * 30.0, 30.0, -52.0], 2.0),
            [12.0 * s, 15.0 * s, 10.0 * s],
            [0.0; 3],
            0.2,
            rng,
        );
        scene.paint(submandibular, gland, soft);
        let thyroid = Blob::new(
            jitter(rng, [side * 15.0, 32.0, -95.0], 2.0),
            [9.0 * s, 10.0 * s, 20.0 * s],
            [0.0; 3],
            0.2,
            rng,
        );
        scene.paint(thyroid, gland, soft);
    }
    scene
}
