//! Self-supervised inputs: several augmented views of one volume (SimCLR/MoCo/DINO), multi-crop (DINO/iBOT), SMIT's nested crops, rotation labels, in-painting corruption and CPC grids.
