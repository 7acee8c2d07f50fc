//! One point of a sweep on disk: its state (`status.json`, the run directory's lock) and its
//! execution as a child `winq` process (`winq sweep exec`, what both runners start).

use crate::{now, write_json, Point, Result, Sweep, SweepError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The files a sweep keeps in a run directory (everything else is the command's).
pub const POINT_FILE: &str = "point.json";
pub const STATUS_FILE: &str = "status.json";
pub const LOG_FILE: &str = "log.txt";
const LOCK_FILE: &str = ".sweep.lock";

/// Where a point stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PointState {
    /// Never started (or queued, when a scheduler says so).
    Pending,
    Running,
    Done,
    /// Stopped by a signal (Ctrl-C, scancel, a time limit) or killed; the next run continues it.
    Interrupted,
    /// The command failed (its exit code and log say why); the next run tries again.
    Failed,
}

impl std::fmt::Display for PointState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PointState::Pending => "pending",
            PointState::Running => "running",
            PointState::Done => "done",
            PointState::Interrupted => "interrupted",
            PointState::Failed => "failed",
        })
    }
}

/// `status.json`: the last attempt at a point.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub state: PointState,
    /// Attempts so far (a resumed point counts each).
    pub attempts: u32,
    /// When the last attempt started / ended (seconds since the Unix epoch).
    pub started: u64,
    #[serde(default)]
    pub finished: Option<u64>,
    /// Wall time of all attempts together (s).
    pub seconds: f64,
    #[serde(default)]
    pub exit_code: Option<i32>,
    pub host: String,
    pub pid: u32,
    /// "JOB_TASK" when the attempt ran as a Slurm array task.
    #[serde(default)]
    pub slurm_job: Option<String>,
    /// The epochs the last attempt found done and continued from (None: started fresh).
    #[serde(default)]
    pub resumed_from_epoch: Option<usize>,
}

impl Status {
    /// A new attempt after `prev` by this process, running from now (wall time of earlier
    /// attempts kept).
    fn next_attempt(prev: Option<&Status>, resumed_from_epoch: Option<usize>) -> Status {
        Status {
            state: PointState::Running,
            attempts: prev.map_or(0, |s| s.attempts) + 1,
            started: now(),
            finished: None,
            seconds: prev.map_or(0.0, |s| s.seconds),
            exit_code: None,
            host: host(),
            pid: std::process::id(),
            slurm_job: slurm_task(),
            resumed_from_epoch,
        }
    }
}

/// `point.json`: what a run directory was made by.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointRecord {
    pub sweep: PathBuf,
    pub index: usize,
    pub name: String,
    pub options: Vec<(String, String)>,
    /// The `winq` arguments (without `--threads` and `--resume`, which vary by attempt).
    pub argv: Vec<String>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| SweepError::Invalid(format!("{} is not a valid sweep file ({e})", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SweepError::io(path, e)),
    }
}

/// The status file of a run directory, if any.
pub fn read_status(dir: &Path) -> Result<Option<Status>> {
    read_json(&dir.join(STATUS_FILE))
}

/// Whether some process runs a point in `dir` now (holds its lock).
fn lock_held(dir: &Path) -> bool {
    // Opened for writing: NFS emulates flock with fcntl locks, which need it. A shared probe
    // never blocks a reader; `take_lock` retries briefly for a probe that holds it this instant.
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join(LOCK_FILE))
    else {
        return false;
    };
    matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock))
}

/// Where a point stands by its files: a "running" status whose lock nobody holds was killed
/// without a word (SIGKILL, a lost node) and counts as interrupted.
pub fn state(p: &Point) -> Result<(PointState, Option<Status>)> {
    let st = read_status(&p.dir)?;
    let s = match &st {
        None => PointState::Pending,
        Some(s) if s.state == PointState::Running && !lock_held(&p.dir) => PointState::Interrupted,
        Some(s) => s.state,
    };
    Ok((s, st))
}

/// Epochs done and planned of a training in `dir` (metrics.jsonl lines, config.json epochs).
pub fn epochs(dir: &Path) -> (usize, Option<usize>) {
    let done = std::fs::read_to_string(dir.join("metrics.jsonl")).map_or(0, |t| t.lines().count());
    let planned = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["epochs"].as_u64())
        .map(|e| e as usize);
    (done, planned)
}

/// Takes a run directory for one attempt (an exclusive lock on `.sweep.lock`).
fn take_lock(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| SweepError::io(&path, e))?;
    // A status probe holds the lock for an instant: a point that is really running holds it
    // for longer than the retries.
    for _ in 0..40 {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(std::fs::TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(50)),
            Err(std::fs::TryLockError::Error(e)) => return Err(SweepError::io(&path, e)),
        }
    }
    Err(SweepError::Invalid(format!(
        "{} is being run by another process (it holds {})",
        dir.display(),
        path.display()
    )))
}

