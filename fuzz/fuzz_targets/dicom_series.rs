#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = medssl_fuzz::dicom_series(data);
});
