//! `winq export`, `winq run`, and the engine side of `winq eval --engine`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use winq_engine::{Act, Net};
use winq_ir::{self as deploy, ModelInfo};
use winq_nn::Layer;
use winq_train::checkpoint::Checkpoint;
use winq_train::runner;

/// A checkpoint path from a file or a run directory (best.safetensors).
pub fn checkpoint_path(p: &Path, which: &str) -> Result<PathBuf> {
    Ok(if p.is_dir() {
        match which {
            "best" | "last" => p.join(format!("{which}.safetensors")),
            w => bail!("--which must be best or last, not '{w}'"),
        }
    } else {
        p.to_path_buf()
    })
}

pub use winq_train::deploy::export_checkpoint;

#[derive(clap::Args)]
pub struct ExportArgs {
    /// A checkpoint file or a run directory.
    path: PathBuf,
    /// In a run directory: best or last.
    #[arg(long, default_value = "best")]
    which: String,
    /// Output model file.
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Overwrite --out even when it is not a deploy model (a training checkpoint, say).
    #[arg(long)]
    force: bool,
}

pub fn export(a: ExportArgs) -> Result<()> {
    let ck = checkpoint_path(&a.path, &a.which)?;
    // Replacing an older export is fine; anything else (a training checkpoint: `-o RUN/best.safetensors`)
    // is not silently destroyed.
    if a.out.exists() && !a.force {
        if a.out.is_dir() {
            bail!(
                "{} is a directory; -o takes the model file to write",
                a.out.display()
            );
        }
        if !deploy::is_deploy_file(&a.out) {
            bail!(
                "{} exists and is not a winq deploy model; refusing to overwrite it: choose another -o, or --force",
                a.out.display()
            );
        }
    }
    let (op, info, _) = export_checkpoint(&ck)?;
    deploy::save(&a.out, &op, &info)?;
    let size = std::fs::metadata(&a.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} ({} operations, {:.1} MB)",
        a.out.display(),
        op.count(),
        size as f64 / 1e6
    );
    Ok(())
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// A model written by `winq export`.
    model: PathBuf,
    /// Images to classify: an IDX image file (MNIST/Fashion-MNIST, .gz or raw), a CIFAR
    /// binary batch, or image files (PNG, JPEG, PGM/PPM; several allowed).
    #[arg(long, num_args = 1.., required = true)]
    input: Vec<PathBuf>,
    /// Scale image files to the model's input size (otherwise they must have it, or be
    /// smaller by the padding the model was trained with).
    #[arg(long)]
    resize: bool,
    /// Classes printed per image, most probable first, with their probabilities.
    #[arg(long, default_value_t = 1)]
    top: usize,
    /// Standard output: `text` (a line per image) or `jsonl` (a JSON object per image, as
    /// --output writes).
    #[arg(long, value_enum, default_value_t = OutFormat::Text)]
    format: OutFormat,
    /// Print at most this many images' predictions (all are written to --output).
    #[arg(long, default_value_t = 20)]
    show: usize,
    /// Write every image's logits and probabilities: FILE.jsonl (a JSON object per image) or
    /// FILE.npy (probabilities [N, classes] as float32, logits beside it in FILE.logits.npy).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Images per engine call.
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutFormat {
    Text,
    Jsonl,
}

/// The images of `paths` as the model takes them: IDX or CIFAR files, or image files; images
/// smaller than the input get the padding the model was trained with.
fn read_inputs(paths: &[PathBuf], info: &ModelInfo, resize: bool) -> Result<winq_data::Dataset> {
    let is_image = |p: &PathBuf| {
        let e = p
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        matches!(e.as_str(), "png" | "jpg" | "jpeg" | "pgm" | "ppm" | "pnm")
    };
    let mut ds = if paths.iter().all(is_image) {
        let size = resize.then_some((info.width, info.height));
        winq_data::read_image_files(paths, info.channels, size)?
    } else if paths.len() > 1 {
        bail!("several --input files must all be images (PNG, JPEG, PGM/PPM); IDX and CIFAR files go one at a time")
    } else if resize {
        bail!("--resize applies to image files; IDX and CIFAR files hold images of one size")
    } else if info.channels == 1 {
        let (images, n, h, w) = winq_data::read_idx_images(&paths[0])?;
        winq_data::Dataset {
            labels: vec![0; n],
            images,
            n,
            c: 1,
            h,
            w,
            classes: info.classes,
        }
    } else {
        winq_data::read_cifar(std::slice::from_ref(&paths[0]), info.classes == 100)?
    };
    if let Some(size) = info.pad_to.filter(|&s| ds.h < s || ds.w < s) {
        ds = ds.pad_to(size)?;
    }
    if (ds.c, ds.h, ds.w) != (info.channels, info.height, info.width) {
        bail!(
            "{} holds {}x{}x{} images; the model takes {}x{}x{}{}",
            paths[0].display(),
            ds.c,
            ds.h,
            ds.w,
            info.channels,
            info.height,
            info.width,
            if paths.iter().all(is_image) {
                " (--resize scales image files)"
            } else {
                ""
            }
        );
    }
    Ok(ds)
}

