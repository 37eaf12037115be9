"""Writes the IO benchmark inputs: a ~300 MB .nii.gz and a 512x512x300 CT series."""
import os
import sys

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)

nii = os.path.join(out, "large_ct.nii.gz")
if not os.path.exists(nii):
    shape = (512, 512, 300)
    z = np.linspace(-1, 1, shape[2], dtype=np.float32)
    y, x = np.meshgrid(np.linspace(-1, 1, shape[1]), np.linspace(-1, 1, shape[0]), indexing="ij")
    body = ((x.T ** 2 + y.T ** 2) < 0.8).astype(np.float32)
    vol = np.empty(shape, dtype=np.float32)
    for k in range(shape[2]):
        vol[:, :, k] = -1000 + 1040 * body + 40 * np.sin(6 * z[k]) + rng.normal(0, 30, shape[:2]).astype(np.float32)
    affine = np.diag([0.8, 0.8, 1.5, 1.0])
    nib.save(nib.Nifti1Image(vol, affine), nii)

series = os.path.join(out, "ct_series_512")
if not os.path.isdir(series):
    os.makedirs(series)
    uid, study = generate_uid(), generate_uid()
    rows = cols = 512
    for k in range(300):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.SeriesInstanceUID = uid
        ds.StudyInstanceUID = study
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-200.0, -200.0, -300.0 + 1.25 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.78125, 0.78125]
        ds.SliceThickness = 1.25
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope = 1
        ds.RescaleIntercept = -1024
        pixels = (1024 + rng.normal(0, 200, (rows, cols))).clip(0, 4000).astype(np.int16)
        ds.PixelData = pixels.tobytes()
        ds.save_as(os.path.join(series, f"{rng.integers(1e9):09d}"), enforce_file_format=True)
print("data in", out)
