//! The inference engine: compiles an exported network (`winq_nn::export::Op`) into kernels —
//! INT8 im2row and INT8 Winograd convolutions with packed weights and pre-transformed Winograd
//! weights prepared once, FP32 convolutions for unquantized layers — and runs it.
//!
//! Activations are channel-last (N×H×W×C) from the input to the classifier, so convolutions
//! read contiguous channel runs and no layer transposes. Between layers they are the f32
//! values the training model's eval forward holds: each INT8 convolution quantizes its input
//! with its own scale, computes in integers, and its output pass dequantizes and applies the
//! following BatchNorm and ReLU at once; residual adds fuse their ReLU. (Training keeps BN,
//! ReLU and residual adds in FP32 on dequantized values, so this is what it computes.)

pub mod deploy;
pub mod fmap;

use deploy::codes;
use fmap::{Bn, Fmap, Post};
use rayon::prelude::*;
use std::cell::RefCell;
use std::time::Instant;
use winq_kernels::int8::conv::Im2rowI8;
use winq_kernels::int8::winograd::{WinogradI8, WinogradSpec};
use winq_nn::export::Op;
use winq_nn::wa_conv::WinogradExport;

/// The network's input and output: N×C×H×W f32 (the output is N×classes with h = w = 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Act {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

/// A convolution's arithmetic, prepared once at compile time.
enum Kernel {
    Im2rowI8(Im2rowI8),
    WinogradI8(Box<WinogradI8>),
    /// FP32 r×r convolution, weights [K, C·r·r].
    F32 {
        r: usize,
        weight: Vec<f32>,
    },
    /// FP32 Winograd F(m×m, 3×3): the training layer's own FP32 forward.
    WinogradF32 {
        m: usize,
        at: Vec<f32>,
        bt: Vec<f32>,
        u: Vec<f32>,
    },
}

/// A compiled operation.
enum Node {
    Conv {
        kernel: Box<Kernel>,
        c: usize,
        k: usize,
        /// Input and output scales of INT8 kernels (unused for FP32).
        s_in: f32,
        s_out: f32,
        post: Post,
        name: String,
    },
    /// BatchNorm / ReLU not preceded by a convolution.
    Post(Post),
    /// Max-pool, global average pool and the classifier run straight from their exported op.
    Plain(Op),
    Seq(Vec<Node>),
    Residual {
        body: Vec<Node>,
        shortcut: Option<Vec<Node>>,
        relu: bool,
    },
}

/// A compiled network.
pub struct Net {
    root: Node,
}

fn bn_of(op: Option<&Op>) -> Option<Bn> {
    match op {
        Some(Op::BatchNorm { mean, scale, bias }) => Some(Bn {
            mean: mean.clone(),
            scale: scale.clone(),
            bias: bias.clone(),
        }),
        _ => None,
    }
}

/// Compiles a list of operations, fusing BatchNorm and ReLU into the convolution (or the ReLU
/// into the residual add) they follow.
fn compile_all(ops: &[Op]) -> Result<Vec<Node>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < ops.len() {
        let mut node = compile(&ops[i])?;
        i += 1;
        match &mut node {
            Node::Conv { post, .. } | Node::Post(post) => {
                if post.bn.is_none() && !post.relu {
                    post.bn = bn_of(ops.get(i));
                    i += post.bn.is_some() as usize;
                }
                if !post.relu && matches!(ops.get(i), Some(Op::Relu)) {
                    post.relu = true;
                    i += 1;
                }
            }
            Node::Residual { relu, .. } if matches!(ops.get(i), Some(Op::Relu)) => {
                *relu = true;
                i += 1;
            }
            _ => {}
        }
        out.push(node);
    }
    Ok(out)
}

fn conv_node(kernel: Kernel, c: usize, k: usize, s_in: f64, s_out: f64, name: String) -> Node {
    Node::Conv {
        kernel: Box::new(kernel),
        c,
        k,
        s_in: s_in as f32,
        s_out: s_out as f32,
        post: Post::default(),
        name,
    }
}

