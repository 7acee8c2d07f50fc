//! The sweep file and the points it expands to.
//!
//! A sweep file (TOML, or JSON with the same keys) names a base command, its options, a grid
//! of option lists whose product gives the points, explicit extra points, an output root and a
//! run-name pattern:
//!
//! ```toml
//! command = "train"                       # train, search or adapt
//! out = "runs/fmnist-grid"                # relative to this file's directory
//! name = "{algo}-{mode}-int{bits}-s{seed}"  # optional; default: key-value pairs of what varies
//!
//! [options]                               # every point's options (long names, no "--")
//! model = "resnet18like"
//! pad-to = 32
//! quiet = true                            # true: a flag; false: left out
//!
//! [grid]                                  # the product of these lists, in this order
//! algo = ["im2row", "F4"]
//! seed = [0, 1]
//!
//! [[point]]                               # extra points, on top of [options]
//! algo = "F6"
//! seed = 0
//! ```
//!
//! Each point is one run directory `<out>/<name>` and one command line. The sweep sets `--out`
//! (the run directory), `--resume` (when a point continues) and `--threads` itself, so a file
//! may not set them.

use crate::{Result, SweepError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::{Table, Value};

/// The commands a sweep can run.
pub const COMMANDS: [&str; 3] = ["train", "search", "adapt"];

/// Options the sweep itself sets on every point.
const RESERVED: [&str; 4] = ["out", "o", "resume", "threads"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    command: String,
    out: PathBuf,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    options: Table,
    #[serde(default)]
    grid: Table,
    #[serde(default, rename = "point")]
    points: Vec<Table>,
}

/// One point of a sweep: its run directory and the command that produces it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Position in the sweep (grid points first, in product order, then the extra points):
    /// the Slurm array index.
    pub index: usize,
    pub name: String,
    pub dir: PathBuf,
    /// The options of the point, as strings ("true" for a flag), in the order they are passed.
    pub options: Vec<(String, String)>,
    /// `winq` arguments without the program name and without `--threads`: the command, its
    /// options, `--out DIR`.
    pub argv: Vec<String>,
}

/// A loaded sweep file and its points.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The sweep file (absolute).
    pub spec: PathBuf,
    /// Its directory: relative paths of the file (out, and option values such as --data)
    /// are relative to it, and every point runs there.
    pub base: PathBuf,
    /// The output root (absolute).
    pub root: PathBuf,
    pub command: String,
    pub points: Vec<Point>,
}

impl Sweep {
    /// Reads and expands a sweep file; every structural mistake is an error naming the key.
    pub fn load(path: &Path) -> Result<Sweep> {
        let text = std::fs::read_to_string(path).map_err(|e| SweepError::io(path, e))?;
        let spec = std::path::absolute(path).map_err(|e| SweepError::io(path, e))?;
        let json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let file: SpecFile = if json {
            serde_json::from_str(&text).map_err(|e| SweepError::spec(&spec, e.to_string()))?
        } else {
            toml::from_str(&text)
                .map_err(|e| SweepError::spec(&spec, e.to_string().trim_end().to_string()))?
        };
        let base = spec.parent().unwrap_or(Path::new("/")).to_path_buf();
        expand(file, spec, base)
    }

    /// A fingerprint of every point's command line: `exec --expect` refuses to run an index of
    /// a sweep file that changed after the runner started or the array was submitted (the
    /// index would now name another point).
    pub fn fingerprint(&self) -> String {
        let bytes = self
            .points
            .iter()
            .flat_map(|p| p.argv.iter())
            .flat_map(|a| a.bytes().chain([0]));
        format!("{:016x}", crate::fnv(bytes))
    }

    /// Checks a fingerprint taken when the runner started or the array was submitted.
    pub fn expect(&self, fingerprint: &str) -> Result<()> {
        if self.fingerprint() == fingerprint {
            return Ok(());
        }
        Err(SweepError::Invalid(format!(
            "{} changed after this sweep was started or submitted (its points differ now), so the point \
             indices no longer mean the same runs; nothing was run: start the sweep again (finished points are kept)",
            self.spec.display()
        )))
    }

