//! `diffsim render` end to end on whatever wgpu adapter the machine has (lavapipe in CI): the
//! produced GIF / PNG frames are decoded and checked for content, not just existence. The subject
//! is found by colour: bodies, particles and surfaces are drawn in warm colours (red well above
//! blue), the ground and sky are neutral or cool, so "subject pixels" are the warm ones.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use image::codecs::gif::GifDecoder;
use image::{AnimationDecoder, RgbaImage};

fn diffsim(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_diffsim")).current_dir(dir).args(args).output().expect("runs diffsim")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("diffsim-render-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn is_subject(p: &image::Rgba<u8>) -> bool {
    i32::from(p[0]) > i32::from(p[2]) + 40
}

/// Subject pixels in the central half of the image (both axes).
fn subject_pixels_in_centre(img: &RgbaImage) -> usize {
    let (w, h) = img.dimensions();
    img.enumerate_pixels()
        .filter(|(x, y, p)| (w / 4..3 * w / 4).contains(x) && (h / 4..3 * h / 4).contains(y) && is_subject(p))
        .count()
}

fn distinct_colours(img: &RgbaImage) -> usize {
    let mut c: Vec<[u8; 4]> = img.pixels().map(|p| p.0).collect();
    c.sort_unstable();
    c.dedup();
    c.len()
}

/// Fraction of pixels whose colour differs by more than a GIF quantization step.
fn changed_fraction(a: &RgbaImage, b: &RgbaImage) -> f64 {
    let changed =
        a.pixels().zip(b.pixels()).filter(|(p, q)| p.0.iter().zip(q.0).any(|(x, y)| x.abs_diff(y) > 12)).count();
    changed as f64 / (a.width() * a.height()) as f64
}

fn check_content(img: &RgbaImage, what: &str) {
    let subject = subject_pixels_in_centre(img);
    assert!(subject >= 15, "{what}: only {subject} subject pixels in the centre");
    let colours = distinct_colours(img);
    assert!(colours >= 8, "{what}: {colours} distinct colours (a uniform image?)");
    let warm = img.pixels().filter(|p| is_subject(p)).count();
    assert!(warm < (img.width() * img.height()) as usize / 2, "{what}: the subject cannot fill the frame");
}

#[test]
fn ant_run_with_random_actions_renders_a_moving_gif() {
    let dir = tmp_dir("gif");
    let o = diffsim(
        &dir,
        &[
            "render",
            "--task",
            "ant-run",
            "--steps",
            "16",
            "--every",
            "4",
            "--width",
            "96",
            "--height",
            "72",
            "--out",
            "out/ant.gif",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("wrote 5 frames"), "{}", text(&o));
    let file = std::fs::File::open(dir.join("out/ant.gif")).unwrap();
    let frames = GifDecoder::new(std::io::BufReader::new(file)).unwrap().into_frames().collect_frames().unwrap();
    assert_eq!(frames.len(), 5, "steps / every + the reset frame");
    let images: Vec<RgbaImage> = frames.into_iter().map(|f| f.into_buffer()).collect();
    for (i, img) in images.iter().enumerate() {
        assert_eq!(img.dimensions(), (96, 72));
        check_content(img, &format!("frame {i}"));
    }
    let moved = changed_fraction(&images[0], &images[4]);
    assert!(moved > 0.01, "frames 0 and 4 differ in only {:.2}% of pixels", 100.0 * moved);
}

#[test]
fn chain_reach_renders_png_frames_and_bad_input_is_named() {
    let dir = tmp_dir("png");
    let o = diffsim(
        &dir,
        &[
            "render",
            "--task",
            "chain-reach",
            "--steps",
            "2",
            "--policy",
            "zero",
            "--width",
            "80",
            "--height",
            "60",
            "--out",
            "frames/",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    for k in 0..3 {
        let img = image::open(dir.join(format!("frames/frame_{k:05}.png"))).unwrap().into_rgba8();
        assert_eq!(img.dimensions(), (80, 60));
        check_content(&img, &format!("frame {k}"));
    }
    assert!(!dir.join("frames/frame_00003.png").exists());

    let o = diffsim(&dir, &["render", "--task", "cartpole", "--out", "run.mp4"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("run.mp4") && text(&o).contains(".gif"), "{}", text(&o));
    let o = diffsim(&dir, &["render", "--out", "run.gif"]);
    assert!(!o.status.success() && text(&o).contains("--task"), "{}", text(&o));

    // No adapter: Vulkan's driver list points nowhere and GL is switched off.
    let o = Command::new(env!("CARGO_BIN_EXE_diffsim"))
        .current_dir(&dir)
        .args(["render", "--task", "cartpole", "--out", "none.gif"])
        .env("WGPU_BACKEND", "vulkan")
        .env("VK_ICD_FILENAMES", "/nonexistent.json")
        .env("VK_DRIVER_FILES", "/nonexistent.json")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("request_adapter") && text(&o).contains("adapter"), "{}", text(&o));
}

#[test]
fn a_checkpoints_policy_drives_the_rendered_rollout() {
    let dir = tmp_dir("ckpt");
    let o = diffsim(
        &dir,
        &[
            "train",
            "--task",
            "cartpole",
            "--learner",
            "sapo",
            "--envs",
            "2",
            "--epochs",
            "1",
            "--name",
            "ck",
            "--quiet",
            "--set",
            "learner.horizon=4",
            "--set",
            "learner.actor_hidden=[8]",
            "--set",
            "learner.critic_iterations=1",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = diffsim(
        &dir,
        &["render", "--checkpoint", "runs/ck", "--steps", "3", "--width", "64", "--height", "48", "--out", "ck.gif"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("cartpole") && text(&o).contains("the policy of"), "{}", text(&o));
    let file = std::fs::File::open(dir.join("ck.gif")).unwrap();
    let frames = GifDecoder::new(std::io::BufReader::new(file)).unwrap().into_frames().collect_frames().unwrap();
    assert_eq!(frames.len(), 4);
    let o = diffsim(&dir, &["render", "--checkpoint", "runs/ck", "--task", "ant-run", "--out", "x.gif"]);
    assert!(!o.status.success() && text(&o).contains("ant-run") && text(&o).contains("cartpole"), "{}", text(&o));
    let o = diffsim(&dir, &["render", "--checkpoint", "runs/ck", "--policy", "zero", "--out", "x.gif"]);
    assert!(!o.status.success() && text(&o).contains("--policy"), "{}", text(&o));
}

#[test]
fn rolling_flat_renders_its_material_points() {
    let dir = tmp_dir("mpm");
    let args = ["render", "--task", "rolling-flat", "--steps", "1", "--width", "96", "--height", "72", "--out", "f/"];
    let o = diffsim(&dir, &args);
    assert!(o.status.success(), "{}", text(&o));
    let img = image::open(dir.join("f/frame_00001.png")).unwrap().to_rgba8();
    check_content(&img, "rolling-flat");
}
