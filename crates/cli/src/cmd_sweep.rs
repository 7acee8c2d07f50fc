//! `winq sweep` (a grid of train / search / adapt runs, here or on Slurm) and `winq report`
//! (tables and plots over finished run directories).

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::path::{Path, PathBuf};
use winq_sweep::report;
use winq_sweep::slurm::{self, SlurmOptions};
use winq_sweep::{local, point, PointState, Sweep};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    action: Option<SweepAction>,
    /// The sweep file (TOML, or JSON with the same keys; see docs/SWEEPS.md). Its relative
    /// paths are relative to its own directory.
    #[arg(required = true)]
    spec: Option<PathBuf>,
    /// Run here, N points at a time, each with cores/N threads (the default, with N = 1).
    #[arg(long, value_name = "N", conflicts_with = "slurm")]
    local: Option<usize>,
    /// Submit a Slurm job array instead: one task per point that is neither finished nor
    /// queued. Run it again to resubmit what a time limit or preemption stopped.
    #[arg(long)]
    slurm: bool,
    /// Slurm partition.
    #[arg(long, requires = "slurm")]
    partition: Option<String>,
    /// Time limit per point (Slurm's format, e.g. 4:00:00).
    #[arg(long, requires = "slurm")]
    time: Option<String>,
    /// Memory per point (e.g. 4G).
    #[arg(long, requires = "slurm")]
    mem: Option<String>,
    /// CPUs per point (its threads).
    #[arg(long, default_value_t = 1, requires = "slurm")]
    cpus: usize,
    #[arg(long, requires = "slurm")]
    account: Option<String>,
    #[arg(long, requires = "slurm")]
    qos: Option<String>,
    /// At most this many points at once.
    #[arg(long, requires = "slurm")]
    max_parallel: Option<usize>,
    /// A further #SBATCH option, as written (repeatable), e.g. --sbatch-option=--constraint=avx512.
    #[arg(long = "sbatch-option", requires = "slurm", allow_hyphen_values = true)]
    sbatch_options: Vec<String>,
    /// The winq binary the tasks run [default: this one]; it must be reachable from the nodes.
    #[arg(long, requires = "slurm")]
    winq: Option<PathBuf>,
    /// Check every point and show the plan (local: the commands; Slurm: write the script)
    /// without running anything.
    #[arg(long)]
    dry_run: bool,
}

