use winq_transforms::{parse_rational, transform, Point, PointSet, RatMatrix, Transform, TransformError};

/// Parses a matrix written as rows of fractions.
fn mat(rows: &[&[&str]]) -> RatMatrix {
    let cols = rows[0].len();
    RatMatrix::from_fn(rows.len(), cols, |i, j| parse_rational(rows[i][j]).unwrap())
}

#[test]
fn paper_f2_is_lavin_and_gray() {
    let t = transform(2, 3, &PointSet::Paper).unwrap();
    assert_eq!(t.at, mat(&[&["1", "1", "1", "0"], &["0", "1", "-1", "-1"]]));
    assert_eq!(
        t.bt,
        mat(&[
            &["1", "0", "-1", "0"],
            &["0", "1", "1", "0"],
            &["0", "-1", "1", "0"],
            &["0", "1", "0", "-1"],
        ])
    );
    assert_eq!(
        t.g,
        mat(&[
            &["1", "0", "0"],
            &["1/2", "1/2", "1/2"],
            &["1/2", "-1/2", "1/2"],
            &["0", "0", "1"],
        ])
    );
}

#[test]
fn paper_f4_is_lavin_and_gray() {
    let t = transform(4, 3, &PointSet::Paper).unwrap();
    assert_eq!(
        t.at,
        mat(&[
            &["1", "1", "1", "1", "1", "0"],
            &["0", "1", "-1", "2", "-2", "0"],
            &["0", "1", "1", "4", "4", "0"],
            &["0", "1", "-1", "8", "-8", "1"],
        ])
    );
    assert_eq!(
        t.bt,
        mat(&[
            &["4", "0", "-5", "0", "1", "0"],
            &["0", "-4", "-4", "1", "1", "0"],
            &["0", "4", "-4", "-1", "1", "0"],
            &["0", "-2", "-1", "2", "1", "0"],
            &["0", "2", "-1", "-2", "1", "0"],
            &["0", "4", "0", "-5", "0", "1"],
        ])
    );
    assert_eq!(
        t.g,
        mat(&[
            &["1/4", "0", "0"],
            &["-1/6", "-1/6", "-1/6"],
            &["-1/6", "1/6", "-1/6"],
            &["1/24", "1/12", "1/6"],
            &["1/24", "-1/12", "1/6"],
            &["0", "0", "1"],
        ])
    );
    // Lavin's F(4,3) is also what the Lagrange scaling gives for these points.
    assert_eq!(transform(4, 3, &PointSet::Lavin).unwrap(), t);
}

#[test]
fn paper_f6_corrected_is_exact_and_pinned() {
    let t = transform(6, 3, &PointSet::Paper).unwrap();
    assert_eq!(
        t.g,
        mat(&[
            &["1/4", "0", "0"],
            &["-1/6", "-1/6", "-1/6"],
            &["-1/6", "1/6", "-1/6"],
            &["1/24", "1/12", "1/6"],
            &["1/24", "-1/12", "1/6"],
            &["-1/12", "-1/8", "-3/16"],
            &["-1/12", "1/8", "-3/16"],
            &["0", "0", "1"],
        ])
    );
    let at_row4: Vec<String> = (0..8).map(|j| t.at.at(5, j).to_string()).collect();
    assert_eq!(at_row4, ["0", "1", "-1", "32", "-32", "243/32", "-243/32", "1"]);
    assert_eq!(
        t.bt,
        mat(&[
            &["4", "0", "-61/9", "0", "29/9", "0", "-4/9", "0"],
            &["0", "-36/5", "-36/5", "5", "5", "-4/5", "-4/5", "0"],
            &["0", "36/5", "-36/5", "-5", "5", "4/5", "-4/5", "0"],
            &["0", "18/7", "9/7", "-26/7", "-13/7", "8/7", "4/7", "0"],
            &["0", "-18/7", "9/7", "26/7", "-13/7", "-8/7", "4/7", "0"],
            &["0", "256/35", "512/105", "-64/7", "-128/21", "64/35", "128/105", "0"],
            &["0", "-256/35", "512/105", "64/7", "-128/21", "-64/35", "128/105", "0"],
            &["0", "-9", "0", "61/4", "0", "-29/4", "0", "1"],
        ])
    );
}

#[test]
fn released_f6_scaling_is_refused() {
    let err = transform(6, 3, &PointSet::PaperReleasedF6).unwrap_err();
    match &err {
        TransformError::NotExact(d) => {
            assert_eq!(d.points, "0, 1, -1, 2, -2, 3/2, -3/2, inf");
            assert_eq!(d.sx, "4, -6, -6, 24, 24, 1, -12, -12");
        }
        other => panic!("expected NotExact, got {other:?}"),
    }
    assert!(err.to_string().contains("Sy*Sx*Sw = 1"));
}