/// Normalises u8 images as training did: (v/255 − mean)/std per channel.
pub fn normalise(images: &[u8], c: usize, hw: usize, info: &ModelInfo) -> Vec<f32> {
    winq_data::Normalization {
        mean: info.mean.clone(),
        std: info.std.clone(),
    }
    .apply(images, c, hw)
}

/// Top-1 class of each row of logits.
pub fn argmax_rows(logits: &[f32], classes: usize) -> Vec<usize> {
    logits
        .chunks(classes)
        .map(|r| {
            r.iter()
                .enumerate()
                .fold(0, |b, (i, v)| if *v > r[b] { i } else { b })
        })
        .collect()
}

pub fn run(a: RunArgs) -> Result<()> {
    use winq_engine::predict::{class_name, json_line, npy_bytes, softmax, top_k};
    let write_file = |p: &Path, b: &[u8]| winq_ir::write_atomic(p, b).map_err(|(_, e)| e);
    let ext = a
        .output
        .as_ref()
        .map(|o| o.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()));
    if let Some(e) = &ext {
        if !matches!(e.as_deref(), Some("jsonl" | "json" | "npy")) {
            bail!("--output: give a .jsonl or .npy file name");
        }
    }
    let (op, info) = deploy::load(&a.model)?;
    let net = Net::compile(&op)?;
    let ds = read_inputs(&a.input, &info, a.resize)?;
    let (n, c, h, w) = (ds.n, ds.c, ds.h, ds.w);
    let per = c * h * w;
    let batch = a.batch.max(1);
    let t0 = std::time::Instant::now();
    let mut logits = Vec::with_capacity(n * info.classes);
    for start in (0..n).step_by(batch) {
        let b = batch.min(n - start);
        let x = normalise(&ds.images[start * per..(start + b) * per], c, h * w, &info);
        logits.extend(
            net.forward(Act {
                n: b,
                c,
                h,
                w,
                data: x,
            })
            .data,
        );
    }
    let k = a.top.clamp(1, info.classes.max(1));
    for (i, row) in logits.chunks(info.classes).enumerate().take(a.show) {
        match a.format {
            OutFormat::Jsonl => println!("{}", json_line(i, row, &info.labels, k)),
            OutFormat::Text => {
                let top: Vec<String> = top_k(&softmax(row), k)
                    .into_iter()
                    .map(|(cls, p)| format!("{} ({cls}) {:.3}", class_name(&info.labels, cls), p))
                    .collect();
                println!("image {i}: {}", top.join(" | "));
            }
        }
    }
    if let Some(out) = &a.output {
        match ext.flatten().as_deref() {
            Some("jsonl") | Some("json") => {
                let mut text = String::new();
                for (i, row) in logits.chunks(info.classes).enumerate() {
                    text += &json_line(i, row, &info.labels, k);
                    text.push('\n');
                }
                write_file(out, text.as_bytes())
                    .with_context(|| format!("cannot write {}", out.display()))?;
            }
            Some("npy") => {
                let probs: Vec<f32> = logits.chunks(info.classes).flat_map(softmax).collect();
                let shape = [n, info.classes];
                write_file(out, &npy_bytes(&shape, &probs))
                    .with_context(|| format!("cannot write {}", out.display()))?;
                let lp = out.with_extension("logits.npy");
                write_file(&lp, &npy_bytes(&shape, &logits))
                    .with_context(|| format!("cannot write {}", lp.display()))?;
            }
            _ => bail!("--output {}: give a .jsonl or .npy file name", out.display()),
        }
        eprintln!("wrote {} ({n} images)", out.display());
    }
    eprintln!("{n} images in {:.2} s", t0.elapsed().as_secs_f64());
    Ok(())
}

