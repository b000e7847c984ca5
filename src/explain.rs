//! Why a tag: per selected tag, the words whose removal lowers its probability most
//! (occlusion). Pure: it reads the classifier's `Occlusion` and knows nothing of HTTP.

use serde::Serialize;
use utoipa::ToSchema;

use crate::classifier::Occlusion;

/// Words reported per tag.
pub const TOP_WORDS: usize = 3;

/// The smallest weight reported, as a share of the tag's largest: beside a word that moves
/// the probability by 0.48 ("discount"), one that moves it by 0.005 ("if") is noise. Relative,
/// not absolute: when a probability is saturated (0.999, several words each enough alone),
/// every single removal moves it little, and the largest of those moves still says the most.
pub const MIN_SHARE: f32 = 0.1;

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
    /// Up to three words, largest weight first; only words whose removal lowers the
    /// probability, by at least a tenth as much as the first (`MIN_SHARE`). Empty when no
    /// single word lowers it.
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
                })
                .filter(|w| w.weight > 0.0)
                .collect();
            words.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(a.start.cmp(&b.start)));
            let floor = words.first().map_or(0.0, |w| w.weight * MIN_SHARE);
            words.retain(|w| w.weight >= floor);
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
            without: vec![vec![0.2, 0.5], vec![0.7, 0.4], vec![0.75, 0.9]],
        };
        let tags = ["Deal".to_owned(), "Hot".to_owned()];
        let e = explain(text, &[0.8, 0.6], &occlusion, &[0, 1], &tags);
        assert_eq!((e.words, e.explained_words, e.truncated), (3, 3, false));
        let deal: Vec<(&str, usize)> = e.tags[0]
            .words
            .iter()
            .map(|w| (w.word.as_str(), w.start))
            .collect();
        // "now" (0.05) is under a tenth of "cheap" (0.6): noise, left out.
        assert_eq!(deal, [("cheap", 1), ("shoes", 7)]);
        assert!((e.tags[0].words[0].weight - 0.6).abs() < 1e-6);
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
