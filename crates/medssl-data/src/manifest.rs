//! Unlabelled pretraining collections (directory trees of NIfTI files and DICOM series, or list files) and their manifest cache.
