//! Training logs and return statistics:
//! - `CsvLog`: one row per epoch (`COLUMNS`), appended and flushed as training goes; on resume it
//!   drops rows of epochs that will be re-run and continues the wall-clock column; optionally the
//!   same numbers as TensorBoard scalars (`with_tensorboard`, x-axis = env steps);
//! - `NanLog`: one row per environment the `VecEnv` isolated after a NaN/inf (`NAN_COLUMNS`: epoch,
//!   env step, env, the system and column that produced it), with the same resume rule;
//! - `plot_returns`: a PNG of episode return vs env steps (plotters' bitmap backend; text drawn
//!   with ab_glyph from a system TTF found at run time, and left out when there is none, so no
//!   fontconfig is needed);
//! - `mean_ci95`: mean and 95% confidence half-width of returns (Student t, as the paper's
//!   "mean ± 95% CI" tables).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::diff_rl::EpochStats;
use crate::tensorboard::EventWriter;

/// The CSV header. Time shares are fractions of the epoch's wall time.
pub const COLUMNS: &[&str] = &[
    "epoch",
    "env_steps",
    "wall_s",
    "episode_return",
    "episode_length",
    "episodes",
    "actor_loss",
    "critic_loss",
    "grad_norm",
    "alpha",
    "entropy",
    "skipped",
    "nan_events",
    "skipped_total",
    "nan_events_total",
    "env_steps_per_s",
    "share_sim_forward",
    "share_adjoint",
    "share_tch",
    "step_reward",
];

/// Per-epoch CSV log.
#[derive(Debug)]
pub struct CsvLog {
    path: PathBuf,
    file: std::fs::File,
    /// Wall seconds, skipped updates and NaN events of the epochs before this process.
    wall_offset: f64,
    pub skipped_total: usize,
    pub nan_events_total: usize,
    /// (env steps, mean episode return) of every epoch with finished episodes, for the plot.
    pub curve: Vec<(f64, f64)>,
    /// TensorBoard event file receiving every numeric column (see `with_tensorboard`).
    tensorboard: Option<EventWriter>,
}

fn opt(x: Option<f64>) -> String {
    x.map_or(String::new(), |v| format!("{v}"))
}

