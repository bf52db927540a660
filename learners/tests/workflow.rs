//! The training workflow around `DiffRl`: config merging, overrides and error messages;
//! checkpoint round trips, resume determinism (2 epochs + checkpoint + 1 epoch == 3 epochs) and
//! corrupt/mismatched checkpoints; NaN handling (an env that diverges is reported, a NaN gradient
//! skips the epoch's update without killing the run); the CSV log and the plot.

use std::path::{Path, PathBuf};

use diffsim_engine::{
    ColumnAccess, Columns, EngineError, ModelView, Real, Sim, SimFactory, Stage, StepCx, System, View, ViewMut,
};
use diffsim_learners::checkpoint::{self, Checkpoint, CheckpointError};
use diffsim_learners::log::{COLUMNS, CsvLog, NAN_COLUMNS, NanLog, plot_returns};
use diffsim_learners::{ConfigBuilder, ConfigError, DiffRl, TrainConfig};
use diffsim_tasks::{Cartpole, CartpoleConfig, Task, TaskRng, TaskSpec, VecEnv};
use ndarray::Array2;
use tch::Tensor;

/// tch's RNG is global: tests that seed it run one at a time.
static TCH_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    tch::set_num_threads(1);
    TCH_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("diffsim-workflow-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ---------------------------------------------------------------- config

#[test]
fn defaults_follow_the_paper_per_learner_and_task() {
    let sapo = TrainConfig::defaults("ant-run", "sapo").unwrap();
    assert_eq!((sapo.env.num_envs, sapo.learner.horizon, sapo.run.epochs), (64, 32, 2000));
    assert_eq!((sapo.learner.actor_lr, sapo.learner.critic_lr, sapo.learner.lr_end), (2e-3, 5e-4, 1e-5));
    assert_eq!(
        (sapo.learner.actor_hidden.clone(), sapo.learner.critic_hidden.clone()),
        (vec![128, 64, 32], vec![64, 64])
    );
    assert_eq!((sapo.learner.optimizer.as_str(), sapo.learner.weight_decay), ("adamw", 0.01));
    let shac = TrainConfig::defaults("ant-run", "shac").unwrap().diff_rl().unwrap();
    assert_eq!((shac.critic_lr, shac.target_critic, shac.weight_decay), (2e-3, Some(0.2), None));
    let apg = TrainConfig::defaults("cartpole", "apg").unwrap();
    assert_eq!(apg.env.num_envs, 16);
    assert_eq!(apg.diff_rl().unwrap().num_critics, 0);
}

/// The point-cloud tasks default to a PointNet on their particle block (sapo.md §2.2); `--set`
/// can turn it off, and a block that does not fit the observation is an error naming the keys.
#[test]
fn point_cloud_tasks_default_to_pointnet_encoders() {
    use diffsim_learners::encoder::PointCloudLayout;
    let rf = TrainConfig::defaults("rolling-flat", "sapo").unwrap().diff_rl().unwrap();
    assert_eq!(rf.point_cloud, Some(PointCloudLayout { points: 250, offset: 0 }));
    let sj = TrainConfig::defaults("soft-jumper", "shac").unwrap().diff_rl().unwrap();
    assert_eq!(sj.point_cloud, Some(PointCloudLayout { points: 195, offset: 15 }));
    assert_eq!(TrainConfig::defaults("ant-run", "sapo").unwrap().diff_rl().unwrap().point_cloud, None);
    let mut b = ConfigBuilder::new("rolling-flat", "sapo").unwrap();
    b.set("learner.pointnet_points=0").unwrap();
    assert_eq!(b.build().unwrap().diff_rl().unwrap().point_cloud, None);
    let mut b = ConfigBuilder::new("cartpole", "sapo").unwrap();
    b.set("learner.pointnet_points=2").unwrap();
    let Err(err) = DiffRl::new(5, 1, 2, b.build().unwrap().diff_rl().unwrap()) else {
        panic!("2 points fit 5 entries")
    };
    let err = err.to_string();
    assert!(err.contains("pointnet_points") && err.contains("0..6") && err.contains("has 5"), "{err}");
}

#[test]
fn file_then_set_overrides_merge_in_order() {
    let dir = tmp_dir("merge");
    let file = dir.join("c.toml");
    std::fs::write(&file, "[run]\nepochs = 7\n[learner]\nactor_lr = 1e-3\ngamma = 1\nactor_hidden = [8, 4]\n").unwrap();
    let mut b = ConfigBuilder::new("cartpole", "sapo").unwrap();
    b.merge_file(&file).unwrap();
    b.set("learner.actor_lr=3e-4").unwrap().set("env.num_envs=4").unwrap().set("learner.betas=[0.5, 0.9]").unwrap();
    let c = b.build().unwrap();
    assert_eq!((c.run.epochs, c.env.num_envs), (7, 4));
    assert_eq!((c.learner.actor_lr, c.learner.gamma), (3e-4, 1.0), "--set wins over the file; 1 reads as 1.0");
    assert_eq!((c.learner.actor_hidden.clone(), c.learner.betas), (vec![8, 4], [0.5, 0.9]));
    // The effective config round-trips through its TOML.
    let back = TrainConfig::from_toml_str("saved", &c.to_toml()).unwrap();
    assert_eq!(back, c);
}

fn err_of(f: impl FnOnce(&mut ConfigBuilder) -> Result<(), ConfigError>) -> String {
    let mut b = ConfigBuilder::new("cartpole", "shac").unwrap();
    let e = f(&mut b).and_then(|_| b.build().map(|_| ())).expect_err("accepted a bad config");
    e.to_string()
}

#[test]
fn config_errors_name_the_source_the_key_and_the_expectation() {
    let dir = tmp_dir("errors");
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[learner]\nactor_lrr = 1e-3\n").unwrap();
    let m = err_of(|b| b.merge_file(&file).map(|_| ()));
    assert!(m.contains("bad.toml") && m.contains("learner.actor_lrr") && m.contains("learner.actor_lr,"), "{m}");

    std::fs::write(&file, "[learner]\nhorizon = \"long\"\n").unwrap();
    let m = err_of(|b| b.merge_file(&file).map(|_| ()));
    assert!(m.contains("bad.toml") && m.contains("learner.horizon") && m.contains("an integer"), "{m}");

    std::fs::write(&file, "[learner\n").unwrap();
    let m = err_of(|b| b.merge_file(&file).map(|_| ()));
    assert!(m.contains("bad.toml") && m.contains("not valid TOML"), "{m}");

    let m = err_of(|b| b.set("learner.lambda=1.5").map(|_| ()));
    assert!(m.contains("--set learner.lambda=1.5") && m.contains("in [0, 1)") && m.contains("1.5"), "{m}");
    let m = err_of(|b| b.set("env.num_envs=-3").map(|_| ()));
    assert!(m.contains("env.num_envs") && m.contains("≥ 0"), "{m}");
    let m = err_of(|b| b.set("run.epochs=0").map(|_| ()));
    assert!(m.contains("--set run.epochs=0") && m.contains("≥ 1"), "{m}");
    let m = err_of(|b| b.set("learner.actor_hidden=[64, \"x\"]").map(|_| ()));
    assert!(m.contains("learner.actor_hidden[1]") && m.contains("an integer"), "{m}");
    let m = err_of(|b| b.set("learner.optimizer=sgd").map(|_| ()));
    assert!(m.contains("learner.optimizer") && m.contains("\"adam\" or \"adamw\""), "{m}");
    let m = err_of(|b| b.set("nope.key=1").map(|_| ()));
    assert!(m.contains("unknown key `nope`"), "{m}");
    let m = err_of(|b| b.set("run.task=ant-run").map(|_| ()));
    assert!(m.contains("--task"), "{m}");
    let m = err_of(|b| b.set("noequals").map(|_| ()));
    assert!(m.contains("key=value"), "{m}");
    assert!(ConfigBuilder::new("cartpole", "ppo").unwrap_err().to_string().contains("ppo"));
}

// ---------------------------------------------------------------- checkpoints

fn cfg(learner: &str) -> TrainConfig {
    let mut b = ConfigBuilder::new("cartpole", learner).unwrap();
    for s in [
        "env.num_envs=3",
        "learner.horizon=6",
        "learner.actor_hidden=[8, 8]",
        "learner.critic_hidden=[8]",
        "run.epochs=3",
        "learner.critic_iterations=2",
        "run.seed=5",
    ] {
        b.set(s).unwrap();
    }
    b.build().unwrap()
}

fn env(n: usize) -> VecEnv<Cartpole> {
    // Short episodes so the resumed epoch crosses autoresets and the episode bookkeeping matters.
    VecEnv::new(Cartpole::new(CartpoleConfig { num_envs: n, episode_length: 5, ..Default::default() })).unwrap()
}

fn learner(c: &TrainConfig) -> DiffRl {
    DiffRl::new(5, 1, c.env.num_envs, c.diff_rl().unwrap()).unwrap()
}

fn params(l: &DiffRl) -> Vec<Vec<f32>> {
    let mut vars: Vec<(String, Tensor)> = l.actor_vs.variables().into_iter().chain(l.critic_vs.variables()).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.iter().map(|(_, t)| Vec::<f32>::try_from(&t.flatten(0, -1)).unwrap()).collect()
}

fn resume_is_exact(name: &str) {
    let _g = lock();
    let dir = tmp_dir(&format!("resume-{name}"));
    let c = cfg(name);
    // Straight: 3 epochs.
    let mut e1 = env(3);
    let mut l1 = learner(&c);
    let mut o1 = e1.reset(c.run.seed).unwrap();
    let mut straight = Vec::new();
    for _ in 0..3 {
        straight.push(l1.train_epoch(&mut e1, &mut o1).unwrap().actor_loss);
    }
    // 2 epochs, checkpoint, then a fresh learner and env resume 1 more.
    let mut e2 = env(3);
    let mut l2 = learner(&c);
    let mut o2 = e2.reset(c.run.seed).unwrap();
    for _ in 0..2 {
        l2.train_epoch(&mut e2, &mut o2).unwrap();
    }
    let path = dir.join("checkpoint.safetensors");
    checkpoint::save(&path, &l2, &e2, &c).unwrap();
    drop((l2, e2));
    let ck = Checkpoint::read(&path).unwrap();
    assert_eq!((ck.epoch, ck.env_steps, ck.config.clone()), (2, 2 * 6 * 3, c.clone()));
    let mut e3 = env(3);
    let mut l3 = learner(&c);
    // Different noise before restoring: nothing may leak from construction.
    let _ = e3.reset(999).unwrap();
    ck.restore_learner(&mut l3).unwrap();
    let mut o3 = ck.restore_env(&mut e3).unwrap();
    assert_eq!(o3, o1_after(&c, 2), "restored observations");
    let last = l3.train_epoch(&mut e3, &mut o3).unwrap().actor_loss;
    assert_eq!(last, straight[2], "{name}: the resumed epoch's loss");
    assert_eq!(params(&l3), params(&l1), "{name}: parameters after 2 + 1 vs 3 epochs");
    assert_eq!(o3, o1, "{name}: observations after the resumed epoch");
    assert_eq!(l3.obs_rms, l1.obs_rms);
}

/// Observations after `epochs` epochs of a straight run of `c`.
fn o1_after(c: &TrainConfig, epochs: usize) -> Array2<f32> {
    let mut e = env(3);
    let mut l = learner(c);
    let mut o = e.reset(c.run.seed).unwrap();
    for _ in 0..epochs {
        l.train_epoch(&mut e, &mut o).unwrap();
    }
    o
}

#[test]
fn sapo_resume_from_checkpoint_equals_an_uninterrupted_run() {
    resume_is_exact("sapo");
}

#[test]
fn shac_resume_from_checkpoint_equals_an_uninterrupted_run() {
    resume_is_exact("shac");
}

#[test]
fn corrupt_and_mismatched_checkpoints_are_named() {
    let _g = lock();
    let dir = tmp_dir("corrupt");
    let c = cfg("sapo");
    let mut e = env(3);
    let l = learner(&c);
    e.reset(1).unwrap();
    let path = dir.join("checkpoint.safetensors");
    checkpoint::save(&path, &l, &e, &c).unwrap();
    assert!(
        !std::fs::read_dir(&dir).unwrap().any(|f| f.unwrap().file_name().to_string_lossy().contains("tmp")),
        "temp file left"
    );
    let bytes = std::fs::read(&path).unwrap();

    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let m = Checkpoint::read(&truncated).unwrap_err().to_string();
    assert!(m.contains("truncated.safetensors") && m.contains("truncated or corrupt"), "{m}");

    let garbage = dir.join("garbage.safetensors");
    std::fs::write(&garbage, b"not a checkpoint at all").unwrap();
    assert!(matches!(Checkpoint::read(&garbage), Err(CheckpointError::Corrupt { .. })));

    let missing = Checkpoint::read(&dir.join("absent.safetensors")).unwrap_err().to_string();
    assert!(missing.contains("absent.safetensors"), "{missing}");

    let ck = Checkpoint::read(&path).unwrap();
    let m = ck.check("ant-run", "sapo", 5, 1).unwrap_err().to_string();
    assert!(
        m.contains("checkpoint.safetensors") && m.contains("task") && m.contains("ant-run") && m.contains("cartpole"),
        "{m}"
    );
    let m = ck.check("cartpole", "shac", 5, 1).unwrap_err().to_string();
    assert!(m.contains("learner") && m.contains("shac") && m.contains("sapo"), "{m}");
    let m = ck.check("cartpole", "sapo", 37, 1).unwrap_err().to_string();
    assert!(m.contains("observation size") && m.contains("37") && m.contains('5'), "{m}");
    // A learner of another architecture: the tensor and the shapes are named.
    let mut wide = c.clone();
    wide.learner.actor_hidden = vec![16, 8];
    let mut lw = DiffRl::new(5, 1, 3, wide.diff_rl().unwrap()).unwrap();
    let m = ck.restore_learner(&mut lw).unwrap_err().to_string();
    assert!(m.contains("actor/actor.trunk") && m.contains("mismatch") && m.contains("16"), "{m}");
    // Another number of envs.
    let m = ck.restore_env(&mut env(4)).unwrap_err().to_string();
    assert!(m.contains("number of envs") && m.contains('4') && m.contains('3'), "{m}");
}

// ---------------------------------------------------------------- NaN handling

#[test]
fn a_nan_gradient_skips_the_update_and_the_run_goes_on() {
    let _g = lock();
    let c = cfg("sapo");
    let mut e = env(3);
    let mut l = learner(&c);
    let mut o = e.reset(1).unwrap();
    // A NaN critic weight: the bootstrap V(s_H) in the actor objective, hence its gradient, is NaN.
    tch::no_grad(|| {
        for mut p in l.critic_variables() {
            let _ = p.fill_(f64::NAN);
        }
    });
    let before = params(&l);
    let s = l.train_epoch(&mut e, &mut o).expect("a NaN gradient must not end the run");
    assert!(s.skipped && !s.grad_norm.is_finite(), "{s:?}");
    let after = params(&l);
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        assert!(b.iter().zip(a).all(|(x, y)| x.to_bits() == y.to_bits()), "a skipped epoch changed parameters");
    }
    assert_eq!(l.epoch, 1, "the epoch still counts");
}