/// Test-set accuracy through the engine, and agreement with the training model's predictions.
pub fn eval_engine(path: &Path, data: Option<PathBuf>) -> Result<()> {
    let (op, info, mut cfg) = export_checkpoint(path)?;
    if let Some(d) = data {
        cfg.data_dir = d;
    }
    let net = Net::compile(&op).map_err(anyhow::Error::msg)?;
    let test = runner::load_split(&cfg, winq_data::Split::Test)?;
    runner::check_input(&cfg, &test)?;
    let ck = Checkpoint::read(path)?;
    let mut built = runner::build_model(&cfg, test.c, test.h, test.w, test.classes)?;
    ck.load_model(&mut built.net, true)?;
    let per = test.c * test.h * test.w;
    let tol = logit_step(&op);
    let (mut correct, mut agree, mut identical, mut within) = (0usize, 0usize, 0usize, 0usize);
    let t0 = std::time::Instant::now();
    eprintln!(
        "evaluating {} on {} {} test images through the engine and the training model ...",
        path.display(),
        test.n,
        cfg.dataset
    );
    for start in (0..test.n).step_by(64) {
        let b = 64.min(test.n - start);
        let x = normalise(
            &test.images[start * per..(start + b) * per],
            test.c,
            test.h * test.w,
            &info,
        );
        let logits = net
            .forward(Act {
                n: b,
                c: test.c,
                h: test.h,
                w: test.w,
                data: x.clone(),
            })
            .data;
        let engine = argmax_rows(&logits, test.classes);
        let xt = winq_nn::Tensor::from_vec(&[b, test.c, test.h, test.w], x);
        let want = built.net.forward(&xt, winq_nn::Mode::Eval).data;
        let train = argmax_rows(&want, test.classes);
        for (i, (&g, &w)) in logits.iter().zip(&want).enumerate() {
            identical += (g == w) as usize;
            within += ((g - w).abs() <= tol.get(i % test.classes).copied().unwrap_or(0.0)) as usize;
        }
        for i in 0..b {
            correct += (engine[i] == test.labels[start + i] as usize) as usize;
            agree += (engine[i] == train[i]) as usize;
        }
    }
    let elements = (test.n * test.classes) as f64;
    println!(
        "{}: engine test accuracy {:.2}% on {} images; top-1 agrees with the training model on {:.2}%; \
         logits bit-identical {:.2}%, within one output step {:.2}% ({:.1} s)",
        path.display(),
        100.0 * correct as f64 / test.n as f64,
        test.n,
        100.0 * agree as f64 / test.n as f64,
        100.0 * identical as f64 / elements,
        100.0 * within as f64 / elements,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Per class, what one output quantization step of the last quantized layer moves a logit by
/// through the BatchNorm after it, global pooling and the classifier: s_out · max |BN scale| ·
/// max_j |W[class][j]| (one channel shifted by one step everywhere). Empty when the network
/// has no classifier.
fn logit_step(op: &winq_ir::Op) -> Vec<f32> {
    use winq_ir::Op;
    fn walk(op: &Op, s_last: &mut f64, w: &mut Option<(usize, usize, Vec<f32>)>) {
        match op {
            Op::ConvI8(e) => *s_last = e.s_out,
            Op::WinogradI8(e) => *s_last = e.s_out,
            // The BatchNorm right after the last quantized layer scales its steps.
            Op::BatchNorm { scale, .. } => *s_last *= scale.iter().fold(0.0f32, |a, v| a.max(v.abs())) as f64,
            Op::Linear {
                inputs,
                outputs,
                weight,
                ..
            } => *w = Some((*inputs, *outputs, weight.clone())),
            Op::Seq { ops } => ops.iter().for_each(|o| walk(o, s_last, w)),
            Op::Residual { body, shortcut } => {
                shortcut.iter().flatten().for_each(|o| walk(o, s_last, w));
                body.iter().for_each(|o| walk(o, s_last, w));
            }
            _ => {}
        }
    }
    let (mut s_last, mut w) = (0.0, None);
    walk(op, &mut s_last, &mut w);
    match w {
        Some((inputs, outputs, weight)) => (0..outputs)
            .map(|o| {
                let row = &weight[o * inputs..(o + 1) * inputs];
                (s_last * row.iter().fold(0.0f32, |a, v| a.max(v.abs())) as f64) as f32
            })
            .collect(),
        None => Vec::new(),
    }
}
