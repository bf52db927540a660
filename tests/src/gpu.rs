//! Shared pieces of the CPU/GPU parity tests (`tests/tests/gpu_*.rs`): the rule for a missing
//! adapter, the relative error with a column-scale floor, one system run on both sides from the
//! same inputs, every system of a schedule checked that way over random cases
//! ([`for_each_system`]), and whole rollouts on both sides.

use std::cell::RefCell;
use std::sync::Arc;

use diffsim_engine::gpu_sim::{GpuOptions, Scatter, Seeds};
use diffsim_engine::{Columns, EngineError, Gpu, GpuSim, Gradients, ModelView, Real, Sim, StepCx, System};

/// The GPU, or `None` (after saying so) when no adapter exists at all. With
/// `DIFFSIM_REQUIRE_GPU=1` (CI, where lavapipe is installed) a missing adapter fails instead, so
/// a broken driver install cannot turn the suite green by skipping; any other GPU failure fails.
pub fn gpu_or_skip(test: &str) -> Option<Arc<Gpu>> {
    open_or_skip(test, Gpu::new)
}

/// [`gpu_or_skip`] for a device opened without native f32 atomics ([`Gpu::without_f32_atomics`]),
/// so `Scatter::Atomic` kernels run their compare-exchange loop.
pub fn compare_exchange_gpu_or_skip(test: &str) -> Option<Arc<Gpu>> {
    let gpu = open_or_skip(test, Gpu::without_f32_atomics)?;
    assert!(!gpu.has_f32_atomics(), "{test}: the device kept native f32 atomics");
    Some(gpu)
}

/// Whether `DIFFSIM_REQUIRE_GPU=1`: a missing adapter fails a GPU test instead of skipping it.
pub fn gpu_required() -> bool {
    std::env::var("DIFFSIM_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// For a test that runs `diffsim` with a GPU backend: true (after saying so) when the command
/// failed only for want of an adapter and none is required, so the test should stop there.
pub fn command_skips_without_adapter(test: &str, succeeded: bool, output: &str) -> bool {
    let skip = !succeeded && output.contains("no wgpu adapter") && !gpu_required();
    if skip {
        eprintln!("SKIPPED {test}: no wgpu adapter: {output}");
    }
    skip
}

fn open_or_skip(test: &str, open: fn() -> Result<Gpu, EngineError>) -> Option<Arc<Gpu>> {
    match open() {
        Ok(g) => Some(Arc::new(g)),
        Err(e) if gpu_required() => {
            panic!("{test}: DIFFSIM_REQUIRE_GPU=1 but no GPU device: {e}")
        }
        Err(e) if e.to_string().contains("no wgpu adapter found") => {
            eprintln!("SKIPPED {test}: no wgpu adapter on this machine: {e}");
            None
        }
        Err(e) => panic!("{test}: a wgpu adapter exists but the device failed: {e}"),
    }
}

/// max |a − b| / max(|b|, floor · max|b|): relative, with values near zero compared against the
/// column's scale (sums that cancel have no meaningful relative error of their own).
pub fn max_rel_err(a: &[f32], b: &[f32], floor: f64) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, &x| m.max(f64::from(x).abs()));
    let floor = (floor * scale).max(1e-30);
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs() / f64::from(y).abs().max(floor))
        .fold(0.0, f64::max)
}

/// The worst column's `max_rel_err` and its name.
pub fn worst_column(gpu: &Columns<f32>, cpu: &Columns<f32>, floor: f64) -> (f64, String) {
    gpu.columns()
        .zip(cpu.columns())
        .map(|((spec, g), (_, c))| (max_rel_err(g, c, floor), spec.name.clone()))
        .fold((0.0, String::new()), |a, b| if b.0 > a.0 { b } else { a })
}

/// ‖a − b‖ / ‖b‖.
pub fn norm_rel_err(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum();
    let den: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (num / den.max(1e-60)).sqrt()
}

