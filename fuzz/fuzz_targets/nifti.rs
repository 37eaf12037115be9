#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = medssl_fuzz::nifti(data);
});