#[test]
fn a_diverged_env_is_reported_with_its_system_and_the_epoch_still_updates() {
    let _g = lock();
    let c = cfg("shac");
    let mut e = env(3);
    let mut l = learner(&c);
    let mut o = e.reset(1).unwrap();
    e.sim_mut().state.env_mut("joint_qd", 2).unwrap()[0] = f32::NAN;
    let s = l.train_epoch(&mut e, &mut o).unwrap();
    assert!(!s.nan_events.is_empty(), "{s:?}");
    let ev = &s.nan_events[0];
    assert_eq!(ev.env, 2);
    assert!(!ev.system.is_empty() && !ev.column.is_empty(), "{ev:?}");
    assert!(s.grad_norm.is_finite() && !s.skipped, "{s:?}");
}

// ---------------------------------------------------------------- logs

#[test]
fn csv_log_resumes_without_duplicate_epochs_and_the_plot_is_a_png() {
    let dir = tmp_dir("csv");
    let path = dir.join("log.csv");
    let stats = |epoch: usize| diffsim_learners::EpochStats {
        epoch,
        episode_return: Some(epoch as f64),
        step_reward: 0.75,
        wall_s: 1.0,
        sim_forward_s: 0.25,
        adjoint_s: 0.5,
        ..Default::default()
    };
    let mut log = CsvLog::open(&path, None).unwrap();
    for e in 0..4 {
        log.write(&stats(e), 10 * (e as u64 + 1), e as f64 + 1.0, 10.0).unwrap();
    }
    drop(log);
    // Resume at epoch 2 (the checkpoint): rows 2 and 3 are re-run.
    let mut log = CsvLog::open(&path, Some(2)).unwrap();
    assert_eq!(log.curve, vec![(10.0, 0.0), (20.0, 1.0)]);
    log.write(&stats(2), 30, 0.5, 10.0).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], COLUMNS.join(","));
    let epochs: Vec<&str> = lines[1..].iter().map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(epochs, ["0", "1", "2"]);
    let row: Vec<&str> = lines[3].split(',').collect();
    assert_eq!(row.len(), COLUMNS.len());
    assert_eq!(row[2], "2.500", "wall clock continues from the kept rows");
    assert_eq!(&row[16..19], ["0.2500", "0.5000", "0.2500"], "time shares");
    assert_eq!(row[19], "0.75", "mean reward per env step");
    let png = dir.join("returns.png");
    plot_returns(&png, "test", &log.curve).unwrap();
    assert_eq!(&std::fs::read(&png).unwrap()[..8], b"\x89PNG\r\n\x1a\n");
    let _ = Path::new(&png);
}