/// max |a − b| / max |b|.
pub fn scaled_err(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, &x| m.max(f64::from(x).abs())).max(1e-30);
    a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).abs()).fold(0.0, f64::max) / scale
}

/// One system's outputs on both sides, each `[gpu, cpu]`.
pub struct SystemRun {
    /// The state after the forward.
    pub forward: [Columns<f32>; 2],
    /// State and control adjoints after the adjoint (seeded with the same `adj`, `adj_c`).
    pub adjoint: [Columns<f32>; 2],
    pub adjoint_control: [Columns<f32>; 2],
}

/// Runs system `i` of `g` (the GPU mirror of `sys`) and `sys` itself from `state`: the forward,
/// then the adjoint seeded with `adj`/`adj_c` at `state` as the pre-state. The GPU's control must
/// already hold `control`.
#[allow(clippy::too_many_arguments)]
pub fn run_system(
    g: &mut GpuSim,
    i: usize,
    sys: &dyn System<f32>,
    cx: &StepCx,
    model: &ModelView,
    control: &Columns<f32>,
    state: &Columns<f32>,
    adj: &Columns<f32>,
    adj_c: &Columns<f32>,
) -> Result<SystemRun, EngineError> {
    let mut cpu = state.clone();
    sys.forward(cx, model, &control.view_all(), &mut cpu.view_all_mut());
    g.write_state(state)?;
    g.forward_system(i)?;
    let got = g.read_state()?;
    let (mut a, mut ac) = (adj.clone(), adj_c.clone());
    sys.adjoint(cx, model, &control.view_all(), &state.view_all(), &mut a.view_all_mut(), &mut ac.view_all_mut());
    g.write_adjoints(adj, adj_c)?;
    g.adjoint_system(i, state)?;
    let (ga, gac) = g.read_adjoints()?;
    Ok(SystemRun { forward: [got, cpu], adjoint: [ga, a], adjoint_control: [gac, ac] })
}

/// `like` with every value uniform in [lo, hi).
pub fn random_columns(rng: &mut crate::Rng, like: &Columns<f32>, lo: f64, hi: f64) -> Columns<f32> {
    let mut c = like.clone();
    for (_, col) in c.columns_mut() {
        col.iter_mut().for_each(|x| *x = rng.uniform(lo, hi) as f32);
    }
    c
}

/// (max relative error, floor): values below floor × the column's max |value| are compared
/// against that (see [`max_rel_err`]).
pub type Tol = (f64, f64);

/// The inputs of one case of [`for_each_system`]: every system runs forward from `state` under
/// `control`, and its adjoint (at `state`) is seeded with `adj` and `adj_control`.
pub struct Case {
    /// The seed the case's [`crate::Rng`] started from (printed in failures).
    pub seed: u64,
    pub state: Columns<f32>,
    pub control: Columns<f32>,
    pub adj: Columns<f32>,
    pub adj_control: Columns<f32>,
}

/// One system of one case, as [`for_each_system`]'s hook sees it (before the comparisons).
pub struct Visit<'a> {
    pub case: &'a Case,
    /// Its index in the schedule.
    pub index: usize,
    pub name: &'a str,
    pub run: &'a SystemRun,
}

/// Proptest's runner for `n` random cases of a GPU parity test ([`crate::cases`]: times
/// `$DIFFSIM_SOAK`), without failure persistence: the failing seed is in the assertion's
/// message, and `Cases::Seeds` replays it.
pub fn case_runner(n: u32) -> proptest::test_runner::TestRunner {
    let config = proptest::test_runner::Config { failure_persistence: None, ..crate::cases(n) };
    proptest::test_runner::TestRunner::new(config)
}

/// Which cases [`for_each_system`] draws.
#[derive(Clone, Debug)]
pub enum Cases {
    /// `n` seeds drawn by proptest (no persistence: lavapipe is slow, so few cases per run and
    /// new ones each run).
    Random(u32),
    /// These seeds, in order (tolerances measured on exactly them).
    Seeds(std::ops::Range<u64>),
}

