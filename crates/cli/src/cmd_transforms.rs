use anyhow::Result;
use clap::ValueEnum;
use serde_json::{json, Value};
use winq_transforms::{join, parse_scaling, transform, PointSet, RatMatrix, Scalings, Transform};

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    /// Output tile size m (outputs per tile along each axis).
    #[arg(long, default_value_t = 4)]
    m: usize,
    /// Kernel size r (3 for 3x3).
    #[arg(long, default_value_t = 3)]
    r: usize,
    /// Interpolation points: `default`, `paper`, `lavin`, `paper-released` (the authors' F6
    /// scaling, refused as not exact) or a list such as `0,1,-1,2,-2,1/2,-1/2,inf`.
    #[arg(long, default_value = "default", allow_hyphen_values = true)]
    points: String,
    /// Diagonal scaling Sy (comma list, one per point; needs --points as a list).
    #[arg(long, allow_hyphen_values = true)]
    sy: Option<String>,
    /// Diagonal scaling Sx.
    #[arg(long, allow_hyphen_values = true)]
    sx: Option<String>,
    /// Diagonal scaling Sw.
    #[arg(long, allow_hyphen_values = true)]
    sw: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

fn scalings(a: &Args, set: &mut PointSet) -> Result<()> {
    if a.sy.is_none() && a.sx.is_none() && a.sw.is_none() {
        return Ok(());
    }
    let PointSet::Custom(points, s) = set else {
        anyhow::bail!("--sy/--sx/--sw need --points given as a list, not a named set");
    };
    let ones = || vec![winq_transforms::Rational::from_integer(1.into()); points.len()];
    let parse = |v: &Option<String>| v.as_deref().map(parse_scaling).transpose();
    *s = Some(Scalings {
        sy: parse(&a.sy)?.unwrap_or_else(ones),
        sx: parse(&a.sx)?.unwrap_or_else(ones),
        sw: parse(&a.sw)?.unwrap_or_else(ones),
    });
    Ok(())
}

pub fn run(a: Args) -> Result<()> {
    let mut set: PointSet = a.points.parse()?;
    scalings(&a, &mut set)?;
    let tr = transform(a.m, a.r, &set)?;
    match a.format {
        Format::Text => print!("{}", text(&tr)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&to_json(&tr))?),
    }
    Ok(())
}

fn matrix_text(name: &str, m: &RatMatrix) -> String {
    let cells: Vec<String> = m.data.iter().map(|v| v.to_string()).collect();
    let width = cells.iter().map(|c| c.len()).max().unwrap_or(1);
    let f = m.to_f64();
    let mut out = format!("{name} ({}x{}), exact:\n", m.rows, m.cols);
    for i in 0..m.rows {
        let row: Vec<String> = (0..m.cols)
            .map(|j| format!("{:>width$}", cells[i * m.cols + j]))
            .collect();
        out += &format!("  [ {} ]\n", row.join("  "));
    }
    out += &format!("{name} as f64:\n");
    for i in 0..m.rows {
        let row: Vec<String> = (0..m.cols).map(|j| format!("{:>12.8}", f.at(i, j))).collect();
        out += &format!("  [ {} ]\n", row.join(" "));
    }
    out
}

fn text(tr: &Transform) -> String {
    let s = &tr.scalings;
    let mut out = format!(
        "F({m}x{m}, {r}x{r}): m = {m} outputs, r = {r} taps, tile t = {t}\n\
         points: {p}\nSy: {sy}\nSx: {sx}\nSw: {sw}\n\
         exact: yes (Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A = correlation, proven in rational arithmetic)\n\
         multiplies per output per channel pair: {mul:.3} (direct: {dir})\n\n",
        m = tr.m,
        r = tr.r,
        t = tr.t(),
        p = join(&tr.points),
        sy = join(&s.sy),
        sx = join(&s.sx),
        sw = join(&s.sw),
        mul = (tr.t() * tr.t()) as f64 / (tr.m * tr.m) as f64,
        dir = tr.r * tr.r,
    );
    out += &matrix_text("AT", &tr.at);
    out += "\n";
    out += &matrix_text("BT", &tr.bt);
    out += "\n";
    out += &matrix_text("G", &tr.g);
    out
}

fn matrix_json(m: &RatMatrix) -> Value {
    let f = m.to_f64();
    let exact: Vec<Vec<String>> = (0..m.rows)
        .map(|i| (0..m.cols).map(|j| m.at(i, j).to_string()).collect())
        .collect();
    let float: Vec<Vec<f64>> = (0..m.rows)
        .map(|i| (0..m.cols).map(|j| f.at(i, j)).collect())
        .collect();
    json!({ "rows": m.rows, "cols": m.cols, "exact": exact, "float": float })
}

fn to_json(tr: &Transform) -> Value {
    let strs = |v: &[winq_transforms::Rational]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    json!({
        "m": tr.m,
        "r": tr.r,
        "t": tr.t(),
        "points": tr.points.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "scalings": { "sy": strs(&tr.scalings.sy), "sx": strs(&tr.scalings.sx), "sw": strs(&tr.scalings.sw) },
        "exact": true,
        "AT": matrix_json(&tr.at),
        "BT": matrix_json(&tr.bt),
        "G": matrix_json(&tr.g),
    })
}