fn compile(op: &Op) -> Result<Node, String> {
    Ok(match op {
        Op::ConvI8(e) => {
            if e.kernel % 2 == 0 || e.bits != 8 || e.in_channels == 0 || e.out_channels == 0 {
                return Err(format!(
                    "INT{} {}x{} convolution {}->{}: the engine runs 8-bit codes, odd kernels",
                    e.bits, e.kernel, e.kernel, e.in_channels, e.out_channels
                ));
            }
            let qw = codes(&e.weight, &e.s_w);
            let layer = Im2rowI8::new(
                &qw,
                e.in_channels,
                e.out_channels,
                e.kernel,
                e.s_in,
                &e.s_w,
                e.s_out,
            );
            let name = format!(
                "im2row-int8 {}x{} {}->{}",
                e.kernel, e.kernel, e.in_channels, e.out_channels
            );
            conv_node(
                Kernel::Im2rowI8(layer),
                e.in_channels,
                e.out_channels,
                e.s_in,
                e.s_out,
                name,
            )
        }
        Op::WinogradI8(e) => {
            if e.bits != 8 || !(1..=8).contains(&e.m) || e.in_channels == 0 || e.out_channels == 0 {
                return Err(format!(
                    "INT{} F{} Winograd {}->{}: the engine runs 8-bit codes, tiles 1..=8",
                    e.bits, e.m, e.in_channels, e.out_channels
                ));
            }
            let t = e.m + 2;
            if e.at.len() != e.m * t {
                return Err(format!(
                    "Winograd layer: Aᵀ has {} values, F{} needs {}",
                    e.at.len(),
                    e.m,
                    e.m * t
                ));
            }
            let spec = WinogradSpec {
                c: e.in_channels,
                k: e.out_channels,
                m: e.m,
                qa: codes(&e.at, &[e.s_at]).iter().map(|&v| v as i32).collect(),
                qb: codes(&e.bt, &[e.s_bt]).iter().map(|&v| v as i32).collect(),
                s_a: e.s_at,
                s_b: e.s_bt,
                qu: codes(&e.u, &e.s_u),
                s_u: e.s_u.clone(),
                s_in: e.s_in,
                s_v: e.s_v.clone(),
                s_m: e.s_m.clone(),
                s_out: e.s_out,
            };
            let name = format!("F{}-int8 3x3 {}->{}", e.m, e.in_channels, e.out_channels);
            conv_node(
                Kernel::WinogradI8(Box::new(WinogradI8::new(spec))),
                e.in_channels,
                e.out_channels,
                e.s_in,
                e.s_out,
                name,
            )
        }
        Op::ConvF32 { c, k, r, weight } => {
            if weight.len() != k * c * r * r || r % 2 == 0 {
                return Err(format!("FP32 convolution {c}->{k} {r}x{r}: bad weight shape"));
            }
            let kernel = Kernel::F32 {
                r: *r,
                weight: weight.clone(),
            };
            conv_node(kernel, *c, *k, 1.0, 1.0, format!("im2row-fp32 {r}x{r} {c}->{k}"))
        }
        Op::WinogradF32 { c, k, m, at, bt, u } => {
            let t = m + 2;
            if at.len() != m * t || bt.len() != t * t || u.len() != t * t * k * c {
                return Err(format!(
                    "FP32 Winograd F{m} {c}->{k}: bad transform or weight sizes"
                ));
            }
            let kernel = Kernel::WinogradF32 {
                m: *m,
                at: at.clone(),
                bt: bt.clone(),
                u: u.clone(),
            };
            conv_node(kernel, *c, *k, 1.0, 1.0, format!("F{m}-fp32 3x3 {c}->{k}"))
        }
        Op::BatchNorm { .. } => Node::Post(Post {
            bn: bn_of(Some(op)),
            relu: false,
        }),
        Op::Relu => Node::Post(Post { bn: None, relu: true }),
        Op::MaxPool2 | Op::GlobalAvgPool | Op::Linear { .. } => Node::Plain(op.clone()),
        Op::Seq(v) => Node::Seq(compile_all(v)?),
        Op::Residual { body, shortcut } => Node::Residual {
            body: compile_all(body)?,
            shortcut: shortcut.as_deref().map(compile_all).transpose()?,
            relu: false,
        },
    })
}