#[test]
fn default_builds_every_m_up_to_8_and_r_up_to_7() {
    for r in 2..=7 {
        for m in 1..=8 {
            let t = transform(m, r, &PointSet::Default).unwrap_or_else(|e| panic!("F({m},{r}) failed: {e}"));
            assert_eq!((t.at.rows, t.at.cols), (m, m + r - 1));
            assert_eq!((t.bt.rows, t.bt.cols), (m + r - 1, m + r - 1));
            assert_eq!((t.g.rows, t.g.cols), (m + r - 1, r));
        }
    }
}

#[test]
fn lavin_f6_uses_halves() {
    let t = transform(6, 3, &PointSet::Lavin).unwrap();
    assert!(t.points.contains(&Point::frac(1, 2)));
    assert!(t.points.contains(&Point::frac(-1, 2)));
    assert!(!t.points.contains(&Point::frac(3, 2)));
}

#[test]
fn custom_points_with_lagrange_scaling() {
    let set: PointSet = "0,1,-1,2,-2,1/2,-1/2,inf".parse().unwrap();
    let t = transform(6, 3, &set).unwrap();
    assert_eq!(t, transform(6, 3, &PointSet::Lavin).unwrap());
    // Without infinity every point is finite; still exact.
    let set: PointSet = "0,1,-1,2".parse().unwrap();
    assert!(transform(2, 3, &set).is_ok());
}

/// The float view computes a correlation too (1-D check in f64).
#[test]
fn float_view_correlates() {
    for (m, r) in [(2, 3), (4, 3), (6, 3), (3, 5), (2, 7)] {
        let tr = transform(m, r, &PointSet::Default).unwrap().to_f64();
        let t = m + r - 1;
        let d: Vec<f64> = (0..t).map(|i| ((i * 7 + 3) % 11) as f64 - 5.0).collect();
        let g: Vec<f64> = (0..r).map(|i| ((i * 5 + 1) % 7) as f64 - 3.0).collect();
        let gw: Vec<f64> = (0..t)
            .map(|j| (0..r).map(|k| tr.g.at(j, k) * g[k]).sum())
            .collect();
        let dw: Vec<f64> = (0..t)
            .map(|j| (0..t).map(|l| tr.bt.at(j, l) * d[l]).sum())
            .collect();
        for i in 0..m {
            let y: f64 = (0..t).map(|j| tr.at.at(i, j) * gw[j] * dw[j]).sum();
            let want: f64 = (0..r).map(|k| g[k] * d[i + k]).sum();
            assert!(
                (y - want).abs() < 1e-9 * (1.0 + want.abs()),
                "F({m},{r}) y[{i}]={y} want {want}"
            );
        }
    }
}

#[test]
fn invalid_requests_are_errors() {
    assert_eq!(
        transform(0, 3, &PointSet::Default).unwrap_err(),
        TransformError::OutputSize(0)
    );
    assert_eq!(
        transform(2, 1, &PointSet::Default).unwrap_err(),
        TransformError::KernelSize(1)
    );
    let set: PointSet = "0,1,1,inf".parse().unwrap();
    assert!(matches!(transform(2, 3, &set), Err(TransformError::RepeatedPoint(p)) if p == "1"));
    let set: PointSet = "0,1,inf".parse().unwrap();
    assert!(matches!(
        transform(2, 3, &set),
        Err(TransformError::PointCount {
            expected: 4,
            got: 3,
            ..
        })
    ));
    assert!(matches!(
        "0,1,x".parse::<PointSet>(),
        Err(TransformError::BadPoint(_))
    ));
    assert!(matches!(
        transform(3, 3, &PointSet::Paper),
        Err(TransformError::UnknownSet { .. })
    ));
    assert!(matches!(
        transform(4, 5, &PointSet::Paper),
        Err(TransformError::UnknownSet { .. })
    ));
    // Equal points written differently are still repeated.
    let set: PointSet = "0,0.5,1/2,inf".parse().unwrap();
    assert!(matches!(
        transform(2, 3, &set),
        Err(TransformError::RepeatedPoint(_))
    ));
}

#[test]
fn user_scalings_are_checked() {
    let points = winq_transforms::parse_points("0,1,-1,inf").unwrap();
    let bad = winq_transforms::Scalings {
        sy: winq_transforms::parse_scaling("1,1,1,1").unwrap(),
        sx: winq_transforms::parse_scaling("1,2,2,1").unwrap(),
        sw: winq_transforms::parse_scaling("1,1/2,1/2,1").unwrap(),
    };
    // Sx·Sw = 1 but the Lagrange-free base needs no sign flip: this one is exact...
    assert!(Transform::build(2, 3, &points, Some(bad.clone())).is_ok());
    // ...while breaking the product condition is refused.
    let mut broken = bad;
    broken.sw[1] = parse_rational("1/3").unwrap();
    assert!(matches!(
        Transform::build(2, 3, &points, Some(broken)),
        Err(TransformError::NotExact(_))
    ));
}
