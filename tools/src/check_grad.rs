//! `diffsim check-grad`: per-system gradient errors for a task's schedule, then the whole
//! H-step rollout through the tape.
//!
//! Points: a random-action f64 rollout of the task gives one (state, control) per env step; each
//! case replays one of those steps up to a random substep, takes the input state of every system
//! there, and perturbs it by 1e-3·U(−1, 1) per scalar. Each system runs the dot-product test
//! (adjoint vs duals) and central finite differences (h = 1e-6) at that point (`diffsim_tests::SystemCheck::run_pair`).
//! A system passes when every case has dual error < 1e-10 and FD error < 1e-4; FD failures with
//! exact duals are reported as `fd: kink?` (a contact branch switch inside ±h, not a wrong
//! adjoint). The last two rows check an H-step rollout through the tape (`RolloutCheck`) along the
//! actions, then along the actions and the initial state. The exit code is non-zero when any dual
//! test fails.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use diffsim_engine::{Columns, Dual, Sim, SimFactory, Stage, StepCx, System};
use diffsim_tests::{GradReport, Rng, RolloutCheck, SystemCheck};

use crate::parse;
use crate::task::{self, Task, TaskOptions};

const DUAL_TOL: f64 = 1e-10;
const FD_TOL: f64 = 1e-4;
const FD_STEP: f64 = 1e-6;
const PERTURBATION: f64 = 1e-3;

#[derive(Args, Debug)]
pub struct CheckGradArgs {
    /// Task whose schedule is checked.
    #[arg(long, value_parser = task::parser())]
    pub task: String,
    /// Seed of the rollout actions, perturbations and test directions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Random points per system (and rollout checks).
    #[arg(long, default_value_t = 16, value_parser = parse::positive)]
    pub cases: usize,
    /// Env steps of the random-action rollout and of the tape check.
    #[arg(long, default_value_t = 8, value_parser = parse::positive)]
    pub horizon: usize,
    /// Environments in the checked scene.
    #[arg(long, default_value_t = 2, value_parser = parse::positive)]
    pub envs: usize,
}

/// Worst errors of one table row over its cases.
struct Row {
    name: String,
    stage: String,
    dual: f64,
    fd: f64,
    cases: usize,
    fd_failures: usize,
    error: Option<String>,
}

impl Row {
    fn new(name: &str, stage: String) -> Self {
        Row { name: name.to_string(), stage, dual: 0.0, fd: 0.0, cases: 0, fd_failures: 0, error: None }
    }
    fn add(&mut self, r: &GradReport) {
        // NaN errors count as failures: `below` is false for NaN and the max keeps NaN.
        self.dual = max_nan(self.dual, r.dual_err());
        self.fd = max_nan(self.fd, r.fd_err());
        self.fd_failures += usize::from(!below(r.fd_err(), FD_TOL));
        self.cases += 1;
    }
    fn dual_ok(&self) -> bool {
        self.error.is_none() && below(self.dual, DUAL_TOL)
    }
    fn verdict(&self) -> String {
        match &self.error {
            Some(e) => format!("FAIL: {e}"),
            None if !self.dual_ok() => "FAIL (dual)".into(),
            None if self.fd_failures > 0 => format!("fd: kink? ({}/{})", self.fd_failures, self.cases),
            None => "pass".into(),
        }
    }
}

/// `err < tol`, false for NaN.
fn below(err: f64, tol: f64) -> bool {
    err < tol
}

fn max_nan(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }
}

/// (env step index, state before the step, control of the step) along a random-action rollout.
type Point = (usize, Columns<f64>, Columns<f64>);

fn rollout_points(task: &Task, horizon: usize, rng: &mut Rng) -> anyhow::Result<Vec<Point>> {
    let mut sim: Sim<f64> = task.sim()?;
    let mut points = Vec::with_capacity(horizon);
    for _ in 0..horizon {
        rng.fill(&mut sim.control);
        points.push((sim.steps_taken(), sim.state.clone(), sim.control.clone()));
        sim.step().with_context(|| format!("random-action rollout, env step {}", sim.steps_taken()))?;
    }
    Ok(points)
}

/// The substep index a system of `stage` sees when the Substep stage is at `k` (as `Schedule`).
fn substep_of(stage: Stage, k: usize, substeps: usize) -> usize {
    match stage {
        Stage::Step => 0,
        Stage::Substep => k,
        Stage::Post => substeps.saturating_sub(1),
    }
}

