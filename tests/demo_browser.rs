//! The demo page (`GET /demo`) in a real browser: Debian's headless Chromium, driven over the
//! W3C WebDriver protocol by Debian's chromedriver, against the real router and the embedded
//! model on a loopback port in this process. The test types three messages as a person would,
//! then reads the conversation back from the API (`GET /conversation/{id}`) and checks that
//! the page shows what the API holds: each message's tags and confidences, its explanation
//! words, the conversation tag after each message and the switch. It sends a correction and
//! checks the page shows its `feedback_id`, shows an API error plainly, starts a new
//! conversation, and saves a screenshot in `target/demo/demo.png`. Then shops: it stores a
//! profile with an experiment through the API, types the shop id, and checks the page shows
//! where the profile came from and the conversation's variant, as the API has them
//! (screenshot `target/demo/demo-shop.png`); then a store that fails, and a shop without one.
//!
//! Chromium and chromedriver must be installed (`scripts/install-browser.sh`; CI runs it): the
//! test fails without them rather than skipping, since a skipped browser test cannot fail.
//! `DEMO_SCREENSHOT_DOCS=1` also copies the screenshot to `docs/demo.png`, the one docs/api.md shows.
//!
//! The WebDriver client (std-only HTTP/1.1, chromedriver and one headless Chromium session)
//! is in `tests/support/webdriver.rs`: chromedriver and the service both listen on loopback,
//! and every command is one JSON request.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Value};
use tagbeez::feedback::FeedbackRecord;
use tagbeez::service::Tagger;
use tagbeez::shops::StoredProfile;
use tagbeez::store::{
    FeedbackStore, MemoryFeedback, MemoryProfiles, MemoryStore, ProfileStore, StoreError,
};

#[path = "support/router.rs"]
mod router;
#[path = "support/webdriver.rs"]
mod webdriver;

use webdriver::{header, http, Browser, CHROMEDRIVER, CHROMIUM};

/// A browsing message, then two urgent buying ones: the conversation tag switches (at the
/// second or the third, as the window mean says; the test reads which from the API).
const MESSAGES: [&str; 3] = [
    "Just browsing for now, showing my sister some of your summer dresses",
    "OK I want the red one, add it to my cart and send me the checkout link now",
    // The emoji is one Unicode scalar value but two UTF-16 code units: the highlighted words
    // after it are where the API's offsets say only if the page counts as the API does.
    "Please hurry 🙏 I need to pay today so it ships before Friday",
];

/// The tags the correction of the first message gives it (the model says only
/// `Window-shopper`).
const CORRECTION: [&str; 2] = ["Window-shopper", "Wishlist-user"];

/// The longest message this test's service accepts: one past it shows an API error.
const MAX_MESSAGE_CHARS: usize = 300;

/// A shop whose profile runs an experiment, one whose profile the store cannot read when the
/// test says so, and one without a profile.
const SHOP: &str = "shop-a.demo";
const SHOP_DOWN: &str = "shop-down";
const SHOP_NONE: &str = "shop-none";
const EXPERIMENT: &str = "deal-2026";
/// The tag the shop's profile turns off.
const DISABLED_TAG: &str = "First-time-visitor";
const SHOP_MESSAGE: &str = "Do you have a discount code for the linen shirts?";

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

