//! Drift you can see, on real parts: the embedded model scores a balanced stream of shoppers'
//! messages, then a shifted one (only discount questions); each message goes through
//! `drift::Monitor` with the embedded baseline, and the population stability index, the
//! Deal-seeker selection rate and the no-tag rate are read back from the monitor and from the
//! real Prometheus exporter's page. (One recorder per process: the EMF form of the same metrics
//! has its own test binary, `drift_emf.rs`.)
//!
//! The messages are this test's own, written for it (none from model/data or ../shared).
//! `cargo test --profile local --test drift -- --nocapture` prints the numbers docs/drift.md
//! quotes.

use std::sync::LazyLock;

use tagbeez::classifier::{embedded, Classifier};
use tagbeez::drift::{Baseline, Monitor, MIN_MESSAGES, PSI_EVERY};
use tagbeez::telemetry::{self, names, MetricsMode};

static CLASSIFIER: LazyLock<Classifier> =
    LazyLock::new(|| Classifier::load(embedded::model_files()).expect("the embedded model loads"));

/// A mixed day of traffic: about ten messages for each tag, and a dozen that call for none.
const BALANCED: &[&str] = &[
    // First-time-visitor
    "hello! first time on this site, what kind of stuff do you sell?",
    "Hi there, I just found your shop through a friend. How does ordering work here?",
    "never bought from you before, do I need an account to place an order?",
    "new here - are you a real store or only online?",
    "Hey, I'm new. Where are you based and do you ship to Ireland?",
    "just discovered this website, can someone explain how your sizing works?",
    "first visit, how long does delivery usually take for a new customer?",
    "I've never heard of your brand before, what makes your products different?",
    "hi, I'm browsing your shop for the first time, is there a guide for beginners?",
    "my sister recommended you, this is my first time here. what do you sell most?",
    // Wishlist-user
    "can I save this lamp to my wishlist and come back to it next month?",
    "adding the grey sofa to my favourites for now, will decide after payday",
    "is there a way to bookmark items without buying them yet?",
    "I keep a list of things I like here, can I share my wishlist with my partner?",
    "saving these boots for later, will they stay in my list if I log out?",
    "please keep the blue kettle in my saved items, I'll get it for my birthday",
    "how do I add the ceramic vase to a wish list?",
    "I'd like to put the desk chair on my list and buy it in a few weeks",
    "my wishlist disappeared, I had three jackets saved in there",
    "can you notify me if something on my saved list comes back in stock?",
    // Deal-seeker
    "do you have any discount codes at the moment?",
    "is the winter coat going on sale anytime soon?",
    "any coupons for first orders?",
    "can I get free shipping if I spend a bit more?",
    "will there be a black friday deal on the espresso machine?",
    "is there a cheaper price if I buy two of them?",
    "do you price match if I find it cheaper somewhere else?",
    "my promo code isn't working at checkout, can you help?",
    "any student discount on laptops?",
    "when is your next clearance sale?",
    // Window-shopper
    "just looking around for now, not planning to buy anything today",
    "only browsing, your new collection looks lovely though",
    "I'm just having a look, no need to help, thanks",
    "killing time scrolling through your garden section",
    "not buying, just curious what's new this season",
    "browsing for ideas for my living room, nothing specific in mind",
    "just window shopping tonight, nice website by the way",
    "I'm only looking, maybe I'll come back someday",
    "scrolling through the shoes for fun, not shopping seriously",
    "just checking out what you have, no rush",
    // Hot-buyer
    "I want to order the red dress in size M right now, how do I pay?",
    "ready to buy, please send me the checkout link",
    "I'll take two of the hiking backpacks, can I pay by card today?",
    "add the 55 inch TV to my cart, I'm buying it now",
    "how fast can I complete the purchase? I want it delivered tomorrow",
    "I'm ready to place my order for the standing desk",
    "buying this now, do you accept paypal?",
    "please reserve the last one for me, I'm paying immediately",
    "I've decided, I want the blender, where do I check out?",
    "confirm my order for the running shoes please, size 42",
    // No tag
    "what are your customer service hours?",
    "does this jacket come in dark green?",
    "is the table made of solid oak or veneer?",
    "how do I wash the wool jumper?",
    "can you tell me the dimensions of the bookshelf?",
    "my parcel says delivered but I can't find it",
    "do you have a physical shop in Manchester?",
    "what batteries does the remote need?",
    "is this charger compatible with my phone?",
    "how do I change the email on my account?",
    "the zip on my bag broke after a week",
    "thanks for the quick reply yesterday",
];

