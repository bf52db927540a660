//! Reverse-mode automatic differentiation for systems whose adjoint is not (yet) written by hand.
//!
//! [`Rev`] is a scalar that records every operation on a thread-local tape (a Wengert list of
//! nodes with up to two parents and their local partials). Because systems are generic over
//! [`Real`], a system's own forward can be re-run in `Rev` from the saved pre-state; seeding its
//! outputs with the incoming adjoint and sweeping the tape backwards gives exactly Jᵀ ȳ. That is
//! [`replay_adjoint`]: the adjoint of any system, correct by construction, at the cost of a
//! slower backward (one recorded replay per call). Hand-written adjoints stay the fast path;
//! this one is also their oracle in tests.
//!
//! Constants (`Rev::from_f64`, model parameters) do not touch the tape; only values that depend
//! on a leaf do. The tape is per thread, so env chunks on different threads never share it.

use std::cell::UnsafeCell;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use crate::columns::{Columns, View, ViewMut};
use crate::scalar::Real;
use crate::system::{ModelView, StepCx, System};

/// Index of "no node": the value is a constant.
const CONST: u32 = u32::MAX;

/// One recorded operation: result = f(parents), with ∂result/∂parent.
#[derive(Clone, Copy, Debug)]
struct Node {
    a: u32,
    b: u32,
    da: f64,
    db: f64,
}

thread_local! {
    // UnsafeCell, not RefCell: every access below is a short, non-reentrant call on the owning
    // thread, and the borrow flag was a measurable share of replay time.
    static TAPE: UnsafeCell<Vec<Node>> = const { UnsafeCell::new(Vec::new()) };
}

#[inline(always)]
fn push(a: u32, da: f64, b: u32, db: f64) -> u32 {
    TAPE.with(|t| {
        // SAFETY: the tape is thread-local and no other reference to it is alive during this call.
        let t = unsafe { &mut *t.get() };
        let i = t.len();
        assert!(i < CONST as usize, "reverse-mode tape overflow (more than 4e9 operations in one replay)");
        t.push(Node { a, b, da, db });
        i as u32
    })
}

/// A reverse-mode scalar: its value and its node on the thread's tape (or none for constants).
#[derive(Clone, Copy, Debug)]
pub struct Rev {
    pub v: f64,
    i: u32,
}

impl Default for Rev {
    fn default() -> Self {
        Rev { v: 0.0, i: CONST }
    }
}

impl Rev {
    /// A new independent variable (a leaf of the tape).
    pub fn leaf(v: f64) -> Self {
        Rev { v, i: push(CONST, 0.0, CONST, 0.0) }
    }
    fn unary(v: f64, a: Rev, da: f64) -> Self {
        if a.i == CONST { Rev { v, i: CONST } } else { Rev { v, i: push(a.i, da, CONST, 0.0) } }
    }
    fn binary(v: f64, a: Rev, da: f64, b: Rev, db: f64) -> Self {
        match (a.i == CONST, b.i == CONST) {
            (true, true) => Rev { v, i: CONST },
            (false, true) => Rev { v, i: push(a.i, da, CONST, 0.0) },
            (true, false) => Rev { v, i: push(b.i, db, CONST, 0.0) },
            (false, false) => Rev { v, i: push(a.i, da, b.i, db) },
        }
    }
}

/// Clears this thread's tape; the next leaves start from index 0.
pub fn clear_tape() {
    // SAFETY: as in `push`.
    TAPE.with(|t| unsafe { &mut *t.get() }.clear());
}

/// Nodes on this thread's tape (for memory reports).
pub fn tape_len() -> usize {
    // SAFETY: as in `push`.
    TAPE.with(|t| unsafe { &*t.get() }.len())
}

/// Sweeps the tape backwards from `seeds` (output, ∂L/∂output) and returns ∂L/∂node for every node.
pub fn gradients(seeds: impl IntoIterator<Item = (Rev, f64)>) -> Vec<f64> {
    TAPE.with(|t| {
        // SAFETY: as in `push`; nothing records while the sweep runs.
        let t = unsafe { &*t.get() };
        let mut adj = vec![0.0; t.len()];
        for (r, s) in seeds {
            if r.i != CONST {
                adj[r.i as usize] += s;
            }
        }
        for k in (0..t.len()).rev() {
            let g = adj[k];
            if g == 0.0 {
                continue;
            }
            let n = t[k];
            if n.a != CONST {
                adj[n.a as usize] += n.da * g;
            }
            if n.b != CONST {
                adj[n.b as usize] += n.db * g;
            }
        }
        adj
    })
}

