//! The local runner: N points at a time on this machine, each a `winq sweep exec` child with
//! cores/N threads; finished points are skipped, interrupted ones continue; Ctrl-C stops every
//! point at once (each keeps its last finished epoch) and the same command continues.

use crate::point::{self, PointState};
use crate::{Result, Sweep, SweepError};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How a local sweep ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub done: usize,
    pub failed: Vec<usize>,
    /// Points not finished because the sweep was stopped.
    pub left: usize,
    pub interrupted: bool,
}

/// A point the runner has started.
struct Running {
    index: usize,
    child: Child,
    /// Epochs done when progress was last printed.
    epochs_seen: usize,
    /// Sent SIGTERM (the sweep is stopping).
    signalled: bool,
}

/// One line of the sweep's counts.
pub fn counts_line(sweep: &Sweep) -> Result<String> {
    let mut n: BTreeMap<String, usize> = BTreeMap::new();
    for p in &sweep.points {
        *n.entry(point::state(p)?.0.to_string()).or_default() += 1;
    }
    let get = |k: &str| n.get(k).copied().unwrap_or(0);
    Ok(format!(
        "sweep: {}/{} done, {} running, {} pending, {} interrupted, {} failed",
        get("done"),
        sweep.points.len(),
        get("running"),
        get("pending"),
        get("interrupted"),
        get("failed")
    ))
}

/// A short result of a finished point (its test accuracy, where the command writes one).
pub fn result_note(dir: &Path) -> String {
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    };
    if let Some(v) = read("results.json") {
        if let Some(a) = v["test_acc_best"].as_f64() {
            return format!(", test accuracy {:.2}%", 100.0 * a);
        }
    }
    if let Some(v) = read("retrain.json") {
        if let (Some(a), Some(ms)) = (v["test_acc"].as_f64(), v["measured_ms"].as_f64()) {
            return format!(", retrained test accuracy {:.2}%, {ms:.3} ms", 100.0 * a);
        }
    }
    String::new()
}

/// Runs the sweep's unfinished points, `jobs` at a time with `threads` threads each, printing a
/// line per point event and the overall counts. `exe` is the `winq` binary.
pub fn run(sweep: &Sweep, jobs: usize, threads: usize, exe: &Path) -> Result<Summary> {
    let jobs = jobs.max(1);
    point::check_directories(sweep)?;
    let flag = point::stop_flag();
    let total = sweep.points.len();
    let mut todo = Vec::new();
    let mut summary = Summary::default();
    for p in &sweep.points {
        match point::state(p)?.0 {
            PointState::Done => summary.done += 1,
            PointState::Running => {
                return Err(SweepError::Invalid(format!(
                    "point {} ({}) is being run by another process; wait for it (winq sweep status {})",
                    p.index,
                    p.name,
                    sweep.spec.display()
                )))
            }
            _ => todo.push(p.index),
        }
    }
    println!(
        "{} points: {} done, {} to run, {jobs} at a time with {threads} threads each; runs in {}",
        total,
        summary.done,
        todo.len(),
        sweep.root.display()
    );
    todo.reverse();
    let fingerprint = sweep.fingerprint();
    let mut running: Vec<Running> = Vec::new();
    let mut last_progress = Instant::now();
    loop {
        let stopping = flag.load(Ordering::SeqCst);
        while !stopping && running.len() < jobs {
            let Some(i) = todo.pop() else { break };
            let p = &sweep.points[i];
            let child = Command::new(exe)
                .arg("--threads")
                .arg(threads.to_string())
                .args(["sweep", "exec"])
                .arg(&sweep.spec)
                .args(["--index", &i.to_string(), "--expect", &fingerprint])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| SweepError::io(exe, e))?;
            let resumed = if p.dir.join("last.safetensors").exists() {
                format!(" (continuing after epoch {})", point::epochs(&p.dir).0)
            } else {
                String::new()
            };
            println!("[{i}] {} started{resumed}", p.name);
            running.push(Running {
                index: i,
                child,
                epochs_seen: point::epochs(&p.dir).0,
                signalled: false,
            });
        }
        if running.is_empty() {
            break;
        }
        let mut k = 0;
        while k < running.len() {
            let r = &mut running[k];
            let (i, p) = (r.index, &sweep.points[r.index]);
            if stopping && !r.signalled {
                point::terminate(r.child.id());
                r.signalled = true;
            }
            match r.child.try_wait().map_err(|e| SweepError::io(exe, e))? {
                None => k += 1,
                Some(exit) => {
                    let (state, st) = point::state(p)?;
                    let secs = st.as_ref().map_or(0.0, |s| s.seconds);
                    match state {
                        PointState::Done => {
                            summary.done += 1;
                            println!("[{i}] {} done in {secs:.0} s{}", p.name, result_note(&p.dir));
                        }
                        PointState::Interrupted if flag.load(Ordering::SeqCst) => {
                            summary.left += 1;
                            println!("[{i}] {} interrupted after {secs:.0} s", p.name);
                        }
                        // Failed, or stopped without the sweep stopping (killed from outside, or
                        // `exec` could not even start: its error is on stderr above).
                        _ => {
                            summary.failed.push(i);
                            println!(
                                "[{i}] {} FAILED ({}; exit code {}); see {} and the error above",
                                p.name,
                                state,
                                st.and_then(|s| s.exit_code)
                                    .or(exit.code())
                                    .map_or("-".into(), |c| c.to_string()),
                                p.dir.join(point::LOG_FILE).display()
                            );
                        }
                    }
                    running.swap_remove(k);
                    println!("{}", counts_line(sweep)?);
                }
            }
        }
        // Epoch progress of the running points, when it moves (and at most every 2 s).
        if last_progress.elapsed() >= Duration::from_secs(2) {
            last_progress = Instant::now();
            for r in &mut running {
                let (done, planned) = point::epochs(&sweep.points[r.index].dir);
                if done != r.epochs_seen {
                    r.epochs_seen = done;
                    println!(
                        "[{}] {}: epoch {done}/{} done",
                        r.index,
                        sweep.points[r.index].name,
                        planned.map_or("?".into(), |e| e.to_string())
                    );
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if flag.load(Ordering::SeqCst) {
        summary.interrupted = true;
        summary.left += todo.len();
    }
    Ok(summary)
}
