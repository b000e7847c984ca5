use super::*;
use crate::shops::Variant;

fn experiment(variants: &[&str]) -> Experiment {
    Experiment {
        name: "deal-2026".into(),
        variants: variants
            .iter()
            .map(|n| Variant {
                name: (*n).into(),
                thresholds: BTreeMap::new(),
                share: 1.0 / variants.len() as f64,
            })
            .collect(),
    }
}

fn exposure(conversation: &str, variant: &str, tags: u64) -> Exposure {
    Exposure {
        conversation_id: conversation.into(),
        variant: variant.into(),
        messages: tags + 1,
        tags_selected: tags,
        first_at: 1_700_000_000,
    }
}

fn outcome(
    id: &str,
    conversation: &str,
    variant: Option<&str>,
    kind: OutcomeKind,
    value: Option<f64>,
    currency: Option<&str>,
) -> Outcome {
    Outcome {
        outcome_id: id.into(),
        shop_id: "shop-1".into(),
        conversation_id: conversation.into(),
        experiment: Some("deal-2026".into()),
        variant: variant.map(String::from),
        outcome: kind,
        value,
        currency: currency.map(String::from),
        at: 1_700_000_100,
    }
}

fn purchase(id: &str, conversation: &str, variant: &str, eur: f64) -> Outcome {
    outcome(
        id,
        conversation,
        Some(variant),
        OutcomeKind::Purchase,
        Some(eur),
        Some("EUR"),
    )
}

fn event(id: &str, conversation: &str, variant: &str, kind: OutcomeKind) -> Outcome {
    outcome(id, conversation, Some(variant), kind, None, None)
}

#[track_caller]
fn close(actual: Option<f64>, expected: f64) {
    let a = actual.expect("a defined number");
    assert!((a - expected).abs() < 1e-4, "{a} is not {expected}");
}

#[track_caller]
fn check(e: &Estimate, value: f64, low: f64, high: f64) {
    close(e.value, value);
    close(e.low, low);
    close(e.high, high);
}

/// Every estimate of a report: its interval is whole or absent, and holds its value.
fn estimates(r: &Report) -> Vec<Estimate> {
    let mut all = Vec::new();
    for v in &r.variants {
        all.extend([
            v.tags_per_conversation,
            v.conversion_rate,
            v.handoff_rate,
            v.abandonment_rate,
        ]);
        all.extend(v.revenue_per_conversation.values().copied());
        if let Some(d) = &v.vs_control {
            all.extend([d.conversion_rate, d.tags_per_conversation]);
            all.extend(d.revenue_per_conversation.values().copied());
        }
    }
    all
}

#[track_caller]
fn sound(r: &Report) {
    for e in estimates(r) {
        assert_eq!(e.low.is_some(), e.high.is_some(), "{e:?}");
        if e.low.is_some() {
            assert!(e.value.is_some(), "{e:?}");
        }
        if let (Some(v), Some(l), Some(h)) = (e.value, e.low, e.high) {
            assert!(l <= v && v <= h, "{e:?}");
        }
        for x in [e.value, e.low, e.high].into_iter().flatten() {
            assert!(x.is_finite(), "{e:?}");
        }
    }
    // JSON holds it (no NaN) and the table renders.
    serde_json::to_string(r).unwrap();
    assert!(render_table(r).contains(&r.control));
}

