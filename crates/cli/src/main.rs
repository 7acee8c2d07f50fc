//! `winq`: the command-line front end.

mod cmd_bench;
mod cmd_error;
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
    long_about = "winq builds exact Winograd (Toom-Cook) transforms, measures how quantization \
                  interacts with them, and (as the project grows) trains, searches and deploys \
                  Winograd-aware quantized CNNs.\n\nStart with `winq transforms --m 4` to see \
                  F(4x4, 3x3), or `winq error` for the numerical-error study."
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
    /// Speed and memory benchmarks.
    #[command(subcommand)]
    Bench(cmd_bench::Bench),
}

fn main() -> anyhow::Result<()> {
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
    }
}
