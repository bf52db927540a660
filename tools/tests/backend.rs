//! `--backend cpu|gpu|auto` of `diffsim bench` and `diffsim train` from the command line:
//! - no adapter (`WGPU_BACKEND=dx12`, a backend Linux has no driver for): `gpu` fails naming the
//!   missing adapter, `auto` runs on the CPU and says why on stderr;
//! - with an adapter (lavapipe in CI; skipped without one unless `DIFFSIM_REQUIRE_GPU=1`):
//!   `bench --backend gpu` times a GPU row, honouring `--nan-check`.

use std::process::{Command, Output};

use diffsim_tests::gpu::command_skips_without_adapter;

/// Selects only a backend with no adapter on Linux, so `Gpu::new` fails as on a GPU-less machine.
const NO_ADAPTER: (&str, &str) = ("WGPU_BACKEND", "dx12");

fn diffsim(args: &[&str], env: Option<(&str, &str)>) -> Output {
    let dir = std::env::temp_dir().join(format!("diffsim-backend-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_diffsim"));
    c.current_dir(&dir).args(args).env("OMP_NUM_THREADS", "1");
    if let Some((k, v)) = env {
        c.env(k, v);
    }
    c.output().expect("runs diffsim")
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

const BENCH: [&str; 11] =
    ["bench", "--task", "chain-reach", "--envs", "1", "--threads", "1", "--steps", "3", "--horizon", "2"];

const TRAIN: [&str; 17] = [
    "train",
    "--task",
    "chain-reach",
    "--learner",
    "shac",
    "--envs",
    "2",
    "--epochs",
    "1",
    "--name",
    "backend",
    "--quiet",
    "--set",
    "learner.horizon=4",
    "--set",
    "learner.critic_iterations=1",
    "--backend",
];

#[test]
fn backend_gpu_without_an_adapter_names_it() {
    for args in [[&BENCH[..], &["--backend", "gpu"]].concat(), [&TRAIN[..], &["gpu"]].concat()] {
        let o = diffsim(&args, Some(NO_ADAPTER));
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}\n{out}{err}");
        assert!(err.contains("--backend gpu") && err.contains("no wgpu adapter found"), "{args:?}: {err}");
        assert!(err.contains("WGPU_BACKEND"), "says how to choose another backend: {err}");
    }
}

#[test]
fn backend_auto_without_an_adapter_runs_on_the_cpu_and_says_why() {
    let o = diffsim(&[&BENCH[..], &["--backend", "auto"]].concat(), Some(NO_ADAPTER));
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(err.contains("--backend auto: `chain-reach` on the CPU: no wgpu adapter"), "{err}");
    assert!(out.lines().any(|l| l.starts_with("| 1 | 1 |")), "a CPU row (threads column 1):\n{out}");

    let o = diffsim(&[&TRAIN[..], &["auto"]].concat(), Some(NO_ADAPTER));
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(err.contains("--backend auto: `chain-reach` on the CPU: no wgpu adapter"), "{err}");
    assert!(out.contains("on the CPU"), "{out}");
}

#[test]
fn bench_backend_gpu_times_a_gpu_row() {
    let o = diffsim(&[&BENCH[..], &["--backend", "gpu", "--nan-check", "system"]].concat(), None);
    let (out, err) = text(&o);
    if command_skips_without_adapter("bench_backend_gpu_times_a_gpu_row", o.status.success(), &err) {
        return;
    }
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("nan-check system"), "{out}");
    let row = out.lines().find(|l| l.starts_with("| 1 | gpu |")).unwrap_or_else(|| panic!("no GPU row:\n{out}"));
    assert_eq!(row.matches('|').count(), 8, "{row}");
}