/// Control: 20 conversations c00-c19, all exposed; c00-c09 with 2 tags, c10-c19 with 0.
/// Purchases c00-c03 of 10, 20, 30, 40 EUR; handoffs c04-c06; abandoned c10-c14.
/// Variant `lower`: 25 conversations: v00-v19 exposed, v00-v04 with 4 tags, v05-v19 with
/// 1; v20-v24 known only from a purchase outcome naming `lower`. Purchases v00-v04 of 20
/// EUR and v20-v24 of 10 EUR; handoffs v05-v06; abandoned v10-v13.
fn hand_case() -> (Vec<Exposure>, Vec<Outcome>) {
    let mut exposures = Vec::new();
    let mut outcomes = Vec::new();
    for i in 0..20 {
        exposures.push(exposure(
            &format!("c{i:02}"),
            "control",
            if i < 10 { 2 } else { 0 },
        ));
        exposures.push(exposure(
            &format!("v{i:02}"),
            "lower",
            if i < 5 { 4 } else { 1 },
        ));
    }
    for (i, eur) in [10.0, 20.0, 30.0, 40.0].into_iter().enumerate() {
        outcomes.push(purchase(
            &format!("oc{i}"),
            &format!("c{i:02}"),
            "control",
            eur,
        ));
    }
    for i in 4..7 {
        outcomes.push(event(
            &format!("hc{i}"),
            &format!("c{i:02}"),
            "control",
            OutcomeKind::Handoff,
        ));
    }
    for i in 10..15 {
        outcomes.push(event(
            &format!("ac{i}"),
            &format!("c{i:02}"),
            "control",
            OutcomeKind::Abandoned,
        ));
    }
    for i in 0..5 {
        outcomes.push(purchase(
            &format!("ov{i}"),
            &format!("v{i:02}"),
            "lower",
            20.0,
        ));
    }
    for i in 20..25 {
        outcomes.push(purchase(
            &format!("ov{i}"),
            &format!("v{i:02}"),
            "lower",
            10.0,
        ));
    }
    for i in 5..7 {
        outcomes.push(event(
            &format!("hv{i}"),
            &format!("v{i:02}"),
            "lower",
            OutcomeKind::Handoff,
        ));
    }
    for i in 10..14 {
        outcomes.push(event(
            &format!("av{i}"),
            &format!("v{i:02}"),
            "lower",
            OutcomeKind::Abandoned,
        ));
    }
    (exposures, outcomes)
}