/// The worst error [`for_each_system`] saw of one system, with the column it was in.
#[derive(Clone, Debug, Default)]
pub struct SystemWorst {
    pub name: String,
    pub forward: (f64, String),
    pub adjoint: (f64, String),
}

/// Every system of `sim`'s schedule whose name passes `only`, on the GPU (`GpuSim` in `scatter`
/// mode, which must mirror the schedule in order) and on the CPU in f32, from the same random
/// inputs: per case, `state(rng)` is the pre-state, then the control and both adjoint seeds are
/// uniform in [−1, 1] from the same `rng`. Each system runs forward and adjoint on both sides
/// ([`run_system`]); `hook` sees the outputs first (branch counters, exact checks of flags), then
/// every column of the forward state and of the state and control adjoints is asserted within
/// `tol(name)` = [forward, adjoint] ([`worst_column`]). Prints and returns each system's worst
/// error and its column.
#[allow(clippy::too_many_arguments)]
pub fn for_each_system(
    test: &str,
    gpu: Arc<Gpu>,
    sim: &Sim<f32>,
    scatter: Scatter,
    cases: Cases,
    only: &dyn Fn(&str) -> bool,
    state: impl Fn(&mut crate::Rng) -> Columns<f32>,
    tol: impl Fn(&str) -> [Tol; 2],
    hook: impl FnMut(&Visit),
) -> Vec<SystemWorst> {
    let g = GpuSim::new(gpu, sim, GpuOptions { scatter, readback: Vec::new() }).unwrap();
    let systems: Vec<&dyn System<f32>> = sim.schedule.systems().map(|(_, s)| s).collect();
    let names: Vec<&str> = systems.iter().map(|s| s.name()).collect();
    assert_eq!(g.system_names(), names, "{test}: the GPU mirrors the schedule in order");
    let cx = StepCx { dt: sim.schedule.substep_dt(), step: 0, substep: 0 };
    let model = sim.model.view_all();
    let worst: Vec<SystemWorst> =
        names.iter().map(|n| SystemWorst { name: n.to_string(), ..SystemWorst::default() }).collect();
    let (g, worst, hook) = (RefCell::new(g), RefCell::new(worst), RefCell::new(hook));
    let run_case = |seed: u64| {
        let mut rng = crate::Rng::new(seed);
        let state = state(&mut rng);
        let control = random_columns(&mut rng, &sim.control, -1.0, 1.0);
        let adj = random_columns(&mut rng, &sim.state, -1.0, 1.0);
        let adj_control = random_columns(&mut rng, &sim.control, -1.0, 1.0);
        let case = Case { seed, state, control, adj, adj_control };
        let mut g = g.borrow_mut();
        g.write_control(&case.control).unwrap();
        for (index, sys) in systems.iter().enumerate() {
            let name = sys.name();
            if !only(name) {
                continue;
            }
            let run =
                run_system(&mut g, index, *sys, &cx, &model, &case.control, &case.state, &case.adj, &case.adj_control)
                    .unwrap();
            (hook.borrow_mut())(&Visit { case: &case, index, name, run: &run });
            let [(ft, ff), (at, af)] = tol(name);
            let ([gs, cs], [ga, ca], [gc, cc]) = (&run.forward, &run.adjoint, &run.adjoint_control);
            let w = &mut worst.borrow_mut()[index];
            for (what, got, want, t, floor) in
                [("forward", gs, cs, ft, ff), ("adjoint state", ga, ca, at, af), ("adjoint control", gc, cc, at, af)]
            {
                let (e, col) = worst_column(got, want, floor);
                assert!(
                    e <= t,
                    "{test}: {name} {what} (seed {seed}): column `{col}`: max relative error {e:e} > {t:e}"
                );
                let worst = if what == "forward" { &mut w.forward } else { &mut w.adjoint };
                if e > worst.0 {
                    *worst = (e, col);
                }
            }
        }
    };
    match cases {
        Cases::Random(n) => {
            let mut runner = case_runner(n);
            runner
                .run(&proptest::num::u64::ANY, |seed| {
                    run_case(seed);
                    Ok(())
                })
                .unwrap();
        }
        Cases::Seeds(seeds) => seeds.for_each(run_case),
    }
    let worst = worst.into_inner();
    for w in worst.iter().filter(|w| only(&w.name)) {
        eprintln!(
            "{test}: {}: max relative error forward {:e} (`{}`), adjoint {:e} (`{}`)",
            w.name, w.forward.0, w.forward.1, w.adjoint.0, w.adjoint.1
        );
    }
    worst
}

