//! What each fuzz target does with one input, shared by the libFuzzer binaries in
//! `fuzz_targets/` and by the replay of `fuzz/regressions/` in the test suite.
//!
//! Every target writes the input where medssl would meet it (a file in a scratch
//! directory, named as users name such files) and runs the same code a command runs on
//! it. A target returns `Err` with the error's text when medssl rejects the input; the
//! fuzzer only cares that it returns at all, in bounded time and memory, without a
//! panic. The replay also checks that each rejection names the file it was about.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burn::tensor::Device;
use medssl_data::dataset::Task;
use medssl_io::nifti::{OutputType, write_volume};
use medssl_io::{ReadOptions, Volume};
use medssl_model::foreign::{Checkpoint, infer_architecture};
use medssl_model::weights::load_monai_safetensors;
use medssl_model::{SwinUnetr, SwinUnetrConfig};
use medssl_ssl::Preset;
use medssl_train::finetune::config::FinetuneConfig;
use medssl_train::pretrain::config::PretrainConfig;

/// The outcome of one input: `Err` holds the error message medssl gave.
pub type Outcome = Result<(), String>;

/// A target: one input in, medssl's verdict out.
pub type Target = fn(&[u8]) -> Outcome;

/// Every target by name (the `fuzz_targets/*.rs` binary and `regressions/` folder).
pub const TARGETS: [(&str, Target); 6] = [
    ("nifti", nifti),
    ("dicom_file", dicom_file),
    ("dicom_series", dicom_series),
    ("dataset_json", dataset_json),
    ("config_toml", config_toml),
    ("checkpoint", checkpoint),
];

/// Separates the files of one `dicom_series` input (listed in `fuzz/dicom.dict` so the
/// fuzzer splices it in).
pub const FILE_SEPARATOR: &[u8] = b"--medssl-fuzz-next-file--";

/// The scratch directory of this process, made once and kept for its lifetime.
///
/// On first use it also puts back Rust's default panic hook in place of libFuzzer's,
/// which aborts on every panic, even one medssl catches (a third-party decoder's panic
/// on damaged data, turned into an error). A panic that escapes medssl still aborts:
/// the fuzz harness catches it and reports a crash.
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        drop(std::panic::take_hook());
        tempfile::Builder::new()
            .prefix("medssl-fuzz")
            .tempdir_in(if Path::new("/dev/shm").is_dir() {
                PathBuf::from("/dev/shm")
            } else {
                std::env::temp_dir()
            })
            .expect("a scratch directory for fuzz inputs")
    })
    .path()
}

/// `data` written as `name` in a fresh subdirectory `dir` of the scratch directory.
fn write_input(dir: &str, name: &str, data: &[u8]) -> PathBuf {
    let dir = scratch().join(dir);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch subdirectory");
    let path = dir.join(name);
    std::fs::write(&path, data).expect("scratch input");
    path
}

fn text<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// A NIfTI file (gzip or not, NIfTI-1 or -2) read to a volume, as `medssl info` and
/// every data loader read images.
pub fn nifti(data: &[u8]) -> Outcome {
    let path = write_input("nifti", "image.nii", data);
    medssl_io::read_volume(&path, &ReadOptions::default())
        .map(drop)
        .map_err(text)
}

/// One DICOM file (any transfer syntax we decode) read to a volume.
pub fn dicom_file(data: &[u8]) -> Outcome {
    let path = write_input("dicom_file", "image.dcm", data);
    medssl_io::read_volume(&path, &ReadOptions::default())
        .map(drop)
        .map_err(text)
}

/// Several DICOM files, separated by [`FILE_SEPARATOR`], assembled as a series from
/// their directory.
pub fn dicom_series(data: &[u8]) -> Outcome {
    let dir = scratch().join("dicom_series");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch subdirectory");
    for (i, file) in split(data, FILE_SEPARATOR).into_iter().enumerate() {
        std::fs::write(dir.join(format!("IM{i:05}.dcm")), file).expect("scratch input");
    }
    medssl_io::read_volume(&dir, &ReadOptions::default())
        .map(drop)
        .map_err(text)
}

