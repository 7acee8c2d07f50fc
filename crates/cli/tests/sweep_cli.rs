//! `winq sweep` and `winq report` as a user runs them: a local sweep stopped with Ctrl-C and
//! run again ends exactly where an uninterrupted run ends; a Slurm job array (a real one, on
//! the cluster `.ci/slurm-up` starts) with one task cancelled and resubmitted does too; bad
//! sweeps fail before anything runs and touch nothing.

mod common;
use common::metrics;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use winq_data::{synthetic_images, write_idx, DatasetKind, Split};

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("winq-sweep-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn winq() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_winq"));
    c.env("RAYON_NUM_THREADS", "2");
    c
}

fn run(c: &mut Command) -> Output {
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A small subset of Fashion-MNIST (its first images) where the dataset is installed, else
/// synthetic images of the same format.
fn data(dir: &Path, train: usize, test: usize) -> PathBuf {
    let d = dir.join("data");
    let kind = DatasetKind::FashionMnist;
    for (split, n, seed) in [(Split::Train, train, 1), (Split::Test, test, 2)] {
        match winq_data::load(kind, &kind.default_dir(), split) {
            Ok(ds) => {
                let labels: Vec<u8> = ds.labels[..n].iter().map(|&l| l as u8).collect();
                write_idx(&d, split, &ds.images[..n * 784], &labels, 28, 28).unwrap();
            }
            Err(_) => {
                let (img, lab) = synthetic_images(n, seed);
                write_idx(&d, split, &img, &lab, 28, 28).unwrap();
            }
        }
    }
    d
}

/// A sweep file of lenet trainings over `algos` × `seeds` (`epochs` each) on the data in `dir`.
fn spec(dir: &Path, out: &str, algos: &str, seeds: &str, epochs: usize) -> PathBuf {
    let p = dir.join(format!("{out}.toml"));
    std::fs::write(
        &p,
        format!(
            "command = \"train\"\nout = \"{out}\"\nname = \"{{algo}}-s{{seed}}\"\n\
             [options]\nmodel = \"lenet\"\nmult = 0.5\nepochs = {epochs}\nbatch = 32\ndata = \"data\"\nquiet = true\n\
             [grid]\nalgo = [{algos}]\nseed = [{seeds}]\n"
        ),
    )
    .unwrap();
    p
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// The point's command run directly, uninterrupted, into `out` with `threads` threads; then
/// the same metrics, results and last checkpoint as the point's run directory.
fn assert_equals_uninterrupted(point: &Path, out: &Path, threads: usize, base: &Path) {
    let argv: Vec<String> = json(&point.join("point.json"))["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let n = argv.len();
    assert_eq!(argv[n - 2], "--out");
    let o = run(winq()
        .current_dir(base)
        .arg("--threads")
        .arg(threads.to_string())
        .args(&argv[..n - 2])
        .arg("--out")
        .arg(out));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(metrics(point), metrics(out));
    let res = |p: &Path| {
        let mut v = json(&p.join("results.json"));
        v.as_object_mut().unwrap().remove("seconds");
        v
    };
    assert_eq!(res(point), res(out));
    let a = winq_train::checkpoint::contents(&point.join("last.safetensors")).unwrap();
    let b = winq_train::checkpoint::contents(&out.join("last.safetensors")).unwrap();
    assert!(
        a == b,
        "the continued point's checkpoint differs from an uninterrupted run"
    );
}

/// `winq report DIR --format json` (no timing).
fn report_json(root: &Path) -> serde_json::Value {
    let o = run(winq()
        .arg("report")
        .arg(root)
        .args(["--no-latency", "--format", "json"]));
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn local_sweep_stopped_with_ctrl_c_continues_where_it_stopped() {
    let dir = temp("local");
    data(&dir, 1600, 200);
    let spec = spec(&dir, "grid", "\"im2row\", \"F2\"", "0, 1", 3);
    let root = dir.join("grid");
    let first = root.join("im2row-s0");

    // Ctrl-C reaches the whole foreground process group: the runner, its points, their runs.
    let mut child = winq()
        .arg("sweep")
        .arg(&spec)
        .args(["--local", "2"])
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the first epoch of point 0", Duration::from_secs(180), || {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before it could be stopped"
        );
        metrics(&first).len() == 1 && first.join("last.safetensors").exists()
    });
    let st = Command::new("kill")
        .args(["-INT", "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(130), "{said}");
    assert!(said.contains("run the same command to continue"), "{said}");
    let status = json(&first.join("status.json"));
    assert_eq!(status["state"], "interrupted", "{status}");
    assert!(
        metrics(&first).len() < 3,
        "the stop did not land before the end of point 0"
    );

    let o = run(winq().args(["sweep", "status"]).arg(&spec));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("interrupted"), "{}", text(&o));

    // Run again: everything finishes; point 0 continued from its last epoch.
    let o = run(winq().arg("sweep").arg(&spec).args(["--local", "2"]));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("4/4 done"), "{}", text(&o));
    let status = json(&first.join("status.json"));
    assert_eq!(status["state"], "done");
    assert_eq!(status["attempts"], 2);
    assert!(
        status["resumed_from_epoch"].as_u64().is_some_and(|e| e >= 1),
        "{status}"
    );
    assert!(std::fs::read_to_string(first.join("log.txt"))
        .unwrap()
        .contains("--resume"));
    assert_equals_uninterrupted(&first, &dir.join("direct"), 1, &dir);

    // Once more: nothing to run.
    let o = run(winq().arg("sweep").arg(&spec).args(["--local", "2"]));
    assert!(text(&o).contains("4 done, 0 to run"), "{}", text(&o));

    // The report: one row per algorithm over its two seeds, in every format, and the plot.
    let o = run(winq()
        .arg("report")
        .arg(&root)
        .args(["--no-latency", "-o"])
        .arg(dir.join("acc.svg")));
    let md = text(&o);
    assert!(o.status.success(), "{md}");
    // Per-tap scales (the default) exist only in the Winograd runs, so the field varies.
    assert!(
        md.contains("| algo | mode | per-tap | test_acc (%) | runs |"),
        "{md}"
    );
    assert_eq!(md.matches(" | 2 | ").count(), 2, "{md}");
    assert!(std::fs::read_to_string(dir.join("acc.svg"))
        .unwrap()
        .contains("<svg"));
    let t = report_json(&root);
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        let acc: Vec<f64> = r["dirs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                100.0
                    * json(&Path::new(d.as_str().unwrap()).join("results.json"))["test_acc_best"]
                        .as_f64()
                        .unwrap()
            })
            .collect();
        let mean = (acc[0] + acc[1]) / 2.0;
        assert!((r["stats"]["test_acc"]["mean"].as_f64().unwrap() - mean).abs() < 1e-9);
        assert_eq!(r["stats"]["test_acc"]["n"], 2);
    }
    let o = run(winq().arg("report").arg(&root).args([
        "--no-latency",
        "--format",
        "csv",
        "--group-by",
        "algo,seed",
    ]));
    let csv = String::from_utf8_lossy(&o.stdout);
    assert!(csv.starts_with("algo,seed,runs,test_acc_mean"), "{csv}");
    assert_eq!(csv.lines().count(), 5, "{csv}");
}

