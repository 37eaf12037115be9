//! Tissue classes and what each looks like in CT (Hounsfield units) and in T1- and
//! T2-weighted MRI (arbitrary units, about 0-1000).
//!
//! CT values follow published attenuation ranges: air -1000, lung about -850, fat about
//! -100, muscle about 50, unenhanced liver about 60, spleen about 50, pancreas about
//! 40, cortical bone 700-1000, cancellous bone 200-300; enhancing tissues (kidney,
//! aorta, veins, heart) are given in an arterial / corticomedullary phase whose
//! strength varies per case. Liver, spleen, pancreas, muscle and bowel wall lie within
//! about 20 HU of each other, so intensity alone cannot separate them.
//!
//! MRI values follow the usual relative signal: on T1, fat bright, pancreas brighter
//! than liver, spleen darker, fluid dark; on T2 (fat-suppressed), fluid bright, spleen
//! and kidney brighter than liver, fat dark; flowing blood dark on both.

/// A tissue class: what a voxel is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Air,
    /// Gas inside the bowel, stomach and airways.
    Gas,
    Lung,
    Fat,
    Muscle,
    CorticalBone,
    /// Cancellous bone and marrow.
    Marrow,
    Teeth,
    Disc,
    Csf,
    Liver,
    LiverVessel,
    Spleen,
    KidneyCortex,
    KidneyMedulla,
    Pancreas,
    /// Arterial blood: aorta, carotids, left heart.
    Artery,
    /// Venous blood: IVC, portal and splenic veins, jugulars.
    Vein,
    BowelWall,
    BowelFluid,
    /// Brain parenchyma (grey and white matter mixed).
    Brain,
    /// Compact white matter: brainstem, spinal cord, optic nerves, chiasm.
    WhiteMatter,
    Parotid,
    /// Submandibular and other enhancing glands.
    Gland,
    Vitreous,
}

/// How a class looks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Look {
    /// CT: HU without contrast.
    pub hu: f32,
    /// CT: HU added by contrast at the case's phase strength 1.
    pub enhancement: f32,
    /// CT: standard deviation of the class mean between cases (HU).
    pub spread: f32,
    /// CT: amplitude of the smooth within-organ texture (HU).
    pub texture: f32,
    /// MRI T1-weighted signal.
    pub t1: f32,
    /// MRI T2-weighted (fat-suppressed) signal.
    pub t2: f32,
}

const fn look(hu: f32, enhancement: f32, spread: f32, texture: f32, t1: f32, t2: f32) -> Look {
    Look {
        hu,
        enhancement,
        spread,
        texture,
        t1,
        t2,
    }
}

impl Class {
    /// Every class, in a fixed order (the index of the per-case mean tables).
    pub const ALL: [Class; 25] = [
        Class::Air,
        Class::Gas,
        Class::Lung,
        Class::Fat,
        Class::Muscle,
        Class::CorticalBone,
        Class::Marrow,
        Class::Teeth,
        Class::Disc,
        Class::Csf,
        Class::Liver,
        Class::LiverVessel,
        Class::Spleen,
        Class::KidneyCortex,
        Class::KidneyMedulla,
        Class::Pancreas,
        Class::Artery,
        Class::Vein,
        Class::BowelWall,
        Class::BowelFluid,
        Class::Brain,
        Class::WhiteMatter,
        Class::Parotid,
        Class::Gland,
        Class::Vitreous,
    ];

    /// Position in [`Class::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The class's appearance.
    pub fn look(self) -> Look {
        match self {
            Class::Air => look(-1000.0, 0.0, 0.0, 0.0, 0.0, 0.0),
            Class::Gas => look(-950.0, 0.0, 15.0, 20.0, 5.0, 5.0),
            Class::Lung => look(-860.0, 0.0, 25.0, 30.0, 30.0, 30.0),
            Class::Fat => look(-100.0, 0.0, 8.0, 8.0, 900.0, 170.0),
            Class::Muscle => look(50.0, 0.0, 3.0, 10.0, 440.0, 235.0),
            Class::CorticalBone => look(850.0, 0.0, 100.0, 80.0, 30.0, 30.0),
            Class::Marrow => look(250.0, 0.0, 50.0, 40.0, 600.0, 220.0),
            Class::Teeth => look(1800.0, 0.0, 200.0, 100.0, 10.0, 10.0),
            Class::Disc => look(80.0, 0.0, 8.0, 6.0, 280.0, 650.0),
            Class::Csf => look(10.0, 0.0, 4.0, 3.0, 120.0, 1000.0),
            Class::Liver => look(58.0, 0.0, 4.0, 14.0, 480.0, 260.0),
            Class::LiverVessel => look(40.0, 60.0, 10.0, 6.0, 150.0, 120.0),
            Class::Spleen => look(50.0, 0.0, 5.0, 6.0, 360.0, 460.0),
            Class::KidneyCortex => look(40.0, 130.0, 10.0, 8.0, 420.0, 500.0),
            Class::KidneyMedulla => look(35.0, 80.0, 10.0, 8.0, 300.0, 640.0),
            Class::Pancreas => look(42.0, 0.0, 6.0, 8.0, 560.0, 300.0),
            Class::Artery => look(40.0, 145.0, 15.0, 5.0, 120.0, 60.0),
            Class::Vein => look(40.0, 60.0, 10.0, 5.0, 160.0, 90.0),
            Class::BowelWall => look(45.0, 10.0, 6.0, 10.0, 420.0, 420.0),
            Class::BowelFluid => look(15.0, 0.0, 8.0, 10.0, 110.0, 900.0),
            Class::Brain => look(36.0, 0.0, 3.0, 4.0, 450.0, 550.0),
            Class::WhiteMatter => look(30.0, 0.0, 3.0, 3.0, 520.0, 420.0),
            Class::Parotid => look(15.0, 0.0, 12.0, 8.0, 650.0, 450.0),
            Class::Gland => look(45.0, 20.0, 6.0, 6.0, 400.0, 400.0),
            Class::Vitreous => look(8.0, 0.0, 3.0, 3.0, 100.0, 950.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_the_position_in_all() {
        for (i, c) in Class::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
    }
}