#[test]
fn the_demo_page_shows_what_the_api_returns() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "{missing:?} missing: the browser test needs Debian's chromium and chromium-driver; \
         run scripts/install-browser.sh"
    );
    let out_dir = demo_dir();
    std::fs::create_dir_all(&out_dir).expect("create target/demo");

    let server = Server::start(&[
        ("DEMO_PAGE", "on"),
        ("WINDOW_SIZE", "3"),
        ("MAX_MESSAGE_CHARS", &MAX_MESSAGE_CHARS.to_string()),
        // Every classify call reads its shop's profile from the store: `"stored"`, and a
        // failing store falls back to the last known profile (`"cached"`, with the error).
        ("PROFILE_CACHE_SECONDS", "0"),
    ]);
    let base = format!("http://{}", server.addr);

    // The route itself: HTML with a policy that allows nothing from elsewhere.
    let (status, headers, html) =
        http(server.addr, "GET", "/demo", None).expect("GET /demo answers");
    assert_eq!(status, 200, "GET /demo: {html}");
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = header(&headers, "content-security-policy").expect("a CSP header");
    assert!(csp.starts_with("default-src 'none';"), "{csp}");
    assert!(html.contains("data-testid=\"message-input\""));

    let browser = Browser::start(&out_dir);
    browser.navigate(&format!("{base}/demo"));
    browser.wait("the page to load the service's tags", || {
        (browser.script("return document.body.dataset.ready === 'true'", json!([])) == true)
            .then_some(())
    });
    let info = api_json(server.addr, "GET", "/", None);
    let shown_version = browser.text(&browser.one("[data-testid=model-version]"));
    assert_eq!(shown_version, info["model_version"].as_str().unwrap());
    let conversation_id = browser.text(&browser.one("[data-testid=conversation-id]"));
    assert!(
        conversation_id.starts_with("demo-") && conversation_id.len() <= 128,
        "{conversation_id}"
    );

    // Type the three messages.
    let input = browser.one("[data-testid=message-input]");
    let send = browser.one("[data-testid=send-button]");
    for (n, message) in MESSAGES.iter().enumerate() {
        browser.type_into(&input, message);
        browser.click(&send);
        wait_for_messages(&browser, n + 1);
    }
    assert_no_console_errors(&browser);
    // No shop: the page says so (the model's defaults), with no experiment.
    let shop = page_shop(&browser);
    assert_eq!(shop["displayed"], true, "{shop}");
    assert_eq!(shop["shop"], "", "{shop}");
    assert_eq!(shop["profile"], "default", "{shop}");
    assert_eq!(
        shop["text"], "No shop: the model's default thresholds.",
        "{shop}"
    );
    assert_eq!(shop["variant"], Value::Null, "{shop}");

    // What the API holds for this conversation, and what the page shows.
    let view = api_json(
        server.addr,
        "GET",
        &format!("/conversation/{conversation_id}"),
        None,
    );
    let window = view["window"].as_array().expect("a window").clone();
    assert_eq!(window.len(), MESSAGES.len(), "{view}");
    let cards = page_messages(&browser);
    let steps = page_timeline(&browser);
    assert_eq!(cards.len(), MESSAGES.len());
    assert_eq!(steps.len(), MESSAGES.len());
    let labels = router::CLASSIFIER.labels();
    let tag_name = |v: &Value| v["tag"].as_str().unwrap_or("").to_owned();
    let mut switches = 0;
    for (i, (entry, card)) in window.iter().zip(&cards).enumerate() {
        let what = format!("message {} ({:?})", i + 1, MESSAGES[i]);
        assert_eq!(card["text"], MESSAGES[i], "{what}: the text shown");
        assert_eq!(
            card["message_id"], entry["message_id"],
            "{what}: the page sends a message_id"
        );
        // The tags: every tag's confidence, the selected ones (the message's `top`) marked.
        let rows = card["rows"].as_array().unwrap();
        assert_eq!(rows.len(), labels.tags.len(), "{what}: one bar per tag");
        let probabilities = entry["probabilities"].as_array().unwrap();
        for row in rows {
            let tag = row["tag"].as_str().unwrap();
            let k = labels.tags.iter().position(|t| t == tag).unwrap();
            let want = probabilities[k].as_f64().unwrap();
            let shown = row["confidence"].as_f64().unwrap();
            assert!(
                (want - shown).abs() < 1e-6,
                "{what}: {tag} {shown} vs {want}"
            );
            let threshold = f64::from(router::threshold_of(tag));
            assert!(
                (row["threshold"].as_f64().unwrap() - threshold).abs() < 1e-6,
                "{what}: {tag}'s threshold mark"
            );
            let percent = format!("{:.1}%", shown * 100.0);
            assert!(
                row["text"].as_str().unwrap().contains(&percent),
                "{what}: {tag} shows {percent}: {row}"
            );
        }
        let selected: Vec<String> = rows
            .iter()
            .filter(|r| r["selected"] == true)
            .map(|r| r["tag"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            selected,
            router::tags(&entry["top"]),
            "{what}: the selected tags"
        );
        for row in rows {
            let bold = row["weight"].as_str().unwrap().parse::<u32>().unwrap() >= 600;
            assert_eq!(
                bold,
                row["selected"] == true,
                "{what}: selected is bold: {row}"
            );
        }

        // The conversation tag after this message: the next entry's `previous_tag`, or the
        // conversation's tag after the last one.
        let after = match window.get(i + 1) {
            Some(next) => tag_name(&next["previous_tag"]),
            None => tag_name(&view["conversation_tag"]),
        };
        let switched = entry["switched"] == true;
        let previous = tag_name(&entry["previous_tag"]);
        switches += usize::from(switched);
        assert_eq!(card["conversation_tag"], after.as_str(), "{what}");
        let shown_tag = if after.is_empty() { "none" } else { &after };
        assert_eq!(card["shown_tag"], shown_tag, "{what}: the tag shown");
        assert_eq!(card["switched"], switched, "{what}: switched");
        assert_eq!(card["previous_tag"], previous.as_str(), "{what}");
        if switched {
            assert_eq!(
                card["switch_text"],
                format!("⇄ switched from {previous}"),
                "{what}: the switch is shown"
            );
        } else {
            assert_eq!(card["switch_text"], Value::Null, "{what}: no switch shown");
        }
        // The timeline: the same tag and switch, one step per message.
        let step = &steps[i];
        assert_eq!(step["index"], i + 1);
        assert_eq!(step["tag"], after.as_str(), "{what}: timeline");
        assert_eq!(step["switched"], switched, "{what}: timeline");
        let text = step["text"].as_str().unwrap();
        assert!(
            text.contains(shown_tag),
            "{what}: timeline shows {shown_tag}: {text}"
        );
        assert_eq!(
            text.to_lowercase().contains("switch"),
            switched,
            "{what}: timeline: {text}"
        );
        assert_eq!(step["displayed"], true, "{what}: timeline step hidden");

        // The explanation: the words the API names for each selected tag, highlighted at
        // their offsets (Unicode scalar values) with the tags they raised.
        let explained = api_json(
            server.addr,
            "POST",
            "/classify-message",
            Some(&json!({"message": MESSAGES[i], "explain": true})),
        );
        assert_eq!(router::tags(&explained["selected"]), selected, "{what}");
        let explanation = &explained["explanation"];
        let mut want_marks: Vec<(u64, u64, String, Vec<String>)> = Vec::new();
        for t in explanation["tags"].as_array().expect("explanation tags") {
            for w in t["words"].as_array().unwrap() {
                let (start, end) = (w["start"].as_u64().unwrap(), w["end"].as_u64().unwrap());
                let tag = tag_name(t);
                match want_marks.iter_mut().find(|m| (m.0, m.1) == (start, end)) {
                    Some(mark) => mark.3.push(tag),
                    None => want_marks.push((
                        start,
                        end,
                        w["word"].as_str().unwrap().to_owned(),
                        vec![tag],
                    )),
                }
            }
        }
        want_marks.sort();
        let shown_marks: Vec<(u64, u64, String, Vec<String>)> = card["marks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["start"].as_u64().unwrap(),
                    m["end"].as_u64().unwrap(),
                    m["text"].as_str().unwrap().to_owned(),
                    m["tags"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| t.as_str().unwrap().to_owned())
                        .collect(),
                )
            })
            .collect();
        assert_eq!(shown_marks, want_marks, "{what}: the highlighted words");
        if !selected.is_empty() {
            assert!(
                !want_marks.is_empty(),
                "{what}: nothing explained: {explanation}"
            );
        }
        println!(
            "{what}: selected {selected:?}, conversation tag {shown_tag:?}, switched {switched}, \
             highlighted {:?}",
            want_marks.iter().map(|m| &m.2).collect::<Vec<_>>()
        );
    }
    assert!(
        switches >= 1,
        "the messages were chosen so that the conversation tag switches: {view}"
    );

    // A correction for the first message, sent from its form.
    let card = &browser.all("[data-testid=message]")[0];
    let form = browser.one_in(card, "[data-testid=feedback-form]");
    assert!(
        !browser.displayed(&form),
        "the correction form starts closed"
    );
    browser.click(&browser.one_in(card, "[data-testid=correct-button]"));
    assert!(browser.displayed(&form));
    let predicted: Vec<String> = cards[0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["selected"] == true)
        .map(|r| r["tag"].as_str().unwrap().to_owned())
        .collect();
    for tag in CORRECTION {
        assert!(labels.tags.iter().any(|t| t == tag), "{tag}");
    }
    assert_ne!(predicted, CORRECTION, "the correction corrects");
    for b in browser.all_in(&form, "[data-testid=feedback-tag]") {
        let tag = browser.property(&b, "value");
        let tag = tag.as_str().unwrap();
        let checked = browser.property(&b, "checked") == true;
        assert_eq!(
            checked,
            predicted.iter().any(|p| p == tag),
            "the form starts with the predicted tags checked: {tag}"
        );
        if checked != CORRECTION.contains(&tag) {
            browser.click(&b);
        }
    }
    browser.click(&browser.one_in(&form, "[data-testid=feedback-submit]"));
    let feedback_id = browser.wait("the correction's feedback_id", || {
        let error = browser.one_in(&form, "[data-testid=feedback-error]");
        if browser.displayed(&error) {
            panic!("the correction failed: {}", browser.text(&error));
        }
        let result = browser.one_in(&form, "[data-testid=feedback-result]");
        let id = browser.attribute(&result, "data-feedback-id");
        id.as_str().map(|id| (id.to_owned(), browser.text(&result)))
    });
    let (feedback_id, shown) = feedback_id;
    assert!(is_uuid(&feedback_id), "{feedback_id:?}");
    assert!(
        shown.contains(&feedback_id) && CORRECTION.iter().all(|t| shown.contains(t)),
        "the page shows the feedback: {shown}"
    );
    // What the service stored: the correction the person chose, with the model's prediction
    // and the ids of the message it corrects.
    let stored = server.stored_feedback();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let record = &stored[0];
    assert_eq!(record.feedback_id, feedback_id);
    assert_eq!(record.message, MESSAGES[0]);
    let mut tags = record.tags.clone();
    tags.sort();
    let mut want = CORRECTION.map(str::to_owned).to_vec();
    want.sort();
    assert_eq!(tags, want);
    assert_eq!(record.predicted.as_ref(), Some(&predicted));
    assert_eq!(
        record.conversation_id.as_deref(),
        Some(conversation_id.as_str())
    );
    assert_eq!(
        record.message_id.as_ref(),
        window[0]["message_id"].as_str().map(str::to_owned).as_ref()
    );
    assert_eq!(record.source.as_deref(), Some("demo"));
    println!("correction for message 1 stored as {feedback_id}: {shown}");
    assert_no_console_errors(&browser);

    // The screenshot, of the whole page.
    let shot = out_dir.join("demo.png");
    let png = browser.save_full_page_screenshot(&shot);
    println!("screenshot: {}", shot.display());
    if std::env::var_os("DEMO_SCREENSHOT_DOCS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).expect("create docs/");
        std::fs::write(docs.join("demo.png"), &png).expect("write docs/demo.png");
        println!("screenshot copied to {}", docs.join("demo.png").display());
    }

    // An API error is shown plainly, and the message stays to be fixed.
    let too_long = "a".repeat(MAX_MESSAGE_CHARS + 1);
    browser.type_into(&input, &too_long);
    browser.click(&send);
    let error = browser.one("[data-testid=error]");
    let text = browser.wait("the API's error on the page", || {
        browser
            .displayed(&error)
            .then(|| browser.text(&error))
            .filter(|t| !t.is_empty())
    });
    assert!(text.starts_with("400 message_too_long: "), "{text}");
    assert_eq!(browser.all("[data-testid=message]").len(), MESSAGES.len());
    assert_eq!(browser.property(&input, "value"), too_long.as_str());

    // A new conversation: a new id, nothing shown, the error gone.
    browser.click(&browser.one("[data-testid=new-conversation]"));
    let new_id = browser.text(&browser.one("[data-testid=conversation-id]"));
    assert!(
        new_id.starts_with("demo-") && new_id != conversation_id,
        "{new_id}"
    );
    assert!(browser.all("[data-testid=message]").is_empty());
    assert!(browser.all("[data-testid=timeline-step]").is_empty());
    assert!(!browser.displayed(&error));
    assert!(!page_shop(&browser)["displayed"].as_bool().unwrap());

    shop_profiles(&browser, &server);
}