// ---------------------------------------------------------------- a NaN mid-rollout, end to end

/// Cart-pole plus a system that writes a NaN into one env's `joint_qd` at one env step: a fault
/// injected mid-rollout from inside the schedule, as a diverging system would produce it.
#[derive(Clone, Debug)]
struct FaultyCartpole {
    inner: Cartpole,
    env: usize,
    step: usize,
}

struct InjectNan {
    env: usize,
    step: usize,
}

impl<R: Real> System<R> for InjectNan {
    fn name(&self) -> &str {
        "test.inject_nan"
    }
    fn access(&self) -> Vec<ColumnAccess> {
        vec![ColumnAccess::accumulate("joint_qd", 2)]
    }
    fn forward(&self, cx: &StepCx, _: &ModelView, _: &View<R>, state: &mut ViewMut<R>) {
        let env0 = state.env0();
        if cx.step == self.step && cx.substep == 0 && (env0..env0 + state.num_envs()).contains(&self.env) {
            state.col_mut("joint_qd")[2 * (self.env - env0)] = R::from_f64(f64::NAN);
        }
    }
    fn adjoint(&self, _: &StepCx, _: &ModelView, _: &View<R>, _: &View<R>, _: &mut ViewMut<R>, _: &mut ViewMut<R>) {}
}

