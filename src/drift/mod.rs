//! Drift you can see (docs/drift.md): the distribution of the model's calibrated probabilities
//! per tag, and how far the recent traffic's has moved from the validation baseline shipped
//! with the model.
//!
//! Every scored message goes through `Monitor::observe`, which records the drift metrics
//! (`telemetry::drift`: ten fixed bins per tag, each tag's selection rate, the no-tag rate) and
//! keeps the bins of the last `window` messages in a ring. From that window the population
//! stability index (PSI) of each tag against the `Baseline` is
//!
//! ```text
//! PSI = Σ_bins (a − e) · ln(a / e)
//! ```
//!
//! with `a` the window's share of the tag's probabilities in a bin, `e` the baseline's, both
//! raised to at least `FLOOR` (1e-4) so that an empty bin gives no `ln 0` (the floored shares
//! are not renormalised: a bin empty on both sides adds exactly 0). The usual reading: below
//! 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a significant one.
//!
//! The PSI is recomputed, and exported as the `tagbeez_psi` gauge, every `PSI_EVERY` (50)
//! messages once the window holds `MIN_MESSAGES` (100, or the whole window when it is
//! smaller): with ten bins, fewer messages give a noisy index, and recomputing it on every
//! message would only repeat nearly the same number. `Monitor::psi` computes it on demand.
//!
//! The window is the process's (one Lambda instance's), across shops: PSI is about the model's
//! inputs as a whole; the per-shop view is the bins and rates with a `shop_id`.

mod baseline;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use thiserror::Error;

pub use baseline::Baseline;

use crate::telemetry;

/// Fixed probability bins: bin `i` holds [i/10, (i+1)/10), the last one [0.9, 1.0].
pub const BINS: usize = 10;
/// The least share a bin counts with in the PSI (both sides), so an empty bin gives no `ln 0`.
pub const FLOOR: f64 = 1e-4;
/// Messages the window must hold before a PSI is given (or the whole window, if smaller).
pub const MIN_MESSAGES: usize = 100;
/// Messages between two recomputations (and exports) of the PSI.
pub const PSI_EVERY: usize = 50;

#[derive(Debug, Error, PartialEq)]
pub enum DriftError {
    /// The baseline file is not one `model/pipeline/drift.py` writes.
    #[error("drift baseline: {0}")]
    Baseline(String),
    /// The baseline was measured on a model with other tags.
    #[error("drift baseline: its tags {baseline:?} are not the model's {model:?}")]
    TagMismatch {
        model: Vec<String>,
        baseline: Vec<String>,
    },
}

/// The bin of a probability. Out-of-range values are clamped into [0, 1] first (a value the
/// sigmoid cannot give, e.g. an infinity or -0.2, counts in the nearest end bin); NaN has no
/// bin (`observe` skips a message holding one).
pub fn bin(probability: f32) -> Option<u8> {
    if probability.is_nan() {
        return None;
    }
    // f32, as the model gives it and `pipeline/drift.py` bins the baseline (numpy float32).
    let scaled = (probability.clamp(0.0, 1.0) * BINS as f32).floor();
    Some((scaled as u8).min(BINS as u8 - 1))
}