/// A shop's profile and experiment on the page: the shop typed in, where its profile came
/// from, the conversation's variant (the API's), the thresholds it set and the tag it turns
/// off; a store that cannot be read; a shop without a profile; a bad shop id.
fn shop_profiles(browser: &Browser, server: &Server) {
    // The message_too_long 400 above is in the console: not this part's.
    browser.post("/se/log", &json!({"type": "browser"}));
    let tags = &router::CLASSIFIER.labels().tags;
    assert!(tags.iter().any(|t| t == DISABLED_TAG) && tags.iter().any(|t| t == "Deal-seeker"));
    let enabled: Vec<&String> = tags.iter().filter(|t| *t != DISABLED_TAG).collect();
    let profile = json!({
        "thresholds": {"Deal-seeker": 0.9},
        "enabled_tags": enabled,
        "experiment": {"name": EXPERIMENT, "variants": [
            {"name": "control", "share": 0.5},
            {"name": "strict", "share": 0.5, "thresholds": {"Deal-seeker": 0.95}},
        ]},
    });
    let stored = api_json(
        server.addr,
        "PUT",
        &format!("/shops/{SHOP}/profile"),
        Some(&profile),
    );
    assert_eq!(stored["shop_id"], SHOP, "{stored}");
    let input = browser.one("[data-testid=message-input]");
    let send = browser.one("[data-testid=send-button]");
    let shop_input = browser.one("[data-testid=shop-input]");
    let error = browser.one("[data-testid=error]");

    // A bad shop id is refused on the page, before any request.
    browser.type_into(&shop_input, "not a shop!");
    browser.type_into(&input, SHOP_MESSAGE);
    browser.click(&send);
    let text = browser.wait("the shop id's error", || {
        browser
            .displayed(&error)
            .then(|| browser.text(&error))
            .filter(|t| !t.is_empty())
    });
    assert!(
        text.starts_with("Shop: a shop id is 1-128 characters"),
        "{text}"
    );
    assert_eq!(browser.attribute(&shop_input, "aria-invalid"), "true");
    assert!(browser.all("[data-testid=message]").is_empty());

    // The shop with the experiment: its profile read from the store, the variant shown.
    browser.type_into(&shop_input, SHOP);
    browser.click(&send);
    wait_for_messages(browser, 1);
    assert_eq!(browser.attribute(&shop_input, "aria-invalid"), "false");
    let conversation_id = browser.text(&browser.one("[data-testid=conversation-id]"));
    let shop = page_shop(browser);
    assert_eq!(shop["displayed"], true, "{shop}");
    assert_eq!(shop["shop"], SHOP, "{shop}");
    assert_eq!(shop["profile"], "stored", "{shop}");
    let text = shop["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!("Shop {SHOP} · profile read from the store · ")),
        "{shop}"
    );
    // The variant the API has for this conversation (sticky: the same for its next message).
    let reply = api_json(
        server.addr,
        "POST",
        "/classify-conversation",
        Some(&json!({"conversation_id": conversation_id, "shop_id": SHOP,
            "message": "and for the cotton ones?"})),
    );
    let result = &reply["message_result"];
    assert_eq!(result["experiment"]["name"], EXPERIMENT, "{result}");
    let variant = result["experiment"]["variant"].as_str().expect("a variant");
    assert_eq!(shop["experiment"], EXPERIMENT, "{shop}");
    assert_eq!(shop["variant"], variant, "{shop}");
    let shown = format!("experiment {EXPERIMENT}, variant {variant}");
    assert_eq!(shop["variant_text"], shown.as_str(), "{shop}");
    assert!(text.ends_with(&shown), "{shop}");
    println!("shop {SHOP}: conversation {conversation_id} in variant {variant}: {text:?}");
    // Each tag's threshold as the API set it, marked with where it came from; the tag the
    // profile turns off greyed and never selected.
    let want_source = if variant == "strict" {
        "variant"
    } else {
        "profile"
    };
    assert_eq!(result["threshold_sources"]["Deal-seeker"], want_source);
    assert_eq!(result["disabled_tags"], json!([DISABLED_TAG]), "{result}");
    let card = &page_messages(browser)[0];
    for row in card["rows"].as_array().unwrap() {
        let tag = row["tag"].as_str().unwrap();
        let threshold = result["thresholds"][tag].as_f64().unwrap();
        assert!(
            (row["threshold"].as_f64().unwrap() - threshold).abs() < 1e-6,
            "{tag}: {row}"
        );
        assert_eq!(row["source"], result["threshold_sources"][tag], "{tag}");
        let title = row["threshold_title"].as_str().unwrap();
        let disabled = tag == DISABLED_TAG;
        assert_eq!(row["disabled"], disabled, "{tag}: {row}");
        if disabled {
            assert_eq!(row["selected"], false, "{tag}: {row}");
            assert!(title.contains("turned off"), "{tag}: {title}");
            assert!(row["opacity"].as_str().unwrap().parse::<f64>().unwrap() < 1.0);
        } else {
            let want = match row["source"].as_str().unwrap() {
                "variant" => format!("threshold from variant {variant} of experiment {EXPERIMENT}"),
                "profile" => format!("threshold from shop {SHOP}'s profile"),
                _ => "the model's threshold".to_owned(),
            };
            assert_eq!(title, want, "{tag}");
        }
    }
    assert_no_console_errors(browser);
    let shot = demo_dir().join("demo-shop.png");
    browser.save_full_page_screenshot(&shot);
    println!("screenshot: {}", shot.display());

    // The store fails: the last known profile, and why. Changing the shop starts a new
    // conversation.
    api_json(
        server.addr,
        "PUT",
        &format!("/shops/{SHOP_DOWN}/profile"),
        Some(&json!({"thresholds": {"Deal-seeker": 0.8}})),
    );
    server.profiles.down.store(true, Ordering::SeqCst);
    browser.type_into(&shop_input, SHOP_DOWN);
    browser.type_into(&input, SHOP_MESSAGE);
    let new_id = browser.text(&browser.one("[data-testid=conversation-id]"));
    assert_ne!(new_id, conversation_id, "a new shop, a new conversation");
    assert!(browser.all("[data-testid=message]").is_empty());
    browser.click(&send);
    wait_for_messages(browser, 1);
    let shop = page_shop(browser);
    let result = api_json(
        server.addr,
        "POST",
        "/classify-conversation",
        Some(&json!({"conversation_id": new_id, "shop_id": SHOP_DOWN,
            "message": "and for the cotton ones?"})),
    )["message_result"]
        .clone();
    server.profiles.down.store(false, Ordering::SeqCst);
    assert_eq!(result["profile"], "cached", "{result}");
    let why = result["profile_error"].as_str().expect("a profile_error");
    assert_eq!(shop["shop"], SHOP_DOWN, "{shop}");
    assert_eq!(shop["profile"], "cached", "{shop}");
    assert_eq!(shop["error"], why, "{shop}");
    assert_eq!(shop["variant"], Value::Null, "no experiment: {shop}");
    assert_eq!(
        shop["text"],
        format!("Shop {SHOP_DOWN} · profile from this instance's cache{why}").as_str(),
        "{shop}"
    );

    // A shop without a profile: the model's defaults.
    browser.type_into(&shop_input, SHOP_NONE);
    browser.type_into(&input, SHOP_MESSAGE);
    browser.click(&send);
    wait_for_messages(browser, 1);
    let shop = page_shop(browser);
    assert_eq!(shop["shop"], SHOP_NONE, "{shop}");
    assert_eq!(shop["profile"], "default", "{shop}");
    assert_eq!(
        shop["text"],
        format!("Shop {SHOP_NONE} · no profile: the model's defaults").as_str(),
        "{shop}"
    );
    assert_eq!(shop["variant"], Value::Null, "{shop}");
    assert_ne!(
        browser.text(&browser.one("[data-testid=conversation-id]")),
        new_id
    );
    assert_no_console_errors(browser);
}

