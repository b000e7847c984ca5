//! Why a tag: per selected tag, the words whose removal lowers its probability most
//! (occlusion). Pure: it reads the classifier's `Occlusion` and knows nothing of HTTP.

use serde::Serialize;
use utoipa::ToSchema;

use crate::classifier::Occlusion;

/// Words reported per tag.
pub const TOP_WORDS: usize = 3;

/// The smallest drop reported, as a share of the tag's largest (both in log-odds): beside a
/// word whose removal costs 3 log-odds ("discount"), one that costs 0.05 ("if") is noise.
pub const MIN_SHARE: f32 = 0.1;

/// Probabilities are clamped to this distance from 0 and 1 before taking log-odds.
const EPSILON: f32 = 1e-6;

/// The log-odds of a probability: the model's evidence before the sigmoid. Words are ranked
/// by the drop in log-odds, not in probability: near 0.999 several words are each enough
/// alone, every single removal moves the probability by thousandths, and a filler word's
/// thousandth looks like a keyword's; in log-odds the keyword still stands out.
fn log_odds(p: f32) -> f32 {
    let p = p.clamp(EPSILON, 1.0 - EPSILON);
    (p / (1.0 - p)).ln()
}

/// A message's explanation, per selected tag.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Explanation {
    /// Always `"occlusion"`: each word removed in turn, the drop in probability measured.
    pub method: String,
    /// Whitespace-separated words in the message.
    pub words: usize,
    /// Words explained: the first `EXPLAIN_MAX_WORDS` of them.
    pub explained_words: usize,
    /// True when the message had more words than were explained.
    pub truncated: bool,
    /// One entry per selected tag, in `selected` order.
    pub tags: Vec<TagWords>,
}

/// The words that raised one tag's probability most.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TagWords {
    pub tag: String,
    /// Up to three words, the largest drop in log-odds first; only words whose removal lowers
    /// the probability, by at least a tenth as much (in log-odds) as the first's
    /// (`MIN_SHARE`). Empty when no single word lowers it.
    pub words: Vec<WordWeight>,
}

/// A word of the message and how much it raised a tag's probability.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WordWeight {
    pub word: String,
    /// Offsets in Unicode scalar values into the message as sent (`end` exclusive).
    pub start: usize,
    pub end: usize,
    /// The tag's probability with the word minus without it.
    pub weight: f32,
    /// The same drop in log-odds (what words are ranked by).
    pub log_odds: f32,
}

/// Explain the `selected` tag indices of `text` (the message as sent), whose probabilities
/// were `probabilities`, from the occlusion of its words.
pub fn explain(
    text: &str,
    probabilities: &[f32],
    occlusion: &Occlusion,
    selected: &[usize],
    tags: &[String],
) -> Explanation {
    let tags = selected
        .iter()
        .map(|&t| {
            let mut words: Vec<WordWeight> = occlusion
                .words
                .iter()
                .zip(&occlusion.without)
                .map(|(span, without)| WordWeight {
                    word: text[span.byte_start..span.byte_end].to_owned(),
                    start: span.start,
                    end: span.end,
                    weight: probabilities[t] - without[t],
                    log_odds: log_odds(probabilities[t]) - log_odds(without[t]),
                })
                .filter(|w| w.log_odds > 0.0 && w.weight > 0.0)
                .collect();
            words.sort_by(|a, b| {
                b.log_odds
                    .total_cmp(&a.log_odds)
                    .then(a.start.cmp(&b.start))
            });
            let floor = words.first().map_or(0.0, |w| w.log_odds * MIN_SHARE);
            words.retain(|w| w.log_odds >= floor);
            words.truncate(TOP_WORDS);
            TagWords {
                tag: tags[t].clone(),
                words,
            }
        })
        .collect();
    Explanation {
        method: "occlusion".into(),
        words: occlusion.total_words,
        explained_words: occlusion.words.len(),
        truncated: occlusion.words.len() < occlusion.total_words,
        tags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classifier::words;

    #[test]
    fn words_are_ranked_by_the_drop_their_removal_causes() {
        let text = " cheap shoes now";
        let occlusion = Occlusion {
            words: words(text),
            total_words: 3,
            // Without "cheap", "shoes", "now": tag 0 drops most without "cheap"; tag 1 rises
            // without "now" (a negative weight is not reported).
            without: vec![vec![0.2, 0.5], vec![0.7, 0.4], vec![0.78, 0.9]],
        };
        let tags = ["Deal".to_owned(), "Hot".to_owned()];
        let e = explain(text, &[0.8, 0.6], &occlusion, &[0, 1], &tags);
        assert_eq!((e.words, e.explained_words, e.truncated), (3, 3, false));
        let deal: Vec<(&str, usize)> = e.tags[0]
            .words
            .iter()
            .map(|w| (w.word.as_str(), w.start))
            .collect();
        // "now" (0.12 log-odds) is under a tenth of "cheap" (2.77): noise, left out.
        assert_eq!(deal, [("cheap", 1), ("shoes", 7)]);
        assert!((e.tags[0].words[0].weight - 0.6).abs() < 1e-6);
        assert!((e.tags[0].words[0].log_odds - 2.0 * 4f32.ln()).abs() < 1e-4);
        let hot: Vec<&str> = e.tags[1].words.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(hot, ["shoes", "cheap"]);
    }

    #[test]
    fn a_cut_message_says_so() {
        let text = "a b c";
        let occlusion = Occlusion {
            words: words(text).into_iter().take(2).collect(),
            total_words: 3,
            without: vec![vec![0.1], vec![0.1]],
        };
        let e = explain(text, &[0.5], &occlusion, &[0], &["T".to_owned()]);
        assert_eq!((e.explained_words, e.truncated), (2, true));
    }
}