/// The population stability index of `actual` against `expected` (shares per bin, each
/// raised to at least `FLOOR`): Σ (a − e) · ln(a / e). 0 for identical distributions.
pub fn population_stability_index(actual: &[f64; BINS], expected: &[f64; BINS]) -> f64 {
    actual
        .iter()
        .zip(expected)
        .map(|(&a, &e)| {
            let (a, e) = (a.max(FLOOR), e.max(FLOOR));
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// The drift monitor of one process: `Send + Sync`, shared in an `Arc` by every request.
pub struct Monitor {
    /// The model's tags in output order (shared label values: no copy per metric).
    tags: Vec<Arc<str>>,
    /// The baseline's shares per model tag, `None` for a tag the baseline lacks (`new`).
    expected: Vec<Option<[f64; BINS]>>,
    window: usize,
    by_shop: bool,
    /// Whether a malformed `observe` call has been logged at warn level yet.
    warned: AtomicBool,
    state: Mutex<Window>,
}

/// Not the window's contents: up to `DRIFT_WINDOW` × tags bytes.
impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("tags", &self.tags)
            .field("window", &self.window)
            .field("held", &self.held())
            .field("by_shop", &self.by_shop)
            .finish_non_exhaustive()
    }
}

/// The last `window` messages' bins, and their counts per tag and bin.
struct Window {
    /// A ring of `window` rows of one bin per tag.
    rows: Vec<u8>,
    /// The row the next message goes to (the oldest, once the ring is full).
    next: usize,
    /// Rows holding a message (at most `window`).
    held: usize,
    counts: Vec<[u32; BINS]>,
    /// Messages since the PSI was last recomputed.
    since_psi: usize,
}

impl Monitor {
    /// `tags`: the model's tags in output order; `baseline`: parsed from the shipped file;
    /// `window`: `DRIFT_WINDOW` messages (at least 1); `by_shop`: `DRIFT_BY_SHOP`.
    ///
    /// Baseline tags are matched by name. A model tag the baseline lacks is logged and gets no
    /// PSI (its bins and rates are still recorded); `try_new` refuses the mismatch instead.
    pub fn new(tags: &[String], baseline: Baseline, window: usize, by_shop: bool) -> Self {
        if let Err(e) = check_tags(tags, &baseline) {
            tracing::warn!(error = %e, "drift: the PSI covers only the tags the baseline has");
        }
        let expected = tags
            .iter()
            .map(|t| baseline.proportions(t).copied())
            .collect();
        let window = window.max(1);
        Self {
            tags: tags.iter().map(|t| Arc::from(t.as_str())).collect(),
            expected,
            window,
            by_shop,
            warned: AtomicBool::new(false),
            state: Mutex::new(Window {
                rows: vec![0; window * tags.len()],
                next: 0,
                held: 0,
                counts: vec![[0; BINS]; tags.len()],
                since_psi: 0,
            }),
        }
    }

    /// As `new`, but a baseline whose tags are not exactly the model's (in any order) is an
    /// error: for a caller that would rather not start than run without a PSI.
    pub fn try_new(
        tags: &[String],
        baseline: Baseline,
        window: usize,
        by_shop: bool,
    ) -> Result<Self, DriftError> {
        check_tags(tags, &baseline)?;
        Ok(Self::new(tags, baseline, window, by_shop))
    }

    /// One scored message: calibrated probabilities in tag order, and which tags were
    /// selected (same order). Records the drift metrics (with `shop_id` when given and
    /// per-shop series are on) and moves the sliding window; exports the PSI when due.
    ///
    /// Slices of the wrong length, or a NaN probability, are ignored (logged at warn level the
    /// first time, at debug after): a malformed call never panics nor skews the window.
    pub fn observe(&self, shop_id: Option<&str>, probabilities: &[f32], selected: &[bool]) {
        let width = self.tags.len();
        if probabilities.len() != width || selected.len() != width {
            return self.ignore(&format!(
                "{} probabilities and {} selections for {width} tags",
                probabilities.len(),
                selected.len()
            ));
        }
        let Some(bins) = probabilities
            .iter()
            .map(|&p| bin(p))
            .collect::<Option<Vec<u8>>>()
        else {
            return self.ignore("a NaN probability");
        };
        let psi = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.push(&bins, self.window);
            if state.held >= self.min_messages() && state.since_psi >= PSI_EVERY.min(self.window) {
                state.since_psi = 0;
                Some(self.psi_of(&state))
            } else {
                None
            }
        };
        telemetry::drift::message(
            &self.tags,
            &bins,
            selected,
            shop_id.filter(|_| self.by_shop),
        );
        for (tag, value) in self.tags.iter().zip(psi.into_iter().flatten()) {
            if let Some(value) = value {
                telemetry::drift::psi(tag, value);
            }
        }
    }

    /// The PSI per tag over the current window, in tag order: `None` until the window holds
    /// `MIN_MESSAGES` (or is full, when smaller), and for a tag the baseline lacks.
    pub fn psi(&self) -> Vec<(String, Option<f64>)> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let values = if state.held >= self.min_messages() {
            self.psi_of(&state)
        } else {
            vec![None; self.tags.len()]
        };
        self.tags
            .iter()
            .map(|t| t.to_string())
            .zip(values)
            .collect()
    }

    /// Messages in the window now (at most `window`).
    pub fn held(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .held
    }

    /// The window's size, in messages.
    pub fn window(&self) -> usize {
        self.window
    }

    fn min_messages(&self) -> usize {
        MIN_MESSAGES.min(self.window)
    }

    fn psi_of(&self, state: &Window) -> Vec<Option<f64>> {
        let held = state.held.max(1) as f64;
        self.expected
            .iter()
            .zip(&state.counts)
            .map(|(expected, counts)| {
                let expected = expected.as_ref()?;
                let actual = counts.map(|c| f64::from(c) / held);
                Some(population_stability_index(&actual, expected))
            })
            .collect()
    }

    fn ignore(&self, why: &str) {
        if self.warned.swap(true, Ordering::Relaxed) {
            tracing::debug!(why, "drift: message ignored");
        } else {
            tracing::warn!(
                why,
                "drift: message ignored (further ones are logged at debug level)"
            );
        }
    }
}