/// The page's shop box: its data, its text, and its variant's.
fn page_shop(browser: &Browser) -> Value {
    let script = r#"
      const box = document.querySelector('[data-testid=shop-profile]');
      const variant = box.querySelector('[data-testid=shop-variant]');
      const error = box.querySelector('[data-testid=shop-profile-error]');
      return {
        displayed: box.getClientRects().length > 0,
        shop: box.dataset.shop ?? null,
        profile: box.dataset.profile ?? null,
        text: box.textContent,
        experiment: variant ? variant.dataset.experiment : null,
        variant: variant ? variant.dataset.variant : null,
        variant_text: variant ? variant.textContent : null,
        error: error ? error.textContent : null,
      };"#;
    browser.script(script, json!([]))
}

/// With `DEMO_PAGE=off` there is no page, only the API's JSON 404 that says so.
#[tokio::test]
async fn no_demo_page_when_it_is_off() {
    let app = router::app_with(&[("DEMO_PAGE", "off")]);
    let reply = router::get(&app, "/demo").await;
    router::error_of(&reply, axum::http::StatusCode::NOT_FOUND, "demo_off");
}

/// Wait until the page shows `n` messages and is no longer busy; an error it shows fails.
fn wait_for_messages(browser: &Browser, n: usize) {
    let error = browser.one("[data-testid=error]");
    browser.wait(&format!("message {n} on the page"), || {
        if browser.displayed(&error) {
            panic!("the page shows an error: {}", browser.text(&error));
        }
        let state = browser.script(
            "return [document.querySelectorAll('[data-testid=message]').length, \
             document.body.dataset.busy === 'true']",
            json!([]),
        );
        (state[0] == n && state[1] == false).then_some(())
    });
}