/// The pieces of `data` between occurrences of `separator`.
pub fn split<'a>(data: &'a [u8], separator: &[u8]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(separator.len()).position(|w| w == separator) {
        pieces.push(&rest[..at]);
        rest = &rest[at + separator.len()..];
    }
    pieces.push(rest);
    pieces
}

/// The task directory of `dataset_json`: one real 4³ case in the MSD layout
/// (`imagesTr/case_000.nii.gz`, `labelsTr/case_000.nii.gz`), so a dataset.json
/// that lists or discovers it goes on to load and check the case.
fn task_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = scratch().join("dataset_json");
        let volume = |values: Vec<f32>| {
            Volume::new(
                medssl_io::ndarray::Array4::from_shape_vec((1, 4, 4, 4), values)
                    .expect("4³ volume"),
                medssl_io::Affine::identity(),
            )
        };
        for (folder, name, values) in [
            (
                "imagesTr",
                "case_000.nii.gz",
                (0..64).map(|v| v as f32).collect(),
            ),
            (
                "labelsTr",
                "case_000.nii.gz",
                (0..64).map(|v| (v % 2) as f32).collect(),
            ),
        ] {
            std::fs::create_dir_all(dir.join(folder)).expect("task folder");
            write_volume(
                &dir.join(folder).join(name),
                &volume(values),
                OutputType::Float32,
            )
            .expect("the task's case");
        }
        dir
    })
}

/// A `dataset.json` opened as `medssl check` and training open a task, and its first
/// training case loaded and checked.
pub fn dataset_json(data: &[u8]) -> Outcome {
    let dir = task_dir();
    std::fs::write(dir.join("dataset.json"), data).expect("scratch input");
    let task = Task::open(dir).map_err(text)?;
    if let Some(case) = task.training.first() {
        task.load_case(case).map_err(text)?;
    }
    Ok(())
}

/// A TOML file read as each of our configuration files: a study definition, a
/// fine-tuning configuration and a pretraining configuration; and its lines read as
/// `--set key=value` overrides.
pub fn config_toml(data: &[u8]) -> Outcome {
    let path = write_input("config_toml", "study.toml", data);
    let study = medssl_bench::StudyDefinition::load(&path).and_then(|s| s.validate(&path));
    let Ok(source) = std::str::from_utf8(data) else {
        return study.map_err(text);
    };
    let lines: Vec<String> = source.lines().map(str::to_string).collect();
    let file = medssl_train::settings::SettingsFile {
        name: "config.toml",
        text: source,
    };
    let finetune = FinetuneConfig::load(Preset::Tiny, Some(file), &[]);
    let overrides = FinetuneConfig::load(Preset::Tiny, None, &lines);
    let pretrain = PretrainConfig::load::<medssl_ssl::methods::simmim::SimMimMethod>(
        Preset::Tiny,
        Some(file),
        &[],
    );
    study.map_err(text)?;
    finetune.map_err(|e| format!("{}: {e}", path.display()))?;
    overrides.map_err(|e| format!("{}: {e}", path.display()))?;
    pretrain.map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

/// A weights file as `medssl weights import` reads it (safetensors or PyTorch), its
/// architecture inferred, and the file loaded into a small SwinUNETR as `finetune
/// --init` loads an encoder.
pub fn checkpoint(data: &[u8]) -> Outcome {
    static NETWORK: OnceLock<SwinUnetr> = OnceLock::new();
    let name = if data.get(8) == Some(&b'{') {
        "weights.safetensors"
    } else {
        "weights.pt"
    };
    let path = write_input("checkpoint", name, data);
    let checkpoint = Checkpoint::read(&path).map_err(text);
    if let Ok(checkpoint) = &checkpoint {
        let _ = infer_architecture(&checkpoint.shapes());
    }
    let network = NETWORK.get_or_init(|| {
        let config = SwinUnetrConfig::new(1, 2).with_feature_size(12);
        SwinUnetr::new(&config, &Device::flex()).expect("a small SwinUNETR")
    });
    let mut model = network.clone();
    let loaded = load_monai_safetensors(&mut model, &path).map_err(text);
    checkpoint.and(loaded).map(drop)
}