impl CsvLog {
    /// Creates `path` (header only), or with `resume_epoch = Some(e)` keeps the rows of epochs
    /// < e of an existing log and appends after them.
    pub fn open(path: &Path, resume_epoch: Option<usize>) -> std::io::Result<Self> {
        let mut kept = Vec::new();
        let (mut wall_offset, mut skipped_total, mut nan_events_total, mut curve) = (0.0, 0, 0, Vec::new());
        if let (Some(start), Ok(text)) = (resume_epoch, std::fs::read_to_string(path)) {
            for line in text.lines().skip(1) {
                let f: Vec<&str> = line.split(',').collect();
                if f.len() != COLUMNS.len() {
                    continue;
                }
                let num = |i: usize| f[i].parse::<f64>().ok();
                if num(0).is_none_or(|e| e as usize >= start) {
                    continue;
                }
                wall_offset = num(2).unwrap_or(wall_offset);
                skipped_total = num(13).map_or(skipped_total, |v| v as usize);
                nan_events_total = num(14).map_or(nan_events_total, |v| v as usize);
                if let (Some(s), Some(r)) = (num(1), num(3)) {
                    curve.push((s, r));
                }
                kept.push(line.to_string());
            }
        }
        let mut file = std::fs::File::create(path)?;
        writeln!(file, "{}", COLUMNS.join(","))?;
        for line in kept {
            writeln!(file, "{line}")?;
        }
        file.flush()?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            wall_offset,
            skipped_total,
            nan_events_total,
            curve,
            tensorboard: None,
        })
    }

    /// Also writes each row's numbers as TensorBoard scalars `train/<column>` at step = env
    /// steps, into a new event file in `dir`.
    pub fn with_tensorboard(mut self, dir: &Path) -> std::io::Result<Self> {
        self.tensorboard = Some(EventWriter::create(dir)?);
        Ok(self)
    }

    /// The TensorBoard event file, if any.
    pub fn tensorboard_path(&self) -> Option<&Path> {
        self.tensorboard.as_ref().map(|t| t.path())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends epoch `s`'s row; `env_steps` counts the steps after it, `wall_s` the seconds of
    /// this process so far.
    pub fn write(&mut self, s: &EpochStats, env_steps: u64, wall_s: f64, env_steps_per_s: f64) -> std::io::Result<()> {
        self.skipped_total += s.skipped as usize;
        self.nan_events_total += s.nan_events.len();
        if let Some(r) = s.episode_return {
            self.curve.push((env_steps as f64, r));
        }
        let w = s.wall_s.max(1e-12);
        let row = [
            s.epoch.to_string(),
            env_steps.to_string(),
            format!("{:.3}", self.wall_offset + wall_s),
            opt(s.episode_return),
            opt(s.episode_length),
            s.episodes.to_string(),
            format!("{}", s.actor_loss),
            format!("{}", s.critic_loss),
            format!("{}", s.grad_norm),
            format!("{}", s.alpha),
            format!("{}", s.mean_entropy),
            (s.skipped as u8).to_string(),
            s.nan_events.len().to_string(),
            self.skipped_total.to_string(),
            self.nan_events_total.to_string(),
            format!("{env_steps_per_s:.1}"),
            format!("{:.4}", s.sim_forward_s / w),
            format!("{:.4}", s.adjoint_s / w),
            format!("{:.4}", s.tch_s() / w),
            format!("{}", s.step_reward),
        ];
        writeln!(self.file, "{}", row.join(","))?;
        self.file.flush()?;
        if let Some(tb) = &mut self.tensorboard {
            // The row's numbers (empty cells, e.g. no finished episode, are left out).
            let tags: Vec<String> = COLUMNS.iter().map(|c| format!("train/{c}")).collect();
            let scalars: Vec<(&str, f64)> = tags
                .iter()
                .zip(&row)
                .skip(2)
                .filter_map(|(t, v)| v.parse::<f64>().ok().map(|v| (t.as_str(), v)))
                .collect();
            tb.scalars(env_steps as i64, &scalars)?;
        }
        Ok(())
    }
}

/// The header of `NanLog`.
pub const NAN_COLUMNS: &[&str] = &["epoch", "step", "env", "system", "column"];

/// Per-event log of NaN/inf isolations (`nan_events.csv` next to `log.csv`): which system
/// produced the non-finite value in which env and step, so a run that is not watched keeps
/// the trace (the CSV row of the epoch only counts them).
#[derive(Debug)]
pub struct NanLog {
    path: PathBuf,
    file: std::fs::File,
}

