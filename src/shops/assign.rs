//! Which variant of an experiment a conversation sees: a stable hash of shop, experiment and
//! conversation id, mapped onto the variants' cumulative shares.
//!
//! Stable across processes, instances and releases (FNV-1a, then the SplitMix64 finaliser so
//! that ids differing in one character land far apart): a conversation keeps its variant for
//! its lifetime without anything stored, and an outcome reported later is attributed to the
//! same variant by the same computation. Renaming the experiment reshuffles everyone, on
//! purpose: a new name is a new experiment.

use super::{Experiment, Variant};

/// A point in [0, 1) fixed by `(shop_id, experiment, conversation_id)`.
pub fn bucket(shop_id: &str, experiment: &str, conversation_id: &str) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    // A separator byte no id may contain, so ("ab", "c") and ("a", "bc") differ.
    for part in [shop_id, experiment, conversation_id] {
        for &b in part.as_bytes().iter().chain(&[0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    // SplitMix64's finaliser: every input bit reaches every output bit.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    // The top 53 bits: exactly representable, uniform on [0, 1).
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The variant a conversation sees; `None` only for an experiment without variants (which
/// `Profile::check` refuses, but a table edited by hand may hold).
pub fn assign<'e>(
    shop_id: &str,
    experiment: &'e Experiment,
    conversation_id: &str,
) -> Option<&'e Variant> {
    let point = bucket(shop_id, &experiment.name, conversation_id);
    let mut upto = 0.0;
    for variant in &experiment.variants {
        upto += variant.share;
        if point < upto {
            return Some(variant);
        }
    }
    // Shares sum to 1 within rounding: a point past the last sum belongs to the last variant.
    experiment.variants.last()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn experiment(shares: &[f64]) -> Experiment {
        Experiment {
            name: "deal-threshold".into(),
            variants: shares
                .iter()
                .enumerate()
                .map(|(i, &share)| Variant {
                    name: format!("v{i}"),
                    thresholds: BTreeMap::new(),
                    share,
                })
                .collect(),
        }
    }

    /// `bucket("shop-1", "deal-threshold", "conv-1")` as first computed.
    const PINNED: f64 = 0.26494191310373094;

    #[test]
    fn a_conversation_keeps_its_variant() {
        let e = experiment(&[0.5, 0.5]);
        for i in 0..1_000 {
            let id = format!("conv-{i}");
            let first = assign("shop-1", &e, &id).unwrap().name.clone();
            for _ in 0..3 {
                assert_eq!(assign("shop-1", &e, &id).unwrap().name, first);
            }
        }
        // Fixed values: a change to the hash would move live conversations between variants.
        assert_eq!(bucket("shop-1", "deal-threshold", "conv-1"), PINNED);
        assert_ne!(
            bucket("shop-1", "deal-threshold", "conv-1"),
            bucket("shop-1", "deal-threshold", "conv-2")
        );
        assert_ne!(bucket("ab", "c", "x"), bucket("a", "bc", "x"));
    }

    /// Pearson's chi-square over 40,000 sequential ids, against the shares: the statistic
    /// stays under the 0.999 quantile of its distribution (3 degrees of freedom: 16.27).
    #[test]
    fn variants_get_their_shares_uniformly() {
        let shares = [0.4, 0.3, 0.2, 0.1];
        let e = experiment(&shares);
        let n = 40_000;
        let mut counts = [0usize; 4];
        for i in 0..n {
            let v = assign("shop-9", &e, &format!("c{i}")).unwrap();
            counts[v.name[1..].parse::<usize>().unwrap()] += 1;
        }
        let chi2: f64 = counts
            .iter()
            .zip(shares)
            .map(|(&c, s)| {
                let expected = s * n as f64;
                (c as f64 - expected).powi(2) / expected
            })
            .sum();
        assert!(chi2 < 16.27, "counts {counts:?}, chi-square {chi2}");
        // And the points themselves: ten equal bins of [0, 1), 9 degrees of freedom (27.88).
        let mut bins = [0usize; 10];
        for i in 0..n {
            bins[(bucket("s", "e", &format!("conversation-{i}")) * 10.0) as usize] += 1;
        }
        let expected = n as f64 / 10.0;
        let chi2: f64 = bins
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 27.88, "bins {bins:?}, chi-square {chi2}");
    }

    #[test]
    fn shops_and_experiments_are_assigned_independently() {
        let e = experiment(&[0.5, 0.5]);
        let n = 10_000;
        let same = (0..n)
            .filter(|i| {
                let id = format!("c{i}");
                assign("shop-a", &e, &id).unwrap().name == assign("shop-b", &e, &id).unwrap().name
            })
            .count();
        // Independent halves agree half the time: 5,000 +- 4 standard deviations (200).
        assert!((4_800..=5_200).contains(&same), "{same} of {n} agree");
    }
}