/// Replays env step `step` from `state` in schedule order and returns the input state of every
/// system (by position), taking Substep systems at substep `k`.
fn pre_states(
    sim: &Sim<f64>,
    systems: &[(Stage, &dyn System<f64>)],
    (step, state, control): &Point,
    k: usize,
) -> anyhow::Result<Vec<Columns<f64>>> {
    let substeps = sim.schedule.substeps;
    let mut pres: Vec<Option<Columns<f64>>> = vec![None; systems.len()];
    let mut s = state.clone();
    let segments = std::iter::once((Stage::Step, 0))
        .chain((0..substeps).map(|j| (Stage::Substep, j)))
        .chain(std::iter::once((Stage::Post, substeps.saturating_sub(1))));
    for (stage, substep) in segments {
        let cx = StepCx { dt: sim.schedule.substep_dt(), step: *step, substep };
        for (i, (_, sys)) in systems.iter().enumerate().filter(|(_, (st, _))| *st == stage) {
            if stage != Stage::Substep || substep == k {
                pres[i] = Some(s.clone());
            }
            sys.forward(&cx, &sim.model.view_all(), &control.view_all(), &mut s.view_all_mut());
        }
    }
    pres.into_iter().collect::<Option<Vec<_>>>().context("a system of the schedule was never reached in the replay")
}

fn perturb(c: &mut Columns<f64>, rng: &mut Rng) {
    for (_, col) in c.columns_mut() {
        col.iter_mut().for_each(|x| *x += PERTURBATION * rng.uniform(-1.0, 1.0));
    }
}

pub fn run(args: &CheckGradArgs) -> anyhow::Result<ExitCode> {
    let name = &args.task;
    let task = Task::build(name, TaskOptions { num_envs: args.envs, threads: 1, links: None })?;
    let sim64: Sim<f64> = task.sim().with_context(|| format!("building task `{name}` in f64"))?;
    let simd: Sim<Dual> = task.sim().with_context(|| format!("building task `{name}` in dual numbers"))?;
    let systems: Vec<(Stage, &dyn System<f64>)> = sim64.schedule.systems().collect();
    let duals: Vec<&dyn System<Dual>> = simd.schedule.systems().map(|(_, s)| s).collect();
    if systems.len() != duals.len() || systems.iter().zip(&duals).any(|((_, f), d)| f.name() != d.name()) {
        bail!("task `{name}`: the f64 and dual schedules differ; cannot pair their systems by position");
    }

    let mut rng = Rng::new(args.seed);
    let points = rollout_points(&task, args.horizon, &mut rng).with_context(|| format!("task `{name}`"))?;
    let substeps = sim64.schedule.substeps;
    let mut rows: Vec<Row> = systems.iter().map(|(st, s)| Row::new(s.name(), st.to_string())).collect();
    for case in 0..args.cases {
        let point = &points[case % points.len()];
        let k = (rng.next_u64() % substeps as u64) as usize;
        let pres = pre_states(&sim64, &systems, point, k).with_context(|| format!("task `{name}`"))?;
        for (i, (((stage, f), d), mut state)) in systems.iter().zip(&duals).zip(pres).enumerate() {
            perturb(&mut state, &mut rng);
            let check = SystemCheck {
                model: &sim64.model,
                state: &state,
                control: &point.2,
                cx: StepCx { dt: sim64.schedule.substep_dt(), step: point.0, substep: substep_of(*stage, k, substeps) },
                h: FD_STEP,
            };
            match check.run_pair(*f, *d, &mut rng) {
                Ok(r) => rows[i].add(&r),
                Err(e) => rows[i].error = Some(e),
            }
        }
    }

    // The whole rollout through the tape: once along the actions only, once also along the
    // initial state (which rests exactly on the contact surface, so FD there straddles a kink).
    for (label, state_dir_scale) in [("rollout (tape): actions", 0.0), ("rollout (tape): actions + s0", 1.0)] {
        let mut row = Row::new(label, format!("H={}", args.horizon));
        let check = RolloutCheck { horizon: args.horizon, h: FD_STEP, state_dir_scale };
        for case in 0..args.cases {
            let r = check
                .run(&task, &mut Rng::new(args.seed ^ (0x5EED_0000 + case as u64)))
                .with_context(|| format!("{label} check of task `{name}`, case {case}"))?;
            row.add(&r);
        }
        rows.push(row);
    }

    println!(
        "check-grad `{name}`: {} envs, {substeps} substeps, seed {}; dual < {DUAL_TOL:e}, fd (h = {FD_STEP:e}) < {FD_TOL:e}",
        args.envs, args.seed
    );
    println!();
    println!("| system | stage | max dual rel err | max FD rel err | cases | verdict |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        println!("| {} | {} | {:.2e} | {:.2e} | {} | {} |", r.name, r.stage, r.dual, r.fd, r.cases, r.verdict());
    }
    let failed: Vec<&str> = rows.iter().filter(|r| !r.dual_ok()).map(|r| r.name.as_str()).collect();
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("check-grad: dual test failed for: {}", failed.join(", "));
        Ok(ExitCode::FAILURE)
    }
}
