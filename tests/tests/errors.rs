//! Bad input gets a typed error naming what is wrong: schedules with a missing writer, an
//! accumulate before initialization, a double writer or a wrongly shaped column; controls of the
//! wrong size; and NaNs, reported with the system, column and environment that produced them.

use diffsim_engine::cpu::Split;
use diffsim_engine::{ColumnSet, Cpu, EngineError, Schedule, ScheduleError, Sim, SimFactory, Stage};
use diffsim_systems::particles::{ClearForces, Gravity, Integrate, Springs};
use diffsim_tasks::chain_reach::Observe;
use diffsim_tasks::{ChainReach, ChainReachConfig};

/// Runs on two threads however small the step (so errors cross chunk boundaries).
fn split(mut sim: Sim<f32>) -> Sim<f32> {
    sim.cpu = Cpu::new(2).with_split(Split::Always);
    sim
}

fn sim_with(schedule: Schedule<f32>) -> Result<Sim<f32>, EngineError> {
    let task = ChainReach::default();
    let base: Sim<f32> = task.sim()?;
    Sim::new(base.model, base.state, base.control.layout().clone(), schedule, Cpu::new(1))
}

#[test]
fn reading_a_column_nothing_writes_names_system_and_column() {
    let s = Schedule::new(0.01, 2)
        .with(Stage::Substep, ClearForces)
        .with(Stage::Substep, Gravity)
        .with(Stage::Post, Observe { links: 4 });
    let err = sim_with(s).err().expect("must fail");
    assert_eq!(
        err,
        EngineError::Schedule(ScheduleError::MissingWriter {
            system: "chain_reach.observe".into(),
            set: ColumnSet::State,
            column: "particle_q".into(),
        })
    );
    assert!(err.to_string().contains("chain_reach.observe") && err.to_string().contains("particle_q"));
}

#[test]
fn accumulating_before_initialization_is_rejected() {
    let s = Schedule::new(0.01, 2)
        .with(Stage::Substep, Springs)
        .with(Stage::Substep, ClearForces)
        .with(Stage::Substep, Integrate);
    let err = sim_with(s).err().expect("must fail");
    assert!(
        matches!(&err, EngineError::Schedule(ScheduleError::AccumulateBeforeWrite { system, column, .. })
            if system == "particles.springs" && column == "particle_f"),
        "{err}"
    );
}

#[test]
fn two_writers_of_one_column_name_both() {
    let s = Schedule::new(0.01, 2)
        .with(Stage::Substep, ClearForces)
        .with(Stage::Substep, Integrate)
        .with(Stage::Substep, Integrate);
    let err = sim_with(s).err().expect("must fail");
    match err {
        EngineError::Schedule(ScheduleError::DoubleWriter { first, second, column, stage, .. }) => {
            assert_eq!((first.as_str(), second.as_str()), ("particles.integrate", "particles.integrate"));
            assert_eq!(column, "particle_q");
            assert_eq!(stage, "substep");
        }
        other => panic!("unexpected {other}"),
    }
}

#[test]
fn wrong_shape_column_names_expected_and_found_width() {
    let s = Schedule::new(0.01, 2)
        .with(Stage::Substep, ClearForces)
        .with(Stage::Substep, Integrate)
        .with(Stage::Post, Observe { links: 3 });
    let err = sim_with(s).err().expect("must fail");
    assert_eq!(
        err,
        EngineError::Schedule(ScheduleError::WrongShape {
            system: "chain_reach.observe".into(),
            set: ColumnSet::State,
            column: "obs".into(),
            expected: 18,
            found: 24,
        })
    );
}

#[test]
fn bad_timing_is_rejected() {
    let err = sim_with(Schedule::new(0.0, 2)).err().expect("must fail");
    assert!(matches!(err, EngineError::Schedule(ScheduleError::BadTiming { .. })), "{err}");
}

#[test]
fn control_of_wrong_size_names_column() {
    let mut sim: Sim<f32> = ChainReach::new(ChainReachConfig { num_envs: 2, ..Default::default() }).sim().unwrap();
    let err = sim.set_control("act", &[0.0; 5]).unwrap_err();
    assert_eq!(err, EngineError::ShapeMismatch { column: "act".into(), expected: 6, found: 5 });
    let err = sim.set_control("torque", &[0.0; 6]).unwrap_err();
    assert!(err.to_string().contains("torque") && err.to_string().contains("act"), "{err}");
}

#[test]
fn nan_in_an_action_names_system_column_and_environment() {
    let mut sim: Sim<f32> =
        split(ChainReach::new(ChainReachConfig { num_envs: 3, ..Default::default() }).sim().unwrap());
    sim.step().unwrap();
    let mut act = vec![0.1f32; 9];
    act[7] = f32::NAN; // env 2, component y
    sim.set_control("act", &act).unwrap();
    let err = sim.step().unwrap_err();
    match err {
        EngineError::NonFinite { system, column, env, entity, component, step, .. } => {
            assert_eq!(system, "particles.actuation");
            assert_eq!(column, "particle_f");
            assert_eq!((env, entity, component, step), (2, 0, 1, 1));
        }
        other => panic!("unexpected {other}"),
    }
    // The failed check still stepped the state: the next step is step 2, not step 1 again.
    assert_eq!(sim.steps_taken(), 2);
}

#[test]
fn nan_in_a_state_is_caught_by_the_first_system_that_spreads_it() {
    let mut sim: Sim<f32> =
        split(ChainReach::new(ChainReachConfig { num_envs: 2, ..Default::default() }).sim().unwrap());
    sim.state.env_mut("particle_q", 1).unwrap()[3 * 2] = f32::NAN; // env 1, particle 2, x
    let err = sim.step().unwrap_err();
    let msg = err.to_string();
    match err {
        EngineError::NonFinite { system, column, env, .. } => {
            assert_eq!((system.as_str(), column.as_str(), env), ("particles.springs", "particle_f", 1), "{msg}");
        }
        other => panic!("unexpected {other}"),
    }
    assert!(msg.contains("environment 1"), "{msg}");
}

#[test]
fn nan_checks_per_step_and_per_system_name_the_same_system_and_off_does_not_check() {
    use diffsim_engine::NanCheck;
    let run = |mode: NanCheck| {
        let mut sim: Sim<f32> =
            split(ChainReach::new(ChainReachConfig { num_envs: 4, ..Default::default() }).sim().unwrap());
        sim.schedule.nan_check = mode;
        let mut act = vec![0.0f32; 12];
        act[3 * 3] = f32::INFINITY; // env 3
        sim.set_control("act", &act).unwrap();
        sim.step()
    };
    let per_step = run(NanCheck::EveryStep).unwrap_err();
    let per_system = run(NanCheck::EverySystem).unwrap_err();
    assert_eq!(per_step, per_system);
    assert!(matches!(&per_step, EngineError::NonFinite { system, env: 3, .. } if system == "particles.actuation"));
    assert!(run(NanCheck::Off).is_ok());
}
