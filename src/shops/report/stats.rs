//! The estimators of the report: means, Wilson and Newcombe intervals, Welch's difference.

use super::{Estimate, NO_CURRENCY, Z95};

pub(super) fn currency(code: Option<&str>) -> String {
    match code.map(str::trim) {
        Some(c) if !c.is_empty() => c.to_ascii_uppercase(),
        _ => NO_CURRENCY.to_owned(),
    }
}

/// `x` when finite.
pub(super) fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

pub(super) fn estimate(value: f64, interval: Option<(f64, f64)>) -> Estimate {
    let value = finite(value);
    let (low, high) = match (value, interval) {
        (Some(_), Some((l, h))) => (finite(l), finite(h)),
        _ => (None, None),
    };
    // Both ends or neither.
    let (low, high) = match (low, high) {
        (Some(l), Some(h)) => (Some(l), Some(h)),
        _ => (None, None),
    };
    Estimate { value, low, high }
}

/// Mean and sample variance (n - 1), two-pass; the variance is `None` below two values.
pub(super) fn moments(xs: &[f64]) -> Option<(f64, Option<f64>)> {
    if xs.is_empty() {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let variance = (xs.len() >= 2)
        .then(|| xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0));
    Some((mean, variance))
}

/// Mean with the normal interval mean ± z · s / √n.
pub(super) fn mean(xs: &[f64]) -> Estimate {
    match moments(xs) {
        None => Estimate::default(),
        Some((m, v)) => {
            let half = v.map(|v| Z95 * (v / xs.len() as f64).sqrt());
            estimate(m, half.map(|h| (m - h, m + h)))
        }
    }
}

/// The Wilson score interval of `x` successes in `n`, or `None` when `n` is 0.
pub(super) fn wilson_interval(x: u64, n: u64) -> Option<(f64, f64, f64)> {
    if n == 0 {
        return None;
    }
    let (x, n) = (x.min(n) as f64, n as f64);
    let p = x / n;
    let z2 = Z95 * Z95;
    let denominator = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denominator;
    let half = Z95 / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // Clamp the rounding: the interval is within [0, 1] and holds p.
    Some((
        p,
        (center - half).clamp(0.0, p),
        (center + half).clamp(p, 1.0),
    ))
}

/// A proportion with its Wilson score interval.
pub(super) fn wilson(x: u64, n: u64) -> Estimate {
    match wilson_interval(x, n) {
        None => Estimate::default(),
        Some((p, l, h)) => estimate(p, Some((l, h))),
    }
}

/// `x1/n1 - x2/n2` with Newcombe's hybrid score interval (method 10):
/// d - √((p1 - l1)² + (u2 - p2)²) to d + √((u1 - p1)² + (p2 - l2)²).
pub(super) fn newcombe(x1: u64, n1: u64, x2: u64, n2: u64) -> Estimate {
    match (wilson_interval(x1, n1), wilson_interval(x2, n2)) {
        (Some((p1, l1, u1)), Some((p2, l2, u2))) => {
            let d = p1 - p2;
            let delta = ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt();
            let epsilon = ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt();
            estimate(d, Some((d - delta, d + epsilon)))
        }
        _ => Estimate::default(),
    }
}

/// `mean(a) - mean(b)` with the unpooled normal interval d ± z · √(s_a²/n_a + s_b²/n_b).
pub(super) fn welch(a: &[f64], b: &[f64]) -> Estimate {
    match (moments(a), moments(b)) {
        (Some((ma, va)), Some((mb, vb))) => {
            let d = ma - mb;
            let half = va
                .zip(vb)
                .map(|(va, vb)| Z95 * (va / a.len() as f64 + vb / b.len() as f64).sqrt());
            estimate(d, half.map(|h| (d - h, d + h)))
        }
        _ => Estimate::default(),
    }
}