impl PartialEq for Rev {
    fn eq(&self, o: &Self) -> bool {
        self.v == o.v
    }
}
impl PartialOrd for Rev {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        self.v.partial_cmp(&o.v)
    }
}
impl Add for Rev {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Rev::binary(self.v + o.v, self, 1.0, o, 1.0)
    }
}
impl Sub for Rev {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Rev::binary(self.v - o.v, self, 1.0, o, -1.0)
    }
}
impl Mul for Rev {
    type Output = Self;
    fn mul(self, o: Self) -> Self {
        Rev::binary(self.v * o.v, self, o.v, o, self.v)
    }
}
impl Div for Rev {
    type Output = Self;
    fn div(self, o: Self) -> Self {
        let q = self.v / o.v;
        Rev::binary(q, self, 1.0 / o.v, o, -q / o.v)
    }
}
impl Neg for Rev {
    type Output = Self;
    fn neg(self) -> Self {
        Rev::unary(-self.v, self, -1.0)
    }
}
impl AddAssign for Rev {
    fn add_assign(&mut self, o: Self) {
        *self = *self + o;
    }
}
impl SubAssign for Rev {
    fn sub_assign(&mut self, o: Self) {
        *self = *self - o;
    }
}
impl MulAssign for Rev {
    fn mul_assign(&mut self, o: Self) {
        *self = *self * o;
    }
}
impl DivAssign for Rev {
    fn div_assign(&mut self, o: Self) {
        *self = *self / o;
    }
}

impl Real for Rev {
    fn from_f64(v: f64) -> Self {
        Rev { v, i: CONST }
    }
    fn to_f64(self) -> f64 {
        self.v
    }
    fn sqrt(self) -> Self {
        let s = self.v.sqrt();
        Rev::unary(s, self, 0.5 / s)
    }
    fn exp(self) -> Self {
        let e = self.v.exp();
        Rev::unary(e, self, e)
    }
    fn tanh(self) -> Self {
        let th = self.v.tanh();
        Rev::unary(th, self, 1.0 - th * th)
    }
    fn sin_cos(self) -> (Self, Self) {
        let (s, c) = self.v.sin_cos();
        (Rev::unary(s, self, c), Rev::unary(c, self, -s))
    }
}

/// Reverse mode on one small function, for adjoints that differentiate element by element (one
/// contact pair, one shape) instead of replaying a whole system: returns xbar = (∂f/∂x)ᵀ ybar at
/// `x`, recording `f` on a fresh tape (the leaves are nodes 0..N, so the gradients of the inputs
/// are the first N entries of the sweep).
pub fn vjp<const N: usize, const M: usize>(
    x: [f64; N],
    ybar: [f64; M],
    f: impl FnOnce([Rev; N]) -> [Rev; M],
) -> [f64; N] {
    clear_tape();
    let leaves = x.map(Rev::leaf);
    let y = f(leaves);
    let adj = gradients(y.into_iter().zip(ybar));
    clear_tape();
    let mut out = [0.0; N];
    for (o, l) in out.iter_mut().zip(&leaves) {
        if l.i != CONST {
            *o = adj[l.i as usize];
        }
    }
    out
}

/// `System::adjoint` as [`replay_adjoint`], written inside an `impl<R: Real> System<R> for S`
/// block whose scalar parameter is named `R` (for systems whose adjoint is not hand-written).
#[macro_export]
macro_rules! replay_adjoint_impl {
    () => {
        fn adjoint(
            &self,
            cx: &$crate::StepCx,
            model: &$crate::ModelView,
            control: &$crate::View<R>,
            pre: &$crate::View<R>,
            adj: &mut $crate::ViewMut<R>,
            adj_control: &mut $crate::ViewMut<R>,
        ) {
            $crate::replay_adjoint::<Self, R>(self, cx, model, control, pre, adj, adj_control);
        }
    };
}

