//! `mpm.transfer`: one MLS-MPM substep of particle ↔ grid transfer (Hu et al. 2018, "A Moving
//! Least Squares Material Point Method", §4 and Alg. 1; APIC affine velocity C), fused into one
//! system because the grid is scratch, not state:
//!
//! 1. **P2G** (quadratic B-spline weights w_i on the 3×3×3 stencil, Mᵖ⁻¹ = 4/Δx²):
//!    A_p = −Δt V_p (4/Δx²) τ_p + m_p C_p,
//!    m_i += w_ip m_p,  (mv)_i += w_ip (m_p v_p + A_p (x_i − x_p)).
//! 2. **Grid update** on nodes with m_i > ε: v_i = (mv)_i / m_i + Δt g, then the kinematic
//!    collider's projection (`collider.rs`), then the floor's friction law (`Floor::Friction`:
//!    v ← max(1 + gf v_y/|v|, 0) v where v_y < 0 in the bottom `bound` cells), then the domain
//!    boundary: within `bound` cells of a face the velocity component pointing out of the box is
//!    zeroed (free slip); on the floor (`Floor::Sticky`) the whole velocity is zeroed when it
//!    points down (rewarped.md §4).
//! 3. **G2P**: v_p = Σ w_ip v_i, C_p = (4/Δx²) Σ w_ip v_i (x_i − x_p)ᵀ, x_p ← x_p + Δt v_p
//!    (clamped inside the grid), F_p ← (I + Δt C_p) Fp_p (Fp: F after the return mapping).
//!
//! Each env has its own domain [0, 1]³ with Δx = 1/G. The grid is never allocated at G³: each
//! env's substep works on the bounding box of the nodes its particles touch (a dense sub-grid,
//! cleared in O(box), not O(G³)), held in a per-thread scratch buffer. Node indices stay global,
//! so the boundary conditions see the same cells as on the full grid.
//!
//! Adjoint (hand-written): recompute P2G and the grid update into the scratch, then reverse G2P
//! (gather of v̄_i, weight and stencil-offset derivatives), the grid update (v̄ → (m̄v)_i = v̄/m,
//! m̄_i = −v̄·v/m; the boundary masks; the floor friction's Jacobian; the collider projection
//! replayed on the reverse tape per node it touches), and P2G. Both the G2P and P2G reversals
//! add ∂w/∂x_p and ∂(x_i − x_p)/∂x_p terms to x̄_p. Particle mass and volume are model constants.
//!
//! State: `mpm_x`, `mpm_v` [P, 3], `mpm_C` [P, 9] (read and written), `mpm_F` [P, 9] (written),
//! `mpm_Fp`, `mpm_stress` [P, 9] (read; written by `mpm.material`), `collider_q`, `collider_qd` [1, 4] (read, when a
//! collider is set). Model: `mpm_mass_vol` [P, 2].

use std::any::Any;
use std::cell::RefCell;

use diffsim_engine::{ColumnAccess, ModelView, Real, StepCx, System, View, ViewMut};
use rayon::prelude::*;

use super::collider::{Coupling, Posed};

/// What the floor does to grid velocities in its `bound` cells.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Floor {
    /// v = 0 where v_y < 0 (Rewarped's ground_friction ≥ 99).
    Sticky,
    /// Only v_y < 0 is zeroed (free slip, like the other walls; ground_friction 0).
    Slip,
    /// Rewarped's ground friction gf (0 < gf < 99): where v_y < 0, first
    /// v ← max(1 + gf v_y / |v|, 0) v, then the free-slip floor zeroes what is left of v_y.
    /// The tangential speed loses gf times the normal speed's share of |v| (a Coulomb-like
    /// law in Rewarped's form, not |v_t| − μ|v_n|), and a node hitting the floor steeply
    /// enough (−v_y/|v| ≥ 1/gf) stops.
    Friction(f64),
}

/// A ground friction that is not a number ≥ 0 (`Floor::from_ground_friction`).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("ground_friction = {value}: expected a number ≥ 0 (0: free slip, ≥ 99: sticky, else friction)")]
pub struct GroundFrictionError {
    pub value: f64,
}

/// Rewarped's threshold of ground_friction above which the floor is sticky.
pub const STICKY_GROUND_FRICTION: f64 = 99.0;

impl Floor {
    /// The floor of Rewarped's `ground_friction` (rewarped.md §4 "Ground"): ≥ 99 sticky, 0 free
    /// slip (the friction law with gf = 0 is the identity, then the free-slip floor), else
    /// `Friction(gf)`. Errors on a negative or NaN value.
    pub fn from_ground_friction(gf: f64) -> Result<Floor, GroundFrictionError> {
        if gf.is_nan() || gf < 0.0 {
            Err(GroundFrictionError { value: gf })
        } else if gf >= STICKY_GROUND_FRICTION {
            Ok(Floor::Sticky)
        } else if gf == 0.0 {
            Ok(Floor::Slip)
        } else {
            Ok(Floor::Friction(gf))
        }
    }

    /// `from_ground_friction` for a task's config field, the error naming the task.
    pub fn of_config(task: &str, ground_friction: f64) -> Result<Floor, diffsim_engine::EngineError> {
        Floor::from_ground_friction(ground_friction)
            .map_err(|e| diffsim_engine::EngineError::Asset(format!("{task} config: {e}")))
    }
}

/// The per-env background grid and its boundary conditions.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    /// Nodes per axis G (Δx = 1/G).
    pub res: usize,
    /// Boundary layer thickness in cells.
    pub bound: usize,
    pub gravity: [f64; 3],
    pub floor: Floor,
}

impl Grid {
    pub fn dx(&self) -> f64 {
        1.0 / self.res as f64
    }
}

/// Mass below which a node is empty (rewarped.md §4: eps = 1e-15).
const MASS_EPS: f64 = 1e-15;

/// Values per grid node in the forward's grid: (mv)_i (then v_i after the grid update) and m_i,
/// side by side so that P2G and G2P touch one 16-byte row per node and work on it as one 4-wide
/// vector.
const NODE: usize = 4;
/// Where m_i sits in a node.
const MASS: usize = 3;

#[derive(Clone, Debug)]
pub struct Transfer {
    pub grid: Grid,
    /// Kinematic bodies the grid update couples to (`collider.rs`).
    pub collider: Option<Coupling>,
    /// Threads for one env's particles (P2G on per-block sub-grids then summed, G2P on particle
    /// blocks), used when a chunk holds fewer envs than this (e.g. a single env); 1 = serial.
    /// The work goes to the rayon pool the call runs in (the engine's, or the global one).
    pub threads: usize,
}