impl Window {
    /// Put one message's bins in the ring, forgetting the oldest once it is full.
    fn push(&mut self, bins: &[u8], window: usize) {
        let width = bins.len();
        let row = self.next * width..(self.next + 1) * width;
        if self.held == window {
            for (counts, &old) in self.counts.iter_mut().zip(&self.rows[row.clone()]) {
                counts[usize::from(old)] -= 1;
            }
        } else {
            self.held += 1;
        }
        for (counts, &new) in self.counts.iter_mut().zip(bins) {
            counts[usize::from(new)] += 1;
        }
        self.rows[row].copy_from_slice(bins);
        self.next = (self.next + 1) % window;
        self.since_psi += 1;
    }
}

/// The baseline must name exactly the model's tags (matched by name, in any order).
fn check_tags(tags: &[String], baseline: &Baseline) -> Result<(), DriftError> {
    let mut model: Vec<&str> = tags.iter().map(String::as_str).collect();
    let mut theirs: Vec<&str> = baseline.tags().collect();
    model.sort_unstable();
    theirs.sort_unstable();
    if model == theirs {
        Ok(())
    } else {
        Err(DriftError::TagMismatch {
            model: tags.to_vec(),
            baseline: baseline.tags().map(str::to_owned).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn baseline(per_tag: &[(&str, [f64; BINS])]) -> Baseline {
        Baseline::new(
            "test".into(),
            "validation".into(),
            100,
            per_tag.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
        )
        .unwrap()
    }

    const UNIFORM: [f64; BINS] = [0.1; BINS];

    /// All of a tag's mass in one bin.
    fn spike(bin: usize) -> [f64; BINS] {
        let mut p = [0.0; BINS];
        p[bin] = 1.0;
        p
    }

    #[test]
    fn bins_are_fixed_tenths_with_the_top_one_closed() {
        assert_eq!(bin(0.0), Some(0));
        assert_eq!(bin(0.0999), Some(0));
        assert_eq!(bin(0.1), Some(1));
        assert_eq!(bin(0.55), Some(5));
        assert_eq!(bin(0.9), Some(9));
        assert_eq!(bin(1.0), Some(9));
    }

    #[test]
    fn out_of_range_probabilities_are_clamped_and_nan_has_no_bin() {
        assert_eq!(bin(-0.2), Some(0));
        assert_eq!(bin(1.7), Some(9));
        assert_eq!(bin(f32::INFINITY), Some(9));
        assert_eq!(bin(f32::NEG_INFINITY), Some(0));
        assert_eq!(bin(f32::NAN), None);
    }

    #[test]
    fn identical_distributions_have_a_psi_of_zero() {
        assert_eq!(population_stability_index(&UNIFORM, &UNIFORM), 0.0);
        let skewed = [0.5, 0.2, 0.1, 0.1, 0.05, 0.05, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(population_stability_index(&skewed, &skewed), 0.0);
    }

    #[test]
    fn psi_matches_a_hand_computed_case() {
        // e = (0.25, 0.25, 0.25, 0.25, 0 ...), a = (0.4, 0.3, 0.2, 0.1, 0 ...):
        //   0.15 · ln(0.4/0.25) = 0.15 · ln 1.6 = 0.0705005443868603
        //   0.05 · ln(0.3/0.25) = 0.05 · ln 1.2 = 0.0091160778396977
        //  -0.05 · ln(0.2/0.25) = -0.05 · ln 0.8 = 0.0111571775657105
        //  -0.15 · ln(0.1/0.25) = -0.15 · ln 0.4 = 0.1374436097811232
        //   the six empty bins: both floored to 1e-4, (a − e) = 0: nothing
        //   PSI = 0.2282174095733918
        let e = [0.25, 0.25, 0.25, 0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let a = [0.4, 0.3, 0.2, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert!((population_stability_index(&a, &e) - 0.228_217_409_573_391_8).abs() < 1e-9);
        // A bin empty in the baseline only counts with the floor:
        // e = (0.5, 0.5, 0 ...), a = (0.5, 0.4, 0.1, 0 ...):
        //   -0.1 · ln(0.4/0.5) = 0.0223143551314210
        //   (0.1 − 1e-4) · ln(0.1/1e-4) = 0.0999 · ln 1000 = 0.6900847523703155
        //   PSI = 0.7123991075017365
        let e = [0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let a = [0.5, 0.4, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        assert!((population_stability_index(&a, &e) - 0.712_399_107_501_736_5).abs() < 1e-9);
    }

    #[test]
    fn the_window_gives_a_psi_once_it_holds_enough_messages() {
        let monitor = Monitor::new(&tags(&["A"]), baseline(&[("A", spike(2))]), 200, false);
        for _ in 0..MIN_MESSAGES - 1 {
            monitor.observe(None, &[0.25], &[false]);
        }
        assert_eq!(monitor.psi(), vec![("A".to_owned(), None)]);
        monitor.observe(None, &[0.25], &[false]);
        assert_eq!(monitor.psi(), vec![("A".to_owned(), Some(0.0))]);
    }

    #[test]
    fn the_sliding_window_forgets() {
        let window = 20;
        let monitor = Monitor::new(
            &tags(&["A", "B"]),
            baseline(&[("A", spike(1)), ("B", spike(8))]),
            window,
            false,
        );
        // Stream A: in line with the baseline.
        for _ in 0..window {
            monitor.observe(None, &[0.15, 0.85], &[false, true]);
        }
        let psi = monitor.psi();
        assert_eq!(psi[0].1, Some(0.0));
        assert_eq!(psi[1].1, Some(0.0));
        // Half a window of stream B: both in the window.
        for _ in 0..window / 2 {
            monitor.observe(None, &[0.95, 0.05], &[true, false]);
        }
        {
            let state = monitor.state.lock().unwrap();
            assert_eq!(state.counts[0][1], 10);
            assert_eq!(state.counts[0][9], 10);
        }
        // A whole window of stream B: the window holds only B.
        for _ in 0..window / 2 {
            monitor.observe(None, &[0.95, 0.05], &[true, false]);
        }
        let state = monitor.state.lock().unwrap();
        assert_eq!(state.held, window);
        let mut only_b = [[0u32; BINS]; 2];
        only_b[0][9] = window as u32;
        only_b[1][0] = window as u32;
        assert_eq!(state.counts, only_b);
        drop(state);
        // All mass moved from one bin to another: (1 − 1e-4) · ln(1e4) · 2 = 18.4188...
        let far = 2.0 * (1.0 - FLOOR) * (1.0 / FLOOR).ln();
        for (_, value) in monitor.psi() {
            assert!((value.unwrap() - far).abs() < 1e-9);
        }
    }

    #[test]
    fn a_shift_raises_the_psi_past_the_significance_line() {
        let monitor = Monitor::new(&tags(&["A"]), baseline(&[("A", UNIFORM)]), 100, true);
        for i in 0..100 {
            monitor.observe(Some("shop"), &[(i % 10) as f32 / 10.0 + 0.05], &[false]);
        }
        let stable = monitor.psi()[0].1.unwrap();
        assert!(stable < 1e-9, "{stable}");
        for _ in 0..100 {
            monitor.observe(Some("shop"), &[0.97], &[true]);
        }
        assert!(monitor.psi()[0].1.unwrap() > 0.25);
    }

    #[test]
    fn malformed_messages_are_ignored_without_panicking() {
        let monitor = Monitor::new(
            &tags(&["A", "B"]),
            baseline(&[("A", UNIFORM), ("B", UNIFORM)]),
            10,
            true,
        );
        monitor.observe(None, &[0.5], &[true, false]);
        monitor.observe(None, &[0.5, 0.5], &[true]);
        monitor.observe(None, &[], &[]);
        monitor.observe(None, &[f32::NAN, 0.5], &[false, false]);
        assert_eq!(monitor.held(), 0);
        // Infinities and out-of-range values are clamped into the end bins.
        monitor.observe(Some("s"), &[f32::INFINITY, -3.0], &[true, false]);
        monitor.observe(Some("s"), &[1.5, f32::NEG_INFINITY], &[true, false]);
        let state = monitor.state.lock().unwrap();
        assert_eq!(state.held, 2);
        assert_eq!(state.counts[0][9], 2);
        assert_eq!(state.counts[1][0], 2);
    }

    #[test]
    fn a_window_of_zero_is_one_message() {
        let monitor = Monitor::new(&tags(&["A"]), baseline(&[("A", UNIFORM)]), 0, false);
        monitor.observe(None, &[0.5], &[true]);
        monitor.observe(None, &[0.7], &[true]);
        assert_eq!((monitor.window(), monitor.held()), (1, 1));
        assert!(monitor.psi()[0].1.is_some());
    }

    #[test]
    fn baseline_tags_are_matched_by_name_and_a_mismatch_is_an_error_or_no_psi() {
        let model = tags(&["A", "B"]);
        // Another order is fine.
        let reordered = baseline(&[("B", spike(0)), ("A", spike(9))]);
        let monitor = Monitor::try_new(&model, reordered, 10, false).unwrap();
        for _ in 0..10 {
            monitor.observe(None, &[0.95, 0.05], &[true, false]);
        }
        assert_eq!(
            monitor.psi(),
            vec![("A".to_owned(), Some(0.0)), ("B".to_owned(), Some(0.0))]
        );
        // A tag missing: try_new refuses, new gives that tag no PSI.
        let partial = baseline(&[("A", UNIFORM), ("C", UNIFORM)]);
        assert_eq!(
            Monitor::try_new(&model, partial.clone(), 10, false).unwrap_err(),
            DriftError::TagMismatch {
                model: model.clone(),
                baseline: tags(&["A", "C"]),
            }
        );
        let monitor = Monitor::new(&model, partial, 10, false);
        for _ in 0..10 {
            monitor.observe(None, &[0.5, 0.5], &[true, true]);
        }
        let psi = monitor.psi();
        assert!(psi[0].1.is_some());
        assert_eq!(psi[1], ("B".to_owned(), None));
    }

    #[test]
    fn baseline_files_are_checked() {
        let good = r#"{"model_version": "v", "split": "validation", "messages": 10,
            "tags": [{"tag": "A", "proportions": [0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1]}]}"#;
        let parsed = Baseline::from_json(good.as_bytes()).unwrap();
        assert_eq!(
            (parsed.model_version(), parsed.split(), parsed.messages()),
            ("v", "validation", 10)
        );
        assert_eq!(parsed.proportions("A"), Some(&UNIFORM));
        for bad in [
            "not json",
            r#"{"model_version": "v", "split": "s", "messages": 1, "tags": []}"#,
            r#"{"model_version": "v", "split": "s", "messages": 1, "tags": [{"tag": "A", "proportions": [1.0]}]}"#,
            r#"{"model_version": "v", "split": "s", "messages": 1, "tags": [{"tag": "A", "proportions": [0.5,0.1,0,0,0,0,0,0,0,0]}]}"#,
            r#"{"model_version": "v", "split": "s", "messages": 1, "tags": [{"tag": "A", "proportions": [2,-1,0,0,0,0,0,0,0,0]}]}"#,
            r#"{"model_version": "v", "split": "s", "messages": 1, "tags": [{"tag": "A", "proportions": [1,0,0,0,0,0,0,0,0,0]}, {"tag": "A", "proportions": [1,0,0,0,0,0,0,0,0,0]}]}"#,
        ] {
            assert!(
                matches!(
                    Baseline::from_json(bad.as_bytes()),
                    Err(DriftError::Baseline(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_embedded_baseline_fits_the_embedded_model() {
        let labels = crate::classifier::Labels::from_json(
            crate::classifier::embedded::model_files().labels_json,
        )
        .unwrap();
        let baseline = Baseline::embedded().unwrap();
        assert_eq!(baseline.model_version(), labels.file.model_version);
        assert_eq!(baseline.tags().collect::<Vec<_>>(), labels.tags);
        assert!(Monitor::try_new(&labels.tags, baseline, 1000, true).is_ok());
    }

    #[test]
    fn the_monitor_is_shareable() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Monitor>();
    }
}