/// The sweep's own files in a run directory (and `attempt-N` folders of restarted searches).
fn is_sweep_file(name: &str) -> bool {
    [POINT_FILE, STATUS_FILE, LOG_FILE, LOCK_FILE].contains(&name) || name.starts_with("attempt-")
}

/// Refuses a run directory that holds someone else's work: files without a `point.json`, or a
/// `point.json` of another command (an edited sweep file must not reuse its directories).
fn check_owner(sweep: &Sweep, p: &Point) -> Result<()> {
    let rec: Option<PointRecord> = read_json(&p.dir.join(POINT_FILE))?;
    match rec {
        Some(r) if r.argv != p.argv => Err(SweepError::Invalid(format!(
            "{} holds a run of another command ({}); this sweep's point {} would run `winq {}`; nothing was \
             changed: choose another out or name pattern, or remove the directory",
            p.dir.display(),
            r.argv.join(" "),
            p.index,
            p.argv.join(" ")
        ))),
        Some(_) => Ok(()),
        None => {
            let foreign: Vec<String> = std::fs::read_dir(&p.dir)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| !is_sweep_file(n))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(f) = foreign.first() {
                return Err(SweepError::Invalid(format!(
                    "{} already holds files that no sweep wrote (e.g. {f}); nothing was changed: choose another \
                     out or name pattern",
                    p.dir.display()
                )));
            }
            let rec = PointRecord {
                sweep: sweep.spec.clone(),
                index: p.index,
                name: p.name.clone(),
                options: p.options.clone(),
                argv: p.argv.clone(),
            };
            write_json(&p.dir.join(POINT_FILE), &rec)
        }
    }
}

/// Checks, for every point that already has a run directory, that it is this sweep's (before
/// anything runs; see `check_owner`).
pub fn check_directories(sweep: &Sweep) -> Result<()> {
    for p in &sweep.points {
        if p.dir.is_dir() {
            let rec: Option<PointRecord> = read_json(&p.dir.join(POINT_FILE))?;
            let foreign = match rec {
                Some(r) => r.argv != p.argv,
                None => std::fs::read_dir(&p.dir)
                    .map(|rd| {
                        rd.flatten()
                            .any(|e| !is_sweep_file(&e.file_name().to_string_lossy()))
                    })
                    .unwrap_or(false),
            };
            if foreign {
                // Same message as at run time.
                return check_owner(sweep, p);
            }
        }
    }
    Ok(())
}

/// Moves what an interrupted search left behind into `attempt-N/` (a search starts over; its
/// partial outputs are kept, not overwritten).
fn set_aside(dir: &Path) -> Result<()> {
    let leftovers: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| SweepError::io(dir, e))?
        .flatten()
        .filter(|e| !is_sweep_file(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    if leftovers.is_empty() {
        return Ok(());
    }
    let to = (1..)
        .map(|k| dir.join(format!("attempt-{k}")))
        .find(|p| !p.exists())
        .unwrap_or_else(|| dir.join("attempt-last"));
    std::fs::create_dir_all(&to).map_err(|e| SweepError::io(&to, e))?;
    for p in leftovers {
        if let Some(n) = p.file_name() {
            std::fs::rename(&p, to.join(n)).map_err(|e| SweepError::io(&p, e))?;
        }
    }
    Ok(())
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The array task this process runs as, when Slurm started it.
fn slurm_task() -> Option<String> {
    let job = std::env::var("SLURM_ARRAY_JOB_ID")
        .or_else(|_| std::env::var("SLURM_JOB_ID"))
        .ok()?;
    Some(match std::env::var("SLURM_ARRAY_TASK_ID") {
        Ok(t) => format!("{job}_{t}"),
        Err(_) => job,
    })
}

/// Sends SIGTERM to a process (a child that the signal did not reach itself).
pub(crate) fn terminate(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours; `pid` is a child
        // this process started and has not yet reaped, so it names no other process.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

/// A flag raised by SIGINT, SIGTERM or SIGHUP (Ctrl-C, scancel, a Slurm time limit). The
/// handler is installed once per process.
pub fn stop_flag() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let f = Arc::new(AtomicBool::new(false));
        let g = f.clone();
        // If another handler is installed already, signals keep their default action (the
        // process stops; the point then reads as interrupted).
        let _ = ctrlc::set_handler(move || g.store(true, Ordering::SeqCst));
        f
    })
    .clone()
}

/// Records that a point could not start here (its check failed where it runs, e.g. a node
/// without the data): `status.json` says failed and `log.txt` says why. The caller holds the
/// point's lock.
fn record_failure(p: &Point, prev: Option<&Status>, why: &str) -> Result<()> {
    let log_path = p.dir.join(LOG_FILE);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| SweepError::io(&log_path, e))?;
    use std::io::Write;
    writeln!(log, "== could not start on {}: {why}", host()).map_err(|e| SweepError::io(&log_path, e))?;
    let status = Status {
        state: PointState::Failed,
        finished: Some(now()),
        ..Status::next_attempt(prev, None)
    };
    write_json(&p.dir.join(STATUS_FILE), &status)
}