/// What the page shows for each message, read from its DOM (text as shown, and the
/// `data-testid` elements' attributes).
fn page_messages(browser: &Browser) -> Vec<Value> {
    let script = r#"
      return Array.from(document.querySelectorAll('[data-testid=message]'), (m) => {
        const sw = m.querySelector('[data-testid=step-switched]');
        return {
          index: Number(m.dataset.index),
          message_id: m.dataset.messageId,
          text: m.querySelector('[data-testid=message-text]').textContent,
          conversation_tag: m.dataset.conversationTag,
          shown_tag: m.querySelector('[data-testid=step-conversation-tag]').textContent,
          switched: m.dataset.switched === 'true',
          previous_tag: m.dataset.previousTag,
          switch_text: sw ? sw.textContent : null,
          rows: Array.from(m.querySelectorAll('[data-testid=tag-row]'), (r) => ({
            tag: r.dataset.tag,
            confidence: Number(r.dataset.confidence),
            selected: r.dataset.selected === 'true',
            threshold: Number(r.querySelector('[data-testid=threshold-mark]').dataset.threshold),
            source: r.dataset.thresholdSource,
            threshold_title: r.querySelector('[data-testid=threshold]').title,
            disabled: r.dataset.disabled === 'true',
            opacity: getComputedStyle(r).opacity,
            text: r.innerText,
            weight: getComputedStyle(r).fontWeight,
          })),
          marks: Array.from(m.querySelectorAll('[data-testid=explain-word]'), (w) => ({
            start: Number(w.dataset.start),
            end: Number(w.dataset.end),
            text: w.textContent,
            tags: w.dataset.tags.split(' '),
          })),
        };
      });"#;
    browser
        .script(script, json!([]))
        .as_array()
        .expect("an array")
        .clone()
}

