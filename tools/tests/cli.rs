//! End-to-end runs of the built `diffsim` binary: a small gradient check, an unknown task, and a
//! tiny benchmark, each fast enough for a debug build.

use std::process::{Command, Output};

fn diffsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_diffsim")).args(args).env("OMP_NUM_THREADS", "1").output().expect("run diffsim")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_grad_prints_a_passing_table() {
    let out = diffsim(&["check-grad", "--task", "chain_reach", "--cases", "2", "--horizon", "2"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "status {:?}\n{stdout}\n{}", out.status, text(&out.stderr));
    assert!(stdout.contains("| system | stage | max dual rel err | max FD rel err | cases | verdict |"), "{stdout}");
    for name in ["particles.springs", "particles.ground_contact", "chain_reach.reward", "rollout (tape)"] {
        assert!(stdout.contains(name), "no row for {name}:\n{stdout}");
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
}

#[test]
fn unknown_task_fails_and_lists_the_tasks() {
    let out = diffsim(&["check-grad", "--task", "nope"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("nope"), "{stderr}");
    for t in diffsim_tasks::TASKS {
        assert!(stderr.contains(t), "task {t} not listed:\n{stderr}");
    }
}

#[test]
fn bench_prints_a_table() {
    let out = diffsim(&["bench", "--envs", "1", "--threads", "1", "--steps", "5", "--horizon", "4"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "status {:?}\n{stdout}\n{}", out.status, text(&out.stderr));
    assert!(stdout.contains("| envs | threads | fwd env-steps/s | fwd+bwd env-steps/s |"), "{stdout}");
    let row = stdout.lines().find(|l| l.starts_with("| 1 | 1 |")).unwrap_or_else(|| panic!("no row:\n{stdout}"));
    assert_eq!(row.matches('|').count(), 8, "{row}");
}