/// What [`within_f32_rounding`] measured.
#[derive(Clone, Debug, Default)]
pub struct F32Rounding {
    /// GPU against the CPU's f32 path over the first `first` steps (obs and rewards).
    pub first: f64,
    /// The running maxima at the last step, GPU / CPU f32, each against the f64 rollout:
    /// [obs, rewards].
    pub gpu_f64: [f64; 2],
    pub cpu_f64: [f64; 2],
    /// The largest ratio GPU / (CPU f32 + 1e-4) of the running maxima over the steps.
    pub ratio: f64,
}

/// A long forward rollout of a task beyond what f32 can follow (contacts that amplify any
/// perturbation), each side against the f64 CPU rollout: `g`, `cpu` and `exact` step through
/// `actions`; at every step t the GPU's worst distance from f64 over steps ≤ t (obs and rewards,
/// [`max_rel_err`] floored at 1e-3) must be at most 10 × the CPU f32 path's + 1e-4, and over
/// the first `first` steps the GPU must match the CPU within `first_tol`. A kernel error (a
/// wrong term, O(1e-2) or more in one step) shows in the first steps, where the CPU's f32 path
/// is still within ~1e-4 of f64.
pub fn within_f32_rounding(
    test: &str,
    g: &mut GpuSim,
    cpu: &mut Sim<f32>,
    exact: &mut Sim<f64>,
    actions: &[Vec<f32>],
    first: usize,
    first_tol: f64,
) -> F32Rounding {
    let st = steps(g, cpu, Some(exact), actions).unwrap();
    let mut m = F32Rounding::default();
    for t in 0..actions.len() {
        let sides = [(&st.obs[t], &st.exact_obs[t]), (&st.reward[t], &st.exact_reward[t])];
        for (k, ([gv, cv], x)) in sides.into_iter().enumerate() {
            m.gpu_f64[k] = m.gpu_f64[k].max(max_rel_err(gv, x, 1e-3));
            m.cpu_f64[k] = m.cpu_f64[k].max(max_rel_err(cv, x, 1e-3));
            assert!(
                m.gpu_f64[k] <= 10.0 * m.cpu_f64[k] + 1e-4,
                "{test}: step {t}: the GPU's {} are {:e} from f64, the CPU f32 path's {:e}",
                ["obs", "rewards"][k],
                m.gpu_f64[k],
                m.cpu_f64[k]
            );
            m.ratio = m.ratio.max(m.gpu_f64[k] / (m.cpu_f64[k] + 1e-4));
            if t < first {
                m.first = m.first.max(max_rel_err(gv, cv, 1e-3));
            }
        }
    }
    assert!(m.first <= first_tol, "{test}: the first {first} steps, GPU vs CPU: {:e} > {first_tol:e}", m.first);
    eprintln!(
        "{test}: ({} steps, {} envs) first {first} steps GPU vs CPU {:e}; from f64, GPU / CPU f32: obs {:e} / {:e}, \
         rewards {:e} / {:e}; largest ratio of running maxima (with 1e-4) {:.2}",
        actions.len(),
        cpu.num_envs(),
        m.first,
        m.gpu_f64[0],
        m.cpu_f64[0],
        m.gpu_f64[1],
        m.cpu_f64[1],
        m.ratio
    );
    m
}

