//! Threshold experiments, the use-case side: counting a conversation's messages in its
//! variant, recording the outcomes shops report, and the report a person promotes a variant
//! by (nothing is promoted automatically).
//!
//! A conversation's variant is not stored to be known: it is a stable hash (`shops::assign`),
//! so the outcome reported hours later lands in the same variant as its messages did.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::options::{ExperimentUse, Resolved};
use super::shops::valid_shop_id;
use super::{invalid, now, valid_conversation_id, ServiceError, Tagger};
use crate::shops::{self, report, Outcome, OutcomeKind};
use crate::store::StoreError;
use crate::telemetry;

/// `POST /outcome`: what happened in a conversation.
#[derive(Debug, Clone, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeRequest {
    #[schema(
        pattern = "^[A-Za-z0-9_.:@-]{1,128}$",
        min_length = 1,
        max_length = 128
    )]
    pub shop_id: String,
    #[schema(
        pattern = "^[A-Za-z0-9_.:@-]{1,128}$",
        min_length = 1,
        max_length = 128
    )]
    pub conversation_id: String,
    pub outcome: OutcomeKind,
    /// The purchase's value (>= 0), in `currency`.
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1e12)]
    pub value: Option<f64>,
    /// ISO 4217 code (`EUR`); required with `value`.
    #[serde(default)]
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
    /// Makes the call idempotent: an outcome id already recorded is not counted again.
    /// Default: `{conversation_id}:{outcome}` (one outcome of each kind per conversation);
    /// send one per order to count several purchases.
    #[serde(default)]
    #[schema(
        pattern = "^[A-Za-z0-9_.:@-]{1,128}$",
        min_length = 1,
        max_length = 128
    )]
    pub outcome_id: Option<String>,
}

/// What `POST /outcome` recorded.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OutcomeReceipt {
    pub outcome_id: String,
    /// False when this outcome id was already recorded: nothing was counted again.
    pub recorded: bool,
    /// The shop's experiment and this conversation's variant in it, when one runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentUse>,
}

impl Tagger {
    /// Count one written message of a conversation in its experiment variant. A failure does
    /// not fail the answer (the message is tagged and stored); it is counted
    /// (`tagbeez_exposures_lost`) and logged.
    pub(super) async fn expose(&self, conversation_id: &str, chosen: &Resolved, selected: usize) {
        let (Some(shop_id), Some(e)) = (&chosen.shop_id, &chosen.experiment) else {
            return;
        };
        let call = self.experiments.expose(
            shop_id,
            &e.name,
            conversation_id,
            &e.variant,
            selected as u64,
            now(),
        );
        telemetry::exposed(&e.name, &e.variant, selected);
        if let Err(why) = self.bounded_experiments(call).await {
            telemetry::exposure_lost();
            tracing::warn!(shop_id, conversation_id, error = %why, "experiment exposure not counted");
        }
    }

    /// Record an outcome once (idempotent by its `outcome_id`), in the shop's running
    /// experiment if it has one. Needs the shop's profile: with the profile store down and no
    /// profile known, a 503, never an outcome filed under the wrong experiment.
    pub async fn record_outcome(
        &self,
        req: OutcomeRequest,
    ) -> Result<OutcomeReceipt, ServiceError> {
        valid_shop_id(&req.shop_id)?;
        valid_conversation_id(&req.conversation_id)?;
        let outcome_id = match req.outcome_id {
            Some(id) => {
                valid_outcome_id(&id)?;
                id
            }
            None => format!("{}:{}", req.conversation_id, word(req.outcome)),
        };
        check_value(req.value, req.currency.as_deref())?;
        let shop = self.profiles.lookup(&req.shop_id).await;
        // The experiment an outcome belongs to is the profile's: with the stored profile
        // unreadable, even a last known copy may name an experiment since replaced.
        if let Some(why) = shop.error {
            return Err(ServiceError::ProfileUnavailable(why));
        }
        let experiment = shop
            .profile
            .as_ref()
            .and_then(|p| p.experiment.as_ref())
            .and_then(|e| {
                let variant = shops::assign(&req.shop_id, e, &req.conversation_id)?;
                Some(ExperimentUse {
                    name: e.name.clone(),
                    variant: variant.name.clone(),
                })
            });
        let outcome = Outcome {
            outcome_id: outcome_id.clone(),
            shop_id: req.shop_id,
            conversation_id: req.conversation_id,
            experiment: experiment.as_ref().map(|e| e.name.clone()),
            variant: experiment.as_ref().map(|e| e.variant.clone()),
            outcome: req.outcome,
            value: req.value,
            currency: req.currency,
            at: now(),
        };
        let recorded = self
            .bounded_experiments(self.experiments.record_outcome(&outcome))
            .await?;
        if recorded {
            let (name, variant) = experiment
                .as_ref()
                .map_or(("-", "-"), |e| (e.name.as_str(), e.variant.as_str()));
            telemetry::outcome_recorded(word(req.outcome), name, variant);
        }
        Ok(OutcomeReceipt {
            outcome_id,
            recorded,
            experiment,
        })
    }

