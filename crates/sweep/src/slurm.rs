//! A sweep as a Slurm job array: one array task per unfinished point (the task index is the
//! point's index), each running `winq sweep exec` in the run directories on the shared
//! filesystem. Resubmitting submits only what is not finished or queued; an interrupted training
//! continues from its last epoch. `status` reads the run directories and `squeue` (`sacct`
//! where accounting is on).

use crate::point::{self, PointState};
use crate::{now, write_json, Result, Sweep, SweepError};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// What the array's tasks ask of the cluster.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    pub partition: Option<String>,
    /// Time limit per task (Slurm's format, e.g. 2:00:00).
    pub time: Option<String>,
    /// Memory per task (e.g. 4G).
    pub mem: Option<String>,
    /// CPUs per task (the point's --threads).
    pub cpus: usize,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// At most this many tasks at once (`--array=…%K`).
    pub max_parallel: Option<usize>,
    /// Further `#SBATCH` options, as written (e.g. "--constraint=avx512").
    pub extra: Vec<String>,
    /// The `winq` binary the tasks run (must be reachable from the compute nodes).
    pub winq: PathBuf,
}

/// A submission (or, with dry-run, the script alone).
#[derive(Debug, Clone)]
pub struct Submission {
    pub script: PathBuf,
    pub indices: Vec<usize>,
    /// None: not submitted (dry run, or nothing to do).
    pub job_id: Option<String>,
}

/// Index lists in Slurm's array syntax: [0,1,2,5,7,8] → "0-2,5,7-8".
pub fn array_ranges(indices: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            i += 1;
            end = indices[i];
        }
        parts.push(if end > start {
            format!("{start}-{end}")
        } else {
            start.to_string()
        });
        i += 1;
    }
    parts.join(",")
}

/// A word for the shell, quoted.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The job name of a sweep's arrays: the same for every submission of one output root, so
/// that `squeue --name` finds them all.
pub fn job_name(sweep: &Sweep) -> String {
    let h = crate::fnv(sweep.root.as_os_str().as_encoded_bytes().iter().copied());
    let tail: String = sweep
        .root
        .file_name()
        .map(|n| {
            n.to_string_lossy()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .take(24)
                .collect()
        })
        .unwrap_or_default();
    format!("winq-{tail}-{:08x}", h as u32)
}

/// The sbatch script of an array over `indices`.
pub fn script(sweep: &Sweep, o: &SlurmOptions, indices: &[usize]) -> String {
    let logs = sweep.root.join("slurm");
    let mut s = format!(
        "#!/bin/bash\n# winq sweep {spec}: {n} of its {total} points as one array task each (task index = point index).\n\
         # Resubmit with `winq sweep {spec} --slurm`: finished points are skipped, interrupted trainings continue\n\
         # from their last epoch. Each point's output is in its run directory (log.txt, status.json).\n",
        spec = sweep.spec.display(),
        n = indices.len(),
        total = sweep.points.len()
    );
    let mut opt = |line: String| s += &format!("#SBATCH {line}\n");
    opt(format!("--job-name={}", job_name(sweep)));
    opt(format!(
        "--array={}{}",
        array_ranges(indices),
        o.max_parallel.map_or(String::new(), |k| format!("%{k}"))
    ));
    opt(format!("--cpus-per-task={}", o.cpus));
    opt("--ntasks=1".into());
    for (k, v) in [
        ("partition", &o.partition),
        ("time", &o.time),
        ("mem", &o.mem),
        ("account", &o.account),
        ("qos", &o.qos),
    ] {
        if let Some(v) = v {
            opt(format!("--{k}={v}"));
        }
    }
    opt(format!("--output={}", logs.join("%A_%a.out").display()));
    opt("--open-mode=append".into());
    opt(format!("--chdir={}", sweep.base.display()));
    for e in &o.extra {
        opt(e.clone());
    }
    s += &format!(
        "exec {} --threads \"${{SLURM_CPUS_PER_TASK:-{}}}\" sweep exec {} --index \"$SLURM_ARRAY_TASK_ID\" --expect {}\n",
        quote(&o.winq.display().to_string()),
        o.cpus,
        quote(&sweep.spec.display().to_string()),
        sweep.fingerprint()
    );
    s
}

