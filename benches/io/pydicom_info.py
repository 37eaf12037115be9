"""What `medssl info` computes on a series, done with pydicom: read every file, sort
along the slice normal, stack, apply the modality LUT, statistics."""
import os
import sys

import numpy as np
import pydicom

d = sys.argv[1]
slices = [pydicom.dcmread(os.path.join(d, f)) for f in os.listdir(d)]
iop = np.array(slices[0].ImageOrientationPatient, dtype=float)
normal = np.cross(iop[:3], iop[3:])
slices.sort(key=lambda s: float(np.dot(normal, np.array(s.ImagePositionPatient, dtype=float))))
vol = np.stack([s.pixel_array for s in slices]).astype(np.float64)
vol = vol * float(slices[0].RescaleSlope) + float(slices[0].RescaleIntercept)
print(vol.shape, vol.min(), vol.max(), vol.mean(), vol.sum())
