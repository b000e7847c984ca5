//! Metrics of shop profiles and experiments.

use super::{names, on};

/// A request's profile read: `cached`, `stored` or `fallback` (the store failed or was slow).
pub fn profile_read(how: &'static str) {
    if on() {
        metrics::counter!(names::PROFILE_READS, "how" => how).increment(1);
    }
}

/// A conversation's message not counted in its experiment (the experiment store failed).
pub fn exposure_lost() {
    if on() {
        metrics::counter!(names::EXPOSURES_LOST).increment(1);
    }
}

/// An outcome recorded (`purchase`, `handoff`, `abandoned`), with the shop's experiment and
/// the conversation's variant (`-` for none).
pub fn outcome_recorded(outcome: &'static str, experiment: &str, variant: &str) {
    if on() {
        metrics::counter!(names::OUTCOMES, "outcome" => outcome,
            "experiment" => experiment.to_owned(), "variant" => variant.to_owned())
        .increment(1);
    }
}

/// A conversation's message counted in its experiment's variant, with the tags it selected.
pub fn exposed(experiment: &str, variant: &str, tags_selected: usize) {
    if on() {
        let (e, v) = (experiment.to_owned(), variant.to_owned());
        metrics::counter!(names::EXPERIMENT_MESSAGES, "experiment" => e.clone(), "variant" => v.clone())
            .increment(1);
        metrics::counter!(names::EXPERIMENT_TAGS_SELECTED, "experiment" => e, "variant" => v)
            .increment(tags_selected as u64);
    }
}