/// Runs a Slurm command; a missing command or a failure is an error that says so.
fn slurm_cmd(cmd: &mut Command) -> Result<String> {
    let name = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|e| {
        SweepError::Slurm(if e.kind() == std::io::ErrorKind::NotFound {
            format!("{name} not found: is Slurm installed here? (--dry-run writes the script only)")
        } else {
            format!("cannot run {name}: {e}")
        })
    })?;
    if !out.status.success() {
        return Err(SweepError::Slurm(format!(
            "{name} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Scheduler states of the sweep's array tasks, by point index (PENDING, RUNNING, …), from
/// `squeue` (pending array tasks listed one by one).
pub fn queue(sweep: &Sweep) -> Result<BTreeMap<usize, String>> {
    let out = slurm_cmd(
        Command::new("squeue")
            .args(["-h", "-r", "-o", "%K|%T", "--name"])
            .arg(job_name(sweep)),
    )?;
    Ok(out
        .lines()
        .filter_map(|l| {
            let (k, st) = l.split_once('|')?;
            Some((k.trim().parse().ok()?, st.trim().to_string()))
        })
        .collect())
}

/// Final states of the recorded jobs' tasks from `sacct` (TIMEOUT, CANCELLED, …); empty where
/// accounting is off.
fn accounting(sweep: &Sweep) -> BTreeMap<usize, String> {
    let ids: Vec<String> = read_jobs(sweep).into_iter().map(|j| j.job_id).collect();
    if ids.is_empty() {
        return BTreeMap::new();
    }
    let Ok(out) = slurm_cmd(
        Command::new("sacct")
            .args(["-n", "-P", "-X", "-o", "JobID,State", "-j"])
            .arg(ids.join(",")),
    ) else {
        return BTreeMap::new();
    };
    // Later submissions come later in the output and win.
    out.lines()
        .filter_map(|l| {
            let (id, st) = l.split_once('|')?;
            let task = id.split_once('_')?.1.parse().ok()?;
            Some((task, st.split_whitespace().next()?.to_string()))
        })
        .collect()
}

/// One submission recorded in `<out>/slurm/jobs.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    pub indices: Vec<usize>,
    pub script: PathBuf,
    pub submitted: u64,
}

fn jobs_path(sweep: &Sweep) -> PathBuf {
    sweep.root.join("slurm").join("jobs.json")
}

fn read_jobs(sweep: &Sweep) -> Vec<JobRecord> {
    std::fs::read_to_string(jobs_path(sweep))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// Writes the array script for every point that is neither finished nor queued and, unless
/// `dry_run`, submits it with `sbatch`.
pub fn submit(sweep: &Sweep, o: &SlurmOptions, dry_run: bool) -> Result<Submission> {
    if o.cpus == 0 {
        return Err(SweepError::Invalid("--cpus must be at least 1".into()));
    }
    point::check_directories(sweep)?;
    // What is queued must be known before anything is resubmitted (a point queued twice would
    // run twice); before the first submission there is nothing to ask about.
    let queued = if dry_run || read_jobs(sweep).is_empty() {
        queue(sweep).unwrap_or_default()
    } else {
        queue(sweep).map_err(|e| {
            SweepError::Slurm(format!(
                "cannot tell which points are queued, so nothing was submitted: {e}"
            ))
        })?
    };
    let mut indices = Vec::new();
    for p in &sweep.points {
        if point::state(p)?.0 != PointState::Done && !queued.contains_key(&p.index) {
            indices.push(p.index);
        }
    }
    let dir = sweep.root.join("slurm");
    let n = std::fs::read_dir(&dir).map_or(0, |rd| {
        rd.flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".sbatch"))
            .count()
    });
    let script_path = dir.join(format!("array-{}.sbatch", n + 1));
    if indices.is_empty() {
        return Ok(Submission {
            script: script_path,
            indices,
            job_id: None,
        });
    }
    winq_ir::write_atomic(&script_path, script(sweep, o, &indices).as_bytes())?;
    if dry_run {
        return Ok(Submission {
            script: script_path,
            indices,
            job_id: None,
        });
    }
    let out = slurm_cmd(Command::new("sbatch").arg("--parsable").arg(&script_path))?;
    let job_id = out.trim().split(';').next().unwrap_or("").to_string();
    if job_id.is_empty() {
        return Err(SweepError::Slurm(format!("sbatch printed no job id: {out:?}")));
    }
    let mut jobs = read_jobs(sweep);
    jobs.push(JobRecord {
        job_id: job_id.clone(),
        indices: indices.clone(),
        script: script_path.clone(),
        submitted: now(),
    });
    write_json(&jobs_path(sweep), &jobs)?;
    Ok(Submission {
        script: script_path,
        indices,
        job_id: Some(job_id),
    })
}

/// One point's line of `winq sweep status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatusRow {
    pub index: usize,
    pub name: String,
    pub state: PointState,
    /// The scheduler's word where it has one (PENDING, RUNNING, TIMEOUT, …).
    pub scheduler: Option<String>,
    pub epochs_done: usize,
    pub epochs: Option<usize>,
    pub attempts: u32,
    pub seconds: f64,
    pub dir: PathBuf,
}

/// Every point's state from its run directory, with the scheduler's view where Slurm answers:
/// a queued task is pending, a task Slurm runs is running (its node may be another machine,
/// whose lock this one cannot see).
pub fn status(sweep: &Sweep) -> Result<Vec<StatusRow>> {
    let q = queue(sweep).unwrap_or_default();
    let acct = accounting(sweep);
    sweep
        .points
        .iter()
        .map(|p| {
            let (mut state, st) = point::state(p)?;
            let sched = q.get(&p.index).cloned();
            match sched.as_deref() {
                Some("RUNNING" | "COMPLETING") if state != PointState::Done => state = PointState::Running,
                Some(_) if state != PointState::Done && state != PointState::Running => {
                    state = PointState::Pending
                }
                _ => {}
            }
            let (epochs_done, epochs) = point::epochs(&p.dir);
            Ok(StatusRow {
                index: p.index,
                name: p.name.clone(),
                state,
                scheduler: sched.or_else(|| acct.get(&p.index).cloned()),
                epochs_done,
                epochs,
                attempts: st.as_ref().map_or(0, |s| s.attempts),
                // A running attempt's time so far counts too.
                seconds: st.as_ref().map_or(0.0, |s| {
                    s.seconds
                        + if state == PointState::Running && s.state == PointState::Running {
                            now().saturating_sub(s.started) as f64
                        } else {
                            0.0
                        }
                }),
                dir: p.dir.clone(),
            })
        })
        .collect()
}

/// Whether `sbatch` can be run here (for messages and tests).
pub fn available() -> bool {
    Command::new("sbatch")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The path of the log a task wrote (its scheduler output; the point's own is log.txt).
pub fn task_log(sweep: &Sweep, job: &str, index: usize) -> PathBuf {
    sweep.root.join("slurm").join(format!("{job}_{index}.out"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(array_ranges(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(array_ranges(&[3]), "3");
        assert_eq!(array_ranges(&[]), "");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("/a b/it's"), r"'/a b/it'\''s'");
    }
}