/// Quadratic B-spline weights and their x-derivatives of one particle, per axis, and the node
/// offsets x_i − x_p per axis (the stencil is a tensor product, so every per-node quantity is
/// assembled from these 3 × 3 numbers).
struct Stencil<R> {
    base: [usize; 3],
    w: [[R; 3]; 3],
    dw: [[R; 3]; 3],
    dpos: [[R; 3]; 3],
}

/// The stencil's base node along one axis, ⌊xs − ½⌋ clamped at 0, from xs = x/Δx as computed in
/// the system's own `R`. [`stencil`] and [`Transfer::region`] both take it from here, so they
/// agree even where xs − ½ is within rounding of an integer: recomputing xs in f64 from an f32 x
/// put such a particle's base one node below the one its f32 stencil used, so that stencil ran
/// past the region's last node (a panic in a RollingFlat training run at epoch 225).
#[inline(always)]
fn base_of<R: Real>(xs: R) -> usize {
    // Truncation is floor here: the argument is clamped to ≥ 0 first.
    (xs.to_f64() - 0.5).max(0.0) as usize
}

// Inlined so that the forward, which never reads `dw`, does not compute it.
#[inline(always)]
fn stencil<R: Real>(x: [R; 3], inv_dx: f64) -> Stencil<R> {
    let mut base = [0usize; 3];
    let mut w = [[R::zero(); 3]; 3];
    let mut dw = [[R::zero(); 3]; 3];
    let mut dpos = [[R::zero(); 3]; 3];
    let inv = R::from_f64(inv_dx);
    let dx = R::from_f64(1.0 / inv_dx);
    for d in 0..3 {
        let xs = x[d] * inv;
        let bi = base_of(xs);
        let b = bi as f64;
        base[d] = bi;
        let fx = xs - R::from_f64(b);
        let (a, c) = (R::from_f64(1.5) - fx, fx - R::from_f64(0.5));
        let m = fx - R::one();
        w[d] = [R::from_f64(0.5) * a * a, R::from_f64(0.75) - m * m, R::from_f64(0.5) * c * c];
        dw[d] = [-a * inv, R::from_f64(-2.0) * m * inv, c * inv];
        // x_i − x_p = (i − fx) Δx for the node i steps above the base.
        dpos[d] = [-fx * dx, (R::one() - fx) * dx, (R::from_f64(2.0) - fx) * dx];
    }
    Stencil { base, w, dw, dpos }
}

/// The sub-grid of one env's substep: global origin and extent.
#[derive(Clone, Copy)]
struct Region {
    lo: [usize; 3],
    n: [usize; 3],
}

impl Region {
    fn len(&self) -> usize {
        self.n[0] * self.n[1] * self.n[2]
    }
    #[inline]
    fn index(&self, g: [usize; 3]) -> usize {
        ((g[0] - self.lo[0]) * self.n[1] + (g[1] - self.lo[1])) * self.n[2] + (g[2] - self.lo[2])
    }
    /// Index of the stencil's first node and the strides of the three axes.
    #[inline]
    fn strides(&self, base: [usize; 3]) -> (usize, [usize; 3]) {
        (self.index(base), [self.n[1] * self.n[2], self.n[2], 1])
    }
    fn node(&self, k: usize) -> [usize; 3] {
        let c = k % self.n[2];
        let b = (k / self.n[2]) % self.n[1];
        let a = k / (self.n[1] * self.n[2]);
        [a + self.lo[0], b + self.lo[1], c + self.lo[2]]
    }
}

thread_local! {
    /// Per-thread grid buffers, one per scalar type (the grid is scratch, reused across calls).
    static SCRATCH: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a zeroed buffer of `len` scalars from this thread's pool.
fn with_scratch<R: Real, T>(len: usize, f: impl FnOnce(&mut [R]) -> T) -> T {
    let mut buf: Vec<R> = SCRATCH
        .with(|s| {
            let mut s = s.borrow_mut();
            let i = s.iter().position(|b| b.is::<Vec<R>>())?;
            s.swap_remove(i).downcast::<Vec<R>>().ok().map(|b| *b)
        })
        .unwrap_or_default();
    buf.clear();
    buf.resize(len, R::zero());
    let out = f(&mut buf);
    SCRATCH.with(|s| s.borrow_mut().push(Box::new(buf)));
    out
}

type M<R> = [[R; 3]; 3];

#[inline(always)]
fn load3<R: Real>(c: &[R], p: usize) -> [R; 3] {
    [c[3 * p], c[3 * p + 1], c[3 * p + 2]]
}
#[inline(always)]
fn load9<R: Real>(c: &[R], p: usize) -> M<R> {
    let o = 9 * p;
    [[c[o], c[o + 1], c[o + 2]], [c[o + 3], c[o + 4], c[o + 5]], [c[o + 6], c[o + 7], c[o + 8]]]
}
#[inline(always)]
fn store9<R: Real>(c: &mut [R], p: usize, m: &M<R>) {
    for i in 0..3 {
        for j in 0..3 {
            c[9 * p + 3 * i + j] = m[i][j];
        }
    }
}
#[inline(always)]
fn matvec_t<R: Real>(a: &M<R>, v: [R; 3]) -> [R; 3] {
    [0, 1, 2].map(|j| a[0][j] * v[0] + a[1][j] * v[1] + a[2][j] * v[2])
}

/// The particle rows G2P writes (and the Fp it reads), for one block of particles.
struct G2pOut<'a, R> {
    x: &'a mut [R],
    v: &'a mut [R],
    c: &'a mut [R],
    f: &'a mut [R],
    fp: &'a [R],
}

/// Per-env inputs of one substep.
struct EnvIn<'a, R> {
    x: &'a [R],
    v: &'a [R],
    c: &'a [R],
    tau: &'a [R],
    mass_vol: &'a [f64],
    /// This env's coupling state (`Coupling::columns`, concatenated); empty without one.
    coupling: Vec<R>,
}

impl Transfer {
    fn inv_dx(&self) -> f64 {
        self.grid.res as f64
    }

    /// Lowest and highest allowed particle coordinate (keeps the stencil inside the grid).
    fn clamp_range(&self) -> (f64, f64) {
        let dx = self.grid.dx();
        (dx, (self.grid.res as f64 - 2.0) * dx)
    }

    fn region<R: Real>(&self, x: &[R]) -> Region {
        let inv = R::from_f64(self.inv_dx());
        let mut lo = [usize::MAX; 3];
        let mut hi = [0usize; 3];
        for p in 0..x.len() / 3 {
            for d in 0..3 {
                let b = base_of(x[3 * p + d] * inv);
                lo[d] = lo[d].min(b);
                hi[d] = hi[d].max(b + 2);
            }
        }
        if x.is_empty() {
            return Region { lo: [0; 3], n: [0; 3] };
        }
        // Not clamped to the grid: a particle placed outside (bad input) still gets its stencil,
        // and the walls (g ≥ G − bound) act on those nodes.
        Region { lo, n: [0, 1, 2].map(|d| hi[d] + 1 - lo[d]) }
    }

