//! `diffsim render --task NAME [--checkpoint RUN] --out run.gif|frames/`: a headless rollout
//! rendered with wgpu (any adapter; lavapipe, the CPU Vulkan driver, works) into an animated GIF
//! or PNG frames.
//!
//! The rollout runs in a `VecEnv` of the task (`--envs` of them, laid out on a grid); actions
//! come from a checkpoint's policy (deterministic, as `diffsim eval`) or, without one, are zero or
//! uniform random (`--policy`). After the reset and after every env step, the layers of
//! [`scene`] turn the packed Model and State into a `Frame`, the camera follows the subject
//! ([`camera::Follow`]), and [`gpu::Renderer`] draws it over a gridded ground.
//!
//! Files: `camera.rs` (projection + follow), `scene.rs` (Frame and the layers that fill it),
//! `mesh.rs` (unit meshes), `gpu.rs` + `shade.wgsl` (the rasterizer), `output.rs` (GIF/PNG).

pub mod camera;
pub mod gpu;
pub mod mesh;
pub mod output;
pub mod scene;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use diffsim_learners::{Checkpoint, DiffRl};
use diffsim_tasks::{Task as VecTask, TaskRng, VecEnv};
use glam::Vec3;
use ndarray::Array2;

use crate::parse;
use crate::task::{Task, TaskOptions};
use crate::train_rl::{WithTask, checkpoint_path, with_task};
use camera::Follow;
use gpu::{Ground, Renderer};
use output::{Target, Writer};
use scene::{Frame, Layer};

/// Actions when no checkpoint is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PolicyArg {
    /// All actions 0.
    Zero,
    /// Uniform in [−1, 1], seeded by `--seed`.
    Random,
}

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// Task to render (default with --checkpoint: the checkpoint's task).
    #[arg(long, value_parser = crate::task::parser())]
    pub task: Option<String>,
    /// A checkpoint file or a run directory (runs/<name>/) whose policy acts (deterministic).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Actions without a checkpoint [default: random].
    #[arg(long, value_enum)]
    pub policy: Option<PolicyArg>,
    /// Env steps to simulate (frames = steps / every + 1, the first being the reset state).
    #[arg(long, default_value_t = 120, value_parser = parse::positive)]
    pub steps: usize,
    /// Render every k-th env step.
    #[arg(long, default_value_t = 1, value_parser = parse::positive)]
    pub every: usize,
    /// Environments side by side.
    #[arg(long, default_value_t = 1, value_parser = parse::positive)]
    pub envs: usize,
    /// Seed of the reset noise and of random actions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// `run.gif` (animated GIF) or `frames/` (a directory of PNG frames).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 320, value_parser = parse::positive)]
    pub width: usize,
    #[arg(long, default_value_t = 240, value_parser = parse::positive)]
    pub height: usize,
    /// Frames per second of the GIF (GIF delays are in 1/100 s).
    #[arg(long, default_value_t = 30, value_parser = parse::positive)]
    pub fps: usize,
    /// CPU threads of the simulation.
    #[arg(long, default_value_t = 1, value_parser = parse::positive)]
    pub threads: usize,
}

/// Vertical field of view of the camera.
const FOV_Y: f32 = 0.75;

pub fn run(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    // Cheap checks first: the output path, then the adapter, then the task.
    let target = Target::parse(&args.out)?;
    let ckpt = match &args.checkpoint {
        Some(p) => {
            let file = if p.is_dir() { checkpoint_path(p) } else { p.clone() };
            Some(Checkpoint::read(&file)?)
        }
        None => None,
    };
    let name = match (&args.task, &ckpt) {
        (Some(t), Some(c)) if t.replace('_', "-") != c.task.replace('_', "-") => {
            bail!("--task {t} but the checkpoint {} was trained on `{}`", c.path.display(), c.task)
        }
        (Some(t), _) => t.clone(),
        (None, Some(c)) => c.task.clone(),
        (None, None) => bail!("--task is required without --checkpoint"),
    };
    if ckpt.is_some() && args.policy.is_some() {
        bail!("--policy applies only without --checkpoint (a checkpoint's policy acts)");
    }
    let (width, height) = (u32::try_from(args.width)?, u32::try_from(args.height)?);
    // Exit 2 without an adapter, as `diffsim gpu-info` does.
    let renderer = match Renderer::new(width, height) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let task = Task::build(&name, TaskOptions { num_envs: args.envs, threads: args.threads, links: None })?;
    with_task(task, Render { args, target, ckpt, renderer, name })
}

struct Render<'a> {
    args: &'a RenderArgs,
    target: Target,
    ckpt: Option<Checkpoint>,
    renderer: Renderer,
    name: String,
}

/// Where env `e` of `n` is drawn: a square grid in the ground plane, `spacing` apart.
fn env_offset(e: usize, n: usize, spacing: f32) -> Vec3 {
    let cols = (n as f32).sqrt().ceil().max(1.0) as usize;
    Vec3::new((e % cols) as f32 * spacing, 0.0, -((e / cols) as f32) * spacing)
}

/// The frame of every env of `env` at its current state.
fn build_frame<T: VecTask>(env: &VecEnv<T>, layers: &mut [Box<dyn Layer>], spacing: f32) -> anyhow::Result<Frame> {
    let sim = env.sim();
    let n = env.num_envs();
    let mut frame = Frame::default();
    for e in 0..n {
        for l in layers.iter_mut() {
            l.draw(&sim.model, &sim.state, e, env_offset(e, n, spacing), &mut frame)?;
        }
    }
    Ok(frame)
}

