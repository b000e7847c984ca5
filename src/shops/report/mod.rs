//! The experiment report: per variant, conversations, tags selected per conversation,
//! conversion (and handoff and abandonment) rates and revenue per conversation with 95%
//! intervals, and each variant's difference against the control with its interval. Pure:
//! the records in, the report out; no I/O, no clock. `tagbeez experiment-report` prints
//! [`render_table`]; `GET /shops/{shop_id}/experiments/{name}` returns the [`Report`] as JSON.
//!
//! Nothing here promotes a variant: the report informs a person, who changes the profile.
//!
//! # Which conversation counts where
//!
//! - A conversation belongs to the variant of its exposure. A second exposure of the same
//!   conversation naming the same variant adds its tags; one naming another variant is
//!   `unattributed`.
//! - An outcome whose conversation has an exposure counts under the exposure's variant,
//!   whatever variant the outcome names.
//! - An outcome whose conversation has no exposure counts under the outcome's own `variant`
//!   and adds a conversation to it (that conversation has no tag count: see below). When
//!   several such outcomes of one conversation name different variants, the first one
//!   (in input order) decides; the others are `unattributed`.
//! - Outcomes naming no variant, a variant this experiment does not have, or another
//!   experiment, and exposures naming a variant this experiment does not have, are counted
//!   in `unattributed` and otherwise ignored (as are the outcomes of such a conversation).
//! - An outcome id seen twice is counted once (`duplicates` counts the others).
//! - Every variant of the experiment appears, with zero conversations if need be.
//!
//! # The statistics (z = 1.959964, two-sided 95%)
//!
//! - `tags_per_conversation`: the mean of `tags_selected` over the variant's **exposed**
//!   conversations only (a conversation known only from an outcome has no tag count), with
//!   a normal interval: mean ± z · s / √n, s the sample standard deviation (n - 1).
//! - `conversion_rate`: the share of the variant's conversations with at least one
//!   `purchase` outcome, with the Wilson score interval. `handoff_rate` and
//!   `abandonment_rate` likewise for `handoff` and `abandoned`. A conversation can count in
//!   more than one of them.
//! - `revenue_per_conversation`, per currency: each conversation's sum of purchase values in
//!   that currency (0 for a conversation without one), averaged over **all** the variant's
//!   conversations, with a normal interval (mean ± z · s / √n). Every currency seen in any
//!   variant appears in every variant. A value without a currency counts under `XXX` (ISO
//!   4217's "no currency"); currency codes are trimmed and upper-cased. A purchase without
//!   a value counts as a conversion and adds no revenue. A value that is negative, NaN or
//!   infinite is not added (the purchase still counts as a conversion) and is counted in
//!   `skipped`; values of handoff and abandoned outcomes are ignored.
//! - `vs_control` (every variant but the control): variant minus control. Conversion rate:
//!   Newcombe's hybrid score interval (method 10 of Newcombe 1998, from the two Wilson
//!   intervals). Tags and revenue per conversation: the unpooled (Welch) normal interval,
//!   d ± z · √(s₁²/n₁ + s₂²/n₂).
//! - An [`Estimate`] whose value is undefined (no conversations) has `value`, `low` and
//!   `high` all `null`; one whose interval is undefined (a mean over one conversation, or a
//!   difference where either side has fewer than two) has only `value`. Nothing is ever NaN
//!   or infinite: a non-finite result is `null`.
//!
//! The intervals are per comparison: with several variants, some interval excludes 0 by
//! chance more often than one time in twenty.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;
use utoipa::ToSchema;

use super::{Experiment, Exposure, Outcome, OutcomeKind};

/// The two-sided 95% normal quantile.
pub const Z95: f64 = 1.959964;

/// The currency of a purchase value that names none (ISO 4217 "no currency").
pub const NO_CURRENCY: &str = "XXX";

/// What every report says, for the person reading it.
pub const NOTE: &str = "Nothing is promoted automatically: a person reads this report and \
changes the shop's profile. Intervals are 95%; a difference whose interval contains 0 is no \
difference detectable at 95%. With several variants, expect some interval to exclude 0 by \
chance more often than 1 in 20.";