    /// P2G into the grid `g` [n, NODE] (zero on entry): (mv)_i in the first three entries of
    /// node i, m_i in the last.
    fn p2g<R: Real>(&self, dt: f64, inp: &EnvIn<R>, reg: &Region, g: &mut [R]) {
        let k = 4.0 * self.inv_dx() * self.inv_dx();
        for p in 0..inp.x.len() / 3 {
            let (mp, vol) = (inp.mass_vol[2 * p], inp.mass_vol[2 * p + 1]);
            let x = load3(inp.x, p);
            let st = stencil(x, self.inv_dx());
            let cm = load9(inp.c, p);
            let tau = load9(inp.tau, p);
            let (s1, s2) = (R::from_f64(-dt * vol * k), R::from_f64(mp));
            let mut a: M<R> = [[R::zero(); 3]; 3];
            for i in 0..3 {
                for j in 0..3 {
                    a[i][j] = s1 * tau[i][j] + s2 * cm[i][j];
                }
            }
            let mvp = vel_scaled(load3(inp.v, p), s2);
            // A (x_i − x_p) = Σ_d A[:, d] dpos_d: one column product per axis offset.
            let acol = axis_columns(&a, &st.dpos);
            let (n0, stride) = reg.strides(st.base);
            for i in 0..3 {
                for j in 0..3 {
                    let wij = st.w[0][i] * st.w[1][j];
                    let mij = add3(mvp, acol[0][i], acol[1][j]);
                    // The three nodes along z are contiguous: one slice (one bounds check), and
                    // one 4-wide multiply-add per node ((mv)_i and m_i side by side).
                    let n = n0 + i * stride[0] + j * stride[1];
                    let row = &mut g[NODE * n..NODE * (n + 3)];
                    for (node, (&wl, az)) in row.chunks_exact_mut(NODE).zip(st.w[2].iter().zip(&acol[2])) {
                        let w = wij * wl;
                        let q = [mij[0] + az[0], mij[1] + az[1], mij[2] + az[2], s2];
                        for d in 0..NODE {
                            node[d] += w * q[d];
                        }
                    }
                }
            }
        }
    }

    /// P2G split over particle blocks, one sub-grid per block, summed (no shared writes).
    fn p2g_par<R: Real>(&self, dt: f64, inp: &EnvIn<R>, reg: &Region, g: &mut [R]) {
        let np = inp.x.len() / 3;
        let bs = np.div_ceil(self.threads).max(1);
        let n = reg.len();
        let grids: Vec<Vec<R>> = (0..np.div_ceil(bs))
            .into_par_iter()
            .map(|b| {
                let r = b * bs..((b + 1) * bs).min(np);
                let sub = EnvIn {
                    x: &inp.x[3 * r.start..3 * r.end],
                    v: &inp.v[3 * r.start..3 * r.end],
                    c: &inp.c[9 * r.start..9 * r.end],
                    tau: &inp.tau[9 * r.start..9 * r.end],
                    mass_vol: &inp.mass_vol[2 * r.start..2 * r.end],
                    // P2G does not read the coupling.
                    coupling: Vec::new(),
                };
                let mut sub_grid = vec![R::zero(); NODE * n];
                self.p2g(dt, &sub, reg, &mut sub_grid);
                sub_grid
            })
            .collect();
        for sub_grid in &grids {
            for (a, &b) in g.iter_mut().zip(sub_grid) {
                *a += b;
            }
        }
    }

    /// G2P for a block of particles (slices of that block), from the updated grid `gv` [n, NODE].
    fn g2p<R: Real>(&self, dt: f64, reg: &Region, gv: &[R], out: G2pOut<'_, R>) {
        let (lo, hi) = self.clamp_range();
        let k = R::from_f64(4.0 * self.inv_dx() * self.inv_dx());
        let dtr = R::from_f64(dt);
        for p in 0..out.x.len() / 3 {
            let x = load3(out.x, p);
            let st = stencil(x, self.inv_dx());
            let (vp, cp) = gather::<R, NODE>(&st, reg, gv, k);
            for d in 0..3 {
                let nx = x[d] + dtr * vp[d];
                out.x[3 * p + d] = nx.max(R::from_f64(lo)).min(R::from_f64(hi));
                out.v[3 * p + d] = vp[d];
            }
            let f = load9(out.fp, p);
            let mut fnew = f;
            for a in 0..3 {
                for b in 0..3 {
                    fnew[a][b] += dtr * (cp[a][0] * f[0][b] + cp[a][1] * f[1][b] + cp[a][2] * f[2][b]);
                }
            }
            store9(out.c, p, &cp);
            store9(out.f, p, &fnew);
        }
    }

    /// Grid-node velocity from momentum, with gravity, collider and walls.
    fn node_op<R: Real>(&self, g: [usize; 3], v: [R; 3], posed: Option<&Posed<'_, R>>) -> [R; 3] {
        let mut v = v;
        if let Some(c) = posed {
            let dx = self.grid.dx();
            v = c.project([g[0] as f64 * dx, g[1] as f64 * dx, g[2] as f64 * dx], v);
        }
        if let Some(s) = self.floor_scale(g, &v) {
            v = v.map(|x| x * s);
        }
        self.walls(g, &mut v);
        v
    }

    /// The factor s = max(1 + gf v_y / |v|, 0) of `Floor::Friction` at node `g`, or `None`
    /// where the law does not act (other floors, above the floor layer, v_y ≥ 0).
    ///
    /// |v| → 0: v_y < 0 gives |v| ≥ |v_y| > 0, so the ratio v_y/|v| ∈ [−1, 0) is always
    /// defined; |v| is taken as max(√(v·v), |v_y|) so that squares underflowing to 0 (f32 speeds
    /// below ~1e-19) cannot make it 0. The map v ↦ s(v) v is positively homogeneous of degree
    /// 1, so its Jacobian (`floor_adjoint`) is bounded (by 1 + 2 gf) however small v is; it is
    /// discontinuous only at v = 0 itself, which the strict v_y < 0 excludes.
    fn floor_scale<R: Real>(&self, g: [usize; 3], v: &[R; 3]) -> Option<R> {
        let Floor::Friction(gf) = self.grid.floor else { return None };
        if g[1] >= self.grid.bound || v[1].to_f64() >= 0.0 {
            return None;
        }
        let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt().max(-v[1]);
        Some((R::one() + R::from_f64(gf) * v[1] / n).max(R::zero()))
    }

