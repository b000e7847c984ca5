use super::*;

fn tags() -> Vec<String> {
    ["A", "B", "C"].iter().map(|s| s.to_string()).collect()
}

const THRESHOLDS: [f32; 3] = [0.5, 0.5, 0.8];

fn entry(p: [f32; 3], at: u64) -> Entry {
    Entry {
        probabilities: p.to_vec(),
        top: vec![],
        snippet: format!("message {at}"),
        at,
        message_id: None,
        truncated: false,
        previous_tag: None,
        switched: false,
    }
}

fn rules(size: usize, decay: f32) -> WindowRules {
    WindowRules {
        size,
        decay,
        ttl_seconds: 100,
    }
}

fn run(messages: &[[f32; 3]], r: &WindowRules) -> Vec<Step> {
    let mut current: Option<Conversation> = None;
    let mut steps = vec![];
    for (i, p) in messages.iter().enumerate() {
        let step = advance(
            current.as_ref(),
            entry(*p, i as u64 + 1),
            r,
            &tags(),
            &THRESHOLDS,
        );
        current = Some(step.next.clone());
        steps.push(step);
    }
    steps
}

#[test]
fn empty_window_has_no_mean_and_no_tag() {
    assert_eq!(weighted_mean(&[], 1.0), None);
    assert_eq!(conversation_tag(&[], &tags(), &THRESHOLDS), None);
}

#[test]
fn single_message_window_is_that_message() {
    let steps = run(&[[0.9, 0.1, 0.0]], &rules(3, 1.0));
    let s = &steps[0];
    assert_eq!(s.next.tag.as_ref().unwrap().tag, "A");
    assert_eq!(s.previous_tag, None);
    assert!(!s.switched, "no previous tag: nothing to switch from");
    assert_eq!(
        (s.next.version, s.next.updated_at, s.next.expires_at),
        (1, 1, 101)
    );
}

#[test]
fn window_evicts_the_oldest_and_keeps_order() {
    let steps = run(&[[0.1; 3], [0.2; 3], [0.3; 3], [0.4; 3]], &rules(3, 1.0));
    let last = &steps[3].next;
    let ats: Vec<u64> = last.entries.iter().map(|e| e.at).collect();
    assert_eq!(ats, [2, 3, 4]);
    assert_eq!(last.version, 4);
}

#[test]
fn plain_mean_and_decayed_mean() {
    let window = [entry([1.0, 0.0, 0.0], 1), entry([0.0, 1.0, 0.0], 2)];
    assert_eq!(weighted_mean(&window, 1.0).unwrap(), [0.5, 0.5, 0.0]);
    // Newest weight 1, older 0.5: B = 1 / 1.5, A = 0.5 / 1.5.
    let m = weighted_mean(&window, 0.5).unwrap();
    assert!((m[0] - 1.0 / 3.0).abs() < 1e-6 && (m[1] - 2.0 / 3.0).abs() < 1e-6);
}

#[test]
fn top_tag_must_clear_its_own_threshold() {
    // C is the top of the mean but below its 0.8 threshold: no conversation tag.
    assert_eq!(
        conversation_tag(&[0.3, 0.2, 0.7], &tags(), &THRESHOLDS),
        None
    );
    let t = conversation_tag(&[0.3, 0.2, 0.85], &tags(), &THRESHOLDS).unwrap();
    assert_eq!((t.tag.as_str(), t.confidence), ("C", 0.85));
    // Exactly at the threshold counts, as for single messages.
    assert!(conversation_tag(&[0.5, 0.1, 0.1], &tags(), &THRESHOLDS).is_some());
}

#[test]
fn a_disabled_tag_never_drives_the_conversation_tag() {
    // C leads the mean but is disabled (infinite threshold): B, the top of the others, is the
    // conversation tag when it clears its own threshold, and nothing when it does not.
    let disabled_c = [0.5, 0.5, f32::INFINITY];
    let t = conversation_tag(&[0.1, 0.6, 0.95], &tags(), &disabled_c).unwrap();
    assert_eq!(t.tag, "B");
    assert_eq!(
        conversation_tag(&[0.1, 0.4, 0.95], &tags(), &disabled_c),
        None
    );
    let all_off = [f32::INFINITY; 3];
    assert_eq!(conversation_tag(&[0.9, 0.9, 0.9], &tags(), &all_off), None);
}