/// A point estimate and its 95% interval. `value` is `null` when it is undefined (no
/// conversations); `low` and `high` are `null` when the interval is (too few conversations).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, ToSchema)]
#[schema(as = ExperimentEstimate)]
pub struct Estimate {
    pub value: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

/// One variant of the report. Rates are proportions in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = ExperimentVariantReport)]
pub struct VariantReport {
    /// The variant's name.
    pub name: String,
    /// Whether it is the control (the experiment's first variant).
    pub control: bool,
    /// Its conversations: exposed ones, and those known only from an outcome naming it.
    pub conversations: u64,
    /// Its conversations with an exposure: the base of `tags_per_conversation`.
    pub exposed: u64,
    /// Conversations with at least one purchase, handoff, abandoned outcome.
    pub purchases: u64,
    pub handoffs: u64,
    pub abandoned: u64,
    /// Mean tags selected per exposed conversation (normal interval).
    pub tags_per_conversation: Estimate,
    /// Share of conversations with a purchase (Wilson score interval).
    pub conversion_rate: Estimate,
    /// Share of conversations with a handoff (Wilson score interval).
    pub handoff_rate: Estimate,
    /// Share of conversations abandoned (Wilson score interval).
    pub abandonment_rate: Estimate,
    /// Per currency: purchase value per conversation, over all its conversations (normal
    /// interval).
    pub revenue_per_conversation: BTreeMap<String, Estimate>,
    /// This variant minus the control; absent for the control.
    pub vs_control: Option<Difference>,
}

/// A variant minus the control.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = ExperimentDifference)]
pub struct Difference {
    /// Conversion rate difference (Newcombe's hybrid score interval).
    pub conversion_rate: Estimate,
    /// Tags per exposed conversation difference (unpooled normal interval).
    pub tags_per_conversation: Estimate,
    /// Per currency: revenue per conversation difference (unpooled normal interval).
    pub revenue_per_conversation: BTreeMap<String, Estimate>,
}

/// The report of one experiment.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = ExperimentReport)]
pub struct Report {
    /// The experiment's name.
    pub name: String,
    /// The control variant's name (the first variant).
    pub control: String,
    /// Every variant, in the experiment's order, the control first.
    pub variants: Vec<VariantReport>,
    /// Exposures and outcomes that name no variant of this experiment (or another
    /// experiment), or belong to a conversation that does not: not counted anywhere else.
    pub unattributed: u64,
    /// Purchase values not added to revenue: negative, NaN or infinite.
    pub skipped: u64,
    /// Outcomes whose id was already seen: counted once.
    pub duplicates: u64,
    /// How to read this report.
    pub note: String,
}

/// One attributed conversation.
#[derive(Default)]
struct Conversation {
    variant: usize,
    tags: Option<u64>,
    purchase: bool,
    handoff: bool,
    abandoned: bool,
    revenue: BTreeMap<String, f64>,
}

/// The report of `experiment` over its records. Never panics, whatever the records hold.
pub fn report(experiment: &Experiment, exposures: &[Exposure], outcomes: &[Outcome]) -> Report {
    // Variant names, in order, each once (a stored experiment has unique names; be safe).
    let mut names: Vec<&str> = Vec::new();
    for v in &experiment.variants {
        if !names.contains(&v.name.as_str()) {
            names.push(&v.name);
        }
    }
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();

    let mut unattributed = 0u64;
    let mut skipped = 0u64;
    let mut duplicates = 0u64;
    let mut conversations: BTreeMap<&str, Conversation> = BTreeMap::new();
    // Conversations exposed under a variant this experiment does not have.
    let mut foreign: HashSet<&str> = HashSet::new();

    for e in exposures {
        let id = e.conversation_id.as_str();
        match (index.get(e.variant.as_str()), conversations.get_mut(id)) {
            (Some(&v), Some(c)) if c.variant == v => {
                c.tags = Some(c.tags.unwrap_or(0).saturating_add(e.tags_selected));
            }
            (Some(&v), None) if !foreign.contains(id) => {
                conversations.insert(
                    id,
                    Conversation {
                        variant: v,
                        tags: Some(e.tags_selected),
                        ..Conversation::default()
                    },
                );
            }
            (None, None) => {
                foreign.insert(id);
                unattributed += 1;
            }
            _ => unattributed += 1,
        }
    }

    let mut seen: HashSet<&str> = HashSet::new();
    for o in outcomes {
        if !seen.insert(o.outcome_id.as_str()) {
            duplicates += 1;
            continue;
        }
        if o.experiment
            .as_deref()
            .is_some_and(|e| e != experiment.name)
        {
            unattributed += 1;
            continue;
        }
        let id = o.conversation_id.as_str();
        let named = o.variant.as_deref().and_then(|v| index.get(v)).copied();
        let conversation = match conversations.get_mut(id) {
            Some(c) if c.tags.is_some() || Some(c.variant) == named => c,
            Some(_) => {
                // Known only from outcomes, under another variant.
                unattributed += 1;
                continue;
            }
            None => match named {
                Some(v) if !foreign.contains(id) => {
                    conversations.entry(id).or_insert_with(|| Conversation {
                        variant: v,
                        ..Conversation::default()
                    })
                }
                _ => {
                    unattributed += 1;
                    continue;
                }
            },
        };
        match o.outcome {
            OutcomeKind::Purchase => {
                conversation.purchase = true;
                if let Some(value) = o.value {
                    if value.is_finite() && value >= 0.0 {
                        let currency = currency(o.currency.as_deref());
                        *conversation.revenue.entry(currency).or_insert(0.0) += value;
                    } else {
                        skipped += 1;
                    }
                }
            }
            OutcomeKind::Handoff => conversation.handoff = true,
            OutcomeKind::Abandoned => conversation.abandoned = true,
        }
    }

    let currencies: BTreeSet<&str> = conversations
        .values()
        .flat_map(|c| c.revenue.keys().map(String::as_str))
        .collect();

    // Per variant: the samples the statistics are computed from.
    struct Samples {
        conversations: u64,
        purchases: u64,
        handoffs: u64,
        abandoned: u64,
        tags: Vec<f64>,
        revenue: BTreeMap<String, Vec<f64>>,
    }
    let mut samples: Vec<Samples> = names
        .iter()
        .map(|_| Samples {
            conversations: 0,
            purchases: 0,
            handoffs: 0,
            abandoned: 0,
            tags: Vec::new(),
            revenue: currencies
                .iter()
                .map(|c| (c.to_string(), Vec::new()))
                .collect(),
        })
        .collect();
    for c in conversations.values() {
        let Some(s) = samples.get_mut(c.variant) else {
            continue;
        };
        s.conversations += 1;
        s.purchases += u64::from(c.purchase);
        s.handoffs += u64::from(c.handoff);
        s.abandoned += u64::from(c.abandoned);
        if let Some(t) = c.tags {
            s.tags.push(t as f64);
        }
        for (currency, values) in &mut s.revenue {
            values.push(c.revenue.get(currency).copied().unwrap_or(0.0));
        }
    }

    let control = samples.first();
    let variants = names
        .iter()
        .zip(&samples)
        .enumerate()
        .map(|(i, (name, s))| VariantReport {
            name: name.to_string(),
            control: i == 0,
            conversations: s.conversations,
            exposed: s.tags.len() as u64,
            purchases: s.purchases,
            handoffs: s.handoffs,
            abandoned: s.abandoned,
            tags_per_conversation: mean(&s.tags),
            conversion_rate: wilson(s.purchases, s.conversations),
            handoff_rate: wilson(s.handoffs, s.conversations),
            abandonment_rate: wilson(s.abandoned, s.conversations),
            revenue_per_conversation: s
                .revenue
                .iter()
                .map(|(c, values)| (c.clone(), mean(values)))
                .collect(),
            vs_control: control.filter(|_| i > 0).map(|k| Difference {
                conversion_rate: newcombe(
                    s.purchases,
                    s.conversations,
                    k.purchases,
                    k.conversations,
                ),
                tags_per_conversation: welch(&s.tags, &k.tags),
                revenue_per_conversation: s
                    .revenue
                    .iter()
                    .map(|(c, values)| {
                        let empty = Vec::new();
                        let base = k.revenue.get(c).unwrap_or(&empty);
                        (c.clone(), welch(values, base))
                    })
                    .collect(),
            }),
        })
        .collect();

    Report {
        name: experiment.name.clone(),
        control: names.first().map(|n| n.to_string()).unwrap_or_default(),
        variants,
        unattributed,
        skipped,
        duplicates,
        note: NOTE.to_owned(),
    }
}

mod stats;
mod table;
#[cfg(test)]
mod tests;

use stats::*;
pub use table::render_table;