/// Worked by hand, z = 1.959964, z² = 3.841459. Cross-checked with an independent
/// Python computation of the same formulas (Wilson in its (2x + z²) / (2(n + z²)) form,
/// Newcombe from those, means and variances summed directly): it agrees to 1e-6.
#[test]
fn a_hand_computed_case() {
    let (exposures, outcomes) = hand_case();
    let r = report(&experiment(&["control", "lower"]), &exposures, &outcomes);
    assert_eq!(
        (r.name.as_str(), r.control.as_str()),
        ("deal-2026", "control")
    );
    assert_eq!((r.unattributed, r.skipped, r.duplicates), (0, 0, 0));
    let (c, v) = (&r.variants[0], &r.variants[1]);
    assert!(c.control && !v.control && c.vs_control.is_none());
    assert_eq!(
        (
            c.conversations,
            c.exposed,
            c.purchases,
            c.handoffs,
            c.abandoned
        ),
        (20, 20, 4, 3, 5)
    );
    assert_eq!(
        (
            v.conversations,
            v.exposed,
            v.purchases,
            v.handoffs,
            v.abandoned
        ),
        (25, 20, 10, 2, 4)
    );

    // Tags per conversation, control: mean 20/20 = 1; squared deviations 20 x 1 = 20,
    // s² = 20/19 = 1.052632; s²/n = 0.0526316, se = 0.229416; z·se = 0.449647
    // -> [0.550353, 1.449647].
    check(&c.tags_per_conversation, 1.0, 0.550353, 1.449647);
    // Variant, over its 20 exposed conversations only (not 25): mean 35/20 = 1.75;
    // squared deviations 5 x 2.25² + 15 x 0.75² = 25.3125 + 8.4375 = 33.75,
    // s² = 33.75/19 = 1.776316; s²/n = 0.0888158, se = 0.298020; z·se = 0.584108
    // -> [1.165892, 2.334108].
    check(&v.tags_per_conversation, 1.75, 1.165892, 2.334108);

    // Wilson: center = (p + z²/2n) / (1 + z²/n),
    // half = z / (1 + z²/n) · √(p(1-p)/n + z²/4n²).
    // Control 4/20: p = 0.2; z²/n = 0.192073, 1 + z²/n = 1.192073;
    // center = (0.2 + 0.096036) / 1.192073 = 0.248338;
    // half = 1.644167 · √(0.008 + 0.002401) = 1.644167 · 0.101985 = 0.167680
    // -> [0.080658, 0.416017].
    check(&c.conversion_rate, 0.2, 0.080658, 0.416017);
    // Variant 10/25: p = 0.4; z²/n = 0.153658, 1 + z²/n = 1.153658;
    // center = (0.4 + 0.076829) / 1.153658 = 0.413319;
    // half = 1.698913 · √(0.0096 + 0.001537) = 1.698913 · 0.105530 = 0.179286
    // -> [0.234033, 0.592605].
    check(&v.conversion_rate, 0.4, 0.234033, 0.592605);
    // Handoffs 3/20 and 2/25, abandoned 5/20 and 4/25, the same formula.
    check(&c.handoff_rate, 0.15, 0.052369, 0.360419);
    check(&v.handoff_rate, 0.08, 0.022220, 0.249661);
    check(&c.abandonment_rate, 0.25, 0.111862, 0.468701);
    check(&v.abandonment_rate, 0.16, 0.064035, 0.346536);

    // Revenue per conversation (EUR), control: 100/20 = 5; squared deviations
    // 5² + 15² + 25² + 35² + 16 x 5² = 2100 + 400 = 2500, s² = 2500/19 = 131.578947;
    // s²/n = 6.578947, se = 2.564946; z·se = 5.027202 -> [-0.027202, 10.027202].
    assert_eq!(
        c.revenue_per_conversation.keys().collect::<Vec<_>>(),
        ["EUR"]
    );
    check(
        &c.revenue_per_conversation["EUR"],
        5.0,
        -0.027202,
        10.027202,
    );
    // Variant: (5 x 20 + 5 x 10) / 25 = 6; squared deviations 5 x 14² + 15 x 6² + 5 x 4²
    // = 980 + 540 + 80 = 1600, s² = 1600/24 = 66.666667; s²/n = 2.666667,
    // se = 1.632993; z·se = 3.200608 -> [2.799392, 9.200608].
    check(&v.revenue_per_conversation["EUR"], 6.0, 2.799392, 9.200608);

    let d = v.vs_control.as_ref().unwrap();
    // Newcombe: d = 0.4 - 0.2 = 0.2;
    // δ = √((0.4 - 0.234033)² + (0.416017 - 0.2)²) = √(0.027545 + 0.046664) = 0.272413;
    // ε = √((0.592605 - 0.4)² + (0.2 - 0.080658)²) = √(0.037097 + 0.014243) = 0.226582;
    // -> [0.2 - 0.272413, 0.2 + 0.226582] = [-0.072413, 0.426582]: contains 0.
    check(&d.conversion_rate, 0.2, -0.072413, 0.426582);
    // Tags: 1.75 - 1 = 0.75 ± z·√(0.0888158 + 0.0526316) = z · 0.376095 = 0.737133
    // -> [0.012867, 1.487133]: excludes 0.
    check(&d.tags_per_conversation, 0.75, 0.012867, 1.487133);
    // Revenue: 6 - 5 = 1 ± z·√(2.666667 + 6.578947) = z · 3.040660 = 5.959584
    // -> [-4.959584, 6.959584].
    check(&d.revenue_per_conversation["EUR"], 1.0, -4.959584, 6.959584);

    sound(&r);
    let table = render_table(&r);
    assert!(table.contains("20.0 [8.1, 41.6]"), "{table}");
    assert!(table.contains("+20.0 [-7.2, +42.7]"), "{table}");
    assert!(table.contains("6.00 [2.80, 9.20]"), "{table}");
    assert!(
        table.contains("Nothing is promoted automatically"),
        "{table}"
    );
}

