//! Value parsers for flags whose type alone does not say what is valid (counts of at least one,
//! chains of at least two links, positive finite rates). clap turns their messages into its usual
//! `invalid value '…' for '--flag'` errors.

/// An integer ≥ 1 (env counts, threads, steps, cases).
pub fn positive(s: &str) -> Result<usize, String> {
    at_least(s, 1)
}

/// An integer ≥ 2 (particles in a chain).
pub fn links(s: &str) -> Result<usize, String> {
    at_least(s, 2)
}

fn at_least(s: &str, min: usize) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|e| format!("`{s}` is not a whole number: {e}"))?;
    if n < min {
        return Err(format!("must be at least {min}"));
    }
    Ok(n)
}

/// A finite number > 0 (learning rates).
#[cfg_attr(not(feature = "learn"), allow(dead_code))] // used by `train`
pub fn positive_f64(s: &str) -> Result<f64, String> {
    let x: f64 = s.trim().parse().map_err(|e| format!("`{s}` is not a number: {e}"))?;
    if !(x.is_finite() && x > 0.0) {
        return Err("must be a finite number greater than 0".into());
    }
    Ok(x)
}

/// The flag spelling of a `ValueEnum` value (`gd`, `final`, `on`), for report headers.
pub fn flag_name<T: clap::ValueEnum>(v: &T) -> String {
    v.to_possible_value().map_or_else(String::new, |p| p.get_name().to_string())
}