    /// The point with this index.
    pub fn point(&self, index: usize) -> Result<&Point> {
        self.points.get(index).ok_or_else(|| {
            SweepError::Invalid(format!(
                "{} has {} points (0..{}); there is no point {index}",
                self.spec.display(),
                self.points.len(),
                self.points.len().saturating_sub(1)
            ))
        })
    }
}

/// An option name as written in the file ("pad_to" or "pad-to") → "pad-to", or why not.
fn option_name(key: &str, at: &str) -> std::result::Result<String, String> {
    let k = key.replace('_', "-");
    let ok = k.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && k.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        return Err(format!(
            "{at}: '{key}' is not an option name (use the long name without --, e.g. pad-to)"
        ));
    }
    if RESERVED.contains(&k.as_str()) {
        return Err(format!(
            "{at}: '{key}' is set by the sweep for every point (out: the run directory under the sweep's out; \
             resume: when a point continues; threads: from --local or --cpus)"
        ));
    }
    Ok(k)
}

/// An option value as its command-line text (None: a flag set to false, left out).
fn option_value(v: &Value, at: &str) -> std::result::Result<Option<String>, String> {
    let scalar = |v: &Value| -> std::result::Result<String, String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Integer(i) => Ok(i.to_string()),
            Value::Float(f) => Ok(f.to_string()),
            Value::Boolean(b) => Ok(b.to_string()),
            _ => Err(format!(
                "{at}: lists of lists, tables and dates are not option values"
            )),
        }
    };
    match v {
        Value::Boolean(false) => Ok(None),
        Value::Boolean(true) => Ok(Some("true".into())),
        Value::Array(items) if items.is_empty() => Err(format!("{at}: an empty list is not a value")),
        Value::Array(items) => Ok(Some(
            items
                .iter()
                .map(scalar)
                .collect::<std::result::Result<Vec<_>, _>>()?
                .join(","),
        )),
        v => scalar(v).map(Some),
    }
}

/// The options of a table, in order.
fn options_of(t: &Table, at: &str) -> std::result::Result<Vec<(String, Value)>, String> {
    t.iter()
        .map(|(k, v)| Ok((option_name(k, at)?, v.clone())))
        .collect()
}

/// Sets `key` in an ordered option list (replacing an earlier value in place).
fn set(list: &mut Vec<(String, Value)>, key: &str, v: Value) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = v,
        None => list.push((key.to_string(), v)),
    }
}