#[test]
fn no_records() {
    let r = report(&experiment(&["control", "lower"]), &[], &[]);
    assert_eq!(r.variants.len(), 2);
    for v in &r.variants {
        assert_eq!((v.conversations, v.exposed, v.purchases), (0, 0, 0));
        assert_eq!(v.conversion_rate, Estimate::default());
        assert_eq!(v.tags_per_conversation, Estimate::default());
        assert!(v.revenue_per_conversation.is_empty());
    }
    let d = r.variants[1].vs_control.as_ref().unwrap();
    assert_eq!(d.conversion_rate, Estimate::default());
    assert_eq!(d.tags_per_conversation, Estimate::default());
    sound(&r);
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["variants"][0]["conversion_rate"]["value"].is_null());
    assert!(render_table(&r).contains("n/a"));

    // Not even variants (a stored experiment always has some): still a report.
    let empty = Experiment {
        name: "x".into(),
        variants: vec![],
    };
    let r = report(
        &empty,
        &[exposure("a", "b", 1)],
        &[purchase("o", "a", "b", 1.0)],
    );
    assert_eq!(
        (r.control.as_str(), r.variants.len(), r.unattributed),
        ("", 0, 2)
    );
    render_table(&r);
}

#[test]
fn a_variant_without_conversations_still_appears() {
    let (exposures, outcomes) = hand_case();
    let r = report(
        &experiment(&["control", "lower", "higher"]),
        &exposures,
        &outcomes,
    );
    let h = &r.variants[2];
    assert_eq!((h.name.as_str(), h.conversations), ("higher", 0));
    assert_eq!(h.conversion_rate, Estimate::default());
    // Every currency appears in every variant, undefined here.
    assert_eq!(h.revenue_per_conversation["EUR"], Estimate::default());
    let d = h.vs_control.as_ref().unwrap();
    assert_eq!(d.conversion_rate, Estimate::default());
    assert_eq!(d.revenue_per_conversation["EUR"], Estimate::default());
    // The others are untouched.
    check(&r.variants[1].conversion_rate, 0.4, 0.234033, 0.592605);
    sound(&r);
}

#[test]
fn records_of_no_variant_are_unattributed() {
    let e = experiment(&["control", "lower"]);
    let mut elsewhere = purchase("o4", "c3", "control", 5.0);
    elsewhere.experiment = Some("another".into());
    let outcomes = vec![
        purchase("o1", "c1", "control", 5.0),
        // No exposure, no variant.
        outcome(
            "o2",
            "c2",
            None,
            OutcomeKind::Purchase,
            Some(5.0),
            Some("EUR"),
        ),
        // No exposure, a variant this experiment does not have.
        purchase("o3", "c3", "gone", 5.0),
        elsewhere,
        // Its conversation was exposed under a variant this experiment does not have.
        purchase("o5", "c5", "control", 5.0),
        // Exposed under `lower`: counts there, whatever it names.
        purchase("o6", "c6", "control", 7.0),
    ];
    let exposures = vec![
        exposure("c1", "control", 1),
        exposure("c5", "gone", 1),
        exposure("c6", "lower", 2),
    ];
    let r = report(&e, &exposures, &outcomes);
    assert_eq!(r.unattributed, 5); // o2, o3, o4, o5 and c5's exposure
    assert_eq!(
        (r.variants[0].conversations, r.variants[0].purchases),
        (1, 1)
    );
    assert_eq!(
        (r.variants[1].conversations, r.variants[1].purchases),
        (1, 1)
    );
    assert_eq!(
        r.variants[1].revenue_per_conversation["EUR"].value,
        Some(7.0)
    );
    // One conversation each: a value, no interval.
    let t = r.variants[1].tags_per_conversation;
    assert_eq!((t.value, t.low, t.high), (Some(2.0), None, None));
    let d = r.variants[1].vs_control.as_ref().unwrap();
    assert_eq!(d.tags_per_conversation.value, Some(1.0));
    assert_eq!(d.tags_per_conversation.low, None);
    assert!(d.conversion_rate.low.is_some()); // Wilson is defined from n = 1
    sound(&r);
    assert!(render_table(&r).contains("unattributed records (no variant of this experiment): 5"));
}