    /// v̄ of the friction law's input from v̄ of its output (`floor_scale`), in f64: with
    /// r = v_y/|v| and s = 1 + gf r > 0, ∂(s v)/∂v = s I + gf v ∇rᵀ, ∇r = e_y/|v| − v_y v/|v|³,
    /// so v̄_in = s v̄ + gf (v̄·v) ∇r; on the clamp (s ≤ 0, v_out = 0) v̄_in = 0.
    fn floor_adjoint(&self, g: [usize; 3], v: [f64; 3], vbar: [f64; 3]) -> [f64; 3] {
        let Floor::Friction(gf) = self.grid.floor else { return vbar };
        let Some(s) = self.floor_scale(g, &v) else { return vbar };
        if s <= 0.0 {
            return [0.0; 3];
        }
        // In e = v/|v|: ∇r = (e_y-axis − e_y e)/|v|, and gf (v̄·v) ∇r = gf (v̄·e)(e_y-axis − e_y e),
        // so no power of a tiny |v| is formed (the WGSL kernel's f32 needs this).
        let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt().max(-v[1]);
        let e = v.map(|x| x / n);
        let k = gf * (vbar[0] * e[0] + vbar[1] * e[1] + vbar[2] * e[2]);
        [0, 1, 2].map(|d| s * vbar[d] + k * (if d == 1 { 1.0 } else { 0.0 } - e[1] * e[d]))
    }

    /// Which velocity components the walls and floor keep at node `g` (module docs); the choice
    /// depends on the sign of v only, so the update is a fixed mask on each side of it.
    fn wall_mask<R: Real>(&self, g: [usize; 3], v: &[R; 3]) -> [bool; 3] {
        let (b, res) = (self.grid.bound, self.grid.res);
        if self.grid.floor == Floor::Sticky && g[1] < b && v[1].to_f64() < 0.0 {
            return [false; 3];
        }
        [0, 1, 2].map(|d| !((g[d] < b && v[d].to_f64() < 0.0) || (g[d] + b >= res && v[d].to_f64() > 0.0)))
    }

    fn walls<R: Real>(&self, g: [usize; 3], v: &mut [R; 3]) {
        let keep = self.wall_mask(g, v);
        for d in 0..3 {
            if !keep[d] {
                v[d] = R::zero();
            }
        }
    }

    /// Turns momentum into the updated velocity in place over the region (the first three
    /// entries of each node of `g` [n, NODE]; m_i, the last, is kept).
    fn grid_update<R: Real>(&self, dt: f64, reg: &Region, g: &mut [R], coupling: &[R]) {
        let posed = self.collider.as_ref().map(|c| c.pose(coupling, dt));
        let gdt = self.grid.gravity.map(|g| R::from_f64(g * dt));
        // Nodes in storage order (z fastest), their global index counted along (no divisions).
        let mut nodes = g.chunks_exact_mut(NODE);
        for a in reg.lo[0]..reg.lo[0] + reg.n[0] {
            for b in reg.lo[1]..reg.lo[1] + reg.n[1] {
                for (c, node) in (reg.lo[2]..reg.lo[2] + reg.n[2]).zip(nodes.by_ref()) {
                    let m = node[MASS];
                    if m.to_f64() <= MASS_EPS {
                        node[..3].fill(R::zero());
                        continue;
                    }
                    let inv = R::one() / m;
                    let v = [node[0] * inv + gdt[0], node[1] * inv + gdt[1], node[2] * inv + gdt[2]];
                    let v = self.node_op([a, b, c], v, posed.as_ref());
                    node[..3].copy_from_slice(&v);
                }
            }
        }
    }

    fn env_in<'a, R: Real>(
        &self,
        e: usize,
        np: usize,
        cols: [&'a [R]; 4],
        mv: &'a [f64],
        coupling: &[Vec<R>; 2],
        envs: usize,
    ) -> EnvIn<'a, R> {
        let [x, v, c, tau] = cols;
        let coupling = coupling
            .iter()
            .flat_map(|col| {
                let w = col.len() / envs.max(1);
                col[w * e..w * (e + 1)].iter().copied()
            })
            .collect();
        EnvIn {
            x: &x[3 * np * e..3 * np * (e + 1)],
            v: &v[3 * np * e..3 * np * (e + 1)],
            c: &c[9 * np * e..9 * np * (e + 1)],
            tau: &tau[9 * np * e..9 * np * (e + 1)],
            mass_vol: &mv[2 * np * e..2 * np * (e + 1)],
            coupling,
        }
    }
}

fn vel_scaled<R: Real>(v: [R; 3], s: R) -> [R; 3] {
    [v[0] * s, v[1] * s, v[2] * s]
}

/// The per-axis parts of M (x_i − x_p) = Σ_d M[:, d] (x_i − x_p)_d: `out[d][o]` = M[:, d] times
/// the offset of the o-th node along axis d. Plain loops (array `map` closures spill to the stack
/// in these hot kernels).
#[inline(always)]
fn axis_columns<R: Real>(m: &M<R>, dpos: &[[R; 3]; 3]) -> [[[R; 3]; 3]; 3] {
    let mut out = [[[R::zero(); 3]; 3]; 3];
    for d in 0..3 {
        for o in 0..3 {
            for r in 0..3 {
                out[d][o][r] = m[r][d] * dpos[d][o];
            }
        }
    }
    out
}

#[inline(always)]
fn add3<R: Real>(a: [R; 3], b: [R; 3], c: [R; 3]) -> [R; 3] {
    [a[0] + b[0] + c[0], a[1] + b[1] + c[1], a[2] + b[2] + c[2]]
}

/// Reverse of G2P's gather for one particle: v̄_i += w_i g_i with g_i = v̄_p + k C̄ (x_i − x_p),
/// and x̄_p += Σ_i (v_i · g_i) ∇w_i − k C̄ᵀ v_p (the offsets' −I, summed over nodes:
/// Σ_i k w_i C̄ᵀ v_i = k C̄ᵀ v_p). C̄ (x_i − x_p) is split per axis like P2G's A (x_i − x_p), and
/// the ∇w sums are nested (z innermost).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn g2p_reverse<R: Real>(
    st: &Stencil<R>,
    reg: &Region,
    gv: &[R],
    gbar: &mut [R],
    k: R,
    vpbar: [R; 3],
    cbar: &M<R>,
    vp: [R; 3],
    xbar: &mut [R; 3],
) {
    let (n0, stride) = reg.strides(st.base);
    let mut kcbar = *cbar;
    for row in kcbar.iter_mut() {
        for c in row.iter_mut() {
            *c *= k;
        }
    }
    let kc = axis_columns(&kcbar, &st.dpos);
    for a in 0..3 {
        for b in 0..3 {
            let gab = add3(vpbar, kc[0][a], kc[1][b]);
            let wab = st.w[0][a] * st.w[1][b];
            let n = n0 + a * stride[0] + b * stride[1];
            let (vrow, brow) = (&gv[NODE * n..NODE * (n + 3)], &mut gbar[3 * n..3 * n + 9]);
            let (mut tw, mut td) = (R::zero(), R::zero());
            for c in 0..3 {
                let w = wab * st.w[2][c];
                let mut wb = R::zero();
                for r in 0..3 {
                    let g = gab[r] + kc[2][c][r];
                    brow[3 * c + r] += w * g;
                    wb += vrow[NODE * c + r] * g;
                }
                tw += wb * st.w[2][c];
                td += wb * st.dw[2][c];
            }
            xbar[0] += st.dw[0][a] * st.w[1][b] * tw;
            xbar[1] += st.w[0][a] * st.dw[1][b] * tw;
            xbar[2] += wab * td;
        }
    }
    let ctv = matvec_t(cbar, vp);
    for d in 0..3 {
        xbar[d] -= k * ctv[d];
    }
}

