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

#[test]
fn bench_writes_json_and_compares_with_an_earlier_report() {
    let dir = std::env::temp_dir().join(format!("diffsim-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (old, new) = (dir.join("old.json"), dir.join("new.json"));
    let small = ["bench", "--task", "chain-reach", "--envs", "1,2", "--threads", "1", "--steps", "5", "--horizon", "4"];
    let out = diffsim(&[&small[..], &["--json", old.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&old).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r["task"] == "chain-reach" && r["fwd"].as_f64().unwrap() > 0.0), "{report}");

    let out = diffsim(&[&small[..], &["--compare", old.to_str().unwrap(), "--json", new.to_str().unwrap()]].concat());
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("| task | envs | threads | fwd | fwd+bwd |"), "{stdout}");
    let ratio_rows = stdout.lines().filter(|l| l.starts_with("| chain-reach | ") && l.contains('×')).count();
    assert_eq!(ratio_rows, 2, "{stdout}");

    // A file that is not a report is refused before any timing, naming the file.
    std::fs::write(&old, "{ not json").unwrap();
    let out = diffsim(&[&small[..], &["--compare", old.to_str().unwrap()]].concat());
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("old.json") && !text(&out.stdout).contains("| 1 | 1 |"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