#[test]
fn conflicting_records_of_one_conversation() {
    let e = experiment(&["control", "lower"]);
    let exposures = vec![
        exposure("a", "control", 1),
        exposure("a", "control", 2), // same variant: adds
        exposure("a", "lower", 5),   // another variant: unattributed
    ];
    let outcomes = vec![
        // Known only from outcomes: the first decides.
        event("o1", "b", "lower", OutcomeKind::Handoff),
        purchase("o2", "b", "control", 9.0),
        purchase("o3", "b", "lower", 4.0),
    ];
    let r = report(&e, &exposures, &outcomes);
    assert_eq!(r.unattributed, 2);
    assert_eq!(r.variants[0].tags_per_conversation.value, Some(3.0));
    let lower = &r.variants[1];
    assert_eq!(
        (
            lower.conversations,
            lower.exposed,
            lower.purchases,
            lower.handoffs
        ),
        (1, 0, 1, 1)
    );
    assert_eq!(lower.tags_per_conversation, Estimate::default());
    assert_eq!(lower.revenue_per_conversation["EUR"].value, Some(4.0));
    sound(&r);
}

#[test]
fn a_conversation_converts_once_and_its_purchases_add() {
    let e = experiment(&["control", "lower"]);
    let exposures = vec![exposure("a", "control", 1), exposure("b", "control", 1)];
    let first = purchase("o1", "a", "control", 30.0);
    let outcomes = vec![
        first.clone(),
        purchase("o2", "a", "control", 12.0),
        first, // the same outcome again: once
    ];
    let r = report(&e, &exposures, &outcomes);
    let c = &r.variants[0];
    assert_eq!((c.conversations, c.purchases, r.duplicates), (2, 1, 1));
    assert_eq!(c.conversion_rate.value, Some(0.5));
    // (30 + 12 + 0) / 2 = 21; deviations ±21, s² = 882, se = 21, z·se = 41.159244.
    check(
        &c.revenue_per_conversation["EUR"],
        21.0,
        21.0 - 41.159244,
        21.0 + 41.159244,
    );
    sound(&r);
}

#[test]
fn currencies_are_kept_apart() {
    let e = experiment(&["control", "lower"]);
    let exposures = vec![
        exposure("a", "control", 0),
        exposure("b", "control", 0),
        exposure("c", "lower", 0),
        exposure("d", "lower", 0),
    ];
    let buy = |id: &str, conversation: &str, value: f64, currency: Option<&str>| {
        outcome(
            id,
            conversation,
            None,
            OutcomeKind::Purchase,
            Some(value),
            currency,
        )
    };
    let outcomes = vec![
        buy("o1", "a", 10.0, Some("EUR")),
        buy("o2", "b", 6.0, Some(" eur ")),
        buy("o3", "c", 8.0, Some("USD")),
        buy("o4", "d", 3.0, None),
        buy("o5", "a", 2.0, Some("USD")),
    ];
    let r = report(&e, &exposures, &outcomes);
    for v in &r.variants {
        assert_eq!(
            v.revenue_per_conversation.keys().collect::<Vec<_>>(),
            ["EUR", "USD", "XXX"]
        );
    }
    let (c, l) = (&r.variants[0], &r.variants[1]);
    assert_eq!(c.revenue_per_conversation["EUR"].value, Some(8.0));
    assert_eq!(c.revenue_per_conversation["USD"].value, Some(1.0));
    assert_eq!(c.revenue_per_conversation["XXX"].value, Some(0.0));
    assert_eq!(l.revenue_per_conversation["EUR"].value, Some(0.0));
    assert_eq!(l.revenue_per_conversation["USD"].value, Some(4.0));
    assert_eq!(l.revenue_per_conversation["XXX"].value, Some(1.5));
    let d = l.vs_control.as_ref().unwrap();
    assert_eq!(d.revenue_per_conversation["EUR"].value, Some(-8.0));
    assert_eq!(d.revenue_per_conversation["USD"].value, Some(3.0));
    // Control EUR is 10 and 6: s² = 8; lower's is 0 and 0: s² = 0.
    // -8 ± z·√(8/2) = -8 ± 3.919928.
    check(
        &d.revenue_per_conversation["EUR"],
        -8.0,
        -11.919928,
        -4.080072,
    );
    sound(&r);
    let table = render_table(&r);
    for header in ["revenue/conv EUR", "revenue/conv USD", "Δ revenue/conv XXX"] {
        assert!(table.contains(header), "{table}");
    }
}