/// Only discount, coupon and sale questions: the traffic of a promotion weekend.
const SHIFTED: &[&str] = &[
    "is there a discount code for the summer sale?",
    "any coupons available today?",
    "when does the sale on sofas start?",
    "do you have a promo code for new customers?",
    "can I get 10% off if I sign up to the newsletter?",
    "is the black friday discount still on?",
    "will these trainers be cheaper next week?",
    "are there any deals on headphones right now?",
    "do you offer a discount for nurses?",
    "my coupon code says expired, any other code I can use?",
    "is there a bundle price if I buy the set?",
    "any cyber monday offers on laptops?",
    "how much is the discount on the clearance rack?",
    "do you do student discounts?",
    "is there a voucher for my birthday?",
    "can you give me a better price on the fridge?",
    "any free delivery codes?",
    "will the winter boots go on sale soon?",
    "do you have a loyalty discount for returning customers?",
    "is there a cheaper version of this vacuum?",
    "are prices lower in the outlet section?",
    "what's the best deal you have on mattresses?",
    "can I combine two promo codes?",
    "is the 20% off code valid on sale items too?",
    "do you price match amazon?",
    "any flash sales this weekend?",
    "is there a military discount?",
    "can I get money off if I buy three?",
    "when is your next big sale?",
    "any discount for paying upfront?",
    "have you got a coupon for the coffee machine?",
    "is the sale price still available?",
    "do you give discounts on bulk orders?",
    "any referral codes I could use for a discount?",
    "is there a seasonal sale coming up?",
    "could you knock a bit off the price?",
    "are there any offers on kids clothes?",
    "do pensioners get a discount?",
    "is there a cashback deal on the TV?",
    "where can I find your discount codes?",
    "any promotions for first-time buyers?",
    "will the price of the blender drop after christmas?",
    "is free shipping included in the sale?",
    "can I use a discount code on a gift card?",
    "do you have any deals on last season's stock?",
    "is there a two-for-one offer running?",
    "I saw a cheaper price on your app, can you match it?",
    "any teacher discounts available?",
    "got any codes for money off my first order?",
    "when is the end of season sale?",
    "is there a discount on damaged boxes?",
    "any price cuts coming on the gaming chair?",
    "do you have a coupon for the next purchase?",
    "is the holiday sale live yet?",
    "can I get a discount if I leave a review?",
    "what's the cheapest option for this printer?",
    "any promo on the winter jackets?",
    "do you have a price drop alert for the sofa?",
    "is there a discount for buying online instead of in store?",
    "are there any coupons for the shoes in my basket?",
];

const DEAL: &str = "Deal-seeker";
const WINDOW: usize = 100;
/// Messages fed per stream: more than the window, and a whole number of `PSI_EVERY` steps, so
/// the PSI gauge is recomputed on the stream's last message, over a window of that stream only.
const STREAM: usize = 150;

/// Each message's calibrated probabilities, in tag order.
fn score(messages: &[&str]) -> Vec<Vec<f32>> {
    CLASSIFIER
        .classify_batch(messages)
        .expect("the model scores")
        .into_iter()
        .map(|p| p.probabilities)
        .collect()
}

/// Feed `count` messages of `scored` (cycled) through the monitor, as the service would.
fn feed(monitor: &Monitor, shop: Option<&str>, scored: &[Vec<f32>], count: usize) {
    let thresholds = &CLASSIFIER.labels().thresholds;
    for probabilities in scored.iter().cycle().take(count) {
        let selected: Vec<bool> = probabilities
            .iter()
            .zip(thresholds)
            .map(|(p, t)| p >= t)
            .collect();
        monitor.observe(shop, probabilities, &selected);
    }
}

/// The value of the sample line `name{labels}`, summed over every line that has all of
/// `labels` (across shops and none).
fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    page.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A rate histogram's running (sum, count) for `labels`.
fn rate(page: &str, name: &str, labels: &[(&str, &str)]) -> (f64, f64) {
    (
        sample(page, &format!("{name}_sum"), labels),
        sample(page, &format!("{name}_count"), labels),
    )
}

fn page() -> String {
    telemetry::render_prometheus().expect("metrics go to Prometheus")
}

/// Deal-seeker's PSI in `Monitor::psi`'s list.
fn deal_psi(list: &[(String, Option<f64>)]) -> f64 {
    list.iter()
        .find(|(t, _)| t == DEAL)
        .and_then(|(_, v)| *v)
        .expect("a PSI once the window holds enough messages")
}

