//! The study files `medssl study init` writes: [`example`], a small study on
//! placeholder data that explains every key, and [`paper`], the reference paper's
//! study on public tasks. The comment blocks both need (the rows, the `set` keys, the
//! `[slurm]` table) are written once and filled in where each file names them, so the
//! two files explain a key in the same words.

use medssl_ssl::methods;

/// The rows' comment and `methods` line (`METHODS_LINE` is filled in by [`fill`]).
const ROWS_BLOCK: &str = r#"# Rows of the tables: any of `medssl methods`, `scratch` (random initialisation),
# `import:<file>` (external SwinUNETR or Swin weights with MONAI key names) and
# `supervised:<task>` (the encoder of a fine-tune on every case of a task or source:
# the positive control).
METHODS_LINE
"#;

/// `[pretraining]`'s settings for every method, up to its `method_set` table.
const PRETRAINING_SET_BLOCK: &str = r#"# Settings for every method (`medssl config show --method NAME` lists them) ...
set = []
# ... and for one method.
[pretraining.method_set]
"#;

/// `[finetune]`'s settings for every row, up to its `method_set` table.
const FINETUNE_SET_BLOCK: &str = r#"# Settings for every fine-tune (`medssl config show` lists them) ...
set = []
# ... and for one row, by its name in the tables (e.g. a pretrained encoder's
# strategy: train.strategy = "full", "warmup_decoder" or "frozen_encoder").
[finetune.method_set]
"#;

/// The `[slurm]` table, every key commented out at its default.
const SLURM_BLOCK: &str = r#"# The scripts of `medssl study slurm` (its flags override these); every key optional.
[slurm]
# account = "my-account"
# qos = "normal"
# partition = "gpu"
# gpus = 1
# cpus = 8
# mem = "64G"
# At most this many tasks of each array at once (--array=A-B%N).
# array_limit = 4
# More #SBATCH directives for every script.
# extra = ["--constraint=a100", "--mail-type=FAIL"]

# Time limit per job kind (Slurm syntax).
[slurm.time]
# pretrain = "24:00:00"
# finetune = "08:00:00"
# cka = "08:00:00"
# report = "00:30:00"
"#;

/// The study file of [`example`]; its `*_BLOCK` lines are filled in by [`fill`].
const EXAMPLE: &str = r#"# A medssl study: every method below is fine-tuned on every task, at every label
# budget, once per seed; the SSL methods are pretrained first on the collection.
# Paths are relative to this file. `medssl study validate FILE` checks it all.
name = "my-study"
# Where runs, results.csv and the report go.
out = "study"
# cpu, or cuda / cuda:N or wgpu in a build with that feature.
device = "cpu"
ROWS_BLOCK

[pretraining]
# Unlabelled volumes: a directory of NIfTI files / DICOM series, or a list file.
data = "data/ct-collection"
# tiny (CPU minutes) or paper (the published recipes, for GPUs).
preset = "tiny"
# Optimiser steps per method; the preset's epochs when left out.
steps = 200
# A task or source on whose validation cases each encoder is probed while it trains
# (set probe.every below to choose how often).
# probe = "abdomen-ct"
PRETRAINING_SET_BLOCK
simclr = ["pretext.temperature=0.2"]

[finetune]
preset = "tiny"
# Labelled training cases per fine-tune: a count, a fraction, or "all".
budgets = [2, "all"]
seeds = [0]
# Fewer seeds for a budget, by its name in the tables (2-shots, fraction-0.25, all).
# budget_seeds = { all = [0] }
FINETUNE_SET_BLOCK
dino = ["train.strategy=\"warmup_decoder\"", "train.decoder_epochs=10"]

[[tasks]]
name = "abdomen-ct"
path = "data/abdomen-ct"
modality = "CT"

[[tasks]]
name = "abdomen-mri"
path = "data/abdomen-mri"
modality = "MRI"

# Labelled tasks that only train `supervised:` rows' encoders (optional).
# [[sources]]
# name = "totalseg-ct"
# path = "data/totalseg-ct"
# modality = "CT"

SLURM_BLOCK
"#;

/// The study file of [`paper`]; its `*_BLOCK` lines are filled in by [`fill`].
const PAPER: &str = r#"# The reference paper's study, as far as its abstract states it: the nine SSL
# methods and scratch as rows, the methods pretrained on one unlabelled CT collection,
# every row fine-tuned in SwinUNETR on nine public tasks with few and with all
# labelled cases. The tasks are CT and MRI, so CT-to-MRI transfer shows: the encoders
# see no MRI before their fine-tunes.
# The nine (our choice): large abdominal organs in CT (BTCV, FLARE22) and MRI
# (AMOS22_MRI, CHAOS_MR_T2), head-and-neck structures (HaN-Seg) and tumours (KiTS23,
# LiTS, Task07_Pancreas, Task10_Colon). Every task has one input channel, as the
# pretraining images do: a fine-tune refuses encoders with other input channels, so
# multi-sequence MRI (BraTS, `medssl dataset convert brats`, four channels) could only
# be fine-tuned from scratch and is left out.
# Download each public release, write it into data/ beside this file with
# `medssl dataset convert KIND` (the kind is named above each task), build the
# pretraining collection (see [pretraining]), then `medssl study validate FILE`.
# Paths are relative to this file.
name = "paper"
# Where runs, results.csv and the report go.
out = "study"
# The paper preset is meant for GPUs: cuda / cuda:N in a build with the cuda feature.
device = "cuda"
ROWS_BLOCK
# The positive control: add "supervised:TotalSegmentator" (the source below) to the
# rows.

