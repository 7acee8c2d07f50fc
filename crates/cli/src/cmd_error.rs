use anyhow::{Context, Result};
use std::path::PathBuf;
use winq_study::{render_text, run as run_study, to_json, write_plot, StudyConfig};
use winq_transforms::PointSet;

#[derive(clap::Args)]
pub struct Args {
    /// Batch size N.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Input channels C.
    #[arg(short = 'c', long, default_value_t = 64)]
    in_channels: usize,
    /// Output channels K.
    #[arg(short = 'k', long, default_value_t = 64)]
    out_channels: usize,
    /// Height and width of the (square) input map; see --height/--width for others.
    #[arg(long, default_value_t = 16)]
    size: usize,
    #[arg(long)]
    height: Option<usize>,
    #[arg(long)]
    width: Option<usize>,
    /// Number of random problems (seeds 0..N).
    #[arg(long, default_value_t = 5)]
    seeds: usize,
    /// Winograd output tile sizes m to study, F(m, 3).
    #[arg(long, value_delimiter = ',', default_value = "2,4,6")]
    tiles: Vec<usize>,
    /// Bit-widths to fake-quantize to (FP32 is always included).
    #[arg(long, value_delimiter = ',', default_value = "16,10,8")]
    bits: Vec<u32>,
    /// Bit-width of the per-stage attribution table.
    #[arg(long, default_value_t = 8)]
    attribution_bits: u32,
    /// Interpolation points (as `winq transforms --points`).
    #[arg(long, default_value = "default", allow_hyphen_values = true)]
    points: String,
    /// Also quantize the transforms Aᵀ, Bᵀ, G (the reference's static mode).
    #[arg(long)]
    quantize_transforms: bool,
    /// One weight scale per output channel (research option; the reference uses one per tensor).
    #[arg(long)]
    per_channel: bool,
    /// One scale per tile position for G g Gᵀ, Bᵀ d B and the Hadamard sum.
    #[arg(long)]
    per_tap: bool,
    /// Print JSON instead of the text tables.
    #[arg(long)]
    json: bool,
    /// Write a plot (SVG) of error vs algorithm, one line per bit-width.
    #[arg(long)]
    plot: Option<PathBuf>,
}

pub fn run(a: Args) -> Result<()> {
    let cfg = StudyConfig {
        batch: a.batch,
        in_channels: a.in_channels,
        out_channels: a.out_channels,
        height: a.height.unwrap_or(a.size),
        width: a.width.unwrap_or(a.size),
        seeds: a.seeds,
        tiles: a.tiles,
        bits: a.bits,
        points: a.points.parse::<PointSet>()?,
        quantize_transforms: a.quantize_transforms,
        attribution_bits: a.attribution_bits,
        per_channel: a.per_channel,
        per_tap: a.per_tap,
    };
    let res = run_study(&cfg)?;
    if a.json {
        println!("{}", to_json(&res));
    } else {
        print!("{}", render_text(&res));
    }
    if let Some(p) = a.plot {
        write_plot(&res, &p).context("writing the plot")?;
        eprintln!("plot written to {}", p.display());
    }
    Ok(())
}