/// Walks the graph from an input of shape (C, H, W): every operation must accept what
/// reaches it (channel counts, BatchNorm lengths, classifier inputs, maps large enough to pool,
/// odd kernels, 8-bit codes); returns the output shape. A model file that passes cannot make
/// the engine panic on inputs of that shape.
pub fn check_shapes(op: &Op, (c, h, w): (usize, usize, usize)) -> Result<(usize, usize, usize), String> {
    let conv = |name: &str, ci: usize, k: usize| -> Result<(usize, usize, usize), String> {
        if ci != c {
            return Err(format!("{name}: expects {ci} input channels, gets {c}"));
        }
        if k == 0 {
            return Err(format!("{name}: no output channels"));
        }
        Ok((k, h, w))
    };
    if c == 0 || h == 0 || w == 0 {
        return Err(format!("empty activations {c}x{h}x{w} reach an operation"));
    }
    match op {
        Op::ConvF32 { c: ci, k, r, .. } if r % 2 == 1 => conv("FP32 convolution", *ci, *k),
        Op::ConvF32 { r, .. } => Err(format!("FP32 convolution: even kernel {r}")),
        Op::ConvI8(e) if e.bits != 8 => {
            Err(format!("INT{} convolution: the engine runs 8-bit codes", e.bits))
        }
        Op::ConvI8(e) if e.kernel % 2 == 1 => conv("INT8 convolution", e.in_channels, e.out_channels),
        Op::ConvI8(e) => Err(format!("INT8 convolution: even kernel {}", e.kernel)),
        Op::WinogradI8(e) if e.bits != 8 => {
            Err(format!("INT{} Winograd: the engine runs 8-bit codes", e.bits))
        }
        Op::WinogradI8(e) if (1..=8).contains(&e.m) => conv("INT8 Winograd", e.in_channels, e.out_channels),
        Op::WinogradF32 { c: ci, k, m, .. } if (1..=8).contains(m) => conv("FP32 Winograd", *ci, *k),
        Op::WinogradI8(WinogradExport { m, .. }) | Op::WinogradF32 { m, .. } => {
            Err(format!("Winograd: unsupported tile m = {m}"))
        }
        Op::BatchNorm { mean, scale, bias } => {
            if mean.len() != c || scale.len() != c || bias.len() != c {
                return Err(format!("BatchNorm of {} channels gets {c}", mean.len()));
            }
            Ok((c, h, w))
        }
        Op::Relu => Ok((c, h, w)),
        Op::MaxPool2 if h >= 2 && w >= 2 => Ok((c, h / 2, w / 2)),
        Op::MaxPool2 => Err(format!("2x2 max-pool of a {h}x{w} map")),
        Op::GlobalAvgPool => Ok((c, 1, 1)),
        Op::Linear {
            inputs,
            outputs,
            weight,
            bias,
        } => {
            if *inputs != c * h * w || weight.len() != inputs * outputs || bias.len() != *outputs {
                return Err(format!("Linear({inputs} -> {outputs}) gets {c}x{h}x{w}"));
            }
            Ok((*outputs, 1, 1))
        }
        Op::Seq(v) => v.iter().try_fold((c, h, w), |s, o| check_shapes(o, s)),
        Op::Residual { body, shortcut } => {
            let run = |ops: &[Op]| ops.iter().try_fold((c, h, w), |s, o| check_shapes(o, s));
            let b = run(body)?;
            let sc = shortcut.as_deref().map_or(Ok((c, h, w)), run)?;
            if b != sc {
                return Err(format!("residual block: body gives {b:?}, shortcut {sc:?}"));
            }
            Ok(b)
        }
    }
}

/// Per-thread buffers reused across layers and calls (fresh large allocations cost page
/// faults that would dominate small layers).
#[derive(Default)]
struct Bufs {
    free: Vec<Vec<f32>>,
    q_in: Vec<i8>,
    q_out: Vec<i8>,
    rows: Vec<f32>,
}

impl Bufs {
    fn take(&mut self, len: usize) -> Vec<f32> {
        let mut v = self.free.pop().unwrap_or_default();
        v.clear();
        v.resize(len, 0.0);
        v
    }