/// The per-step records of [`steps`]: `obs` and `reward` after each step.
pub struct Steps {
    /// `[gpu, cpu]` of each step.
    pub obs: Vec<[Vec<f32>; 2]>,
    pub reward: Vec<[Vec<f32>; 2]>,
    /// The f64 CPU rollout's, rounded to f32 (empty without one).
    pub exact_obs: Vec<Vec<f32>>,
    pub exact_reward: Vec<Vec<f32>>,
}

/// Records and steps `cpu` (and `exact`) and `g` through `actions` (control column `act`, all
/// envs), keeping `obs` and `reward` of every step. `g` must read back `obs` and `reward`.
pub fn steps(
    g: &mut GpuSim,
    cpu: &mut Sim<f32>,
    mut exact: Option<&mut Sim<f64>>,
    actions: &[Vec<f32>],
) -> Result<Steps, EngineError> {
    cpu.record();
    g.record();
    if let Some(e) = exact.as_deref_mut() {
        e.record();
    }
    let h = actions.len();
    let mut out = Steps {
        obs: Vec::with_capacity(h),
        reward: Vec::with_capacity(h),
        exact_obs: Vec::new(),
        exact_reward: Vec::new(),
    };
    let narrow = |c: &[f64]| c.iter().map(|&x| x as f32).collect::<Vec<_>>();
    for a in actions {
        cpu.set_control("act", a)?;
        cpu.step()?;
        g.set_control("act", a)?;
        g.step()?;
        if let Some(e) = exact.as_deref_mut() {
            e.set_control("act", &a.iter().map(|&x| f64::from(x)).collect::<Vec<_>>())?;
            e.step()?;
            out.exact_obs.push(narrow(e.state.get("obs")?));
            out.exact_reward.push(narrow(e.state.get("reward")?));
        }
        out.obs.push([g.host("obs")?.to_vec(), cpu.state.get("obs")?.to_vec()]);
        out.reward.push([g.host("reward")?.to_vec(), cpu.state.get("reward")?.to_vec()]);
    }
    Ok(out)
}

/// One rollout of the same actions on the GPU and on the CPU in f32 (and, when given, in f64),
/// recording the `obs` and `reward` of every step ([`steps`]), then a backward of the parity
/// tests' loss L = −mean reward over the rollout + `obs_seed` · (last observation).
pub struct Rollout {
    /// `obs` after each step, `[gpu, cpu]`.
    pub obs: Vec<[Vec<f32>; 2]>,
    /// `reward` after each step, `[gpu, cpu]`.
    pub reward: Vec<[Vec<f32>; 2]>,
    /// ∂L/∂(controls) and ∂L/∂(initial state), `[gpu, cpu]`.
    pub grads: [Gradients<f32>; 2],
    /// The same gradients from the f64 CPU rollout, rounded to f32: the reference that says how
    /// much of a GPU/CPU difference is the CPU's own f32 rounding.
    pub exact: Option<Gradients<f32>>,
}

/// The seed of L (see [`Rollout`]) into ∂L/∂(state after step `t`) of a CPU rollout of `h` steps.
fn seed_loss<R: Real>(t: usize, h: usize, w: f64, obs_seed: &[f32], adj: &mut Columns<R>) {
    let w = R::from_f64(w);
    adj.get_mut("reward").expect("a `reward` column").iter_mut().for_each(|x| *x += w);
    if t + 1 == h {
        let obs = adj.get_mut("obs").expect("an `obs` column");
        obs.iter_mut().zip(obs_seed).for_each(|(x, &s)| *x += R::from_f64(f64::from(s)));
    }
}

