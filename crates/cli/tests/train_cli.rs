//! `winq train` as a user runs it: SIGKILL in the second epoch and --resume must end exactly
//! where an uninterrupted run ends; bad input must fail cleanly.

mod common;
use common::metrics;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use winq_data::{synthetic_images, write_idx, Split};

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("winq-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn train_cmd(data: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_winq"));
    c.args([
        "train",
        "--model",
        "lenet",
        "--mult",
        "1",
        "--algo",
        "F4",
        "--mode",
        "flex",
        "--dataset",
        "fashion-mnist",
    ]);
    c.args(["--epochs", "3", "--seed", "7", "--quiet", "--data"])
        .arg(data)
        .arg("-o")
        .arg(out);
    c.env("RAYON_NUM_THREADS", "2");
    c
}

#[test]
fn sigkill_in_the_second_epoch_then_resume_matches_an_uninterrupted_run() {
    let dir = temp("kill");
    let data = dir.join("data");
    let (img, lab) = synthetic_images(2400, 1);
    write_idx(&data, Split::Train, &img, &lab, 28, 28).unwrap();
    let (img, lab) = synthetic_images(200, 2);
    write_idx(&data, Split::Test, &img, &lab, 28, 28).unwrap();

    let a = dir.join("a");
    let st = train_cmd(&data, &a).stdout(Stdio::null()).status().unwrap();
    assert!(st.success());

    let b = dir.join("b");
    let mut child = train_cmd(&data, &b)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !(metrics(&b).len() == 1 && b.join("last.safetensors").exists()) {
        assert!(t0.elapsed() < Duration::from_secs(120), "epoch 1 never finished");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(metrics(&b).len(), 1, "the kill did not land in the second epoch");

    let st = train_cmd(&data, &b)
        .arg("--resume")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(metrics(&a), metrics(&b));
    let res = |p: &Path| {
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p.join("results.json")).unwrap()).unwrap();
        v.as_object_mut().unwrap().remove("seconds");
        v
    };
    assert_eq!(res(&a), res(&b));
    let ca = winq_train::checkpoint::contents(&a.join("last.safetensors")).unwrap();
    let cb = winq_train::checkpoint::contents(&b.join("last.safetensors")).unwrap();
    assert!(
        ca == cb,
        "the resumed run's last checkpoint differs from the uninterrupted one"
    );

    // eval and plot on the finished run.
    let o = Command::new(env!("CARGO_BIN_EXE_winq"))
        .arg("eval")
        .arg(&a)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let acc = res(&a)["test_acc_best"].as_f64().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("test accuracy {:.2}%", 100.0 * acc)));
    let o = Command::new(env!("CARGO_BIN_EXE_winq"))
        .arg("plot")
        .arg(&a)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["loss.svg", "accuracy.svg"] {
        let svg = std::fs::read_to_string(a.join(f)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("val"), "{f}");
    }

    // The deploy path: export, run on the test images, and evaluate through the engine.
    let model = dir.join("m.winq");
    let winq = |args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_winq"))
            .args(args)
            .output()
            .unwrap()
    };
    let o = winq(&["export".as_ref(), a.as_os_str(), "-o".as_ref(), model.as_os_str()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Exporting again over the model is fine; over the training checkpoint it is refused.
    let o = winq(&["export".as_ref(), a.as_os_str(), "-o".as_ref(), model.as_os_str()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let best = a.join("best.safetensors");
    let before = std::fs::read(&best).unwrap();
    let o = winq(&["export".as_ref(), a.as_os_str(), "-o".as_ref(), best.as_os_str()]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("not a winq deploy model") && e.contains("--force"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(&best).unwrap(),
        before,
        "the checkpoint is untouched"
    );
    // A training checkpoint given to `run` says what to do.
    let o = winq(&[
        "run".as_ref(),
        best.as_os_str(),
        "--input".as_ref(),
        data.join("t10k-images-idx3-ubyte").as_os_str(),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("training checkpoint") && e.contains("winq export"),
        "{e}"
    );
    let images = data.join("t10k-images-idx3-ubyte");
    let o = winq(&[
        "run".as_ref(),
        model.as_os_str(),
        "--input".as_ref(),
        images.as_os_str(),
        "--show".as_ref(),
        "5".as_ref(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.starts_with("image "))
            .count(),
        5
    );
    let o = winq(&["eval".as_ref(), a.as_os_str(), "--engine".as_ref()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let agree: f64 = out
        .split("agrees with the training model on ")
        .nth(1)
        .and_then(|r| r.split('%').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(agree >= 99.0, "{out}");
    // A damaged model is a clear error.
    std::fs::write(&model, b"junk").unwrap();
    let o = winq(&[
        "run".as_ref(),
        model.as_os_str(),
        "--input".as_ref(),
        images.as_os_str(),
    ]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("m.winq"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_training_input_fails_cleanly() {
    let dir = temp("bad");
    let layers = dir.join("layers.json");
    std::fs::write(&layers, r#"{"layers": [{"algo": "F4", "bits": 8}]}"#).unwrap();
    let missing = dir.join("nowhere");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--data".into(), missing.display().to_string()],
            "apt-get install -y dataset-fashion-mnist",
        ),
        (vec!["--algo".into(), "F0".into()], "unknown algorithm"),
        (vec!["--bits".into(), "1".into()], "bits must be"),
        (
            vec!["--layers".into(), layers.display().to_string()],
            "lists 1 layers",
        ),
        (vec!["--dataset".into(), "imagenet".into()], "imagenet"),
        (vec!["--mode".into(), "fast".into()], "unknown --mode"),
    ];
    for (args, want) in cases {
        let o = Command::new(env!("CARGO_BIN_EXE_winq"))
            .arg("train")
            .args(&args)
            .arg("-o")
            .arg(dir.join("out"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: expected '{want}' in {err}");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `adapt` takes the network's kind, width and input geometry from its source run (before, it
/// silently built the default ResNet18Like x0.25 unless told again), and reports a run without
/// a validation split as such.
#[test]
fn adapt_inherits_the_source_network_and_input() {
    let dir = temp("adapt");
    let data = dir.join("data");
    let (img, lab) = synthetic_images(96, 3);
    write_idx(&data, Split::Train, &img, &lab, 28, 28).unwrap();
    let (img, lab) = synthetic_images(16, 4);
    write_idx(&data, Split::Test, &img, &lab, 28, 28).unwrap();
    let winq = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_winq"))
            .args(args)
            .arg("--data")
            .arg(&data)
            .env("RAYON_NUM_THREADS", "2")
            .output()
            .unwrap()
    };
    let (src, out) = (dir.join("i2r"), dir.join("adapted"));
    let o = winq(&[
        "train",
        "--model",
        "lenet",
        "--mult",
        "0.5",
        "--algo",
        "im2row",
        "--pad-to",
        "32",
        "--epochs",
        "1",
        "--val-fraction",
        "0",
        "--quiet",
        "-o",
        src.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("no validation split"));
    let o = winq(&[
        "adapt",
        "--from",
        src.to_str().unwrap(),
        "--algo",
        "F4",
        "--epochs",
        "1",
        "--quiet",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["model"]["arch"], "lenet");
    assert_eq!(cfg["model"]["mult"], 0.5);
    assert_eq!(cfg["pad_to"], 32);
    assert_eq!(cfg["model"]["input"]["height"], 32);
    assert_eq!(cfg["model"]["layers"][0]["algo"], "F4");

    // Outputs users consume: the exported model on image files (PGM), padded like training;
    // top-k with class names, JSON lines with logits and probabilities.
    let model = dir.join("m.winq");
    let o = Command::new(env!("CARGO_BIN_EXE_winq"))
        .args(["export", out.to_str().unwrap(), "-o", model.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pgm = |name: &str, size: usize, seed: u8| {
        let p = dir.join(name);
        let mut b = format!("P5\n{size} {size}\n255\n").into_bytes();
        b.extend((0..size * size).map(|i| (i as u8).wrapping_mul(seed)));
        std::fs::write(&p, b).unwrap();
        p
    };
    let (a, b, small) = (pgm("a.pgm", 28, 3), pgm("b.pgm", 28, 7), pgm("large.pgm", 40, 5));
    let jsonl = dir.join("pred.jsonl");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_winq"))
            .args(["run", model.to_str().unwrap(), "--top", "2"])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = run(&[
        "--input",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "-o",
        jsonl.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        text.lines().filter(|l| l.starts_with("image ")).count(),
        2,
        "{text}"
    );
    assert!(
        text.lines().all(|l| l.matches(" | ").count() == 1),
        "top 2 per line: {text}"
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let p: f64 = lines[1]["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((p - 1.0).abs() < 1e-4, "{p}");
    assert_eq!(lines[0]["logits"].as_array().unwrap().len(), 10);
    assert!(lines[0]["top"][0]["label"].is_string());
    // An image larger than the input needs --resize; with it, it runs.
    let o = run(&["--input", small.to_str().unwrap()]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--resize"));
    let o = run(&[
        "--input",
        small.to_str().unwrap(),
        "--resize",
        "--format",
        "jsonl",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(v["image"], 0);
    std::fs::remove_dir_all(&dir).ok();
}

/// Training into a log (stderr not a terminal) names its run directory at the start and prints
/// a progress line every WINQ_LOG_EVERY_S seconds (30 by default) instead of a hidden bar.
#[test]
fn logs_get_progress_lines() {
    let dir = temp("log");
    let data = dir.join("data");
    let (img, lab) = synthetic_images(160, 5);
    write_idx(&data, Split::Train, &img, &lab, 28, 28).unwrap();
    let (img, lab) = synthetic_images(16, 6);
    write_idx(&data, Split::Test, &img, &lab, 28, 28).unwrap();
    let out = dir.join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_winq"))
        .args([
            "train", "--model", "lenet", "--algo", "im2row", "--epochs", "1", "--batch", "16", "--data",
        ])
        .arg(&data)
        .arg("-o")
        .arg(&out)
        .env("WINQ_LOG_EVERY_S", "0")
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert!(e.contains(&format!("run in {}", out.display())), "{e}");
    let lines = e.lines().filter(|l| l.starts_with("epoch 1/1: step ")).count();
    assert_eq!(lines, 9, "one line per step at WINQ_LOG_EVERY_S=0: {e}");
    std::fs::remove_dir_all(&dir).ok();
}