impl NanLog {
    /// Creates `path` (header only), or with `resume_epoch = Some(e)` keeps the rows of epochs
    /// < e of an existing log and appends after them.
    pub fn open(path: &Path, resume_epoch: Option<usize>) -> std::io::Result<Self> {
        let mut kept = Vec::new();
        if let (Some(start), Ok(text)) = (resume_epoch, std::fs::read_to_string(path)) {
            for line in text.lines().skip(1) {
                let epoch = line.split(',').next().and_then(|e| e.parse::<usize>().ok());
                if epoch.is_some_and(|e| e < start) && line.split(',').count() == NAN_COLUMNS.len() {
                    kept.push(line.to_string());
                }
            }
        }
        let mut file = std::fs::File::create(path)?;
        writeln!(file, "{}", NAN_COLUMNS.join(","))?;
        for line in kept {
            writeln!(file, "{line}")?;
        }
        file.flush()?;
        Ok(Self { path: path.to_path_buf(), file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the NaN events of epoch `s` (nothing if it had none).
    pub fn write(&mut self, s: &EpochStats) -> std::io::Result<()> {
        // Names never hold commas today; keep the columns aligned if one ever does.
        let field = |x: &str| x.replace(',', ";");
        for ev in &s.nan_events {
            writeln!(self.file, "{},{},{},{},{}", s.epoch, ev.step, ev.env, field(&ev.system), field(&ev.column))?;
        }
        self.file.flush()
    }
}

/// Mean and 95% confidence half-width (Student t with n − 1 degrees of freedom) of `xs`.
/// The half-width is 0 for fewer than two samples.
pub fn mean_ci95(xs: &[f64]) -> (f64, f64) {
    let n = xs.len();
    if n == 0 {
        return (f64::NAN, 0.0);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, t_quantile_975(n - 1) * (var / n as f64).sqrt())
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom: exact table values to 30,
/// then the Cornish–Fisher expansion around the normal quantile (error < 1e-4 there).
pub fn t_quantile_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139, 2.200985,
        2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873,
        2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272,
    ];
    if df == 0 {
        return f64::INFINITY;
    }
    if df <= TABLE.len() {
        return TABLE[df - 1];
    }
    let z: f64 = 1.959963984540054;
    let v = df as f64;
    let (z3, z5, z7) = (z.powi(3), z.powi(5), z.powi(7));
    z + (z3 + z) / (4.0 * v)
        + (5.0 * z5 + 16.0 * z3 + 3.0 * z) / (96.0 * v * v)
        + (3.0 * z7 + 19.0 * z5 + 17.0 * z3 - 15.0 * z) / (384.0 * v * v * v)
}

/// System fonts tried for plot text (DejaVu/Liberation are in most Debian/Ubuntu images).
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers the first readable font of `FONT_PATHS` with plotters once; false if none.
fn font_available() -> bool {
    static FONT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FONT.get_or_init(|| {
        FONT_PATHS.iter().any(|p| {
            std::fs::read(p).ok().is_some_and(|bytes| {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes).is_ok()
            })
        })
    })
}

/// Error of `plot_returns`.
#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot draw the plot: {message}")]
pub struct PlotError {
    pub path: PathBuf,
    pub message: String,
}

/// Draws episode return vs env steps (`curve`, as `CsvLog::curve`) into a 960×600 PNG at `path`.
/// Returns whether text (title, axis labels) was drawn.
pub fn plot_returns(path: &Path, title: &str, curve: &[(f64, f64)]) -> Result<bool, PlotError> {
    use plotters::prelude::*;
    let err = |e: &dyn std::fmt::Display| PlotError { path: path.to_path_buf(), message: e.to_string() };
    let text = font_available();
    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (x_max, y_min, y_max) = curve
        .iter()
        .fold((1.0f64, f64::INFINITY, f64::NEG_INFINITY), |(x, lo, hi), &(s, r)| (x.max(s), lo.min(r), hi.max(r)));
    let (y_min, y_max) = if y_min.is_finite() { (y_min, y_max) } else { (0.0, 1.0) };
    let pad = ((y_max - y_min) * 0.05).max(1e-3);
    let mut builder = ChartBuilder::on(&root);
    builder.margin(20);
    if text {
        builder.caption(title, ("sans-serif", 24)).x_label_area_size(45).y_label_area_size(70);
    }
    let mut chart = builder.build_cartesian_2d(0.0..x_max, (y_min - pad)..(y_max + pad)).map_err(|e| err(&e))?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc("env steps").y_desc("episode return").label_style(("sans-serif", 14));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| err(&e))?;
    chart.draw_series(LineSeries::new(curve.iter().copied(), BLUE.stroke_width(2))).map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_the_table_and_the_normal_limit() {
        assert!((t_quantile_975(1) - 12.706205).abs() < 1e-6);
        // Beyond the table: scipy.stats.t.ppf(0.975, 40) = 2.021075, (127) = 1.978819.
        assert!((t_quantile_975(40) - 2.021075).abs() < 1e-4, "{}", t_quantile_975(40));
        assert!((t_quantile_975(127) - 1.978819).abs() < 1e-4, "{}", t_quantile_975(127));
        assert!((t_quantile_975(1_000_000) - 1.959964).abs() < 1e-5);
    }

    #[test]
    fn ci_of_known_samples() {
        // n = 4, mean 2.5, s² = 5/3: half-width t(3)·√(5/12) = 3.182446·0.645497 = 2.054260.
        let (m, h) = mean_ci95(&[1.0, 2.0, 3.0, 4.0]);
        assert!((m - 2.5).abs() < 1e-12 && (h - 2.054260).abs() < 1e-5, "{m} ± {h}");
        assert_eq!(mean_ci95(&[3.0]), (3.0, 0.0));
    }
}
