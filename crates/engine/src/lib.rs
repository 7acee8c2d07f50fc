//! The inference engine: compiles a model IR graph (`winq_ir::Op`) into kernels —
//! INT8 im2row and INT8 Winograd convolutions with packed weights and pre-transformed Winograd
//! weights prepared once, FP32 convolutions for unquantized layers — and runs it.
//!
//! Activations are channel-last (N×H×W×C) from the input to the classifier, so convolutions
//! read contiguous channel runs and no layer transposes. Between layers they are the f32
//! values the training model's eval forward holds: each INT8 convolution quantizes its input
//! with its own scale, computes in integers, and its output pass dequantizes and applies the
//! following BatchNorm and ReLU at once; residual adds fuse their ReLU. (Training keeps BN,
//! ReLU and residual adds in FP32 on dequantized values, so this is what it computes.)

pub mod fmap;
pub mod predict;
pub mod timing;

use fmap::{Bn, Fmap, Post};
use rayon::prelude::*;
use std::cell::RefCell;
use std::time::Instant;
use winq_ir::{IrError, Op};
use winq_kernels::int8::conv::Im2rowI8;
use winq_kernels::int8::winograd::WinogradI8;

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
        Some(Op::BatchNorm {
            mean, scale, bias, ..
        }) => Some(Bn {
            mean: mean.clone(),
            scale: scale.clone(),
            bias: bias.clone(),
        }),
        _ => None,
    }
}

/// Compiles a list of operations, fusing BatchNorm and ReLU into the convolution (or the ReLU
/// into the residual add) they follow.
fn compile_all(ops: &[Op]) -> Vec<Node> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < ops.len() {
        let mut node = compile(&ops[i]);
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
    out
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

/// Compiles one checked operation (`Op::check_params` passed).
fn compile(op: &Op) -> Node {
    match op {
        Op::ConvI8(q) => {
            let layer = Im2rowI8::new(&q.weight, q.c, q.k, q.r, q.s_in, &q.s_w, q.s_out);
            let name = format!("im2row-int8 {}x{} {}->{}", q.r, q.r, q.c, q.k);
            conv_node(Kernel::Im2rowI8(layer), q.c, q.k, q.s_in, q.s_out, name)
        }
        Op::WinogradI8(q) => {
            let name = format!("F{}-int8 3x3 {}->{}", q.m, q.c, q.k);
            let kernel = Kernel::WinogradI8(Box::new(WinogradI8::new(q.clone())));
            conv_node(kernel, q.c, q.k, q.s_in, q.s_out, name)
        }
        Op::ConvF32 { c, k, r, weight } => {
            let kernel = Kernel::F32 {
                r: *r,
                weight: weight.clone(),
            };
            conv_node(kernel, *c, *k, 1.0, 1.0, format!("im2row-fp32 {r}x{r} {c}->{k}"))
        }
        Op::WinogradF32 { c, k, m, at, bt, u } => {
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
        Op::Seq { ops } => Node::Seq(compile_all(ops)),
        Op::Residual { body, shortcut } => Node::Residual {
            body: compile_all(body),
            shortcut: shortcut.as_deref().map(compile_all),
            relu: false,
        },
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
                    let y = winq_kernels::winograd::forward_f32(
                        &fmap::to_nchw(&x),
                        (n, *c, h, w),
                        u,
                        at,
                        bt,
                        *k,
                        *m,
                    );
                    let mut y = fmap::from_nchw(n, *k, h, w, &y);
                    fmap::apply_post(&mut y.data, *k, post);
                    y
                }
                Kernel::Im2rowI8(_) | Kernel::WinogradI8(_) => {
                    let (mut q_in, mut q_out) = (std::mem::take(&mut b.q_in), std::mem::take(&mut b.q_out));
                    q_in.resize(x.data.len(), 0);
                    q_out.resize(x.pixels() * k, 0);
                    winq_quant::codes::quantize_i8(&x.data, *s_in, &mut q_in);
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
    /// Checks the graph's parameters and prepares every kernel (weight packing, Winograd
    /// weight codes) once.
    pub fn compile(op: &Op) -> Result<Net, IrError> {
        op.check_params()?;
        Ok(Net { root: compile(op) })
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
