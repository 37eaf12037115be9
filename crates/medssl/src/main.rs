//! The `medssl` command-line program.

mod cka_command;
mod completions_command;
mod dataset_command;
mod demo_command;
mod device;
mod evaluate_commands;
mod export_command;
mod finetune_command;
mod image_commands;
mod pretrain_command;
mod probe_command;
mod progress;
mod run_args;
mod speed_command;
mod study_command;
mod synth_command;
mod tensorboard;
mod weights_commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Tensor code allocates and frees large buffers at a high rate; glibc's allocator hands
/// them back to the kernel and pays page faults to get them again (measured: a quarter
/// of a CPU forward pass, a sixth of a training step). mimalloc, told never to purge
/// (see `main`), keeps them, at the cost of a higher peak resident size.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What `medssl --version` prints and reports name: version, commit, compiled devices.
pub const BUILD: &str = concat!("medssl ", env!("MEDSSL_VERSION_LINE"));

/// Self-supervised pretraining and transfer benchmarking for 3D medical image
/// segmentation.
#[derive(Debug, Parser)]
#[command(name = "medssl", version = env!("MEDSSL_VERSION_LINE"), about, long_about = None)]
struct Cli {
    /// Worker threads for tensor kernels and data loading (default: every core; the
    /// environment variable RAYON_NUM_THREADS sets the same).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    /// No progress bars: log lines, warnings and errors only.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Also print every setting of a `finetune` or `pretrain` run (its config.toml) as it
    /// starts or resumes.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Describe a NIfTI file, a DICOM file or a DICOM series directory.
    Info(image_commands::InfoArgs),
    /// Convert a DICOM file/series or NIfTI file to NIfTI.
    Convert(image_commands::ConvertArgs),
    /// Time SwinUNETR forward, training step and sliding-window inference here.
    Speed(speed_command::SpeedArgs),
    /// Pretrain the Swin encoder on an unlabelled collection with a self-supervised method.
    Pretrain(pretrain_command::PretrainArgs),
    /// List the pretraining methods.
    Methods(pretrain_command::MethodsArgs),
    /// Show the settings of a run with their defaults.
    #[command(subcommand)]
    Config(pretrain_command::ConfigCommand),
    /// Fine-tune a SwinUNETR on a labelled task (from scratch or pretrained weights).
    Finetune(finetune_command::FinetuneArgs),
    /// Score a fine-tuned run on its validation or test cases (Dice, HD95, ASD, NSD).
    Evaluate(evaluate_commands::EvaluateArgs),
    /// Segment an image with a fine-tuned run, written on the input's grid.
    Predict(evaluate_commands::PredictArgs),
    /// Compare two networks' encoder stages on validation patches (linear and minibatch CKA).
    Cka(cka_command::CkaArgs),
    /// Score an encoder's frozen features per stage on a task (linear probe and k-NN).
    Probe(probe_command::ProbeArgs),
    /// Check a task's data: every case read, every problem listed at once.
    #[command(subcommand)]
    Dataset(dataset_command::DatasetCommand),
    /// Write synthetic CT/MRI phantoms as an MSD task or a pretraining collection.
    Synth(synth_command::SynthArgs),
    /// Run the whole study in miniature on synthetic data and write its report.
    Demo(demo_command::DemoArgs),
    /// Run the benchmark study: every method fine-tuned on every task and label budget.
    #[command(subcommand)]
    Study(study_command::StudyCommand),
    /// Import, inspect and export SwinUNETR weights.
    #[command(subcommand)]
    Weights(weights_commands::WeightsCommand),
    /// Export a run's metrics for other tools (TensorBoard).
    #[command(subcommand)]
    Export(export_command::ExportCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell).
    Completions(completions_command::CompletionsArgs),
}

/// `medssl study status | head` ends as Unix tools do when the reader goes away: killed
/// by SIGPIPE, silently. Rust ignores SIGPIPE, so every `println!` after the reader left
/// would panic with a backtrace instead.
fn die_quietly_on_a_closed_pipe() {
    // SAFETY: restores the default disposition of SIGPIPE at the start of `main`, before
    // any other thread exists; nothing in the program relies on SIGPIPE being ignored (it
    // writes to files and pipes, never to sockets).
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    // Keep freed memory instead of returning it to the OS after a delay: tensor buffers
    // of the same sizes come back every step. (Option 15 is mimalloc's purge delay.)
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: sets a process-wide allocator option; no allocation depends on its old value.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    die_quietly_on_a_closed_pipe();
    let cli = Cli::parse();
    progress::set_verbosity(match (cli.quiet, cli.verbose) {
        (true, _) => progress::Verbosity::Quiet,
        (_, true) => progress::Verbosity::Verbose,
        _ => progress::Verbosity::Normal,
    });
    if let Err(err) = set_threads(cli.threads) {
        eprintln!("error: {}", describe(&err));
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Info(args) => image_commands::info(&args),
        Command::Convert(args) => image_commands::convert(&args),
        Command::Weights(command) => weights_commands::run(&command),
        Command::Speed(args) => speed_command::speed(&args),
        Command::Synth(args) => synth_command::synth(&args),
        Command::Dataset(command) => dataset_command::dataset(&command),
        Command::Pretrain(args) => pretrain_command::pretrain(&args),
        Command::Methods(args) => pretrain_command::methods(&args),
        Command::Config(command) => pretrain_command::config(&command),
        Command::Finetune(args) => finetune_command::finetune(&args),
        Command::Evaluate(args) => evaluate_commands::evaluate_command(&args),
        Command::Predict(args) => evaluate_commands::predict_command(&args),
        Command::Cka(args) => cka_command::cka_command(&args),
        Command::Probe(args) => probe_command::probe_command(&args),
        Command::Study(command) => study_command::study(&command),
        Command::Demo(args) => demo_command::demo(&args),
        Command::Export(command) => export_command::export(&command),
        Command::Completions(args) => completions_command::completions::<Cli>(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", describe(&err));
            ExitCode::FAILURE
        }
    }
}

/// Sizes the rayon pool that Burn's CPU kernels, the convolution kernels and the data
/// pipeline share; without `--threads`, rayon's default (RAYON_NUM_THREADS, else one
/// thread per core) holds.
fn set_threads(threads: Option<usize>) -> anyhow::Result<()> {
    match threads {
        None => Ok(()),
        Some(0) => anyhow::bail!("--threads must be at least 1"),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .map_err(|e| anyhow::anyhow!("--threads {n}: {e}")),
    }
}

/// The error and its causes, joined by `: ` as anyhow's `{:#}` does, leaving out a cause
/// the message before it already says (an IO error names the file and repeats the
/// operating system's reason, which is also its source): "No such file or directory" is
/// said once.
fn describe(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}