/// Reverse of P2G for one particle, from the grid adjoints (m̄v)_i = `mvbar`, m̄_i = `mbar`:
/// returns (x̄_p, v̄_p, Ā) with v̄_p = m_p Σ_i w_i (m̄v)_i, Ā = Σ_i w_i (m̄v)_i (x_i − x_p)ᵀ (the
/// forward's gather on the adjoint grid), and x̄_p = Σ_i w̄_i ∇w_i − Aᵀ Σ_i w_i (m̄v)_i with
/// w̄_i = m̄_i m_p + (m̄v)_i · (m_p v_p + A (x_i − x_p)).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn p2g_reverse<R: Real>(
    st: &Stencil<R>,
    reg: &Region,
    mvbar: &[R],
    mbar: &[R],
    mp: R,
    mvp: [R; 3],
    a: &M<R>,
) -> ([R; 3], [R; 3], M<R>) {
    let (vsum, abar) = gather::<R, 3>(st, reg, mvbar, R::one());
    let (n0, stride) = reg.strides(st.base);
    let acol = axis_columns(a, &st.dpos);
    let mut xbar = [R::zero(); 3];
    for i in 0..3 {
        for j in 0..3 {
            let mij = add3(mvp, acol[0][i], acol[1][j]);
            let n = n0 + i * stride[0] + j * stride[1];
            let (brow, mrow) = (&mvbar[3 * n..3 * n + 9], &mbar[n..n + 3]);
            let (mut tw, mut td) = (R::zero(), R::zero());
            for l in 0..3 {
                let mut wb = mrow[l] * mp;
                for r in 0..3 {
                    wb += brow[3 * l + r] * (mij[r] + acol[2][l][r]);
                }
                tw += wb * st.w[2][l];
                td += wb * st.dw[2][l];
            }
            xbar[0] += st.dw[0][i] * st.w[1][j] * tw;
            xbar[1] += st.w[0][i] * st.dw[1][j] * tw;
            xbar[2] += st.w[0][i] * st.w[1][j] * td;
        }
    }
    let atv = matvec_t(a, vsum);
    ([0, 1, 2].map(|d| xbar[d] - atv[d]), [0, 1, 2].map(|d| mp * vsum[d]), abar)
}

/// G2P's gather for one particle: v_p = Σ_i w_ip v_i and C_p = k Σ_i w_ip v_i (x_i − x_p)ᵀ,
/// from a grid of `S` values per node with v_i first (`NODE` for the forward's grid, 3 for the
/// adjoint's). The weights and offsets are tensor products, so the sums are nested per axis (z
/// innermost: three contiguous nodes): Σ_x w_x [Σ_y w_y [Σ_z w_z v]] with the offsets of each
/// axis folded in at its own level, ~290 multiply-adds instead of 27 × 15. The sums run over all
/// `S` entries of a node (with `NODE` = 4 one vector operation each; the mass lane is dropped at
/// the end), the first three with exactly the operations of a 3-wide sum.
#[inline(always)]
fn gather<R: Real, const S: usize>(st: &Stencil<R>, reg: &Region, gv: &[R], k: R) -> ([R; 3], M<R>) {
    let (n0, stride) = reg.strides(st.base);
    let wzd = [0, 1, 2].map(|l| st.w[2][l] * st.dpos[2][l]);
    // v_p and the three columns of C_p / k.
    let (mut vp, mut c0, mut c1, mut c2) = ([R::zero(); S], [R::zero(); S], [R::zero(); S], [R::zero(); S]);
    for i in 0..3 {
        // Σ_y Σ_z of w v, of w v dpos_y and of w v dpos_z, for this x layer.
        let (mut sv, mut sy, mut sz) = ([R::zero(); S], [R::zero(); S], [R::zero(); S]);
        for j in 0..3 {
            let n = n0 + i * stride[0] + j * stride[1];
            let g = &gv[S * n..S * (n + 3)];
            let (mut rv, mut rz) = ([R::zero(); S], [R::zero(); S]);
            for (l, node) in g.chunks_exact(S).enumerate() {
                for a in 0..S {
                    rv[a] += st.w[2][l] * node[a];
                    rz[a] += wzd[l] * node[a];
                }
            }
            let (wy, wyd) = (st.w[1][j], st.w[1][j] * st.dpos[1][j]);
            for a in 0..S {
                sv[a] += wy * rv[a];
                sy[a] += wyd * rv[a];
                sz[a] += wy * rz[a];
            }
        }
        let (wx, wxd) = (st.w[0][i], st.w[0][i] * st.dpos[0][i]);
        for a in 0..S {
            vp[a] += wx * sv[a];
            c0[a] += wxd * sv[a];
            c1[a] += wx * sy[a];
            c2[a] += wx * sz[a];
        }
    }
    let cp = [0, 1, 2].map(|a| [c0[a] * k, c1[a] * k, c2[a] * k]);
    ([vp[0], vp[1], vp[2]], cp)
}

impl<R: Real> System<R> for Transfer {
    fn name(&self) -> &str {
        "mpm.transfer"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        let mut a = Vec::new();
        for (name, w) in [("mpm_x", 3), ("mpm_v", 3), ("mpm_C", 9)] {
            a.push(ColumnAccess::state(name, w));
            a.push(ColumnAccess::write(name, w));
        }
        a.push(ColumnAccess::state("mpm_Fp", 9));
        a.push(ColumnAccess::write("mpm_F", 9));
        a.push(ColumnAccess::state("mpm_stress", 9));
        a.push(ColumnAccess::model("mpm_mass_vol", 2));
        if let Some(c) = &self.collider {
            for (name, w) in c.columns() {
                a.push(ColumnAccess::state(name, w));
            }
        }
        a
    }