    /// The report of a shop's experiment, which its profile must still hold (the report
    /// needs the variants and which one is the control).
    pub async fn experiment_report(
        &self,
        shop_id: &str,
        name: &str,
    ) -> Result<report::Report, ServiceError> {
        valid_shop_id(shop_id)?;
        if !shops::is_name(name) {
            return Err(invalid(
                "invalid_experiment",
                "the experiment name must be 1-128 characters of A-Z, a-z, 0-9, '_', '.', ':', '@', '-'",
            ));
        }
        let stored = self.profile(shop_id).await.map_err(|e| match e {
            ServiceError::ProfileNotFound(_) => not_running(shop_id, name),
            other => other,
        })?;
        let experiment = stored
            .profile
            .experiment
            .filter(|e| e.name == name)
            .ok_or_else(|| not_running(shop_id, name))?;
        let records = self
            .bounded_experiments(self.experiments.records(shop_id, name))
            .await?;
        Ok(report::report(
            &experiment,
            &records.exposures,
            &records.outcomes,
        ))
    }

    async fn bounded_experiments<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, ServiceError> {
        match tokio::time::timeout(self.config.store_deadline, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(ServiceError::ExperimentsUnavailable(e.to_string())),
            Err(_) => Err(ServiceError::ExperimentsUnavailable(
                "the experiment store did not answer within STORE_DEADLINE_MS".into(),
            )),
        }
    }
}

fn not_running(shop_id: &str, name: &str) -> ServiceError {
    ServiceError::ExperimentNotFound(format!(
        "shop {shop_id:?} runs no experiment named {name:?}: the report needs the experiment \
         in the shop's profile (its variants and control); its records stay in the table"
    ))
}

fn word(kind: OutcomeKind) -> &'static str {
    match kind {
        OutcomeKind::Purchase => "purchase",
        OutcomeKind::Handoff => "handoff",
        OutcomeKind::Abandoned => "abandoned",
    }
}

fn valid_outcome_id(id: &str) -> Result<(), ServiceError> {
    if super::is_safe_id(id) {
        Ok(())
    } else {
        Err(invalid(
            "invalid_outcome_id",
            "outcome_id must be 1-128 characters of A-Z, a-z, 0-9, '_', '.', ':', '@', '-'",
        ))
    }
}

/// A value is a finite amount >= 0 with its currency; a currency is three capital letters.
/// The largest purchase value: far beyond any order, and far inside what DynamoDB stores
/// (about 1e125) and what the report's sums hold.
pub const MAX_VALUE: f64 = 1e12;

fn check_value(value: Option<f64>, currency: Option<&str>) -> Result<(), ServiceError> {
    if let Some(v) = value {
        if !(0.0..=MAX_VALUE).contains(&v) {
            return Err(invalid(
                "invalid_value",
                format!("value is {v}; it must be an amount from 0 to {MAX_VALUE:e}"),
            ));
        }
        if currency.is_none() {
            return Err(invalid(
                "invalid_currency",
                "value needs its currency (an ISO 4217 code such as EUR)",
            ));
        }
    }
    if let Some(c) = currency {
        if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(invalid(
                "invalid_currency",
                format!("currency is {c:?}; it must be an ISO 4217 code of three capital letters such as EUR"),
            ));
        }
    }
    Ok(())
}