[pretraining]
# One unlabelled CT collection, as a list file: one image per line, relative to the
# list's directory. It is built from the images (imagesTr and imagesTs) of the CT
# tasks that are not among the nine, so no image a fine-tune is tested on is seen in
# pretraining:
#   (cd data && ls AMOS22_CT/images*/* CHAOS_CT/images*/* TotalSegmentator/images*/*) > data/ct-collection.txt
# (A directory searched for NIfTI files and DICOM series works too.)
data = "data/ct-collection.txt"
# paper, the larger of the two presets and the one meant for full-scale runs: the
# published recipes (feature size 48, 96³ crops, 100 epochs); tiny is for trying the
# pipeline in CPU minutes. Without `steps`, each method trains for the preset's epochs.
preset = "paper"
PRETRAINING_SET_BLOCK

[finetune]
# paper, as above: SwinUNETR of feature size 48 on 96³ patches at 1.5 x 1.5 x 2 mm,
# 500 epochs; 20 % of each task's cases validate and 20 % test.
preset = "paper"
# Few labelled training cases (5 and 10: CHAOS_MR_T2, the smallest task with 20
# labelled cases, keeps 12 for training) and many ("all": every training case).
budgets = [5, 10, "all"]
seeds = [0, 1, 2]
FINETUNE_SET_BLOCK

# `medssl dataset convert btcv`: 13 abdominal organs.
[[tasks]]
name = "BTCV"
path = "data/BTCV"
modality = "CT"

# `medssl dataset convert flare22`: 13 abdominal organs.
[[tasks]]
name = "FLARE22"
path = "data/FLARE22"
modality = "CT"

# `medssl dataset convert amos` (also writes data/AMOS22_CT, for the collection): 15
# abdominal organs.
[[tasks]]
name = "AMOS22_MRI"
path = "data/AMOS22_MRI"
modality = "MRI"

# `medssl dataset convert chaos` (also writes data/CHAOS_CT, for the collection, and
# data/CHAOS_MR_T1): liver, kidneys and spleen in T2-SPIR.
[[tasks]]
name = "CHAOS_MR_T2"
path = "data/CHAOS_MR_T2"
modality = "MRI"

# `medssl dataset convert hanseg`: 30 head-and-neck organs at risk.
[[tasks]]
name = "HaN-Seg"
path = "data/HaN-Seg"
modality = "CT"

# `medssl dataset convert kits23`: kidney, tumour and cyst.
[[tasks]]
name = "KiTS23"
path = "data/KiTS23"
modality = "CT"

# `medssl dataset convert lits`: liver and tumour.
[[tasks]]
name = "LiTS"
path = "data/LiTS"
modality = "CT"

# `medssl dataset convert msd` on Task07_Pancreas: pancreas and tumour.
[[tasks]]
name = "Task07_Pancreas"
path = "data/Task07_Pancreas"
modality = "CT"

# `medssl dataset convert msd` on Task10_Colon: colon cancer primaries.
[[tasks]]
name = "Task10_Colon"
path = "data/Task10_Colon"
modality = "CT"

# Labelled tasks that only train `supervised:` rows' encoders.
# `medssl dataset convert totalsegmentator`: the positive control's source. Its images
# are in the pretraining collection too, so the control sees the SSL methods' images,
# with labels.
[[sources]]
name = "TotalSegmentator"
path = "data/TotalSegmentator"
modality = "CT"

SLURM_BLOCK
"#;

/// A commented study file to start from (`medssl study init`): scratch and every
/// registered method as its rows, two placeholder tasks, CPU-sized settings.
pub fn example() -> String {
    fill(EXAMPLE)
}

/// The reference paper's study (`medssl study init --template paper`): scratch and
/// every registered method as its rows, nine public tasks in CT and MRI under the
/// directory names `medssl dataset convert` writes, few and all labels, the paper
/// presets; the file says how to make each task and the pretraining collection.
pub fn paper() -> String {
    fill(PAPER)
}

/// The study-file line `methods = ["scratch", ...]` naming scratch and every registered
/// method, in the registry's order.
pub fn every_method_line() -> String {
    let names: Vec<String> = std::iter::once("scratch")
        .chain(methods::METHODS.iter().map(|m| m.name))
        .map(|name| format!("{name:?}"))
        .collect();
    format!("methods = [{}]", names.join(", "))
}

/// `template` with each `*_BLOCK` line replaced by its block and `METHODS_LINE` by
/// [`every_method_line`].
fn fill(template: &str) -> String {
    let blocks = [
        ("ROWS_BLOCK\n", ROWS_BLOCK),
        ("PRETRAINING_SET_BLOCK\n", PRETRAINING_SET_BLOCK),
        ("FINETUNE_SET_BLOCK\n", FINETUNE_SET_BLOCK),
        ("SLURM_BLOCK\n", SLURM_BLOCK),
    ];
    blocks
        .iter()
        .fold(template.to_string(), |text, (line, block)| {
            text.replace(line, block)
        })
        .replace("METHODS_LINE", &every_method_line())
}
