use super::*;

fn tags() -> Vec<String> {
    ["First-time-visitor", "Deal-seeker", "Hot-buyer"]
        .map(String::from)
        .to_vec()
}

fn variant(name: &str, share: f64) -> Variant {
    Variant {
        name: name.into(),
        thresholds: BTreeMap::from([("Deal-seeker".into(), 0.4)]),
        share,
    }
}

#[test]
fn a_full_profile_checks() {
    let p = Profile {
        thresholds: BTreeMap::from([("Hot-buyer".into(), 0.6)]),
        enabled_tags: Some(vec!["Hot-buyer".into(), "Deal-seeker".into()]),
        window_size: Some(5),
        event_tags: Some(vec!["Hot-buyer".into()]),
        experiment: Some(Experiment {
            name: "deal-2026".into(),
            variants: vec![variant("control", 0.5), variant("lower", 0.5)],
        }),
    };
    assert_eq!(p.check(&tags()), Ok(()));
    assert_eq!(Profile::default().check(&tags()), Ok(()));
}

#[test]
fn each_bad_field_is_named() {
    let code = |p: Profile| p.check(&tags()).unwrap_err();
    let e = code(Profile {
        thresholds: BTreeMap::from([("Wishlist".into(), 0.5)]),
        ..Profile::default()
    });
    assert_eq!(e.code, "unknown_tag");
    assert!(
        e.message.contains("thresholds names \"Wishlist\""),
        "{}",
        e.message
    );
    let e = code(Profile {
        enabled_tags: Some(vec!["hot-buyer".into()]),
        ..Profile::default()
    });
    assert!(e.message.starts_with("enabled_tags"), "{}", e.message);
    assert_eq!(
        code(Profile {
            thresholds: BTreeMap::from([("Hot-buyer".into(), 1.5)]),
            ..Profile::default()
        })
        .code,
        "invalid_threshold"
    );
    assert_eq!(
        code(Profile {
            window_size: Some(0),
            ..Profile::default()
        })
        .code,
        "invalid_window_size"
    );
    let experiment = |variants: Vec<Variant>| Profile {
        experiment: Some(Experiment {
            name: "e".into(),
            variants,
        }),
        ..Profile::default()
    };
    for bad in [
        vec![variant("only", 1.0)],
        vec![variant("a", 0.5), variant("a", 0.5)],
        vec![variant("a", 0.5), variant("b", 0.4)],
        vec![variant("a", 0.0), variant("b", 1.0)],
        vec![variant("a b", 0.5), variant("b", 0.5)],
    ] {
        assert_eq!(code(experiment(bad)).code, "invalid_experiment");
    }
}

#[test]
fn unknown_fields_are_refused() {
    let err = serde_json::from_str::<Profile>(r#"{"threshold": {"Hot-buyer": 0.5}}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
}