/// A grid spacing of 1, 2 or 5 × 10ᵏ m, about a third of `radius`.
fn grid_spacing(radius: f32) -> f32 {
    let target = (radius / 3.0).max(0.01);
    let decade = 10f32.powf(target.log10().floor());
    [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * decade).find(|&s| s >= target).unwrap_or(10.0 * decade)
}

impl WithTask for Render<'_> {
    type Out = ExitCode;
    fn run<T: VecTask>(self, task: T) -> anyhow::Result<ExitCode> {
        let Render { args, target, ckpt, mut renderer, name } = self;
        tch::set_num_threads(1);
        let spec = task.spec();
        let mut env = VecEnv::new(task).with_context(|| format!("building task `{name}`"))?;
        let learner = match &ckpt {
            Some(c) => {
                c.check(&c.config.run.task, &c.config.run.learner, spec.obs_dim, spec.act_dim)?;
                let mut l = DiffRl::new(spec.obs_dim, spec.act_dim, spec.num_envs, c.config.diff_rl()?)?;
                c.restore_policy(&mut l)?;
                Some(l)
            }
            None => None,
        };
        let policy = args.policy.unwrap_or(PolicyArg::Random);
        let mut rng = TaskRng::new(args.seed ^ 0x5EED_AC71);
        let (n, ad) = (spec.num_envs, spec.act_dim);
        let mut act = |obs: &Array2<f32>| match (&learner, policy) {
            (Some(l), _) => l.act(obs, true),
            (None, PolicyArg::Zero) => Array2::zeros((n, ad)),
            (None, PolicyArg::Random) => Array2::from_shape_fn((n, ad), |_| rng.uniform(-1.0, 1.0) as f32),
        };
        let mut obs = env.reset(args.seed)?;

        let mut layers = scene::layers();
        let first = build_frame(&env, &mut layers, 0.0)?;
        let Some((lo, hi)) = first.bounds() else {
            bail!("task `{name}` has nothing to draw (no bodies, shapes, particles or tetrahedra)")
        };
        let extent = hi - lo;
        let spacing = extent.x.max(extent.z) + 1.0;
        let frame = build_frame(&env, &mut layers, spacing)?;
        let (lo, hi) = frame.bounds().unwrap_or((lo, hi));
        let radius = 0.5 * (hi - lo).length();
        // The ground: y = 0 where the task has ground contact, else just below the scene.
        let has_ground = env.sim().schedule.systems().any(|(_, s)| s.name().contains("ground"));
        let ground = Ground {
            height: if has_ground { 0.0 } else { lo.y - 0.05 * radius.max(0.1) },
            spacing: grid_spacing(radius),
            half_size: 0.0,
        };
        let subject = frame.subject().unwrap_or(Vec3::ZERO);
        let mut follow = Follow::new(subject, radius, FOV_Y);
        follow.min_height = ground.height + 0.25 * radius;
        follow.target.y = follow.target.y.max(follow.min_height);
        // Past 12 camera distances the fog has reached the sky colour: the quad's edge is hidden.
        let ground = Ground { half_size: 15.0 * follow.distance, ..ground };
        let aspect = args.width as f32 / args.height as f32;
        let dt = env.sim().schedule.dt as f32;

        let mut writer = Writer::create(target.clone(), args.fps as u32)?;
        let size = (args.width as u32, args.height as u32);
        let mut draw = |frame: &Frame, follow: &Follow, writer: &mut Writer| -> anyhow::Result<()> {
            let pixels = renderer.render(frame, &follow.camera(FOV_Y, aspect), Some(ground))?;
            let image = image::RgbaImage::from_raw(size.0, size.1, pixels).context("frame size mismatch")?;
            writer.push(image)
        };
        draw(&frame, &follow, &mut writer)?;
        let mut nan_events = 0;
        for step in 1..=args.steps {
            let a = act(&obs);
            let out = env.step(a.view())?;
            nan_events += out.diverged.len();
            obs = out.obs;
            if step % args.every == 0 {
                let frame = build_frame(&env, &mut layers, spacing)?;
                if let Some(s) = frame.subject() {
                    follow.update(s, dt * args.every as f32);
                }
                draw(&frame, &follow, &mut writer)?;
            }
        }
        let frames = writer.finish()?;
        let actor = match &ckpt {
            Some(c) => format!("the policy of {} (epoch {})", c.path.display(), c.epoch),
            None => format!("{} actions", parse::flag_name(&policy)),
        };
        let what = match &target {
            Target::Gif(p) => p.display().to_string(),
            Target::PngDir(d) => format!("{}/frame_*.png", d.display().to_string().trim_end_matches('/')),
        };
        println!(
            "{name}: {} env steps × {} envs with {actor}; wrote {frames} frames ({}×{}, {} fps) to {what} \
             (adapter: {}){}",
            args.steps,
            n,
            args.width,
            args.height,
            args.fps,
            renderer.adapter_name(),
            if nan_events > 0 { format!("; {nan_events} envs diverged and were reset") } else { String::new() }
        );
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_spacing_is_a_round_number_near_a_third_of_the_scene() {
        assert_eq!(grid_spacing(3.0), 1.0);
        assert_eq!(grid_spacing(1.0), 0.5);
        assert!((grid_spacing(0.3) - 0.1).abs() < 1e-6);
        assert_eq!(grid_spacing(10.0), 5.0);
    }

    #[test]
    fn envs_are_laid_out_on_a_square_grid() {
        let offsets: Vec<Vec3> = (0..4).map(|e| env_offset(e, 4, 2.0)).collect();
        assert_eq!(
            offsets,
            [Vec3::ZERO, Vec3::new(2.0, 0.0, 0.0), Vec3::new(0.0, 0.0, -2.0), Vec3::new(2.0, 0.0, -2.0)]
        );
        assert_eq!(env_offset(0, 1, 5.0), Vec3::ZERO);
    }
}