    fn forward(&self, cx: &StepCx, model: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let dt = cx.dt;
        let np = model.count("mpm_mass_vol");
        let mass_vol = model.param("mpm_mass_vol");
        let coupling = self.coupling_columns(|name| state.col(name));
        let par = self.threads > 1 && model.num_envs() < self.threads;
        let [xs, vs, cs, fs, fps, tau_all] =
            state.cols_mut(["mpm_x", "mpm_v", "mpm_C", "mpm_F", "mpm_Fp", "mpm_stress"]);
        let (tau_all, fps): (&[R], &[R]) = (tau_all, fps);
        for e in 0..model.num_envs() {
            let reg = self.region(&xs[3 * np * e..3 * np * (e + 1)]);
            with_scratch::<R, _>(NODE * reg.len(), |grid| {
                {
                    let inp = self.env_in(e, np, [&*xs, &*vs, &*cs, tau_all], mass_vol, &coupling, model.num_envs());
                    if par {
                        self.p2g_par(dt, &inp, &reg, grid);
                    } else {
                        self.p2g(dt, &inp, &reg, grid);
                    }
                    self.grid_update(dt, &reg, grid, &inp.coupling);
                }
                let grid: &[R] = grid;
                let (p3, p9) = (3 * np * e..3 * np * (e + 1), 9 * np * e..9 * np * (e + 1));
                let out = G2pOut {
                    x: &mut xs[p3.clone()],
                    v: &mut vs[p3],
                    c: &mut cs[p9.clone()],
                    f: &mut fs[p9.clone()],
                    fp: &fps[p9],
                };
                if par {
                    let bs = np.div_ceil(self.threads).max(1);
                    out.x
                        .par_chunks_mut(3 * bs)
                        .zip(out.v.par_chunks_mut(3 * bs))
                        .zip(out.c.par_chunks_mut(9 * bs))
                        .zip(out.f.par_chunks_mut(9 * bs))
                        .zip(out.fp.par_chunks(9 * bs))
                        .for_each(|((((x, v), c), f), fp)| self.g2p(dt, &reg, grid, G2pOut { x, v, c, f, fp }));
                } else {
                    self.g2p(dt, &reg, grid, out);
                }
            });
        }
    }

    fn adjoint(
        &self,
        cx: &StepCx,
        model: &ModelView,
        _: &View<R>,
        pre: &View<R>,
        adj: &mut ViewMut<R>,
        _: &mut ViewMut<R>,
    ) {
        let dt = cx.dt;
        let np = model.count("mpm_mass_vol");
        let mass_vol = model.param("mpm_mass_vol");
        let cols = ["mpm_x", "mpm_v", "mpm_C", "mpm_stress"].map(|c| pre.col(c));
        let fpre = pre.col("mpm_Fp");
        let coupling = self.coupling_columns(|name| pre.col(name));
        let (lo, hi) = self.clamp_range();
        let kc = 4.0 * self.inv_dx() * self.inv_dx();
        // Per env, the adjoint of its coupling state (`EnvIn::coupling` layout).
        let mut aq_acc: Vec<Vec<f64>> = Vec::with_capacity(model.num_envs());
        {
            let [ax, av, ac, af, afp, at] = adj.cols_mut(["mpm_x", "mpm_v", "mpm_C", "mpm_F", "mpm_Fp", "mpm_stress"]);
            for e in 0..model.num_envs() {
                let inp = self.env_in(e, np, cols, mass_vol, &coupling, model.num_envs());
                let reg = self.region(inp.x);
                let n = reg.len();
                // P2G's grid [n, NODE], the updated grid [n, NODE], v̄ [3n], m̄ [n].
                with_scratch::<R, _>((2 * NODE + 4) * n, |buf| {
                    let (pre_grid, rest) = buf.split_at_mut(NODE * n);
                    let (vout, rest) = rest.split_at_mut(NODE * n);
                    let (vbar, mbar) = rest.split_at_mut(3 * n);
                    self.p2g(dt, &inp, &reg, pre_grid);
                    vout.copy_from_slice(pre_grid);
                    self.grid_update(dt, &reg, vout, &inp.coupling);

                    let k = R::from_f64(kc);
                    let dtr = R::from_f64(dt);
                    // Reverse G2P.
                    for pl in 0..np {
                        let p = np * e + pl;
                        let x = load3(inp.x, pl);
                        let st = stencil(x, self.inv_dx());
                        // Recompute v_p and C_p (the forward's gather).
                        let (vp, cp) = gather::<R, NODE>(&st, &reg, vout, k);
                        let f = load9(fpre, p);
                        let fbar_out = load9(af, p);
                        let mut xbar = [R::zero(); 3];
                        let mut vpbar = [R::zero(); 3];
                        for d in 0..3 {
                            let nx = (x[d] + dtr * vp[d]).to_f64();
                            let g = if nx >= lo && nx <= hi { ax[3 * p + d] } else { R::zero() };
                            xbar[d] = g;
                            vpbar[d] = av[3 * p + d] + dtr * g;
                        }
                        // F' = F + Δt C' F: C̄' += Δt F̄' Fᵀ, F̄ = F̄' + Δt C'ᵀ F̄'.
                        let mut cbar = load9(ac, p);
                        let mut fbar = fbar_out;
                        for r in 0..3 {
                            for s in 0..3 {
                                let mut a1 = R::zero();
                                let mut a2 = R::zero();
                                for t in 0..3 {
                                    a1 += fbar_out[r][t] * f[s][t];
                                    a2 += cp[t][r] * fbar_out[t][s];
                                }
                                cbar[r][s] += dtr * a1;
                                fbar[r][s] += dtr * a2;
                            }
                        }
                        // F is overwritten (its adjoint is consumed); Fp is read (accumulate).
                        store9(af, p, &[[R::zero(); 3]; 3]);
                        for r in 0..3 {
                            for s2 in 0..3 {
                                afp[9 * p + 3 * r + s2] += fbar[r][s2];
                            }
                        }
                        g2p_reverse(&st, &reg, vout, vbar, k, vpbar, &cbar, vp, &mut xbar);
                        for d in 0..3 {
                            ax[3 * p + d] = xbar[d];
                            av[3 * p + d] = R::zero();
                        }
                        store9(ac, p, &[[R::zero(); 3]; 3]);
                    }
                    // Reverse the grid update: v̄_out → v̄_in → (m̄v, m̄).
                    let gdt = self.grid.gravity.map(|g| R::from_f64(g * dt));
                    let s64: Vec<f64> = inp.coupling.iter().map(|x| x.to_f64()).collect();
                    let posed = self.collider.as_ref().map(|c| c.pose(&s64, dt));
                    let mut aq_env = vec![0.0; s64.len()];
                    for (kk, node) in pre_grid.chunks_exact(NODE).enumerate() {
                        if node[MASS].to_f64() <= MASS_EPS {
                            continue;
                        }
                        let inv = R::one() / node[MASS];
                        let vin = [0, 1, 2].map(|d| node[d] * inv + gdt[d]);
                        let g = reg.node(kk);
                        let vb = [vbar[3 * kk], vbar[3 * kk + 1], vbar[3 * kk + 2]];
                        let vin_bar = self.node_op_adjoint(g, vin, posed.as_ref(), &s64, vb, &mut aq_env);
                        let mut mb = R::zero();
                        for d in 0..3 {
                            vbar[3 * kk + d] = vin_bar[d] * inv;
                            mb -= vin_bar[d] * (vin[d] - gdt[d]) * inv;
                        }
                        mbar[kk] = mb;
                    }
                    aq_acc.push(aq_env);
                    // Reverse P2G (vbar now holds (m̄v)_i).
                    for pl in 0..np {
                        let p = np * e + pl;
                        let (mp, vol) = (inp.mass_vol[2 * pl], inp.mass_vol[2 * pl + 1]);
                        let x = load3(inp.x, pl);
                        let st = stencil(x, self.inv_dx());
                        let cm = load9(inp.c, pl);
                        let tau = load9(inp.tau, pl);
                        let (s1, s2) = (R::from_f64(-dt * vol * kc), R::from_f64(mp));
                        let mut a: M<R> = [[R::zero(); 3]; 3];
                        for i in 0..3 {
                            for j in 0..3 {
                                a[i][j] = s1 * tau[i][j] + s2 * cm[i][j];
                            }
                        }
                        let vv = load3(inp.v, pl);
                        let mvp = vel_scaled(vv, s2);
                        let (xbar, vpbar, abar) = p2g_reverse(&st, &reg, vbar, mbar, s2, mvp, &a);
                        for d in 0..3 {
                            ax[3 * p + d] += xbar[d];
                            av[3 * p + d] += vpbar[d];
                        }
                        for r in 0..3 {
                            for s in 0..3 {
                                ac[9 * p + 3 * r + s] += s2 * abar[r][s];
                                at[9 * p + 3 * r + s] += s1 * abar[r][s];
                            }
                        }
                    }
                });
            }
        }
        if let Some(c) = &self.collider {
            let [(n0, _), (n1, _)] = c.columns();
            let [a0, a1] = adj.cols_mut([n0, n1]);
            let envs = model.num_envs().max(1);
            let (w0, w1) = (a0.len() / envs, a1.len() / envs);
            for (e, g) in aq_acc.iter().enumerate() {
                let (g0, g1) = g.split_at(w0);
                a0[w0 * e..w0 * (e + 1)].iter_mut().zip(g0).for_each(|(a, &g)| *a += R::from_f64(g));
                a1[w1 * e..w1 * (e + 1)].iter_mut().zip(g1).for_each(|(a, &g)| *a += R::from_f64(g));
            }
        }
    }
    /// GPU kernels exist for every coupling: none, the one-body rigid collider (RollingFlat,
    /// FluidMove) and the multi-body one (HandFlip; `wgsl/collider_bodies.wgsl`).
    fn gpu(&self) -> Option<Box<dyn diffsim_engine::gpu_sim::GpuSystem>> {
        Some(Box::new(self.clone()))
    }
}

