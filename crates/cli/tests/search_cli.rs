//! `winq search` as a user runs it: the documented pipeline (latency table from `winq bench
//! layers`, search, retrain, export, engine timing) on small synthetic data, and clean errors
//! for a missing, corrupt or mismatched latency table.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use winq_data::{synthetic_images, write_idx, Split};

fn temp(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("winq-search-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn winq(args: &[&str], paths: &[(&str, &Path)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_winq"));
    c.args(args);
    for (flag, p) in paths {
        c.arg(flag).arg(p);
    }
    c.env("RAYON_NUM_THREADS", "2");
    c.output().unwrap()
}

fn data(dir: &Path) -> PathBuf {
    let d = dir.join("data");
    let (img, lab) = synthetic_images(640, 1);
    write_idx(&d, Split::Train, &img, &lab, 28, 28).unwrap();
    let (img, lab) = synthetic_images(96, 2);
    write_idx(&d, Split::Test, &img, &lab, 28, 28).unwrap();
    d
}

const SEARCH: &[&str] = &[
    "search",
    "--model",
    "lenet",
    "--mult",
    "0.5",
    "--epochs",
    "2",
    "--warmup-epochs",
    "1",
    "--batch",
    "32",
    "--val-fraction",
    "0.25",
    "--arch-every",
    "1",
    "--log-every",
    "2",
    "--reps",
    "3",
    "--quiet",
];

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn bad_latency_tables_fail_with_a_clear_message() {
    let dir = temp("errors");
    let d = data(&dir);
    let out = dir.join("out");
    let missing = dir.join("nope.json");
    let o = winq(SEARCH, &[("--lut", &missing), ("--data", &d), ("-o", &out)]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("cannot read the latency table"),
        "{}",
        stderr(&o)
    );

    let corrupt = dir.join("corrupt.json");
    std::fs::write(&corrupt, "{\"entries\": [1, 2").unwrap();
    let o = winq(SEARCH, &[("--lut", &corrupt), ("--data", &d), ("-o", &out)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is not a latency table"), "{}", stderr(&o));

    // A table of another model: the layer shapes are not in it.
    let other = dir.join("other.json");
    std::fs::write(
        &other,
        r#"{"threads":1,"model":"resnet18like","mult":0.5,"input":[3,32,32],"entries":[
        {"in_channels":32,"out_channels":32,"height":32,"width":32,"batch":1,"candidate":"im2row-int8","ms":0.1}]}"#,
    )
    .unwrap();
    let o = winq(SEARCH, &[("--lut", &other), ("--data", &d), ("-o", &out)]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("has no layer 8->16 at 14x14") && e.contains("winq bench layers"),
        "{e}"
    );
    assert!(
        !out.join("search.json").exists(),
        "nothing written on a bad table"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn table_search_retrain_export_and_timing() {
    let dir = temp("pipeline");
    let d = data(&dir);
    let lut = dir.join("lut.json");
    let o = winq(
        &[
            "--threads",
            "1",
            "bench",
            "layers",
            "--model",
            "lenet",
            "--mult",
            "0.5",
            "--size",
            "28",
            "--channels",
            "1",
            "--batches",
            "1",
            "--reps",
            "2",
        ],
        &[("-o", &lut)],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    let out = dir.join("search");
    let mut args = SEARCH.to_vec();
    args.extend(["--retrain", "--retrain-epochs", "1"]);
    let o = winq(&args, &[("--lut", &lut), ("--data", &d), ("-o", &out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("chosen network") && stdout.contains("retrained: test accuracy"),
        "{stdout}"
    );

    // The chosen layers in the training file format.
    let layers: winq_train::config::LayerFile =
        serde_json::from_str(&std::fs::read_to_string(out.join("layers.json")).unwrap()).unwrap();
    assert_eq!(layers.layers.len(), 2);
    // One trajectory point per 2 logit steps plus the start and each epoch end; probabilities
    // of every layer sum to one.
    let traj: Vec<serde_json::Value> = std::fs::read_to_string(out.join("trajectory.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let steps_per_epoch = 480usize.div_ceil(32);
    assert_eq!(traj.len(), 1 + steps_per_epoch / 2 + 2);
    for t in &traj {
        let probs = t["probs"].as_array().unwrap();
        assert_eq!(probs.len(), 2);
        for p in probs {
            let s: f64 = p.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).sum();
            assert!((s - 1.0).abs() < 1e-9);
        }
    }
    let lat: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("latency.json")).unwrap()).unwrap();
    assert!(lat["expected_searchable_ms"].as_f64().unwrap() > 0.0);
    assert!(lat["predicted_ms"].as_f64().is_some());
    assert_eq!(lat["layers"].as_array().unwrap().len(), 2);
    let svg = std::fs::read_to_string(out.join("probabilities.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("layer 1") && svg.contains("im2row-int8"));
    let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2);

    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("retrain.json")).unwrap()).unwrap();
    assert!(r["measured_ms"].as_f64().unwrap() > 0.0);
    assert!(r["test_acc"].as_f64().unwrap() > 0.3, "{r}");
    assert!(out.join("model.winq").exists() && out.join("retrain/best.safetensors").exists());

    // `winq train --layers` reads the file as is; a second search into the same directory is refused.
    let o = winq(
        &[
            "train",
            "--model",
            "lenet",
            "--mult",
            "0.5",
            "--epochs",
            "1",
            "--max-steps",
            "2",
            "--quiet",
        ],
        &[
            ("--layers", &out.join("layers.json")),
            ("--data", &d),
            ("-o", &dir.join("train")),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = winq(SEARCH, &[("--lut", &lut), ("--data", &d), ("-o", &out)]);
    assert!(!o.status.success() && stderr(&o).contains("already holds a search"));

    // `winq search-report`: a baseline run needs its model.winq; then one row per network and
    // a point per network in the plot.
    let train = dir.join("train");
    let front = dir.join("front.svg");
    let report = || {
        Command::new(env!("CARGO_BIN_EXE_winq"))
            .args(["search-report", "--reps", "2", "-o"])
            .args([&front, &out, &train])
            .output()
            .unwrap()
    };
    let o = report();
    assert!(
        !o.status.success() && stderr(&o).contains("winq export"),
        "{}",
        stderr(&o)
    );
    let o = Command::new(env!("CARGO_BIN_EXE_winq"))
        .arg("export")
        .arg(&train)
        .arg("-o")
        .arg(train.join("model.winq"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = report();
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("| wiNAS λ=1 ("), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("| ")).count(),
        3,
        "{stdout}"
    );
    let svg = std::fs::read_to_string(&front).unwrap();
    assert!(svg.contains("wiNAS λ=1"), "{svg}");
    assert_eq!(svg.matches("<circle").count(), 1, "one searched network");

    // `winq report` over both: a row for the search (its retraining's accuracy) and one for the
    // baseline, each with the engine latency of its model.winq, and the front beside the bars.
    let o = Command::new(env!("CARGO_BIN_EXE_winq"))
        .args(["report", "--reps", "2", "--format", "json", "-o"])
        .args([&dir.join("r.svg"), &out, &train])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let t: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{t}");
    let search_row = rows.iter().find(|r| r["key"]["command"] == "search").unwrap();
    assert_eq!(search_row["key"]["lambda"], "1", "{t}");
    let acc = search_row["stats"]["test_acc"]["mean"].as_f64().unwrap();
    assert!((acc - 100.0 * r["test_acc"].as_f64().unwrap()).abs() < 1e-9);
    assert!(
        rows.iter()
            .all(|r| r["stats"]["latency_ms"]["mean"].as_f64().unwrap() > 0.0),
        "{t}"
    );
    assert!(std::fs::read_to_string(dir.join("r-front.svg"))
        .unwrap()
        .contains("<circle"));
    std::fs::remove_dir_all(&dir).ok();
}
