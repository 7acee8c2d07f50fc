//! `winq`: the command-line front end.

mod cmd_bench;
mod cmd_engine;
mod cmd_error;
mod cmd_search;
mod cmd_sweep;
mod cmd_train;
mod cmd_transforms;

use clap::{Parser, Subcommand};

// Training frees and reallocates the same large buffers every step; mimalloc keeps them mapped
// instead of returning pages to the OS and faulting them in again (6-9% of a step with glibc).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "winq",
    version,
    about = "Winograd-aware quantized convolutional networks",
    long_about = "winq trains CNNs whose 3x3 convolutions run as quantized Winograd F(2x2), \
                  F(4x4) or F(6x6) (Winograd-aware training, learned 'flex' transforms), and \
                  deploys them with an integer engine that computes what training simulated. \
                  It also builds exact Winograd (Toom-Cook) transforms and measures their \
                  quantization error.\n\nStart with `winq train` (Fashion-MNIST, about 8 \
                  minutes), then `winq export runs/<run> -o m.winq` and `winq run m.winq --input \
                  <images>`; `winq transforms --m 4` prints F(4x4, 3x3); `winq error` runs the \
                  numerical-error study."
)]
struct Cli {
    /// Worker threads (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the Winograd transforms Aᵀ, Bᵀ, G of F(m, r) as exact fractions and floats.
    Transforms(cmd_transforms::Args),
    /// Numerical-error study: quantized im2row and Winograd vs the exact convolution.
    Error(cmd_error::Args),
    /// Train a network (default: ResNet18Like x0.25, flex F4 INT8, on Fashion-MNIST).
    Train(cmd_train::TrainArgs),
    /// Test-set accuracy of a checkpoint or run directory.
    Eval(cmd_train::EvalArgs),
    /// Initialise a Winograd-aware model from a trained (im2row) checkpoint and fine-tune it.
    Adapt(cmd_train::AdaptArgs),
    /// Plot the training curves of a run directory (loss.svg, accuracy.svg).
    Plot {
        /// The run directory (holds metrics.jsonl).
        dir: std::path::PathBuf,
    },
    /// Convert the authors' PyTorch ResNet18Like state_dict (as safetensors) to a winq checkpoint.
    Import(cmd_train::ImportArgs),
    /// Turn a trained checkpoint into a deploy model (.winq) for the integer engine.
    Export(cmd_engine::ExportArgs),
    /// Classify images with a deploy model.
    Run(cmd_engine::RunArgs),
    /// Speed and memory benchmarks.
    #[command(subcommand)]
    Bench(cmd_bench::Bench),
    /// wiNAS: search the algorithm and bit-width of every 3x3 layer for accuracy and this
    /// machine's latency (needs the table of `winq bench layers`); --retrain trains the result.
    Search(Box<cmd_search::SearchArgs>),
    /// Time searched (`winq search --retrain`) and baseline networks with the engine, tabulate
    /// predicted and measured latency beside test accuracy, and plot the front (SVG).
    SearchReport(cmd_search::ReportArgs),
    /// Run a grid of train / search / adapt runs (a sweep file) here, N at a time, or as a
    /// Slurm job array; `winq sweep status SPEC` shows where each point stands.
    Sweep(Box<cmd_sweep::SweepArgs>),
    /// Gather finished run directories into a table (mean ± std over seeds) and plots.
    Report(cmd_sweep::ReportArgs),
}

fn main() -> anyhow::Result<()> {
    // Output piped into `head` and closed early ends the program quietly, as for other
    // command-line tools (Rust ignores SIGPIPE, so every print would panic instead).
    // SAFETY: signal(2) with SIG_DFL installs no handler code and is called before any thread
    // is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    if let Some(t) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t.max(1))
            .build_global()?;
    }
    match cli.command {
        Command::Transforms(a) => cmd_transforms::run(a),
        Command::Error(a) => cmd_error::run(a),
        Command::Bench(b) => cmd_bench::run(b),
        Command::Train(a) => cmd_train::train(a),
        Command::Eval(a) => cmd_train::eval(a),
        Command::Adapt(a) => cmd_train::adapt(a),
        Command::Plot { dir } => cmd_train::plot(dir),
        Command::Import(a) => cmd_train::import(a),
        Command::Export(a) => cmd_engine::export(a),
        Command::Run(a) => cmd_engine::run(a),
        Command::Search(a) => cmd_search::run(*a),
        Command::SearchReport(a) => cmd_search::report(a),
        Command::Sweep(a) => cmd_sweep::sweep(*a),
        Command::Report(a) => cmd_sweep::report(a),
    }
}
