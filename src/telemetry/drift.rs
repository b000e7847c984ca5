//! The drift metrics `src/drift` records for each scored message (docs/drift.md): the
//! calibrated probabilities in ten fixed bins, the selection rate of each tag, the no-tag rate,
//! and the population stability index when it is recomputed.
//!
//! Series, in both sinks: `tagbeez_probability_bin{tag, bin}`, `tagbeez_selection_rate{tag}`,
//! `tagbeez_no_tag_rate{}` and `tagbeez_psi{tag}`; a message whose request names a shop (and
//! `DRIFT_BY_SHOP=on`) goes to the same series with a `shop_id` label instead, so that
//! Prometheus sums over `shop_id` never count a message twice. In EMF a shop's message is
//! *also* recorded without the shop: there each label set is one dimension set, and the
//! shop-less ones (`[tag, bin]`, `[tag]`, `[]`) are all traffic, the series the anomaly alarms
//! (`names::TAG_ROLLUPS`, `names::ROLLUPS`) and the dashboard read.
//!
//! The rates are histograms of 0/1 values, so CloudWatch's `Average` and Prometheus'
//! `_sum / _count` are the rates. An EMF document holds at most 100 values per metric and the
//! EMF sink drops (and logs) any value past 100 unflushed ones, so in EMF only the first
//! `EMF_RATE_VALUES` messages of an invocation give rate values (a bulk batch holds up to
//! 1,000); the bins and the PSI count every message. Prometheus has no such cap.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use metrics::{SharedString, Unit};

use super::{emf, names, on};

/// The ten bins' label values: bin `i` holds probabilities in [i/10, (i+1)/10), the last one
/// [0.9, 1.0] (`drift::bin`).
pub const BIN_LABELS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// The rate values one EMF flush may hold per series (the EMF document's limit).
pub const EMF_RATE_VALUES: usize = 100;

/// Messages recorded since the last EMF flush (`flushed` resets it). Lambda runs one
/// invocation at a time per instance, so this counts the invocation's messages.
static SINCE_FLUSH: AtomicUsize = AtomicUsize::new(0);

/// The EMF lines were written: the next invocation's rates start again.
pub(super) fn flushed() {
    SINCE_FLUSH.store(0, Ordering::Relaxed);
}

/// Run `record` for each series a message goes to: with its shop when it has one, and in EMF
/// also without (the all-traffic dimension set).
fn per_series(shop: Option<&SharedString>, mut record: impl FnMut(Option<&SharedString>)) {
    record(shop);
    if shop.is_some() && emf() {
        record(None);
    }
}

/// One scored message: `bins[i]` is the bin (0-9) of tag `tags[i]`'s probability and
/// `selected[i]` whether the tag was given; `shop` when per-shop series are wanted. The
/// slices are the same length (the caller, `drift::Monitor::observe`, checks).
pub fn message(tags: &[Arc<str>], bins: &[u8], selected: &[bool], shop: Option<&str>) {
    if !on() {
        return;
    }
    let shop = shop.map(|s| SharedString::from(s.to_owned()));
    let rates = !emf() || SINCE_FLUSH.fetch_add(1, Ordering::Relaxed) < EMF_RATE_VALUES;
    for ((tag, &bin), &chosen) in tags.iter().zip(bins).zip(selected) {
        let bin = BIN_LABELS[usize::from(bin).min(BIN_LABELS.len() - 1)];
        per_series(shop.as_ref(), |shop| {
            match shop {
            Some(s) => metrics::counter!(names::PROBABILITY_BIN, "tag" => Arc::clone(tag), "bin" => bin, "shop_id" => s.clone()).increment(1),
            None => metrics::counter!(names::PROBABILITY_BIN, "tag" => Arc::clone(tag), "bin" => bin).increment(1),
        }
        });
        if rates {
            let value = if chosen { 1.0 } else { 0.0 };
            per_series(shop.as_ref(), |shop| {
                match shop {
                Some(s) => metrics::histogram!(names::SELECTION_RATE, "tag" => Arc::clone(tag), "shop_id" => s.clone()).record(value),
                None => metrics::histogram!(names::SELECTION_RATE, "tag" => Arc::clone(tag)).record(value),
            }
            });
        }
    }
    if rates {
        let value = if selected.iter().any(|&s| s) {
            0.0
        } else {
            1.0
        };
        per_series(shop.as_ref(), |shop| match shop {
            Some(s) => {
                metrics::histogram!(names::NO_TAG_RATE, "shop_id" => s.clone()).record(value)
            }
            None => metrics::histogram!(names::NO_TAG_RATE).record(value),
        });
    }
}

/// The population stability index of `tag` over the current window, just recomputed. Only
/// `[tag]`: the window is the process's, across shops.
pub fn psi(tag: &Arc<str>, value: f64) {
    if on() && value.is_finite() {
        metrics::gauge!(names::PSI, "tag" => Arc::clone(tag)).set(value);
    }
}

/// Units (EMF) and help texts (Prometheus) of the drift metrics.
pub(super) fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        names::PROBABILITY_BIN,
        Unit::Count,
        "Calibrated probabilities per tag in ten fixed bins (bin 0: [0, 0.1), ... bin 9: [0.9, 1])"
    );
    describe_histogram!(
        names::SELECTION_RATE,
        "1 if a message got the tag, else 0: the mean is the tag's selection rate"
    );
    describe_histogram!(
        names::NO_TAG_RATE,
        "1 if a message got no tag, else 0: the mean is the no-tag rate"
    );
    describe_gauge!(
        names::PSI,
        "Population stability index of a tag's probabilities, sliding window vs the validation baseline"
    );
}