/// [`steps`] through `actions`, then the backward of L on each side.
pub fn rollout(
    g: &mut GpuSim,
    cpu: &mut Sim<f32>,
    mut exact: Option<&mut Sim<f64>>,
    actions: &[Vec<f32>],
    obs_seed: &[f32],
) -> Result<Rollout, EngineError> {
    let h = actions.len();
    let Steps { obs, reward, .. } = steps(g, cpu, exact.as_deref_mut(), actions)?;
    let w = -1.0 / (h * cpu.num_envs()) as f64;
    let cpu_grads = cpu.backward(|t, adj| seed_loss(t, h, w, obs_seed, adj))?;
    let exact = match exact {
        Some(e) => {
            let g64 = e.backward(|t, adj| seed_loss(t, h, w, obs_seed, adj))?;
            let narrow = |c: &Columns<f64>| c.map(|x| x as f32);
            Some(Gradients {
                initial_state: narrow(&g64.initial_state),
                controls: g64.controls.iter().map(narrow).collect(),
            })
        }
        None => None,
    };
    let gpu_grads = gpu_backward(g, h, obs_seed)?;
    Ok(Rollout { obs, reward, grads: [gpu_grads, cpu_grads], exact })
}

/// The backward of L (see [`Rollout`]) on a GPU rollout of `h` recorded steps.
pub fn gpu_backward(g: &mut GpuSim, h: usize, obs_seed: &[f32]) -> Result<Gradients<f32>, EngineError> {
    let n = g.num_envs();
    let w = -1.0 / (h * n) as f32;
    g.backward(|t, seeds: &mut Seeds| {
        seeds.add("reward", vec![w; n]);
        if t + 1 == h {
            seeds.add("obs", obs_seed.to_vec());
        }
    })
}

/// The same actions once more on `g` from `init`, and the backward of L: how far the GPU's
/// reduction order moves its own result (zero in `Scatter::Deterministic`).
pub fn gpu_rerun(
    g: &mut GpuSim,
    init: &Columns<f32>,
    actions: &[Vec<f32>],
    obs_seed: &[f32],
) -> Result<Gradients<f32>, EngineError> {
    g.write_state(init)?;
    g.record();
    for a in actions {
        g.set_control("act", a)?;
        g.step()?;
    }
    gpu_backward(g, actions.len(), obs_seed)
}

/// `h` steps of uniform random actions in [−1, 1], `width` values each (all envs).
pub fn random_actions(rng: &mut crate::Rng, h: usize, width: usize) -> Vec<Vec<f32>> {
    (0..h).map(|_| (0..width).map(|_| rng.uniform(-1.0, 1.0) as f32).collect()).collect()
}

/// The worst `max_rel_err` over the steps of a per-step `[gpu, cpu]` record.
pub fn worst_step(steps: &[[Vec<f32>; 2]], floor: f64) -> f64 {
    steps.iter().map(|[g, c]| max_rel_err(g, c, floor)).fold(0.0, f64::max)
}

/// The worst `max_rel_err` of ∂L/∂act over the steps, `a` against `b`.
pub fn worst_act(a: &Gradients<f32>, b: &Gradients<f32>, floor: f64) -> f64 {
    a.controls
        .iter()
        .zip(&b.controls)
        .map(|(x, y)| {
            max_rel_err(x.get("act").expect("an `act` control"), y.get("act").expect("an `act` control"), floor)
        })
        .fold(0.0, f64::max)
}

/// The worst normwise relative error ([`norm_rel_err`]) of ∂L/∂act over the steps, `a`
/// against `b`.
pub fn worst_act_norm(a: &Gradients<f32>, b: &Gradients<f32>) -> f64 {
    a.controls
        .iter()
        .zip(&b.controls)
        .map(|(x, y)| norm_rel_err(x.get("act").expect("an `act` control"), y.get("act").expect("an `act` control")))
        .fold(0.0, f64::max)
}

/// What [`normwise_check`] measured: obs and rewards (each step's worst, of the column's scale),
/// ∂L/∂act (each step's, normwise) against the CPU and, `[gpu, cpu]`, against the f64 rollout,
/// ∂L/∂(initial state) (each column's, normwise).
#[derive(Clone, Debug)]
pub struct Normwise {
    pub obs: f64,
    pub reward: f64,
    pub act: f64,
    pub act_f64: [f64; 2],
    pub init: f64,
}