#[derive(clap::Subcommand)]
enum SweepAction {
    /// Where every point stands: done / running / pending / interrupted / failed (from the run
    /// directories, and from squeue/sacct where Slurm answers).
    Status {
        spec: PathBuf,
        /// One JSON object per point instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Run one point to its end (what the local runner and each Slurm array task start).
    Exec {
        spec: PathBuf,
        #[arg(long)]
        index: usize,
        /// The sweep's fingerprint when it was started or submitted (a changed file is refused).
        #[arg(long)]
        expect: Option<String>,
    },
}

/// The sweep file, loaded, with this process working in its directory (so that its relative
/// paths mean the same here as in the points' processes).
fn load(spec: &Path) -> Result<Sweep> {
    let sweep = Sweep::load(spec)?;
    std::env::set_current_dir(&sweep.base)
        .with_context(|| format!("cannot work in {}", sweep.base.display()))?;
    Ok(sweep)
}

/// What `winq` itself would say of a point's command line, without running it.
fn check_point(argv: &[String]) -> Result<(), String> {
    let cli = crate::Cli::try_parse_from(std::iter::once("winq".to_string()).chain(argv.iter().cloned()))
        .map_err(|e| {
            e.to_string()
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ")
                .to_string()
        })?;
    let checked = match &cli.command {
        crate::Command::Train(a) => crate::cmd_train::check(a),
        crate::Command::Adapt(a) => crate::cmd_train::check_adapt(a),
        crate::Command::Search(a) => crate::cmd_search::check(a),
        _ => Err(anyhow::anyhow!("a sweep runs train, search or adapt")),
    };
    checked.map_err(|e| format!("{e:#}"))
}

fn exe() -> Result<PathBuf> {
    std::env::current_exe().context("cannot find the winq binary")
}

pub fn sweep(a: SweepArgs) -> Result<()> {
    match a.action {
        Some(SweepAction::Status { spec, json }) => return status(&spec, json),
        Some(SweepAction::Exec { spec, index, expect }) => return exec(&spec, index, expect.as_deref()),
        None => {}
    }
    let Some(spec) = a.spec.as_deref() else {
        bail!("give the sweep file");
    };
    let sweep = load(spec)?;
    winq_sweep::validate(&sweep, &check_point)?;
    if a.slurm {
        let o = SlurmOptions {
            partition: a.partition,
            time: a.time,
            mem: a.mem,
            cpus: a.cpus,
            account: a.account,
            qos: a.qos,
            max_parallel: a.max_parallel,
            extra: a.sbatch_options,
            winq: match a.winq {
                Some(w) => std::path::absolute(w)?,
                None => exe()?,
            },
        };
        let s = slurm::submit(&sweep, &o, a.dry_run)?;
        if s.indices.is_empty() {
            println!("nothing to submit: every point is finished or queued");
        } else if let Some(id) = &s.job_id {
            println!(
                "submitted job {id}: {} points as array tasks {} ({}); follow with `winq sweep status {}`",
                s.indices.len(),
                slurm::array_ranges(&s.indices),
                s.script.display(),
                sweep.spec.display()
            );
        } else {
            println!(
                "wrote {} ({} unfinished points; the queue was not asked: check `winq sweep status` before `sbatch {}`)",
                s.script.display(),
                s.indices.len(),
                s.script.display()
            );
        }
        return Ok(());
    }
    let jobs = a.local.unwrap_or(1);
    if jobs == 0 {
        bail!("--local must be at least 1");
    }
    let threads = (rayon::current_num_threads() / jobs).max(1);
    if a.dry_run {
        point::check_directories(&sweep)?;
        for p in &sweep.points {
            let (state, _) = point::state(p)?;
            let continues = state != PointState::Done
                && sweep.command != "search"
                && p.dir.join("last.safetensors").exists();
            println!(
                "[{}] {} ({state}): winq --threads {threads} {}{}",
                p.index,
                p.name,
                p.argv.join(" "),
                if continues { " --resume" } else { "" }
            );
        }
        return Ok(());
    }
    let s = local::run(&sweep, jobs, threads, &exe()?)?;
    if s.interrupted {
        eprintln!(
            "stopped: {} points not finished (each keeps its last finished epoch); run the same command to continue",
            s.left
        );
        std::process::exit(130);
    }
    if !s.failed.is_empty() {
        bail!(
            "{} of {} points failed (points {:?}); their log.txt says why; run the same command to retry them",
            s.failed.len(),
            sweep.points.len(),
            s.failed
        );
    }
    println!(
        "all {} points done; `winq report {}` tabulates them",
        sweep.points.len(),
        sweep.root.display()
    );
    Ok(())
}

fn exec(spec: &Path, index: usize, expect: Option<&str>) -> Result<()> {
    let sweep = load(spec)?;
    if let Some(f) = expect {
        sweep.expect(f)?;
    }
    let p = sweep.point(index)?;
    // The point is checked again where it runs (a node may lack the data the submitting
    // machine had); a failure is recorded in its status.
    match point::exec(&sweep, index, rayon::current_num_threads(), &exe()?, &check_point)? {
        PointState::Done => Ok(()),
        PointState::Failed => bail!(
            "point {index} ({}) failed; see {}",
            p.name,
            p.dir.join(point::LOG_FILE).display()
        ),
        _ => {
            eprintln!(
                "point {index} ({}) interrupted; it continues when run again",
                p.name
            );
            std::process::exit(130)
        }
    }
}

fn status(spec: &Path, json: bool) -> Result<()> {
    let sweep = load(spec)?;
    let rows = slurm::status(&sweep)?;
    if json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
        return Ok(());
    }
    println!(
        "{:>5}  {:<32} {:<12} {:>8} {:>8} {:>8}  scheduler",
        "point", "name", "state", "epochs", "attempts", "wall s"
    );
    for r in &rows {
        println!(
            "{:>5}  {:<32} {:<12} {:>8} {:>8} {:>8.0}  {}",
            r.index,
            r.name,
            r.state.to_string(),
            format!(
                "{}/{}",
                r.epochs_done,
                r.epochs.map_or("?".into(), |e| e.to_string())
            ),
            r.attempts,
            r.seconds,
            r.scheduler.as_deref().unwrap_or("-")
        );
    }
    let count = |s: PointState| rows.iter().filter(|r| r.state == s).count();
    println!(
        "{}/{} done, {} running, {} pending, {} interrupted, {} failed",
        count(PointState::Done),
        rows.len(),
        count(PointState::Running),
        count(PointState::Pending),
        count(PointState::Interrupted),
        count(PointState::Failed)
    );
    Ok(())
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Md,
    Csv,
    Json,
}

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Run directories, or folders holding them (a sweep's output root, runs/).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Fields that make a row (e.g. algo,mode,bits) [default: every field that differs between
    /// the runs, except the seed].
    #[arg(long, value_delimiter = ',')]
    group_by: Option<Vec<String>>,
    /// The metric summarised: test_acc, test_acc_last, val_acc, latency_ms or seconds.
    #[arg(long, default_value = "test_acc")]
    metric: String,
    #[arg(long, value_enum, default_value = "md")]
    format: Format,
    /// Plots: grouped bars of the metric to this SVG, and (where models were exported) the
    /// latency/accuracy front beside it as <name>-front.svg.
    #[arg(short = 'o', long)]
    plot: Option<PathBuf>,
    /// Do not time exported models (model.winq in a run directory).
    #[arg(long)]
    no_latency: bool,
    /// Timed engine runs per model (median), batch 1.
    #[arg(long, default_value_t = 20)]
    reps: usize,
    /// Threads of the engine timings.
    #[arg(long, default_value_t = 1)]
    timing_threads: usize,
}

pub fn report(a: ReportArgs) -> Result<()> {
    let report::Gathered {
        mut runs,
        unfinished,
        unreadable,
    } = report::gather(&a.dirs)?;
    for u in &unreadable {
        eprintln!("left out (unreadable) {u}");
    }
    if !unfinished.is_empty() {
        eprintln!(
            "left out {} unfinished runs (no results yet; a search needs --retrain), e.g. {}",
            unfinished.len(),
            unfinished[0].display()
        );
    }
    if runs.is_empty() {
        bail!(
            "no finished runs under {}",
            a.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !a.no_latency {
        for f in report::measure_latency(&mut runs, a.reps.max(1), a.timing_threads.max(1)) {
            eprintln!("no latency for {f}");
        }
    }
    let t = report::table(&runs, a.group_by.as_deref(), &a.metric)?;
    match a.format {
        Format::Md => print!("{}", report::markdown(&t)),
        Format::Csv => print!("{}", report::csv(&t)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&t)?),
    }
    if let Some(out) = &a.plot {
        winq_sweep::plot::plot_bars(out, &t)?;
        eprintln!("wrote {}", out.display());
        let stem = out
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let front = out.with_file_name(format!("{stem}-front.svg"));
        if winq_sweep::plot::plot_front(&front, &t)?.is_some() {
            eprintln!("wrote {}", front.display());
        }
    }
    Ok(())
}
