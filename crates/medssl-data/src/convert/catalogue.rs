//! What each dataset kind is (`medssl dataset list`): its modality, labels, the source
//! layout the converter expects and where the dataset is published.

use serde::Serialize;

/// One dataset kind `medssl dataset convert` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct KindInfo {
    /// The name on the command line.
    pub name: &'static str,
    pub title: &'static str,
    pub modality: &'static str,
    /// The labels, as the written dataset.json names them.
    pub labels: &'static str,
    /// The SOURCE folder the converter expects, as the dataset unpacks.
    pub source_layout: &'static str,
    /// The task folders written under OUT.
    pub tasks: &'static str,
    /// Where the dataset is published (registration may be needed).
    pub published: &'static str,
}

/// Every kind, in `dataset list` order.
pub const KINDS: [KindInfo; 10] = [
    KindInfo {
        name: "msd",
        title: "Medical Segmentation Decathlon task",
        modality: "CT or MRI, as the task's dataset.json states",
        labels: "as the task's dataset.json states",
        source_layout: "one task folder as unpacked (e.g. Task09_Spleen/ with dataset.json, \
                        imagesTr/, labelsTr/, imagesTs/)",
        tasks: "the task folder's name (e.g. Task09_Spleen)",
        published: "http://medicaldecathlon.com",
    },
    KindInfo {
        name: "btcv",
        title: "BTCV (Multi-Atlas Labeling Beyond the Cranial Vault, abdomen)",
        modality: "CT",
        labels: BTCV_LABELS_TEXT,
        source_layout: "RawData/Training/img/imgNNNN.nii.gz with \
                        RawData/Training/label/labelNNNN.nii.gz, and \
                        RawData/Testing/img/imgNNNN.nii.gz (SOURCE may also be RawData/ \
                        itself)",
        tasks: "BTCV",
        published: "https://www.synapse.org/Synapse:syn3193805",
    },
    KindInfo {
        name: "amos",
        title: "AMOS22",
        modality: "CT and MRI (case numbers below 500 are CT, 500 and above MRI)",
        labels: "spleen, right kidney, left kidney, gallbladder, esophagus, liver, \
                 stomach, aorta, inferior vena cava, pancreas, right adrenal gland, left \
                 adrenal gland, duodenum, bladder, prostate/uterus",
        source_layout: "amos22/ with imagesTr/amos_NNNN.nii.gz and labelsTr/, optionally \
                        imagesVa/ with labelsVa/ (converted as training cases) and imagesTs/",
        tasks: "AMOS22_CT and AMOS22_MRI",
        published: "https://amos22.grand-challenge.org (zenodo.org/records/7155725)",
    },
    KindInfo {
        name: "flare22",
        title: "FLARE22 (labelled training cases)",
        modality: "CT",
        labels: "liver, right kidney, spleen, pancreas, aorta, inferior vena cava, right \
                 adrenal gland, left adrenal gland, gallbladder, esophagus, stomach, \
                 duodenum, left kidney",
        source_layout: "Training/FLARE22_LabeledCase50/images/FLARE22_Tr_NNNN_0000.nii.gz \
                        with .../labels/FLARE22_Tr_NNNN.nii.gz (SOURCE may also be the \
                        FLARE22_LabeledCase50/ folder)",
        tasks: "FLARE22",
        published: "https://flare22.grand-challenge.org",
    },
    KindInfo {
        name: "kits23",
        title: "KiTS23",
        modality: "CT",
        labels: "kidney, tumor, cyst",
        source_layout: "the kits23 repository's dataset/case_NNNNN/imaging.nii.gz with \
                        segmentation.nii.gz (SOURCE may be the repository or its dataset/)",
        tasks: "KiTS23",
        published: "https://github.com/neheller/kits23",
    },
    KindInfo {
        name: "lits",
        title: "LiTS (Liver Tumor Segmentation Challenge)",
        modality: "CT",
        labels: "liver, tumor",
        source_layout: "volume-N.nii with segmentation-N.nii, and test-volume-N.nii, in \
                        SOURCE or its subfolders (\"Training Batch 1\", \"Training Batch 2\")",
        tasks: "LiTS",
        published: "https://competitions.codalab.org/competitions/17094",
    },
    KindInfo {
        name: "chaos",
        title: "CHAOS (Combined Healthy Abdominal Organ Segmentation)",
        modality: "CT (liver) and MRI T1-DUAL in/out phase and T2-SPIR (liver, kidneys, \
                   spleen)",
        labels: "CT: liver (ground truth pixels above 0); MRI: liver (63), right kidney \
                 (126), left kidney (189), spleen (252), with the organisers' bands \
                 55-70, 110-135, 175-200, 240-255",
        source_layout: "Train_Sets/ with CT/N/DICOM_anon/*.dcm and CT/N/Ground/*.png, \
                        MR/N/T1DUAL/DICOM_anon/{InPhase,OutPhase}/*.dcm with \
                        MR/N/T1DUAL/Ground/*.png, MR/N/T2SPIR/DICOM_anon/*.dcm with \
                        MR/N/T2SPIR/Ground/*.png; one PNG per DICOM slice, paired by \
                        name (MR) or by natural file order (CT)",
        tasks: "CHAOS_CT, CHAOS_MR_T1 (channels in phase, out of phase) and CHAOS_MR_T2",
        published: "https://chaos.grand-challenge.org (zenodo.org/records/3431873)",
    },
    KindInfo {
        name: "hanseg",
        title: "HaN-Seg (head and neck organs at risk)",
        modality: "CT (the MR images are not registered to it and are left out)",
        labels: "30 organs at risk (its files' names): A_Carotid_L, A_Carotid_R, \
                 Arytenoid, Bone_Mandible, Brainstem, BuccalMucosa, Cavity_Oral, Cochlea_L, \
                 Cochlea_R, Cricopharyngeus, Esophagus_S, Eye_AL, Eye_AR, Eye_PL, Eye_PR, \
                 Glnd_Lacrimal_L, Glnd_Lacrimal_R, Glnd_Submand_L, Glnd_Submand_R, \
                 Glnd_Thyroid, Glottis, Larynx_SG, Lips, OpticChiasm, OpticNrv_L, \
                 OpticNrv_R, Parotid_L, Parotid_R, Pituitary, SpinalCord",
        source_layout: "set_1/case_NN/case_NN_IMG_CT.nrrd with one \
                        case_NN_OAR_<structure>.seg.nrrd per structure (case_NN folders \
                        may also lie in SOURCE itself)",
        tasks: "HaN-Seg",
        published: "https://han-seg2023.grand-challenge.org (zenodo.org/records/7442914)",
    },
    KindInfo {
        name: "totalsegmentator",
        title: "TotalSegmentator CT",
        modality: "CT",
        labels: "a chosen subset of its structures (--structures; default the thirteen \
                 BTCV organs: spleen, kidney_right, kidney_left, gallbladder, esophagus, \
                 liver, stomach, aorta, inferior_vena_cava, portal_vein_and_splenic_vein, \
                 pancreas, adrenal_gland_right, adrenal_gland_left), merged into one label \
                 map",
        source_layout: "sNNNN/ct.nii.gz with sNNNN/segmentations/<structure>.nii.gz",
        tasks: "TotalSegmentator",
        published: "https://zenodo.org/records/10047292",
    },
    KindInfo {
        name: "brats",
        title: "BraTS adult glioma (2021 and 2023 naming)",
        modality: "MRI: FLAIR, T1, T1 contrast-enhanced, T2 as four channels",
        labels: "necrotic tumor core, peritumoral edema, enhancing tumor (BraTS 2021's \
                 value 4 becomes 3)",
        source_layout: "case folders BraTS2021_NNNNN/BraTS2021_NNNNN_{flair,t1,t1ce,t2,seg}\
                        .nii.gz or BraTS-GLI-NNNNN-NNN/BraTS-GLI-NNNNN-NNN-{t2f,t1n,t1c,t2w,\
                        seg}.nii.gz in SOURCE or one folder below; cases without seg become \
                        test cases",
        tasks: "BraTS",
        published: "https://www.synapse.org/brats",
    },
];