#[test]
fn bad_sweeps_fail_before_anything_runs() {
    let dir = temp("bad");
    data(&dir, 64, 32);
    let write = |name: &str, body: &str| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let opts = "[options]\nmodel = \"lenet\"\ndata = \"data\"\nepochs = 1\n";
    let head = format!("command = \"train\"\nout = \"o\"\n{opts}");
    let cases = [
        (
            "unknown.toml",
            format!("{head}[grid]\nseed = [0]\nepoch = [1]\n"),
            "unexpected argument '--epoch",
        ),
        (
            "lr.toml",
            format!("{head}[grid]\nlr = [0.01, -1.0]\n"),
            "point 1 (lr--1): --lr -1",
        ),
        (
            "algo.toml",
            format!("{head}[grid]\nalgo = [\"direct\"]\n"),
            "1 of 1 points would be rejected",
        ),
        (
            "data.toml",
            format!("{head}[grid]\nseed = [0]\n[[point]]\ndata = \"nowhere\"\n"),
            "does not exist",
        ),
        ("empty.toml", format!("{head}[grid]\n"), "no points"),
        (
            "key.toml",
            format!("command = \"train\"\nout = \"o\"\ngrids = 1\n{opts}"),
            "unknown field",
        ),
        (
            "same.toml",
            format!("command = \"train\"\nout = \"o\"\nname = \"x\"\n{opts}[grid]\nseed = [0, 1]\n"),
            "both map to the run directory",
        ),
    ];
    for (file, body, want) in &cases {
        let p = write(file, body);
        let o = run(winq().arg("sweep").arg(&p).args(["--local", "1"]));
        assert!(!o.status.success(), "{file}: {}", text(&o));
        assert!(text(&o).contains(want), "{file}: {}", text(&o));
        assert!(
            !dir.join("o").exists(),
            "{file}: a refused sweep created its output"
        );
    }

    // A run directory that someone else's files occupy is not touched.
    let p = write("ok.toml", &format!("{head}[grid]\nseed = [0]\n"));
    let foreign = dir.join("o").join("seed-0");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let o = run(winq().arg("sweep").arg(&p));
    assert!(!o.status.success());
    assert!(
        text(&o).contains("holds files that no sweep wrote"),
        "{}",
        text(&o)
    );
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).unwrap(),
        "mine"
    );
    assert!(!foreign.join("point.json").exists());

    // A point directory made by another command (the file was edited since) is not reused.
    std::fs::remove_file(foreign.join("notes.txt")).unwrap();
    let o = run(winq().arg("sweep").arg(&p).args(["--slurm", "--dry-run"]));
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(
        foreign.join("point.json"),
        r#"{"sweep": "x", "index": 0, "name": "seed-0", "options": [], "argv": ["train", "--seed", "5"]}"#,
    )
    .unwrap();
    let o = run(winq().arg("sweep").arg(&p));
    assert!(
        text(&o).contains("holds a run of another command"),
        "{}",
        text(&o)
    );
    std::fs::remove_file(foreign.join("point.json")).unwrap();

    // --dry-run writes the Slurm script only; without sbatch a submission says so.
    let script = std::fs::read_to_string(dir.join("o/slurm/array-1.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0\n"), "{script}");
    assert!(
        script.contains("sweep exec") && script.contains("--index \"$SLURM_ARRAY_TASK_ID\""),
        "{script}"
    );
    let o = run(winq()
        .env("PATH", dir.join("no-bin"))
        .arg("sweep")
        .arg(&p)
        .arg("--slurm"));
    assert!(!o.status.success());
    assert!(text(&o).contains("sbatch not found"), "{}", text(&o));

    // A point whose check fails where it runs (a node without the data) is recorded as failed.
    let moved = dir.join("data-moved");
    std::fs::rename(dir.join("data"), &moved).unwrap();
    let o = run(winq().args(["sweep", "exec"]).arg(&p).args(["--index", "0"]));
    std::fs::rename(&moved, dir.join("data")).unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("does not exist"), "{}", text(&o));
    assert_eq!(json(&foreign.join("status.json"))["state"], "failed");
    assert!(std::fs::read_to_string(foreign.join("log.txt"))
        .unwrap()
        .contains("could not start"));
    let o = run(winq().args(["sweep", "status"]).arg(&p));
    assert!(
        text(&o).contains("0/1 done, 0 running, 0 pending, 0 interrupted, 1 failed"),
        "{}",
        text(&o)
    );

    // A sweep file edited after the runner started or the array was submitted is refused.
    let o =
        run(winq()
            .args(["sweep", "exec"])
            .arg(&p)
            .args(["--index", "0", "--expect", "0000000000000000"]));
    assert!(!o.status.success());
    assert!(
        text(&o).contains("changed after this sweep was started"),
        "{}",
        text(&o)
    );

    // An unknown point, and a report over nothing.
    let o = run(winq().args(["sweep", "exec"]).arg(&p).args(["--index", "3"]));
    assert!(text(&o).contains("there is no point 3"), "{}", text(&o));
    let o = run(winq().arg("report").arg(&dir));
    assert!(!o.status.success());
    assert!(text(&o).contains("no finished runs"), "{}", text(&o));
}

