//! The run's traffic: what the producer sends, all from the plan's seed. Customer phrasings by
//! intent, each conversation's script of intent phases (so its tag switches several times),
//! the poison records (1% of the valid ones: not JSON, an empty message, an invalid
//! conversation id), and the send order in bursts per conversation. Kept apart from the
//! driver so the inputs can be read, and changed, without the machinery that sends them.

use std::collections::HashMap;

use serde_json::json;

use crate::{sqs, Plan};

/// Customer messages by intent (test inputs written for this run). The embedded model selects
/// each for its own tag with high confidence, so a conversation's tag follows its phases.
const PHRASES: [(&str, &[&str]); 5] = [
    (
        "hot",
        &[
            "I want to buy this right now, send me the checkout link",
            "add the large one to my cart, I'm paying now",
            "ready to order two of these today, how do I pay?",
            "place the order please, card details coming",
        ],
    ),
    (
        "wishlist",
        &[
            "These shoes look nice, I'll save them for later",
            "adding this jacket to my wishlist for my birthday",
            "can you remind me when this is back in stock? saving it",
        ],
    ),
    (
        "deal",
        &[
            "any coupons or sales on this right now?",
            "I'll wait until it's cheaper, do you price match?",
            "is there a discount code for first orders?",
        ],
    ),
    (
        "first-time",
        &[
            "Hi, I'm new to your website. What products do you sell?",
            "first time here, how does shipping work?",
            "just found your shop, do you have a store near me?",
        ],
    ),
    (
        "window",
        &[
            "just looking around, thanks",
            "only browsing for now, nothing specific",
            "hmm interesting, just checking out what you have",
        ],
    ),
];

/// splitmix64: the run's choices (phases, phrasings, send order) from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

pub fn conversation_id(c: usize) -> String {
    format!("conv-{c:03}")
}

/// A conversation's messages: phases of 2-7 messages of one intent, each phase another
/// intent than the last.
fn script(rng: &mut Rng, n: usize) -> Vec<&'static str> {
    let mut out = Vec::with_capacity(n);
    let mut last = usize::MAX;
    while out.len() < n {
        let mut intent = rng.below(PHRASES.len());
        if intent == last {
            intent = (intent + 1 + rng.below(PHRASES.len() - 1)) % PHRASES.len();
        }
        last = intent;
        let phrases = PHRASES[intent].1;
        for _ in 0..2 + rng.below(6) {
            if out.len() < n {
                out.push(phrases[rng.below(phrases.len())]);
            }
        }
    }
    out
}

#[derive(Debug, Clone)]
pub enum Kind {
    Valid { conversation: usize },
    Poison { why: &'static str },
}

#[derive(Debug, Clone)]
pub struct Item {
    pub kind: Kind,
    pub out: sqs::Outgoing,
}

/// A record that can never succeed, of one of three kinds.
fn poison(j: usize, conversation: &str) -> (&'static str, String) {
    match j % 3 {
        0 => ("not JSON", format!("poison {j}: this is not JSON {{")),
        1 => (
            "empty message",
            json!({"conversation_id": conversation, "message": "   "}).to_string(),
        ),
        _ => (
            "invalid conversation id",
            json!({"conversation_id": format!("bad id! {j}"), "message": PHRASES[0].1[0]})
                .to_string(),
        ),
    }
}

/// Everything to send, in send order: in each round every conversation that has messages
/// left, in a shuffled order, sends a burst of its next 1-3 (customers write several lines
/// in a row), so a receive of ten spans several groups and often holds two or three records
/// of one group in order; the poison records are spread over the conversations and rounds.
pub fn items(plan: &Plan) -> Vec<Item> {
    let mut rng = Rng(plan.seed);
    let scripts: Vec<Vec<&str>> = (0..plan.conversations)
        .map(|_| script(&mut rng, plan.messages))
        .collect();
    let mut poison_at: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
    for j in 0..plan.poison {
        let c = (j * plan.conversations / plan.poison.max(1) + j % 3) % plan.conversations;
        let r = (j * 17 + 5) % plan.messages;
        poison_at.entry((c, r)).or_default().push(j);
    }
    let mut out = Vec::new();
    let mut seq = 0;
    let mut dedup = || {
        seq += 1;
        format!("{}-{seq:06}", plan.name)
    };
    let mut next = vec![0usize; plan.conversations];
    while next.iter().any(|&r| r < plan.messages) {
        let mut order: Vec<usize> = (0..plan.conversations)
            .filter(|&c| next[c] < plan.messages)
            .collect();
        rng.shuffle(&mut order);
        for c in order {
            let id = conversation_id(c);
            let burst = 1 + rng.below(3);
            let end = (next[c] + burst).min(plan.messages);
            for (r, message) in scripts[c].iter().enumerate().take(end).skip(next[c]) {
                for &j in poison_at.get(&(c, r)).into_iter().flatten() {
                    let (why, body) = poison(j, &id);
                    out.push(Item {
                        kind: Kind::Poison { why },
                        out: sqs::Outgoing {
                            group: Some(id.clone()),
                            dedup: Some(dedup()),
                            body,
                        },
                    });
                }
                let body = json!({"conversation_id": id, "message": message}).to_string();
                out.push(Item {
                    kind: Kind::Valid { conversation: c },
                    out: sqs::Outgoing {
                        group: Some(id.clone()),
                        dedup: Some(dedup()),
                        body,
                    },
                });
            }
            next[c] += burst;
        }
    }
    out
}
