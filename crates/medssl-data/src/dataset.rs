//! Labelled tasks in the Medical Segmentation Decathlon / nnU-Net layout (`dataset.json`, `imagesTr`, `labelsTr`, `imagesTs`), checked on load.
