//! Occlusion: the message with each of its words removed in turn, all variants classified in
//! one padded batch. What a word contributes is then the drop in each tag's probability when
//! it is missing (the service turns that into explanations; this knows no tags or thresholds).

use super::{Classifier, ClassifierError, Split};

/// A whitespace-separated word of a message, located in the text as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordSpan {
    /// Byte offsets, for slicing.
    pub byte_start: usize,
    pub byte_end: usize,
    /// Offsets in Unicode scalar values (`char`s): what a client indexes (JS `Array.from`).
    pub start: usize,
    pub end: usize,
}

/// Each occluded word with the probabilities of the message without it.
#[derive(Debug, Clone, PartialEq)]
pub struct Occlusion {
    /// The words occluded: the first `max_words` of the message.
    pub words: Vec<WordSpan>,
    /// Words in the whole message (more than `words.len()` when it was cut).
    pub total_words: usize,
    /// `without[i]`: probabilities per tag of the message without `words[i]`.
    pub without: Vec<Vec<f32>>,
}

/// The whitespace-separated words of `text` (`char::is_whitespace`, as the tokenizer splits).
pub fn words(text: &str) -> Vec<WordSpan> {
    let mut spans = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    let mut chars = 0;
    for (byte, c) in text.char_indices() {
        match (c.is_whitespace(), current) {
            (false, None) => current = Some((byte, chars)),
            (true, Some((byte_start, start))) => {
                spans.push(WordSpan {
                    byte_start,
                    byte_end: byte,
                    start,
                    end: chars,
                });
                current = None;
            }
            _ => {}
        }
        chars += 1;
    }
    if let Some((byte_start, start)) = current {
        spans.push(WordSpan {
            byte_start,
            byte_end: text.len(),
            start,
            end: chars,
        });
    }
    spans
}

impl Classifier {
    /// Classify `text` once per word among its first `max_words`, that word removed, in one
    /// padded batch: the cost of one batch of that many messages, each a word shorter.
    pub fn occlude(
        &self,
        text: &str,
        max_words: usize,
    ) -> Result<(Occlusion, Split), ClassifierError> {
        let all = words(text);
        let total_words = all.len();
        let spans: Vec<WordSpan> = all.into_iter().take(max_words).collect();
        if spans.is_empty() {
            let none = Occlusion {
                words: spans,
                total_words,
                without: Vec::new(),
            };
            return Ok((none, Split::default()));
        }
        let variants: Vec<String> = spans
            .iter()
            .map(|w| format!("{}{}", &text[..w.byte_start], &text[w.byte_end..]))
            .collect();
        let refs: Vec<&str> = variants.iter().map(|v| v.trim()).collect();
        let (predictions, split) = self.classify_batch_timed(&refs)?;
        let without = predictions.into_iter().map(|p| p.probabilities).collect();
        let occlusion = Occlusion {
            words: spans,
            total_words,
            without,
        };
        Ok((occlusion, split))
    }
}

#[cfg(test)]
mod tests {
    use super::words;

    #[test]
    fn words_are_located_in_chars_and_bytes() {
        let w = words("  héllo  wörld\tok ");
        let found: Vec<(usize, usize)> = w.iter().map(|w| (w.start, w.end)).collect();
        assert_eq!(found, [(2, 7), (9, 14), (15, 17)]);
        let text = "  héllo  wörld\tok ";
        assert_eq!(&text[w[1].byte_start..w[1].byte_end], "wörld");
        assert!(words(" \n ").is_empty());
        assert_eq!(words("one").len(), 1);
    }
}