#[test]
fn switch_is_reported_only_against_an_existing_different_tag() {
    let steps = run(
        &[
            [0.9, 0.0, 0.0],
            [0.9, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0],
        ],
        &rules(2, 1.0),
    );
    let tags: Vec<Option<&str>> = steps
        .iter()
        .map(|s| s.next.tag.as_ref().map(|t| t.tag.as_str()))
        .collect();
    // Window of 2: [A], [A,A], [A,B] -> B 0.5 beats A 0.45, [B,B], [B,0] -> B at 0.5.
    assert_eq!(
        tags,
        [Some("A"), Some("A"), Some("B"), Some("B"), Some("B")]
    );
    let switched: Vec<bool> = steps.iter().map(|s| s.switched).collect();
    assert_eq!(switched, [false, false, true, false, false]);
    assert_eq!(steps[2].previous_tag.as_ref().unwrap().tag, "A");
}

#[test]
fn losing_the_tag_is_a_switch() {
    let steps = run(&[[0.9, 0.0, 0.0], [0.0, 0.0, 0.0]], &rules(1, 1.0));
    assert_eq!(steps[1].next.tag, None);
    assert!(steps[1].switched);
}

#[test]
fn decay_lets_the_newest_intent_lead() {
    let msgs = [[0.9, 0.0, 0.0], [0.9, 0.0, 0.0], [0.0, 0.95, 0.0]];
    let plain = run(&msgs, &rules(3, 1.0));
    let decayed = run(&msgs, &rules(3, 0.3));
    assert_eq!(plain[2].next.tag.as_ref().unwrap().tag, "A");
    assert_eq!(decayed[2].next.tag.as_ref().unwrap().tag, "B");
    assert!(decayed[2].switched);
}

#[test]
fn snippets_are_cut_on_characters_not_bytes() {
    assert_eq!(snippet("short", 50), "short");
    assert_eq!(snippet("héllo wörld", 5), "héllo...");
    assert_eq!(snippet("🙂🙂🙂", 2), "🙂🙂...");
    assert_eq!(snippet("anything", 0), "");
}

#[test]
fn expiry_is_exclusive() {
    let c = run(&[[0.1; 3]], &rules(3, 1.0))[0].next.clone();
    assert!(c.is_live(100));
    assert!(!c.is_live(101));
}

#[test]
fn message_ids_are_remembered_past_the_window_up_to_the_bound() {
    let r = rules(2, 1.0);
    let mut current: Option<Conversation> = None;
    for i in 0..(REMEMBERED_IDS as u64 + 5) {
        let mut e = entry([0.9, 0.1, 0.0], i + 1);
        // Every other message has no id: only ids are remembered.
        e.message_id = (i % 2 == 0).then(|| format!("m{i}"));
        current = Some(advance(current.as_ref(), e, &r, &tags(), &THRESHOLDS).next);
    }
    let c = current.unwrap();
    assert_eq!(c.entries.len(), 2);
    assert_eq!(
        c.message_ids.len(),
        (REMEMBERED_IDS + 5).div_ceil(2).min(REMEMBERED_IDS)
    );
    assert!(c.has_message("m104"), "the newest id");
    assert!(c.has_message("m2"), "an id long out of the window");
    assert!(!c.has_message("m1"), "never an id");
    assert!(c.entry_of("m104").is_some(), "in the window");
    assert!(c.entry_of("m2").is_none(), "out of the window");
}

#[test]
fn the_oldest_ids_are_forgotten_first() {
    let r = rules(1, 1.0);
    let mut current: Option<Conversation> = None;
    for i in 0..(REMEMBERED_IDS as u64 + 3) {
        let mut e = entry([0.9, 0.1, 0.0], i + 1);
        e.message_id = Some(format!("m{i}"));
        current = Some(advance(current.as_ref(), e, &r, &tags(), &THRESHOLDS).next);
    }
    let c = current.unwrap();
    assert_eq!(c.message_ids.len(), REMEMBERED_IDS);
    assert_eq!(c.message_ids.first().map(String::as_str), Some("m3"));
    assert!(!c.has_message("m2"));
}