impl Transfer {
    /// v̄_in of `node_op` at one node; adds the coupling state's adjoint into `aq` (layout of
    /// `EnvIn::coupling`). The walls are a mask chosen from the sign of the velocity they see
    /// (recomputed here), so v̄ is masked first, then pulled back through the floor's friction
    /// law (`floor_adjoint`) and the projection (`Posed::project_adjoint`).
    fn node_op_adjoint<R: Real>(
        &self,
        g: [usize; 3],
        vin: [R; 3],
        posed: Option<&Posed<'_, f64>>,
        s: &[f64],
        vbar: [R; 3],
        aq: &mut [f64],
    ) -> [R; 3] {
        let dx = self.grid.dx();
        let x = g.map(|i| i as f64 * dx);
        let vin = vin.map(|v| v.to_f64());
        let vproj = posed.map_or(vin, |p| p.project(x, vin));
        let vfric = self.floor_scale(g, &vproj).map_or(vproj, |f| vproj.map(|x| x * f));
        let keep = self.wall_mask(g, &vfric);
        let vbar = [0, 1, 2].map(|d| if keep[d] { vbar[d].to_f64() } else { 0.0 });
        let vbar = self.floor_adjoint(g, vproj, vbar);
        let out = posed.map_or(vbar, |p| p.project_adjoint(x, vin, s, vbar, aq));
        out.map(R::from_f64)
    }