impl SimFactory for FaultyCartpole {
    fn sim<R: Real>(&self) -> Result<Sim<R>, EngineError> {
        let mut sim = self.inner.sim::<R>()?;
        sim.schedule.push(Stage::Substep, Box::new(InjectNan { env: self.env, step: self.step }));
        Ok(sim)
    }
}

impl Task for FaultyCartpole {
    fn spec(&self) -> TaskSpec {
        self.inner.spec()
    }
    fn reset_env(&self, env: usize, rng: &mut TaskRng, state: &mut Columns<f32>) -> Result<(), EngineError> {
        self.inner.reset_env(env, rng, state)
    }
}

/// The acceptance test: a NaN appears in env 2 at env step 3 of a 6-step rollout;
/// training goes on (the epoch updates, the next one is clean), env 2 is reset (its episode
/// restarted there, its state is finite) while the others carry on, and the logs name the
/// system and env (`nan_events.csv`) and count the event (`log.csv`).
#[test]
fn a_nan_injected_mid_rollout_is_isolated_logged_and_training_continues() {
    let _g = lock();
    let c = cfg("sapo");
    let task =
        FaultyCartpole { inner: Cartpole::new(CartpoleConfig { num_envs: 3, ..Default::default() }), env: 2, step: 3 };
    let mut e = VecEnv::new(task).unwrap();
    let mut l = learner(&c);
    let mut o = e.reset(1).unwrap();
    let dir = tmp_dir("nan-mid-rollout");
    let mut csv = CsvLog::open(&dir.join("log.csv"), None).unwrap();
    let mut nan_log = NanLog::open(&dir.join("nan_events.csv"), None).unwrap();
    let before = params(&l);
    let mut stats = Vec::new();
    for _ in 0..2 {
        let s = l.train_epoch(&mut e, &mut o).expect("a diverged env must not end training");
        csv.write(&s, l.env_steps, 1.0, 1.0).unwrap();
        nan_log.write(&s).unwrap();
        stats.push(s);
    }
    let ev = &stats[0].nan_events;
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(
        (ev[0].env, ev[0].step, ev[0].system.as_str(), ev[0].column.as_str()),
        (2, 3, "test.inject_nan", "joint_qd")
    );
    assert!(stats[1].nan_events.is_empty());
    for s in &stats {
        assert!(!s.skipped && s.grad_norm.is_finite(), "{s:?}");
    }
    assert_ne!(before, params(&l), "training updated the networks");
    // Env 2 restarted its episode after step 3 (12 steps: 8 since the reset), the others did not.
    assert_eq!(e.progress(), [12, 12, 8]);
    assert!(e.sim().non_finite_envs().is_empty() && o.iter().all(|x| x.is_finite()));

    let nan_csv = std::fs::read_to_string(dir.join("nan_events.csv")).unwrap();
    let lines: Vec<&str> = nan_csv.lines().collect();
    assert_eq!(lines, [NAN_COLUMNS.join(",").as_str(), "0,3,2,test.inject_nan,joint_qd"]);
    let log = std::fs::read_to_string(dir.join("log.csv")).unwrap();
    let col = |name: &str| COLUMNS.iter().position(|c| *c == name).unwrap();
    let rows: Vec<Vec<&str>> = log.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows.iter().map(|r| (r[col("nan_events")], r[col("nan_events_total")])).collect::<Vec<_>>(),
        [("1", "1"), ("0", "1")]
    );
    // Resuming at epoch 1 keeps epoch 0's event.
    drop(nan_log);
    NanLog::open(&dir.join("nan_events.csv"), Some(1)).unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("nan_events.csv")).unwrap(), nan_csv);
}