/// A directory-name-safe form of a value.
fn path_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._+=-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The run name of a point: the pattern with `{key}` replaced by the point's values (`{index}`
/// and `{command}` too).
fn render(pattern: &str, vars: &BTreeMap<String, String>) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out += &rest[..open];
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("name pattern '{pattern}': an unclosed {{"))?;
        let key = rest[open + 1..open + close].replace('_', "-");
        let v = vars.get(&key).ok_or_else(|| {
            format!(
                "name pattern '{pattern}' uses {{{key}}}, which this point does not set (it sets: {})",
                vars.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
        out += &path_part(v);
        rest = &rest[open + close + 1..];
    }
    out += rest;
    if out.is_empty() || out == "." || out == ".." || out.contains('/') {
        return Err(format!(
            "name pattern '{pattern}' gives the unusable run name '{out}'"
        ));
    }
    Ok(out)
}

/// `a/b/../c` → `a/c` (without touching the filesystem: the directories need not exist yet).
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir if out.parent().is_some() => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

fn expand(file: SpecFile, spec: PathBuf, base: PathBuf) -> Result<Sweep> {
    let bad = |m: String| SweepError::spec(&spec, m);
    if !COMMANDS.contains(&file.command.as_str()) {
        return Err(bad(format!(
            "command '{}': a sweep runs {}",
            file.command,
            COMMANDS.join(", ")
        )));
    }
    let base_opts = options_of(&file.options, "[options]").map_err(bad)?;
    let mut axes: Vec<(String, Vec<Value>)> = Vec::new();
    for (k, v) in &file.grid {
        let name = option_name(k, "[grid]").map_err(bad)?;
        match v {
            Value::Array(values) if !values.is_empty() => axes.push((name, values.clone())),
            _ => {
                return Err(bad(format!(
                    "[grid] {k}: give a non-empty list of values, e.g. {k} = [0, 1]"
                )))
            }
        }
    }
    let extras = file
        .points
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if t.is_empty() {
                return Err(format!("[[point]] number {}: sets no option", i + 1));
            }
            options_of(t, &format!("[[point]] number {}", i + 1))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(bad)?;
    if axes.is_empty() && extras.is_empty() {
        return Err(bad(
            "the sweep has no points: give [grid] lists and/or [[point]] tables".into(),
        ));
    }

    // What each point sets beyond the base options, in order: grid points in product order
    // (the last axis fastest), then the extra points.
    let mut varied: Vec<Vec<(String, Value)>> = Vec::new();
    if !axes.is_empty() {
        let mut idx = vec![0usize; axes.len()];
        'product: loop {
            varied.push(
                axes.iter()
                    .zip(&idx)
                    .map(|((k, vs), &i)| (k.clone(), vs[i].clone()))
                    .collect(),
            );
            for a in (0..axes.len()).rev() {
                idx[a] += 1;
                if idx[a] < axes[a].1.len() {
                    continue 'product;
                }
                idx[a] = 0;
            }
            break;
        }
    }
    varied.extend(extras);

    // The default name: "key-value" for every key that the grid or an extra point sets.
    let mut varied_keys: Vec<String> = Vec::new();
    for p in &varied {
        for (k, _) in p {
            if !varied_keys.contains(k) {
                varied_keys.push(k.clone());
            }
        }
    }
    let root = lexical(&base.join(&file.out));
    let mut points = Vec::with_capacity(varied.len());
    let mut dirs: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for (index, v) in varied.into_iter().enumerate() {
        let mut opts = base_opts.clone();
        for (k, val) in &v {
            set(&mut opts, k, val.clone());
        }
        let mut options = Vec::new();
        let mut vars = BTreeMap::new();
        for (k, val) in &opts {
            let at = format!("point {index}, option {k}");
            if let Some(text) = option_value(val, &at).map_err(&bad)? {
                vars.insert(k.clone(), text.clone());
                options.push((k.clone(), text));
            } else {
                vars.insert(k.clone(), "false".into());
            }
        }
        vars.insert("index".into(), index.to_string());
        vars.insert("command".into(), file.command.clone());
        let name = match &file.name {
            Some(p) => render(p, &vars).map_err(&bad)?,
            None => {
                let parts: Vec<String> = varied_keys
                    .iter()
                    .filter(|k| v.iter().any(|(vk, _)| vk == *k))
                    .map(|k| format!("{k}-{}", path_part(&vars[k])))
                    .collect();
                parts.join("_")
            }
        };
        let dir = root.join(&name);
        if let Some(first) = dirs.insert(dir.clone(), index) {
            return Err(bad(format!(
                "points {first} and {index} both map to the run directory {}: add the keys that tell them apart \
                 to the name pattern",
                dir.display()
            )));
        }
        let mut argv = vec![file.command.clone()];
        // "--key=value": a value that starts with '-' (a negative number) stays a value.
        for (k, text) in &options {
            argv.push(if text == "true" {
                format!("--{k}")
            } else {
                format!("--{k}={text}")
            });
        }
        argv.push("--out".into());
        argv.push(dir.display().to_string());
        points.push(Point {
            index,
            name,
            dir,
            options,
            argv,
        });
    }
    Ok(Sweep {
        spec,
        base,
        root,
        command: file.command,
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, ext: &str) -> Result<Sweep> {
        let dir = std::env::temp_dir().join(format!("winq-sweep-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("s{}.{ext}", text.len()));
        std::fs::write(&p, text).unwrap();
        Sweep::load(&p)
    }

    #[test]
    fn grid_product_order_names_and_argv() {
        let s = load(
            "command = \"train\"\nout = \"runs/g\"\n[options]\nmodel = \"lenet\"\nquiet = true\nno-flip = false\n\
             [grid]\nalgo = [\"im2row\", \"F4\"]\nseed = [0, 1]\n[[point]]\nalgo = \"F6\"\nlr = 0.01\n",
            "toml",
        )
        .unwrap();
        let names: Vec<&str> = s.points.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "algo-im2row_seed-0",
                "algo-im2row_seed-1",
                "algo-F4_seed-0",
                "algo-F4_seed-1",
                "algo-F6_lr-0.01"
            ]
        );
        let p = &s.points[4];
        assert_eq!(p.dir, s.base.join("runs/g/algo-F6_lr-0.01"));
        assert_eq!(lexical(Path::new("/a/./b/../c/..")), Path::new("/a"));
        assert_eq!(
            p.argv,
            [
                "train",
                "--model=lenet",
                "--quiet",
                "--algo=F6",
                "--lr=0.01",
                "--out",
                &p.dir.display().to_string()
            ]
        );
    }

    #[test]
    fn json_pattern_lists_and_underscores() {
        let s = load(
            r#"{"command": "search", "out": "o", "name": "{algos}-s{seed}-{index}",
                "options": {"pad_to": 32}, "grid": {"algos": [["im2row", "F4"], "F2"], "seed": [3]}}"#,
            "json",
        )
        .unwrap();
        assert_eq!(s.points[0].name, "im2row_F4-s3-0");
        assert_eq!(s.points[0].argv[1..3], ["--pad-to=32", "--algos=im2row,F4"]);
        assert_eq!(s.points[1].name, "F2-s3-1");
    }

    #[test]
    fn the_repository_sweep_files_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sweeps");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let s = Sweep::load(&e.path()).unwrap_or_else(|err| panic!("{err}"));
            assert!(!s.points.is_empty());
            n += 1;
        }
        assert!(n >= 2);
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            ("command = \"train\"\nout = \"o\"\n", "no points"),
            (
                "command = \"train\"\nout = \"o\"\n[grid]\nseed = []\n",
                "non-empty list",
            ),
            (
                "command = \"train\"\nout = \"o\"\n[grid]\nseed = 1\n",
                "non-empty list",
            ),
            (
                "command = \"eval\"\nout = \"o\"\n[grid]\nseed = [1]\n",
                "a sweep runs",
            ),
            (
                "command = \"train\"\nout = \"o\"\nepoch = 3\n[grid]\nseed = [1]\n",
                "unknown field",
            ),
            (
                "command = \"train\"\nout = \"o\"\n[options]\nout = \"x\"\n[grid]\nseed = [1]\n",
                "set by the sweep",
            ),
            (
                "command = \"train\"\nout = \"o\"\n[grid]\n\"--seed\" = [1]\n",
                "not an option name",
            ),
            (
                "command = \"train\"\nout = \"o\"\nname = \"x\"\n[grid]\nseed = [1, 2]\n",
                "both map",
            ),
            (
                "command = \"train\"\nout = \"o\"\nname = \"{algo}\"\n[grid]\nseed = [1]\n",
                "does not set",
            ),
            (
                "command = \"train\"\nout = \"o\"\n[grid]\nseed = [1]\n[[point]]\n",
                "sets no option",
            ),
            (
                "command = \"train\"\nout = \"o\"\n[grid]\nseed = [[[1]]]\n",
                "lists of lists",
            ),
            ("command = \"train\"\nout = \"o\"\n[grid\n", "TOML parse error"),
        ];
        for (text, want) in cases {
            let e = load(text, "toml").unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