#[test]
fn a_shifted_stream_moves_the_psi_and_the_alarms_metrics() {
    let version = CLASSIFIER.labels().file.model_version.clone();
    telemetry::install(MetricsMode::Prometheus, false, "tagbeez", &version).expect("install");
    const { assert!(STREAM > WINDOW && STREAM.is_multiple_of(PSI_EVERY) && WINDOW >= MIN_MESSAGES) };
    let tags = &CLASSIFIER.labels().tags;
    let baseline = Baseline::embedded().expect("the embedded baseline parses");
    assert_eq!(baseline.model_version(), version, "made for this model");
    let monitor = Monitor::try_new(tags, baseline, WINDOW, true).expect("the model's tags");
    let (balanced, shifted) = (score(BALANCED), score(SHIFTED));
    assert!(BALANCED.len() >= 60 && SHIFTED.len() >= 60);

    // The balanced stream: no shop named.
    feed(&monitor, None, &balanced, STREAM);
    let before = monitor.psi();
    let first = page();
    let (deal_sum_1, deal_count_1) = rate(&first, names::SELECTION_RATE, &[("tag", DEAL)]);
    let (none_sum_1, none_count_1) = rate(&first, names::NO_TAG_RATE, &[]);
    assert_eq!(
        deal_count_1, STREAM as f64,
        "one value per message: {first}"
    );
    assert_eq!(none_count_1, STREAM as f64);
    let gauge = sample(&first, names::PSI, &[("tag", DEAL)]);
    assert!(
        (gauge - deal_psi(&before)).abs() < 1e-9,
        "the gauge was recomputed on the last message: {gauge}"
    );

    // The shifted stream, from one shop: a promotion weekend.
    feed(&monitor, Some("deals-r-us"), &shifted, STREAM);
    let after = monitor.psi();
    let second = page();
    let (deal_sum_2, deal_count_2) = rate(&second, names::SELECTION_RATE, &[("tag", DEAL)]);
    let (none_sum_2, none_count_2) = rate(&second, names::NO_TAG_RATE, &[]);
    let deal_before = deal_sum_1 / deal_count_1;
    let deal_after = (deal_sum_2 - deal_sum_1) / (deal_count_2 - deal_count_1);
    let none_before = none_sum_1 / none_count_1;
    let none_after = (none_sum_2 - none_sum_1) / (none_count_2 - none_count_1);

    println!("window {WINDOW}, {STREAM} messages per stream; PSI per tag, balanced -> shifted:");
    for ((tag, b), (_, a)) in before.iter().zip(&after) {
        println!("  {tag:<20} {:.4} -> {:.4}", b.unwrap(), a.unwrap());
    }
    println!("  Deal-seeker selection rate {deal_before:.3} -> {deal_after:.3}");
    println!("  no-tag rate                {none_before:.3} -> {none_after:.3}");

    let (psi_before, psi_after) = (deal_psi(&before), deal_psi(&after));
    // Not `psi_before < 0.25`: a hand-written balanced stream holds far more Deal-seeker
    // messages than real traffic (the baseline), and on an AVX2-only CPU the f32 form moves
    // probabilities by up to 0.07, so its PSI sits near 0.2 with little margin. The shift is
    // what is asserted: an order of magnitude, and significant on its own.
    assert!(psi_after > 0.25, "significant: {psi_after}");
    assert!(
        psi_after > psi_before + 1.0 && psi_after > 5.0 * psi_before,
        "{psi_before} -> {psi_after}"
    );
    let gauge = sample(&second, names::PSI, &[("tag", DEAL)]);
    assert!((gauge - psi_after).abs() < 1e-9, "{gauge} vs {psi_after}");
    // The alarms' metrics: Deal-seeker's selection rate up, the no-tag rate down.
    assert!(deal_before < 0.4, "{deal_before}");
    assert!(deal_after > 0.8, "{deal_after}");
    assert!(none_before > 0.1, "{none_before}");
    assert!(
        none_after < none_before - 0.1,
        "{none_before} -> {none_after}"
    );
    // The shop's messages are in its own series (and only there: sums over shops are right).
    let shop = [("tag", DEAL), ("shop_id", "deals-r-us")];
    assert_eq!(rate(&second, names::SELECTION_RATE, &shop).1, STREAM as f64);
    assert_eq!(
        rate(&second, names::NO_TAG_RATE, &[("shop_id", "deals-r-us")]).1,
        STREAM as f64
    );
    // The bins: every message counted once per tag, the shifted ones mostly in the top bin.
    let bins: f64 = (0..10)
        .map(|b| {
            sample(
                &second,
                names::PROBABILITY_BIN,
                &[("tag", DEAL), ("bin", &b.to_string())],
            )
        })
        .sum();
    assert_eq!(bins, 2.0 * STREAM as f64);
    let top = sample(
        &second,
        names::PROBABILITY_BIN,
        &[("tag", DEAL), ("bin", "9"), ("shop_id", "deals-r-us")],
    );
    assert!(top > 0.8 * STREAM as f64, "{top}: {second}");
}
