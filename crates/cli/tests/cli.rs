use std::process::{Command, Output};

fn winq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_winq"))
        .args(args)
        .output()
        .expect("winq runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A printed matrix row, ignoring alignment spaces.
fn has_row(out: &str, row: &str) -> bool {
    out.lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == row.split_whitespace().collect::<Vec<_>>())
}

#[test]
fn transforms_f4_prints_lavin_fractions() {
    let o = winq(&["transforms", "--m", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(s.contains("points: 0, 1, -1, 2, -2, inf"));
    assert!(has_row(&s, "[ 4 0 -5 0 1 0 ]"), "{s}");
    assert!(has_row(&s, "[ 0 -2 -1 2 1 0 ]"), "{s}");
    assert!(has_row(&s, "[ 1/24 1/12 1/6 ]"), "{s}");
    assert!(has_row(&s, "[ 0 1 -1 8 -8 1 ]"), "{s}");
}

#[test]
fn transforms_f6_paper_prints_corrected_scaling() {
    let o = winq(&["transforms", "--m", "6", "--r", "3", "--points", "paper"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(s.contains("Sx: 4, -6, -6, 24, 24, -12, -12, 1"));
    assert!(s.contains("243/32"));
    assert!(s.contains("-61/9"));
}

#[test]
fn transforms_json_is_exact() {
    let o = winq(&["transforms", "--m", "2", "--points", "paper", "--format", "json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["G"]["exact"][1][0], "1/2");
    assert_eq!(v["G"]["float"][1][0], 0.5);
    assert_eq!(v["AT"]["exact"][1][3], "-1");
    assert_eq!(v["t"], 4);
}

#[test]
fn transforms_large_kernels_and_custom_scalings() {
    let o = winq(&["transforms", "--m", "8", "--r", "7"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("tile t = 14"));
    let o = winq(&[
        "transforms",
        "--m",
        "2",
        "--points",
        "0,1,-1,inf",
        "--sy",
        "1,1,1,-1",
        "--sx",
        "1,2,2,-1",
        "--sw",
        "1,1/2,1/2,1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn bad_transform_requests_fail_cleanly() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["transforms", "--m", "6", "--points", "paper-released"],
            "do not compute a correlation",
        ),
        (&["transforms", "--m", "0"], "at least 1"),
        (&["transforms", "--r", "1"], "at least 2"),
        (
            &["transforms", "--m", "2", "--points", "0,1,1,inf"],
            "more than once",
        ),
        (
            &["transforms", "--m", "2", "--points", "0,1,inf"],
            "exactly t = m + r - 1 = 4",
        ),
        (
            &["transforms", "--m", "2", "--points", "0,one,-1,inf"],
            "cannot read 'one'",
        ),
        (
            &["transforms", "--m", "3", "--points", "paper"],
            "does not define F(3,3)",
        ),
        (
            &["transforms", "--m", "2", "--points", "paper", "--sx", "1,2,2,-1"],
            "as a list",
        ),
        (
            &[
                "transforms",
                "--m",
                "2",
                "--points",
                "0,1,-1,inf",
                "--sw",
                "1,1,1,2",
            ],
            "Sy*Sx*Sw = 1",
        ),
        (&["transforms", "--m", "x"], "invalid value"),
    ];
    for (args, msg) in cases {
        let o = winq(args);
        let err = stderr(&o);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(msg), "{args:?}: expected '{msg}' in: {err}");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    }
}

#[test]
fn error_study_json_and_plot() {
    let dir = std::env::temp_dir().join(format!("winq-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plot = dir.join("err.svg");
    let o = winq(&[
        "error",
        "-c",
        "4",
        "-k",
        "4",
        "--size",
        "9",
        "--batch",
        "1",
        "--seeds",
        "1",
        "--json",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rows"].as_array().unwrap().len(), 4 * 4);
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("INT8"));
    std::fs::remove_dir_all(&dir).ok();

    let o = winq(&["error", "--bits", "1"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("bit-widths must be 2..=16"));
}

/// Numbers no model can use are clear errors (exit 1), never panics (exit 101) or aborts:
/// width multipliers that leave a layer without channels, NaN, infinity, zero batches, a
/// batch no machine could hold (the error gives the estimate).
#[test]
fn unusable_numbers_are_errors_not_panics() {
    let out = std::env::temp_dir().join(format!("winq-cli-numbers-{}", std::process::id()));
    let o = out.to_str().unwrap();
    for (args, want) in [
        (
            vec!["bench", "model", "synthetic", "--mult", "0", "--reps", "1"],
            "positive and finite",
        ),
        (
            vec!["bench", "model", "synthetic", "--mult", "0.01", "--reps", "1"],
            "at least 0.015625",
        ),
        (
            vec!["bench", "model", "synthetic", "--batch", "0"],
            "--batch and --reps",
        ),
        (
            vec!["train", "--mult", "NaN", "--max-steps", "1", "-o", o],
            "positive and finite",
        ),
        (
            vec!["train", "--mult", "inf", "--max-steps", "1", "-o", o],
            "positive and finite",
        ),
        (
            vec!["train", "--lr", "NaN", "--max-steps", "1", "-o", o],
            "--lr NaN",
        ),
        (
            vec!["train", "--pad-to", "20", "--max-steps", "1", "-o", o],
            "--pad-to 20 is smaller",
        ),
        (
            vec!["train", "--batch", "100000000", "--max-steps", "1", "-o", o],
            "would need about",
        ),
    ] {
        let r = winq(&args);
        let e = stderr(&r);
        assert_eq!(r.status.code(), Some(1), "{args:?}: {e}");
        assert!(e.contains(want), "{args:?}: {e}");
        assert!(!out.join("last.safetensors").exists());
    }
    std::fs::remove_dir_all(&out).ok();
}