    fn give(&mut self, v: Vec<f32>) {
        if self.free.len() < 8 {
            self.free.push(v);
        }
    }
}

thread_local! {
    static BUFS: RefCell<Bufs> = RefCell::new(Bufs::default());
}

/// Runs `f` on a thread of rayon's pool when it has several (so the caller takes part in the
/// layers' parallel parts instead of waiting for two other threads to wake up); inline on one
/// thread, where handing the work to the pool's only thread would just add latency.
fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_num_threads() > 1 && rayon::current_thread_index().is_none() {
        rayon::scope(|_| f())
    } else {
        f()
    }
}

/// Runs `f` with this thread's buffers, taken out of the thread-local for the duration: while
/// a layer waits for its parallel chunks, rayon may run another image's network on this same
/// thread, which then starts from empty buffers instead of finding them borrowed.
fn with_bufs<R>(f: impl FnOnce(&mut Bufs) -> R) -> R {
    let mut b = BUFS.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
    let r = f(&mut b);
    BUFS.with(|cell| *cell.borrow_mut() = b);
    r
}

/// Time per leaf operation, collected when profiling.
type Profile = Option<Vec<(String, f64)>>;

fn run_seq(nodes: &[Node], x: Fmap, b: &mut Bufs, prof: &mut Profile) -> Fmap {
    nodes.iter().fold(x, |a, n| run(n, a, b, prof))
}

fn run(node: &Node, x: Fmap, b: &mut Bufs, prof: &mut Profile) -> Fmap {
    let t0 = prof.is_some().then(Instant::now);
    let (y, name) = match node {
        Node::Seq(v) => return run_seq(v, x, b, prof),
        Node::Residual { body, shortcut, relu } => {
            let sc = match shortcut {
                Some(s) => {
                    let mut copy = b.take(x.data.len());
                    copy.copy_from_slice(&x.data);
                    run_seq(s, Fmap { data: copy, ..x }, b, prof)
                }
                None => x.clone(),
            };
            let mut y = run_seq(body, x, b, prof);
            let t1 = prof.is_some().then(Instant::now);
            fmap::add_relu(&mut y.data, &sc.data, *relu);
            b.give(sc.data);
            if let (Some(p), Some(t1)) = (prof.as_mut(), t1) {
                p.push(("residual add".into(), t1.elapsed().as_secs_f64()));
            }
            return y;
        }
        Node::Conv {
            kernel,
            c,
            k,
            s_in,
            s_out,
            post,
            name,
        } => {
            assert_eq!(x.c, *c, "{name}: input has {} channels", x.c);
            let (n, h, w) = (x.n, x.h, x.w);
            let y = match &**kernel {
                Kernel::F32 { r, weight } => {
                    let mut out = b.take(0);
                    let mut y = fmap::conv_f32(&x, *k, *r, weight, &mut b.rows, &mut out);
                    fmap::apply_post(&mut y.data, *k, post);
                    y
                }
                Kernel::WinogradF32 { m, at, bt, u } => {
                    let t = winq_nn::Tensor::from_vec(&[n, *c, h, w], fmap::to_nchw(&x));
                    let y = winq_nn::wa_conv::winograd_f32_forward(&t, u, at, bt, *k, *m);
                    let mut y = fmap::from_nchw(n, *k, h, w, &y.data);
                    fmap::apply_post(&mut y.data, *k, post);
                    y
                }
                Kernel::Im2rowI8(_) | Kernel::WinogradI8(_) => {
                    let (mut q_in, mut q_out) = (std::mem::take(&mut b.q_in), std::mem::take(&mut b.q_out));
                    q_in.resize(x.data.len(), 0);
                    q_out.resize(x.pixels() * k, 0);
                    fmap::quantize(&x.data, *s_in, &mut q_in);
                    match &**kernel {
                        Kernel::Im2rowI8(l) => l.forward(&q_in, n, h, w, &mut q_out),
                        Kernel::WinogradI8(l) => l.forward(&q_in, n, h, w, &mut q_out),
                        Kernel::F32 { .. } | Kernel::WinogradF32 { .. } => unreachable!(),
                    }
                    let mut data = b.take(x.pixels() * k);
                    fmap::dequant_post(&q_out, *s_out, *k, post, &mut data);
                    (b.q_in, b.q_out) = (q_in, q_out);
                    Fmap { n, h, w, c: *k, data }
                }
            };
            b.give(x.data);
            (y, name.clone())
        }
        Node::Post(post) => {
            let mut x = x;
            fmap::apply_post(&mut x.data, x.c, post);
            (x, "batchnorm/relu".into())
        }
        Node::Plain(op) => run_plain(op, x, b),
    };
    if let (Some(p), Some(t0)) = (prof.as_mut(), t0) {
        p.push((name, t0.elapsed().as_secs_f64()));
    }
    y
}