/// The kinds' names, in `dataset list` order.
pub const KIND_NAMES: [&str; 10] = [
    "msd",
    "btcv",
    "amos",
    "flare22",
    "kits23",
    "lits",
    "chaos",
    "hanseg",
    "totalsegmentator",
    "brats",
];

/// The kind called `name`.
pub fn info(name: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.name == name)
}

/// The catalogue entry of a kind the converters name themselves.
pub(super) fn known(name: &str) -> &'static KindInfo {
    info(name).expect("a catalogue kind")
}

/// BTCV's thirteen organs by label value, background first.
pub(super) const BTCV_LABELS: [&str; 14] = [
    "background",
    "spleen",
    "right kidney",
    "left kidney",
    "gallbladder",
    "esophagus",
    "liver",
    "stomach",
    "aorta",
    "inferior vena cava",
    "portal vein and splenic vein",
    "pancreas",
    "right adrenal gland",
    "left adrenal gland",
];

const BTCV_LABELS_TEXT: &str = "spleen, right kidney, left kidney, gallbladder, \
                                esophagus, liver, stomach, aorta, inferior vena cava, \
                                portal vein and splenic vein, pancreas, right adrenal \
                                gland, left adrenal gland";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_list_every_kind_once_in_order() {
        let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        assert_eq!(names, KIND_NAMES);
        assert_eq!(BTCV_LABELS[1..].join(", "), BTCV_LABELS_TEXT);
    }
}