/// Whether a Slurm cluster answers here; where none does, the test says so (CI starts one
/// with `.ci/slurm-up` and sets WINQ_REQUIRE_SLURM=1, so there it fails instead).
fn slurm_up() -> bool {
    let ok = Command::new("sinfo")
        .args(["-h", "-o", "%t"])
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.starts_with("idle") || l.starts_with("mix") || l.starts_with("alloc"))
        });
    if !ok {
        assert!(
            std::env::var_os("WINQ_REQUIRE_SLURM").is_none(),
            "WINQ_REQUIRE_SLURM is set but no Slurm cluster answers sinfo (start one: .ci/slurm-up)"
        );
        eprintln!("SKIPPED slurm test: no Slurm cluster answers `sinfo` here; start one with .ci/slurm-up (root, slurm-wlm)");
    }
    ok
}

fn squeue(name_of: &str) -> String {
    let o = Command::new("squeue")
        .args(["-h", "-r", "-o", "%K %T", "--name", name_of])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn slurm_array_with_a_cancelled_task_resubmits_and_continues() {
    if !slurm_up() {
        return;
    }
    let dir = temp("slurm");
    data(&dir, 1600, 200);
    let spec = spec(&dir, "grid", "\"im2row\", \"F2\", \"F4\", \"F6\"", "0, 1", 3);
    let root = dir.join("grid");
    // sbatch refusing the array is an error that shows why.
    let o = run(winq()
        .arg("sweep")
        .arg(&spec)
        .args(["--slurm", "--partition", "no-such-partition"]));
    assert!(!o.status.success());
    assert!(
        text(&o).contains("sbatch failed") && text(&o).contains("partition"),
        "{}",
        text(&o)
    );
    let o = run(winq().arg("sweep").arg(&spec).args(["--slurm", "--cpus", "1"]));
    assert!(o.status.success(), "{}", text(&o));
    let said = text(&o);
    let job = said
        .split_whitespace()
        .skip_while(|w| *w != "job")
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    let script = std::fs::read_to_string(root.join("slurm/array-2.sbatch")).unwrap();
    let name = script
        .lines()
        .find_map(|l| l.strip_prefix("#SBATCH --job-name="))
        .unwrap()
        .to_string();

    // While the array is queued or running, a resubmission submits nothing, and status shows
    // the scheduler's view.
    let o = run(winq().arg("sweep").arg(&spec).args(["--slurm", "--cpus", "1"]));
    assert!(text(&o).contains("nothing to submit"), "{}", text(&o));
    let o = run(winq().args(["sweep", "status"]).arg(&spec));
    assert!(
        text(&o).contains("PENDING") || text(&o).contains("RUNNING"),
        "{}",
        text(&o)
    );

    // Cancel point 0's task in its second epoch.
    let first = root.join("im2row-s0");
    wait_for("the first epoch of point 0", Duration::from_secs(300), || {
        metrics(&first).len() == 1 && first.join("last.safetensors").exists()
    });
    let st = Command::new("scancel").arg(format!("{job}_0")).status().unwrap();
    assert!(st.success());
    wait_for(
        "the whole array to leave the queue",
        Duration::from_secs(600),
        || squeue(&name).trim().is_empty(),
    );
    let status = json(&first.join("status.json"));
    assert_eq!(status["state"], "interrupted", "{status}");
    assert_eq!(status["slurm_job"], format!("{job}_0"));
    let o = run(winq().args(["sweep", "status"]).arg(&spec));
    let table = text(&o);
    assert!(table.contains("7/8 done"), "{table}");

    // Resubmit: only point 0 goes, and it continues from its last epoch.
    let o = run(winq().arg("sweep").arg(&spec).args(["--slurm", "--cpus", "1"]));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("1 points as array tasks 0 "), "{}", text(&o));
    wait_for("the resubmitted task", Duration::from_secs(300), || {
        squeue(&name).trim().is_empty()
    });
    let status = json(&first.join("status.json"));
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["attempts"], 2);
    assert!(
        status["resumed_from_epoch"].as_u64().is_some_and(|e| e >= 1),
        "{status}"
    );
    assert_equals_uninterrupted(&first, &dir.join("direct"), 1, &dir);
    let o = run(winq().args(["sweep", "status"]).arg(&spec));
    assert!(text(&o).contains("8/8 done"), "{}", text(&o));
    let o = run(winq().arg("sweep").arg(&spec).arg("--slurm"));
    assert!(text(&o).contains("nothing to submit"), "{}", text(&o));

    // Every run directory made it into the report: 4 configurations × 2 seeds.
    let t = report_json(&root);
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{t}");
    assert!(rows.iter().all(|r| r["runs"] == 2), "{t}");
}