/// Max-pool, global average pool and the classifier, from their exported op.
fn run_plain(op: &Op, x: Fmap, b: &mut Bufs) -> (Fmap, String) {
    match op {
        Op::MaxPool2 => {
            let mut out = b.take(0);
            let y = fmap::max_pool2(&x, &mut out);
            b.give(x.data);
            (y, "maxpool 2x2".into())
        }
        Op::GlobalAvgPool => (fmap::global_avg_pool(&x), "global avg pool".into()),
        Op::Linear {
            inputs,
            outputs,
            weight,
            bias,
        } => {
            assert_eq!(x.data.len(), x.n * inputs, "Linear input size");
            let flat = if x.h * x.w == 1 { x.data } else { fmap::to_nchw(&x) };
            let data = fmap::linear(&flat, x.n, *inputs, *outputs, weight, bias);
            let y = Fmap {
                n: x.n,
                h: 1,
                w: 1,
                c: *outputs,
                data,
            };
            (y, "linear".into())
        }
        other => unreachable!("{other:?} is compiled into its own node"),
    }
}

impl Net {
    /// Prepares every kernel (weight packing, Winograd weight codes) once.
    pub fn compile(op: &Op) -> Result<Net, String> {
        Ok(Net { root: compile(op)? })
    }

    fn run_images(&self, x: &Act, prof: &mut Profile) -> Act {
        let f = fmap::from_nchw(x.n, x.c, x.h, x.w, &x.data);
        let y = on_pool(|| with_bufs(|b| run(&self.root, f, b, prof)));
        let data = if y.h * y.w == 1 { y.data } else { fmap::to_nchw(&y) };
        Act {
            n: y.n,
            c: y.c,
            h: y.h,
            w: y.w,
            data,
        }
    }

    /// Runs the network on an f32 input (N×C×H×W); returns the outputs (N×classes logits).
    /// Images run one at a time (each image's activations stay cache-resident), spread over
    /// rayon's threads; results do not depend on the thread count.
    pub fn forward(&self, x: Act) -> Act {
        let img = x.c * x.h * x.w;
        let one = |d: &[f32]| {
            let part = Act {
                n: 1,
                c: x.c,
                h: x.h,
                w: x.w,
                data: d.to_vec(),
            };
            self.run_images(&part, &mut None)
        };
        let parts: Vec<Act> = if x.n < 2 || rayon::current_num_threads() < 2 {
            x.data.chunks(img.max(1)).map(one).collect()
        } else {
            x.data.par_chunks(img.max(1)).map(one).collect()
        };
        let (c, h, w) = parts.first().map_or((0, 0, 0), |p| (p.c, p.h, p.w));
        Act {
            n: x.n,
            c,
            h,
            w,
            data: parts.into_iter().flat_map(|p| p.data).collect(),
        }
    }

    /// Runs channel-last activations through the network on the calling thread (what a layer
    /// costs inside a network: no layout changes at the ends).
    pub fn forward_nhwc(&self, x: Fmap) -> Fmap {
        on_pool(|| with_bufs(|b| run(&self.root, x, b, &mut None)))
    }

    /// Runs the whole input as one batch (threads as for `forward`'s layers) and returns the
    /// time of every operation, in order (seconds).
    pub fn profile(&self, x: &Act) -> (Act, Vec<(String, f64)>) {
        let mut prof = Some(Vec::new());
        let y = self.run_images(x, &mut prof);
        (y, prof.unwrap_or_default())
    }
}