/// Asserts a rollout (with its f64 reference) of the smooth tasks at these tolerances: obs and
/// reward of every step within `obs_tol` × the column's scale ([`scaled_err`]), ∂L/∂act of
/// every step and each column of ∂L/∂(initial state) within `grad_tol` normwise
/// ([`norm_rel_err`]; a column that is zero on the CPU, by scale), the GPU's ∂L/∂act of every
/// step no farther from the f64 rollout's than 2 × the CPU f32 path's + 1e-5, and a non-zero
/// gradient.
pub fn normwise_check(run: &Rollout, obs_tol: f64, grad_tol: f64) -> Normwise {
    let mut m = Normwise { obs: 0.0, reward: 0.0, act: 0.0, act_f64: [0.0; 2], init: 0.0 };
    for (t, ([go, co], [gr, cr])) in run.obs.iter().zip(&run.reward).enumerate() {
        let (eo, er) = (scaled_err(go, co), scaled_err(gr, cr));
        assert!(eo <= obs_tol && er <= obs_tol, "step {t}: obs err {eo:e}, reward err {er:e} (of the scale)");
        (m.obs, m.reward) = (m.obs.max(eo), m.reward.max(er));
    }
    let [gpu, cpu] = &run.grads;
    let exact = run.exact.as_ref().expect("a rollout with its f64 reference");
    for (t, ((g, c), x)) in gpu.controls.iter().zip(&cpu.controls).zip(&exact.controls).enumerate() {
        let (ga, ca, xa) = (g.get("act").unwrap(), c.get("act").unwrap(), x.get("act").unwrap());
        let e = norm_rel_err(ga, ca);
        assert!(e <= grad_tol, "∂L/∂act of step {t}: normwise relative error {e:e}");
        let (eg, ec) = (norm_rel_err(ga, xa), norm_rel_err(ca, xa));
        assert!(eg <= 2.0 * ec + 1e-5, "∂L/∂act of step {t}: GPU {eg:e} from f64, CPU f32 {ec:e}");
        m.act = m.act.max(e);
        m.act_f64 = [m.act_f64[0].max(eg), m.act_f64[1].max(ec)];
    }
    for ((spec, ga), (_, ca)) in gpu.initial_state.columns().zip(cpu.initial_state.columns()) {
        let e = if ca.iter().any(|&x| x != 0.0) { norm_rel_err(ga, ca) } else { scaled_err(ga, ca) };
        assert!(e <= grad_tol, "∂L/∂(initial state) `{}`: normwise relative error {e:e}", spec.name);
        m.init = m.init.max(e);
    }
    assert!(cpu.controls[0].get("act").unwrap().iter().any(|x| x.abs() > 1e-6), "a zero gradient");
    m
}

/// What [`task_rollout`] measured: max relative errors, floored at 1e-3 of each column's scale,
/// unless named otherwise.
#[derive(Clone, Debug)]
pub struct RolloutErrors {
    /// GPU against the CPU's f32 path: obs and rewards of every step, ∂L/∂act of every step,
    /// ∂L/∂(initial state) (its worst column).
    pub obs: f64,
    pub reward: f64,
    pub act: f64,
    pub init: f64,
    pub init_column: String,
    /// max |r_gpu − r_cpu| over the steps (for rewards that cancel to near zero).
    pub reward_abs: f64,
    /// ∂L/∂act, the worst step's normwise relative error ([`worst_act_norm`]).
    pub act_norm: f64,
    /// ∂L/∂act and ∂L/∂(initial state) against the f64 CPU rollout: the CPU's f32 path, the GPU;
    /// and ∂L/∂act normwise.
    pub act_f64: [f64; 2],
    pub init_f64: [f64; 2],
    pub act_norm_f64: [f64; 2],
}

/// The rollout [`task_rollout`] runs: `steps` steps of random actions in [−1, 1]
/// (`action_width` values per step, all envs; from `seed`, which then draws the loss's
/// observation seed) on `GpuSim` in `scatter` mode.
#[derive(Clone, Copy, Debug)]
pub struct RolloutSpec {
    pub steps: usize,
    pub action_width: usize,
    pub seed: u64,
    pub scatter: Scatter,
}

