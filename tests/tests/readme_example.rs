//! The scene-composition example of README.md, kept compiling and correct.

use diffsim_engine::{ColumnSpec, Cpu, EngineError, Scene, Sim, components::Ground};
use diffsim_systems::particles::{self, Actuation};
use glam::Vec3;

#[test]
fn readme_scene_example_runs_and_differentiates() -> Result<(), EngineError> {
    let mut scene = Scene::new();
    scene.spawn_envs(64, |env| {
        let a = env.particle(Vec3::new(0.0, 0.5, 0.0), Vec3::ZERO, 0.1, 0.02);
        let b = env.particle(Vec3::new(0.2, 0.5, 0.0), Vec3::ZERO, 0.1, 0.02);
        env.spring(a, b, 200.0, 0.5);
        env.ground(Ground::default());
    });
    let mut packed = scene.pack()?;
    packed.add_control(ColumnSpec::new("act", 1, 3));
    let schedule = particles::schedule::<f32>(1.0 / 60.0, 8, true, Some(Actuation { particles: vec![0], scale: 2.0 }));
    let mut sim = Sim::new(packed.model, packed.state, packed.control, schedule, Cpu::new(2))?;
    sim.record();
    sim.step()?;
    let grads = sim.backward(|_, adj| adj.get_mut("particle_q").unwrap()[1] += 1.0)?;
    // Height after one step depends on the initial height one-for-one and on an upward push.
    assert!((grads.initial_state.get("particle_q")?[1] - 1.0).abs() < 0.1);
    assert!(grads.controls[0].get("act")?[1] > 0.0);
    assert_eq!(grads.controls[0].get("act")?[3 + 1], 0.0); // env 1 is independent of env 0's loss
    Ok(())
}