/// The conversation tag timeline as the page shows it.
fn page_timeline(browser: &Browser) -> Vec<Value> {
    let script = r#"
      return Array.from(document.querySelectorAll('[data-testid=timeline-step]'), (s) => ({
        index: Number(s.dataset.index),
        tag: s.dataset.tag,
        switched: s.dataset.switched === 'true',
        text: s.innerText,
        displayed: s.getClientRects().length > 0,
      }));"#;
    browser
        .script(script, json!([]))
        .as_array()
        .expect("an array")
        .clone()
}

/// No JavaScript error or refused resource (a Content-Security-Policy violation is one) in
/// the browser's console. The favicon's 404 is not the page's.
fn assert_no_console_errors(browser: &Browser) {
    let log = browser.post("/se/log", &json!({"type": "browser"}));
    let severe: Vec<&Value> = log
        .as_array()
        .expect("log entries")
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .filter(|e| !e["message"].as_str().unwrap_or("").contains("favicon.ico"))
        .collect();
    assert!(severe.is_empty(), "console errors: {severe:?}");
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `target/demo` (in `CARGO_TARGET_DIR` when it is set).
fn demo_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .join("demo")
}

// ---------------------------------------------------------------------------------------
// The service on a loopback port
// ---------------------------------------------------------------------------------------