/// Runs point `index` of a sweep to its end as a child `winq` (`exe`) with `threads` threads:
/// skips it when done, checks its command with `check` where it runs (a failure is recorded,
/// and the error returned), continues an interrupted training (`--resume`), records every
/// attempt in `status.json` and the command's output in `log.txt`. Returns the state it ended
/// in. A finished point is never touched again.
pub fn exec(
    sweep: &Sweep,
    index: usize,
    threads: usize,
    exe: &Path,
    check: &dyn Fn(&[String]) -> Result<(), String>,
) -> Result<PointState> {
    let p = sweep.point(index)?;
    std::fs::create_dir_all(&p.dir).map_err(|e| SweepError::io(&p.dir, e))?;
    let _lock = take_lock(&p.dir)?;
    let prev = read_status(&p.dir)?;
    if prev.as_ref().is_some_and(|s| s.state == PointState::Done) {
        return Ok(PointState::Done);
    }
    check_owner(sweep, p)?;
    if let Err(why) = check(&p.argv) {
        record_failure(p, prev.as_ref(), &why)?;
        return Err(SweepError::Invalid(format!("point {index} ({}): {why}", p.name)));
    }
    let mut argv = p.argv.clone();
    let mut resumed_from_epoch = None;
    if sweep.command == "search" {
        set_aside(&p.dir)?;
    } else if p.dir.join("last.safetensors").exists() {
        argv.push("--resume".into());
        resumed_from_epoch = Some(epochs(&p.dir).0);
    }
    let flag = stop_flag();
    let mut status = Status::next_attempt(prev.as_ref(), resumed_from_epoch);
    let status_path = p.dir.join(STATUS_FILE);
    write_json(&status_path, &status)?;
    let log_path = p.dir.join(LOG_FILE);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| SweepError::io(&log_path, e))?;
    {
        use std::io::Write;
        let mut l = &log;
        let _ = writeln!(
            l,
            "== attempt {} on {} (pid {}{}): winq --threads {threads} {}",
            status.attempts,
            status.host,
            status.pid,
            status
                .slurm_job
                .as_deref()
                .map_or(String::new(), |j| format!(", Slurm {j}")),
            argv.join(" ")
        );
    }
    let err_log = log.try_clone().map_err(|e| SweepError::io(&log_path, e))?;
    let t0 = Instant::now();
    let mut child = std::process::Command::new(exe)
        .arg("--threads")
        .arg(threads.to_string())
        .args(&argv)
        .current_dir(&sweep.base)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .spawn()
        .map_err(|e| SweepError::io(exe, e))?;
    let mut forwarded = false;
    let exit = loop {
        if let Some(st) = child.try_wait().map_err(|e| SweepError::io(exe, e))? {
            break st;
        }
        if flag.load(Ordering::SeqCst) && !forwarded {
            terminate(child.id());
            forwarded = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    use std::os::unix::process::ExitStatusExt;
    let by_signal = exit
        .signal()
        .is_some_and(|s| [libc::SIGINT, libc::SIGTERM, libc::SIGHUP].contains(&s));
    status.state = if exit.success() {
        PointState::Done
    } else if flag.load(Ordering::SeqCst) || by_signal {
        PointState::Interrupted
    } else {
        PointState::Failed
    };
    status.exit_code = exit.code();
    status.finished = Some(now());
    status.seconds += t0.elapsed().as_secs_f64();
    write_json(&status_path, &status)?;
    Ok(status.state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_search_is_set_aside_into_a_fresh_attempt_folder() {
        let dir = std::env::temp_dir().join(format!("winq-sweep-aside-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("attempt-1")).unwrap();
        std::fs::write(dir.join("attempt-1/search.json"), "old").unwrap();
        std::fs::write(dir.join("search.json"), "new").unwrap();
        std::fs::create_dir_all(dir.join("retrain")).unwrap();
        std::fs::write(dir.join(STATUS_FILE), "{}").unwrap();
        set_aside(&dir).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("attempt-1/search.json")).unwrap(),
            "old"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("attempt-2/search.json")).unwrap(),
            "new"
        );
        assert!(dir.join("attempt-2/retrain").is_dir() && !dir.join("retrain").exists());
        assert!(dir.join(STATUS_FILE).exists(), "the sweep's own files stay");
        // Nothing left to move: no new folder.
        set_aside(&dir).unwrap();
        assert!(!dir.join("attempt-3").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_status_probe_does_not_make_a_starting_point_fail() {
        let dir = std::env::temp_dir().join(format!("winq-sweep-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let held = take_lock(&dir).unwrap();
        assert!(lock_held(&dir));
        assert!(take_lock(&dir).is_err(), "a second runner must be refused");
        drop(held);
        assert!(!lock_held(&dir));
        // A probe holding the lock for an instant: the runner retries and gets it.
        let probe = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .unwrap();
        probe.try_lock_shared().unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(probe);
        });
        assert!(take_lock(&dir).is_ok());
        t.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
