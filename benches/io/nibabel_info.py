"""What `medssl info` computes, done with nibabel: load, scale to float64, statistics."""
import sys

import nibabel as nib
import numpy as np

img = nib.load(sys.argv[1])
data = img.get_fdata(dtype=np.float64)
print(data.shape, data.min(), data.max(), data.mean(), data.sum())
