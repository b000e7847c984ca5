//! What experiments need kept: each exposed conversation's variant and counts, and the
//! outcomes shops report. The trait the service sees, and the in-memory store. DynamoDB:
//! `dynamo_experiments.rs` (one table: partition `{shop_id}#{experiment}`, one item per
//! conversation and one per outcome).

use std::collections::HashMap;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::StoreError;
use crate::shops::{Exposure, Outcome};

/// The records of one shop's experiment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExperimentRecords {
    pub exposures: Vec<Exposure>,
    pub outcomes: Vec<Outcome>,
}

/// Exposures and outcomes, by shop and experiment (`""`: outcomes recorded while the shop ran
/// no experiment).
#[async_trait]
pub trait ExperimentStore: Send + Sync + 'static {
    /// Count one classified message of `conversation_id` in `variant`: creates the
    /// conversation's exposure (with `first_at = at`) or adds to it.
    async fn expose(
        &self,
        shop_id: &str,
        experiment: &str,
        conversation_id: &str,
        variant: &str,
        tags_selected: u64,
        at: u64,
    ) -> Result<(), StoreError>;

    /// Record an outcome once: `false` (and nothing written) when its `outcome_id` is
    /// already recorded for the shop and experiment.
    async fn record_outcome(&self, outcome: &Outcome) -> Result<bool, StoreError>;

    /// Every exposure and outcome of a shop's experiment (all pages).
    async fn records(
        &self,
        shop_id: &str,
        experiment: &str,
    ) -> Result<ExperimentRecords, StoreError>;
}

/// Experiment records in process memory.
#[derive(Debug, Default)]
pub struct MemoryExperiments {
    /// `(shop_id, experiment)` -> (exposures by conversation id, outcomes by outcome id).
    #[allow(clippy::type_complexity)]
    by_experiment:
        Mutex<HashMap<(String, String), (HashMap<String, Exposure>, HashMap<String, Outcome>)>>,
}

#[async_trait]
impl ExperimentStore for MemoryExperiments {
    async fn expose(
        &self,
        shop_id: &str,
        experiment: &str,
        conversation_id: &str,
        variant: &str,
        tags_selected: u64,
        at: u64,
    ) -> Result<(), StoreError> {
        let mut map = self.by_experiment.lock().await;
        let (exposures, _) = map
            .entry((shop_id.to_owned(), experiment.to_owned()))
            .or_default();
        let e = exposures
            .entry(conversation_id.to_owned())
            .or_insert_with(|| Exposure {
                conversation_id: conversation_id.to_owned(),
                variant: variant.to_owned(),
                messages: 0,
                tags_selected: 0,
                first_at: at,
            });
        e.messages += 1;
        e.tags_selected += tags_selected;
        Ok(())
    }

    async fn record_outcome(&self, outcome: &Outcome) -> Result<bool, StoreError> {
        let mut map = self.by_experiment.lock().await;
        let key = (
            outcome.shop_id.clone(),
            outcome.experiment.clone().unwrap_or_default(),
        );
        let (_, outcomes) = map.entry(key).or_default();
        if outcomes.contains_key(&outcome.outcome_id) {
            return Ok(false);
        }
        outcomes.insert(outcome.outcome_id.clone(), outcome.clone());
        Ok(true)
    }

    async fn records(
        &self,
        shop_id: &str,
        experiment: &str,
    ) -> Result<ExperimentRecords, StoreError> {
        let map = self.by_experiment.lock().await;
        let Some((exposures, outcomes)) = map.get(&(shop_id.to_owned(), experiment.to_owned()))
        else {
            return Ok(ExperimentRecords::default());
        };
        let mut records = ExperimentRecords {
            exposures: exposures.values().cloned().collect(),
            outcomes: outcomes.values().cloned().collect(),
        };
        records
            .exposures
            .sort_by(|a, b| a.conversation_id.cmp(&b.conversation_id));
        records
            .outcomes
            .sort_by(|a, b| a.outcome_id.cmp(&b.outcome_id));
        Ok(records)
    }
}