/// The real router (embedded model, in-memory conversations and feedback) on a loopback port,
/// served by its own runtime while the test drives the browser.
struct Server {
    addr: SocketAddr,
    feedback: Arc<MemoryFeedback>,
    profiles: Arc<Profiles>,
    runtime: tokio::runtime::Runtime,
}

/// Shop profiles in memory, whose reads fail while `down` is set.
#[derive(Default)]
struct Profiles {
    store: MemoryProfiles,
    down: AtomicBool,
}

#[async_trait]
impl ProfileStore for Profiles {
    async fn get(&self, shop_id: &str) -> Result<Option<StoredProfile>, StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the test took it down".into()));
        }
        self.store.get(shop_id).await
    }

    async fn put(&self, shop_id: &str, profile: &StoredProfile) -> Result<(), StoreError> {
        self.store.put(shop_id, profile).await
    }

    async fn delete(&self, shop_id: &str) -> Result<bool, StoreError> {
        self.store.delete(shop_id).await
    }
}

impl Server {
    fn start(vars: &[(&str, &str)]) -> Self {
        let feedback = Arc::new(MemoryFeedback::default());
        let profiles = Arc::new(Profiles::default());
        let tagger = Tagger::new(
            Arc::clone(&router::CLASSIFIER),
            Arc::new(MemoryStore::new()),
            router::config(vars),
        )
        .with_feedback(Arc::clone(&feedback) as Arc<dyn FeedbackStore>)
        .with_profiles(Arc::clone(&profiles) as Arc<dyn ProfileStore>);
        let app = tagbeez::api::router(tagger);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.expect("the server runs");
        });
        Self {
            addr,
            feedback,
            profiles,
            runtime,
        }
    }

    /// Every correction the service has stored.
    fn stored_feedback(&self) -> Vec<FeedbackRecord> {
        let (records, _) = self
            .runtime
            .block_on(self.feedback.page(None))
            .expect("the memory store answers");
        records
    }
}

/// A service call that must answer 2xx with JSON.
fn api_json(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(Value::to_string);
    let (status, _, text) = http(addr, method, path, body.as_deref())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    assert!(
        (200..300).contains(&status),
        "{method} {path} -> {status}: {text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text}"))
}
