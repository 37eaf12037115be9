//! Block-wise random masking on the token grid (SimMIM/SMIT/iBOT), as token and voxel masks.