#[test]
fn unusable_values_are_skipped_but_the_purchase_counts() {
    let e = experiment(&["control", "lower"]);
    let exposures = vec![exposure("a", "control", 0), exposure("b", "lower", 0)];
    let outcomes = vec![
        purchase("o1", "a", "control", f64::NAN),
        purchase("o2", "a", "control", f64::INFINITY),
        purchase("o3", "b", "lower", -5.0),
        purchase("o4", "b", "lower", f64::MAX),
        purchase("o5", "b", "lower", f64::MAX), // the sum overflows: no value
        outcome("o6", "a", None, OutcomeKind::Handoff, Some(f64::NAN), None), // ignored
    ];
    let r = report(&e, &exposures, &outcomes);
    assert_eq!(r.skipped, 3);
    assert_eq!(r.variants[0].purchases, 1);
    assert_eq!(r.variants[1].purchases, 1);
    assert_eq!(
        r.variants[1].revenue_per_conversation["EUR"],
        Estimate::default()
    );
    sound(&r);
    assert!(render_table(&r).contains("purchase values skipped"));
}

/// A sample of `n` conversations per variant at fixed rates: variant `k` converts one
/// conversation in `3 + k`, and purchase values and tag counts cycle.
fn sample(n: usize) -> (Vec<Exposure>, Vec<Outcome>) {
    let mut exposures = Vec::new();
    let mut outcomes = Vec::new();
    for (k, variant) in ["control", "lower", "higher"].into_iter().enumerate() {
        for i in 0..n {
            let id = format!("{variant}-{i}");
            exposures.push(exposure(&id, variant, (i % 4) as u64));
            if i % (3 + k) == 0 {
                let eur = [5.0, 40.0, 12.5][i % 3];
                outcomes.push(purchase(&format!("o-{id}"), &id, variant, eur));
            }
            if i % 5 == 1 {
                outcomes.push(event(
                    &format!("h-{id}"),
                    &id,
                    variant,
                    OutcomeKind::Handoff,
                ));
            }
        }
    }
    (exposures, outcomes)
}

fn width(e: &Estimate) -> f64 {
    e.high.unwrap() - e.low.unwrap()
}

#[test]
fn intervals_hold_their_estimate_and_narrow_with_more_data() {
    let e = experiment(&["control", "lower", "higher"]);
    for n in [1, 2, 3, 7, 60] {
        let (exposures, outcomes) = sample(n);
        sound(&report(&e, &exposures, &outcomes));
    }
    // Proportions at the edges (0 and n of n) too.
    for (x, n) in [(0, 1), (1, 1), (0, 50), (50, 50), (3, 7)] {
        let w = wilson(x, n);
        assert!(w.low.unwrap() <= w.value.unwrap() && w.value <= w.high);
        assert!(w.low.unwrap() >= 0.0 && w.high.unwrap() <= 1.0);
        let d = newcombe(x, n, n - x, n);
        assert!(d.low.unwrap() <= d.value.unwrap() && d.value <= d.high);
    }
    // 60 and 600 conversations per variant at the same rates (60 is a multiple of every
    // cycle of `sample`, so the rates and means are equal): every interval narrows.
    let (a, b) = (sample(60), sample(600));
    let small = report(&e, &a.0, &a.1);
    let large = report(&e, &b.0, &b.1);
    let (small, large) = (estimates(&small), estimates(&large));
    assert_eq!(small.len(), large.len());
    for (s, l) in small.iter().zip(&large) {
        close(l.value, s.value.unwrap());
        assert!(width(l) < width(s), "{s:?} -> {l:?}");
    }
}
