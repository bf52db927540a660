//! CLI smoke test of the training workflow: `diffsim train --learner sapo … --epochs 2` writes a
//! run directory (config, CSV, checkpoint, plot), `--resume` continues it, `diffsim eval` reports
//! mean ± CI, and bad input fails with a message naming what is wrong.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use diffsim_tests::gpu::command_skips_without_adapter;

fn diffsim(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_diffsim")).current_dir(dir).args(args).output().expect("runs diffsim")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn tmp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("diffsim-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn train_resume_and_eval_from_the_command_line() {
    let dir = tmp_dir();
    let small = [
        "--set",
        "learner.horizon=8",
        "--set",
        "learner.actor_hidden=[16, 16]",
        "--set",
        "learner.critic_iterations=2",
    ];
    let mut args = vec![
        "train",
        "--task",
        "cartpole",
        "--learner",
        "sapo",
        "--envs",
        "4",
        "--epochs",
        "2",
        "--name",
        "smoke",
        "--quiet",
    ];
    args.extend(small);
    let o = diffsim(&dir, &args);
    assert!(o.status.success(), "{}", text(&o));
    let run = dir.join("runs/smoke");
    for f in ["config.toml", "log.csv", "checkpoint.safetensors", "returns.png"] {
        assert!(run.join(f).is_file(), "missing {f}: {}", text(&o));
    }
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(
        config.contains("horizon = 8") && config.contains("num_envs = 4") && config.contains("learner = \"sapo\""),
        "{config}"
    );
    let csv = std::fs::read_to_string(run.join("log.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "header + 2 epochs:\n{csv}");
    assert_eq!(event_files(&run), 1, "one TensorBoard event file");

    let o = diffsim(&dir, &["train", "--resume", "runs/smoke", "--epochs", "3", "--quiet"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("epochs 2..3"), "{}", text(&o));
    let csv = std::fs::read_to_string(run.join("log.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "header + 3 epochs:\n{csv}");
    assert_eq!(event_files(&run), 2, "the resumed run writes its own event file");

    let o = diffsim(&dir, &["eval", "--checkpoint", "runs/smoke/checkpoint.safetensors", "--episodes", "3"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("±") && out.contains("3 episodes") && out.contains("epoch 3"), "{out}");

    // Errors name what is wrong.
    std::fs::write(run.join("broken.safetensors"), b"\x10\x00\x00\x00\x00\x00\x00\x00{").unwrap();
    let o = diffsim(&dir, &["eval", "--checkpoint", "runs/smoke/broken.safetensors"]);
    assert!(!o.status.success() && text(&o).contains("broken.safetensors"), "{}", text(&o));
    let o = diffsim(&dir, &["train", "--task", "cartpole", "--learner", "shac", "--set", "learner.gama=0.9"]);
    assert!(!o.status.success() && text(&o).contains("learner.gama"), "{}", text(&o));
}

/// TensorBoard event files in `dir` that hold more than the file-version record.
fn event_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("events.out.tfevents."))
        .filter(|e| e.metadata().is_ok_and(|m| m.len() > 64))
        .count()
}

#[test]
fn ppo_and_sac_train_from_the_command_line_and_write_a_log() {
    let dir = std::env::temp_dir().join(format!("diffsim-cli-zo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for learner in ["ppo", "sac"] {
        let o = diffsim(
            &dir,
            &["train", "--task", "cartpole", "--learner", learner, "--envs", "4", "--epochs", "2", "--quiet"],
        );
        assert!(o.status.success(), "{learner}: {}", text(&o));
        assert!(text(&o).contains("95% CI"), "{learner}: {}", text(&o));
        let csv = std::fs::read_to_string(dir.join(format!("runs/cartpole-{learner}-s0/log.csv"))).unwrap();
        assert_eq!(csv.lines().count(), 3, "{learner}: header + 2 iterations:\n{csv}");
        assert_eq!(event_files(&dir.join(format!("runs/cartpole-{learner}-s0"))), 1, "{learner}");
    }
    let o = diffsim(&dir, &["train", "--task", "cartpole", "--learner", "ppo", "--set", "learner.lr=1"]);
    assert!(!o.status.success() && text(&o).contains("--set"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--backend gpu` trains chain-reach and hand-reorient (box contacts) with the physics on the GPU
/// (lavapipe in CI). With no adapter at all the test
/// skips, unless `DIFFSIM_REQUIRE_GPU=1` (CI), where it must run.
#[test]
fn train_on_the_gpu_backend() {
    let dir = tmp_dir().join("gpu");
    std::fs::create_dir_all(&dir).unwrap();
    let args = [
        "train",
        "--task",
        "chain-reach",
        "--learner",
        "shac",
        "--envs",
        "4",
        "--epochs",
        "2",
        "--name",
        "gpu",
        "--quiet",
        "--backend",
        "gpu",
        "--set",
        "learner.horizon=8",
        "--set",
        "learner.critic_iterations=2",
    ];
    let o = diffsim(&dir, &args);
    let out = text(&o);
    if command_skips_without_adapter("train_on_the_gpu_backend", o.status.success(), &out) {
        return;
    }
    assert!(o.status.success(), "{out}");
    assert!(out.contains("on the GPU"), "{out}");
    let csv = std::fs::read_to_string(dir.join("runs/gpu/log.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "header + 2 epochs: {csv}");
    // hand-reorient, whose hand–cube contact has box pairs, runs on the GPU too (tiny sizes).
    let args = [
        "train",
        "--task",
        "hand-reorient",
        "--learner",
        "sapo",
        "--envs",
        "2",
        "--epochs",
        "1",
        "--name",
        "gpu-hand",
        "--quiet",
        "--backend",
        "gpu",
        "--set",
        "learner.horizon=4",
        "--set",
        "learner.critic_iterations=1",
    ];
    let o = diffsim(&dir, &args);
    let out = text(&o);
    assert!(o.status.success() && out.contains("on the GPU"), "{out}");
    let csv = std::fs::read_to_string(dir.join("runs/gpu-hand/log.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "header + 1 epoch: {csv}");
    // The zeroth-order learners step on the CPU only.
    let o = diffsim(&dir, &["train", "--task", "cartpole", "--learner", "ppo", "--backend", "gpu"]);
    assert!(!o.status.success() && text(&o).contains("--backend gpu|auto is for the first-order learners"));
}