/// The adjoint of `sys` at `pre` by recorded replay: re-runs the forward in [`Rev`] with every
/// pre-state and control scalar a leaf, seeds every output with the incoming `adj_state`, and
/// sweeps back. On return `adj_state` holds ∂L/∂(state before) and `adj_control` has been
/// accumulated, exactly the `System::adjoint` contract.
///
/// Environments are independent, so the replay runs one environment at a time: the tape stays
/// the size of one env's step of this system (cache-resident) instead of the whole chunk's.
pub fn replay_adjoint<S, R>(
    sys: &S,
    cx: &StepCx,
    model: &ModelView,
    control: &View<R>,
    pre: &View<R>,
    adj_state: &mut ViewMut<R>,
    adj_control: &mut ViewMut<R>,
) where
    S: System<Rev> + ?Sized,
    R: Real,
{
    for e in 0..pre.num_envs() {
        let env = e..e + 1;
        replay_adjoint_chunk(
            sys,
            cx,
            &model.sub(env.clone()),
            &control.sub(env.clone()),
            &pre.sub(env.clone()),
            &mut adj_state.sub_mut(env.clone()),
            &mut adj_control.sub_mut(env),
        );
    }
}

/// `replay_adjoint` over all envs of the views with one tape.
fn replay_adjoint_chunk<S, R>(
    sys: &S,
    cx: &StepCx,
    model: &ModelView,
    control: &View<R>,
    pre: &View<R>,
    adj_state: &mut ViewMut<R>,
    adj_control: &mut ViewMut<R>,
) where
    S: System<Rev> + ?Sized,
    R: Real,
{
    clear_tape();
    // Leaves are numbered in creation order: state scalars first, then control scalars.
    let mut state = Columns::from_view(pre).map(|x| Rev::leaf(x.to_f64()));
    let control_rev = Columns::from_view(control).map(|x| Rev::leaf(x.to_f64()));
    let n_state: usize = state.columns().map(|(_, c)| c.len()).sum();
    sys.forward(cx, model, &control_rev.view_all(), &mut state.view_all_mut());

    let seeds = state
        .columns()
        .zip(adj_state.as_view().layout().specs.iter())
        .flat_map(|((_, out), spec)| {
            let a = adj_state.col(&spec.name).to_vec();
            out.iter().copied().zip(a).map(|(o, s)| (o, s.to_f64())).collect::<Vec<_>>()
        })
        .collect::<Vec<_>>();
    let adj = gradients(seeds);
    let mut k = 0;
    for (_, col) in adj_state.columns_mut() {
        for x in col.iter_mut() {
            *x = R::from_f64(adj[k]);
            k += 1;
        }
    }
    debug_assert_eq!(k, n_state);
    for (_, col) in adj_control.columns_mut() {
        for x in col.iter_mut() {
            *x += R::from_f64(adj[k]);
            k += 1;
        }
    }
    clear_tape();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalar::Dual;

    fn f<R: Real>(x: R, y: R) -> R {
        let (s, c) = (x * y).sin_cos();
        (x * y + x.sqrt()).tanh() * (y / x).exp() - x * R::from_f64(3.0) + s * c * y
    }

    #[test]
    fn vjp_of_a_small_function_matches_dual_numbers() {
        let (x, y) = (0.7, 1.3);
        let g = vjp([x, y], [2.0, -1.0], |[x, y]| [f(x, y), x * y]);
        let dx = f(Dual::new(x, 1.0), Dual::new(y, 0.0)).t;
        let dy = f(Dual::new(x, 0.0), Dual::new(y, 1.0)).t;
        assert!((g[0] - (2.0 * dx - y)).abs() < 1e-12 && (g[1] - (2.0 * dy - x)).abs() < 1e-12, "{g:?}");
    }

    #[test]
    fn gradients_match_dual_numbers() {
        clear_tape();
        let (x, y) = (Rev::leaf(0.7), Rev::leaf(-0.4));
        let out = f(x, y);
        let g = gradients([(out, 1.0)]);
        let dx = f(Dual::new(0.7, 1.0), Dual::new(-0.4, 0.0)).t;
        let dy = f(Dual::new(0.7, 0.0), Dual::new(-0.4, 1.0)).t;
        assert!((g[0] - dx).abs() < 1e-14 && (g[1] - dy).abs() < 1e-14, "{g:?} vs {dx} {dy}");
    }

    #[test]
    fn constants_do_not_grow_the_tape() {
        clear_tape();
        let c = Rev::from_f64(2.0) * Rev::from_f64(3.0) + Rev::from_f64(1.0);
        assert_eq!((c.v, tape_len()), (7.0, 0));
        let x = Rev::leaf(1.0);
        let _ = x * c;
        assert_eq!(tape_len(), 2);
    }
}