/// A whole task on the GPU against the CPU: the rollout of `spec` through [`rollout`] from `cpu`'s
/// state, with `cpu64` (the same task in f64) as the reference. Asserts that every system has GPU kernels, that the gradient is
/// not trivially zero and, in `Scatter::Deterministic`, that a rerun reproduces the GPU's
/// gradients bit for bit; prints the errors under `test` and returns them for the test's own
/// tolerances.
pub fn task_rollout(
    test: &str,
    gpu: Arc<Gpu>,
    mut cpu: Sim<f32>,
    mut cpu64: Sim<f64>,
    spec: RolloutSpec,
) -> RolloutErrors {
    assert_eq!(GpuSim::first_without_kernels(&cpu), None);
    let readback = vec!["obs".to_string(), "reward".to_string()];
    let mut g = GpuSim::new(gpu, &cpu, GpuOptions { scatter: spec.scatter, readback }).unwrap();
    let start = cpu.state.clone();
    let mut rng = crate::Rng::new(spec.seed);
    let actions = random_actions(&mut rng, spec.steps, spec.action_width);
    let obs_seed: Vec<f32> = (0..cpu.state.get("obs").unwrap().len()).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
    let run = rollout(&mut g, &mut cpu, Some(&mut cpu64), &actions, &obs_seed).unwrap();
    let [gpu_grads, cpu_grads] = &run.grads;
    let exact = run.exact.as_ref().unwrap();
    let (init, init_column) = worst_column(&gpu_grads.initial_state, &cpu_grads.initial_state, 1e-3);
    let abs = |[g, c]: &[Vec<f32>; 2]| g.iter().zip(c).map(|(a, b)| f64::from((a - b).abs())).fold(0.0, f64::max);
    let e = RolloutErrors {
        obs: worst_step(&run.obs, 1e-3),
        reward: worst_step(&run.reward, 1e-3),
        act: worst_act(gpu_grads, cpu_grads, 1e-3),
        init,
        init_column,
        reward_abs: run.reward.iter().map(abs).fold(0.0, f64::max),
        act_norm: worst_act_norm(gpu_grads, cpu_grads),
        act_f64: [worst_act(cpu_grads, exact, 1e-3), worst_act(gpu_grads, exact, 1e-3)],
        init_f64: [
            worst_column(&cpu_grads.initial_state, &exact.initial_state, 1e-3).0,
            worst_column(&gpu_grads.initial_state, &exact.initial_state, 1e-3).0,
        ],
        act_norm_f64: [worst_act_norm(cpu_grads, exact), worst_act_norm(gpu_grads, exact)],
    };
    eprintln!("{test}: ({} steps, {} envs, {:?}) {e:?}", spec.steps, cpu.num_envs(), spec.scatter);
    if spec.scatter == Scatter::Deterministic {
        let again = gpu_rerun(&mut g, &start, &actions, &obs_seed).unwrap();
        assert_eq!(&again.controls, &gpu_grads.controls, "{test}: a deterministic rerun differs");
        assert_eq!(&again.initial_state, &gpu_grads.initial_state, "{test}: a deterministic rerun differs");
    }
    assert!(cpu_grads.controls[0].get("act").unwrap().iter().any(|x| x.abs() > 1e-6), "{test}: a zero gradient");
    e
}

/// [`task_rollout`] in `Scatter::Deterministic`: `h` steps, `width` actions per step, `seed`.
pub fn deterministic_rollout(
    test: &str,
    gpu: Arc<Gpu>,
    cpu: Sim<f32>,
    cpu64: Sim<f64>,
    h: usize,
    width: usize,
    seed: u64,
) -> RolloutErrors {
    let spec = RolloutSpec { steps: h, action_width: width, seed, scatter: Scatter::Deterministic };
    task_rollout(test, gpu, cpu, cpu64, spec)
}