    /// The coupling's two state columns, copied (empty without a coupling).
    fn coupling_columns<'a, R: Real>(&self, col: impl Fn(&str) -> &'a [R]) -> [Vec<R>; 2] {
        match &self.collider {
            Some(c) => c.columns().map(|(name, _)| col(name).to_vec()),
            None => [Vec::new(), Vec::new()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A single-threaded transfer on a `res`³ grid without gravity or a collider.
    fn bare(res: usize, bound: usize, floor: Floor) -> Transfer {
        Transfer { grid: Grid { res, bound, gravity: [0.0; 3], floor }, collider: None, threads: 1 }
    }

    /// The floor's friction law at one floor node (`node_op` without a collider, then
    /// `node_op_adjoint`): the adjoint against dual tangents and central differences in f64, on
    /// random velocities in the friction branch (s > 0), on the clamp (s = 0), above the floor
    /// and for v_y ≥ 0 (identity then walls), and at tiny |v| (1e-30: the ratio v_y/|v| and the
    /// Jacobian stay bounded, `floor_scale`).
    #[test]
    fn floor_friction_adjoint_matches_duals_and_differences() {
        use diffsim_engine::Dual;
        let gf = 3.0;
        let t = bare(16, 3, Floor::Friction(gf));
        let mut seed = 99u64;
        let mut u = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let (mut friction, mut clamp) = (0, 0);
        for case in 0..400 {
            let scale = if case % 10 == 0 { 1e-30 } else { 1.0 };
            let v = [u(), u(), u()].map(|x| 4.0 * x * scale);
            let g = [8, if case % 7 == 0 { 5 } else { case % 3 }, 8];
            let vbar = [u(), u(), u()];
            let adj = t.node_op_adjoint(g, v, None, &[], vbar, &mut []);
            match t.floor_scale(g, &v) {
                Some(s) if s > 0.0 => friction += 1,
                Some(_) => clamp += 1,
                None => {}
            }
            for d in 0..3 {
                // Dual tangent along e_d: ∂(v̄ · out)/∂v_d = (adjoint)_d.
                let vd = [0, 1, 2].map(|k| Dual::new(v[k], if k == d { 1.0 } else { 0.0 }));
                let out = t.node_op(g, vd, None);
                let dual: f64 = (0..3).map(|k| vbar[k] * out[k].t).sum();
                let h = 1e-6 * scale;
                let (mut vp, mut vm) = (v, v);
                vp[d] += h;
                vm[d] -= h;
                let (op, om) = (t.node_op(g, vp, None), t.node_op(g, vm, None));
                let fd: f64 = (0..3).map(|k| vbar[k] * (op[k] - om[k]) / (2.0 * h)).sum();
                assert!((dual - adj[d]).abs() < 1e-12, "case {case} v {v:?} d {d}: dual {dual} vs adjoint {}", adj[d]);
                assert!(adj[d].abs() <= (1.0 + 2.0 * gf) * 3.0, "unbounded adjoint {adj:?} at v {v:?}");
                // The branches switch at v_y = 0 and at s = 0; stay ≥ 1e-4 |v| away from both.
                let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
                let near = v[1].abs() < 1e-4 * n || (1.0 + gf * v[1] / n).abs() < 1e-4;
                if !near {
                    assert!((fd - adj[d]).abs() < 1e-6, "case {case} v {v:?} d {d}: fd {fd} vs adjoint {}", adj[d]);
                }
            }
        }
        assert!(friction > 20 && clamp > 20, "branches: friction {friction}, clamp {clamp}");
    }

    #[test]
    fn ground_friction_maps_to_floors() {
        assert_eq!(Floor::from_ground_friction(0.0), Ok(Floor::Slip));
        assert_eq!(Floor::from_ground_friction(0.5), Ok(Floor::Friction(0.5)));
        assert_eq!(Floor::from_ground_friction(99.0), Ok(Floor::Sticky));
        assert_eq!(Floor::from_ground_friction(500.0), Ok(Floor::Sticky));
        for bad in [-0.1, f64::NAN] {
            let e = Floor::from_ground_friction(bad).unwrap_err();
            assert!(e.to_string().contains("ground_friction"), "{e}");
        }
    }

    /// f32 coordinates where x/Δx − ½ rounds onto an integer k in f32 but is below k exactly,
    /// for every k a particle can have as its base at G = 48: the f32 stencil's base is k, an f64
    /// recomputation's k − 1.
    fn rounding_edges(res: usize) -> Vec<f32> {
        let inv = res as f32;
        let mut edges = Vec::new();
        for k in 1..res - 2 {
            let mut x = ((k as f64 + 0.5) / res as f64) as f32;
            while x * inv >= k as f32 + 0.5 {
                if f64::from(x) * res as f64 - 0.5 < k as f64 {
                    edges.push(x);
                }
                x = x.next_down();
            }
        }
        edges
    }

    /// The region holds every node of every particle's stencil, also at rounding edges of the
    /// base (the regression: the region's base came from an f64 recomputation, one below the f32
    /// stencil's, and P2G indexed past the region), and P2G over them runs and conserves mass.
    #[test]
    fn region_holds_the_stencils_of_particles_at_rounding_edges() {
        let t = bare(48, 3, Floor::Slip);
        let edges = rounding_edges(48);
        assert!(edges.len() >= 10, "only {} edge coordinates found", edges.len());
        for (i, &e) in edges.iter().enumerate() {
            // The edge on one axis at a time, the others mid-cell; the edge particle is the one
            // with the highest base on that axis, so it sets the region's upper end.
            let d = i % 3;
            let mut x = [0.2f32; 3];
            x[d] = e;
            let xs = [x.to_vec(), vec![0.1f32; 3]].concat();
            let reg = t.region(&xs);
            let st = stencil([x[0], x[1], x[2]], t.inv_dx());
            for a in 0..3 {
                assert!(reg.lo[a] <= st.base[a], "x = {e:e}: base {:?} below region {:?}", st.base, reg.lo);
                assert!(st.base[a] + 2 < reg.lo[a] + reg.n[a], "x = {e:e}: stencil {:?} past region", st.base);
            }
            let (v, c, tau) = (vec![0.0f32; 6], vec![0.0f32; 18], vec![0.0f32; 18]);
            let mass_vol = [1.0, 1e-3, 2.0, 1e-3];
            let inp = EnvIn { x: &xs, v: &v, c: &c, tau: &tau, mass_vol: &mass_vol, coupling: Vec::new() };
            let mut grid = vec![0.0f32; NODE * reg.len()];
            t.p2g(1e-3, &inp, &reg, &mut grid);
            let m: f32 = grid.chunks(NODE).map(|node| node[MASS]).sum();
            assert!((m - 3.0).abs() < 1e-5, "x = {e:e}: grid mass {m}");
        }
    }

    /// P2G conserves mass exactly (partition of unity of the quadratic B-spline weights, to f64
    /// rounding) and momentum up to the affine term, whose stencil moments vanish.
    #[test]
    fn p2g_conserves_mass_and_momentum() {
        let t = bare(16, 2, Floor::Slip);
        let mut s = 12345u64;
        let mut u = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let np = 50;
        let x: Vec<f64> = (0..3 * np).map(|_| 0.3 + 0.4 * u()).collect();
        let v: Vec<f64> = (0..3 * np).map(|_| u() - 0.5).collect();
        let c: Vec<f64> = (0..9 * np).map(|_| u() - 0.5).collect();
        let tau: Vec<f64> = (0..9 * np).map(|_| 100.0 * (u() - 0.5)).collect();
        let mass_vol: Vec<f64> = (0..np).flat_map(|_| [0.5 + u(), 1e-3]).collect();
        let inp = EnvIn { x: &x, v: &v, c: &c, tau: &tau, mass_vol: &mass_vol, coupling: Vec::new() };
        let reg = t.region(&x);
        let mut grid = vec![0.0; NODE * reg.len()];
        t.p2g(1e-3, &inp, &reg, &mut grid);
        let total: f64 = mass_vol.chunks(2).map(|p| p[0]).sum();
        let grid_total: f64 = grid.chunks(NODE).map(|node| node[MASS]).sum();
        assert!((grid_total - total).abs() < 1e-12 * total, "{grid_total} vs {total}");
        for d in 0..3 {
            let p: f64 = (0..np).map(|i| mass_vol[2 * i] * v[3 * i + d]).sum();
            let g: f64 = grid.chunks(NODE).map(|node| node[d]).sum();
            assert!((p - g).abs() < 1e-10, "momentum {d}: {g} vs {p}");
        }
    }
}
