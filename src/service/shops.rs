//! Shop profiles, the use-case side: reading a shop's profile through a bounded-age cache,
//! writing it (operators), and what a request's profile means for its thresholds.
//!
//! A profile costs no store call in the common case: each instance keeps the profiles it
//! read for `PROFILE_CACHE_SECONDS`. A read that fails or outlasts `PROFILE_TIMEOUT_MS` never
//! fails the request: the last known profile is used (`profile: "cached"`) or, with none, the
//! model's defaults (`"default"`), and the answer's `profile_error` says why.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use utoipa::ToSchema;

use super::{invalid, now, ServiceError, Tagger};
use crate::shops::{Profile, StoredProfile};
use crate::store::{ProfileStore, StoreError};
use crate::telemetry;

/// Profiles one instance keeps at most; past it, the cache starts afresh (a platform's shops
/// fit many times over; a flood of made-up shop ids cannot grow memory without bound).
const MAX_CACHED: usize = 10_000;

/// Where a request's profile came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProfileSource {
    /// No profile: no `shop_id`, a shop without one, or a store that failed with none known.
    Default,
    /// This instance's copy, read within `PROFILE_CACHE_SECONDS` (or older, when the store
    /// failed: then `profile_error` says so).
    Cached,
    /// Read from the store for this request.
    Stored,
}

/// A request's shop: its profile and how it was obtained.
#[derive(Debug, Clone)]
pub struct Shop {
    pub shop_id: String,
    pub profile: Option<Profile>,
    pub source: ProfileSource,
    /// Why the stored profile could not be read, when it could not.
    pub error: Option<String>,
}

/// One instance's profiles: the store behind a cache of bounded age.
pub struct Profiles {
    store: Arc<dyn ProfileStore>,
    cached: Mutex<HashMap<String, Cached>>,
    max_age: Duration,
    timeout: Duration,
}

#[derive(Clone)]
struct Cached {
    profile: Option<Profile>,
    read_at: Instant,
    /// Why the last read failed, when it did: the entry then holds what was known before,
    /// and is tried again after `RETRY_AFTER_FAILURE` rather than on every request.
    failure: Option<String>,
}

/// How long a failed read is answered from what was known before, without waiting on the
/// store again: an outage costs one `PROFILE_TIMEOUT_MS` per shop every few seconds, not on
/// every request.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

impl Cached {
    fn fresh(&self, max_age: Duration) -> bool {
        let age = match self.failure {
            Some(_) => max_age.min(RETRY_AFTER_FAILURE),
            None => max_age,
        };
        self.read_at.elapsed() < age
    }
}

impl Profiles {
    pub fn new(store: Arc<dyn ProfileStore>, max_age: Duration, timeout: Duration) -> Self {
        Self {
            store,
            cached: Mutex::new(HashMap::new()),
            max_age,
            timeout,
        }
    }

    fn cached(&self, shop_id: &str) -> Option<Cached> {
        self.cached.lock().ok()?.get(shop_id).cloned()
    }

    fn remember(&self, shop_id: &str, profile: Option<Profile>, failure: Option<String>) {
        let Ok(mut map) = self.cached.lock() else {
            return;
        };
        if map.len() >= MAX_CACHED && !map.contains_key(shop_id) {
            // Expired entries first; only a flood of fresh shop ids empties the cache.
            let max_age = self.max_age;
            map.retain(|_, c| c.fresh(max_age));
            if map.len() >= MAX_CACHED {
                map.clear();
            }
        }
        let read_at = Instant::now();
        let entry = Cached {
            profile,
            read_at,
            failure,
        };
        map.insert(shop_id.to_owned(), entry);
    }

    /// The shop's profile for one request: never an error (see the module doc).
    pub async fn lookup(&self, shop_id: &str) -> Shop {
        let shop = |profile: Option<Profile>, source, error| Shop {
            shop_id: shop_id.to_owned(),
            source: if profile.is_some() {
                source
            } else {
                ProfileSource::Default
            },
            profile,
            error,
        };
        let known = self.cached(shop_id);
        if let Some(c) = known.as_ref().filter(|c| c.fresh(self.max_age)) {
            telemetry::profile_read(if c.failure.is_some() {
                "fallback"
            } else {
                "cached"
            });
            return shop(c.profile.clone(), ProfileSource::Cached, c.failure.clone());
        }
        match tokio::time::timeout(self.timeout, self.store.get(shop_id)).await {
            Ok(Ok(stored)) => {
                telemetry::profile_read("stored");
                let profile = stored.map(|s| s.profile);
                self.remember(shop_id, profile.clone(), None);
                shop(profile, ProfileSource::Stored, None)
            }
            failed => {
                let why = match failed {
                    Ok(Err(e)) => format!("the profile store failed ({e})"),
                    _ => "the profile store did not answer within PROFILE_TIMEOUT_MS".to_owned(),
                };
                telemetry::profile_read("fallback");
                tracing::warn!(shop_id, error = %why, "profile read failed; falling back");
                let profile = known.and_then(|c| c.profile);
                let what = match profile {
                    Some(_) => "the last known profile is used",
                    None => "the model's defaults are used",
                };
                let error = format!("{why}; {what}");
                self.remember(shop_id, profile.clone(), Some(error.clone()));
                shop(profile, ProfileSource::Cached, Some(error))
            }
        }
    }
}

impl Tagger {
    /// The request's shop, when it names one (a bad id is a 400).
    pub(super) async fn shop(&self, shop_id: Option<&str>) -> Result<Option<Shop>, ServiceError> {
        let Some(id) = shop_id else {
            return Ok(None);
        };
        valid_shop_id(id)?;
        Ok(Some(self.profiles.lookup(id).await))
    }

    /// Store a shop's profile (checked against the model's tags), replacing any; this
    /// instance uses it at once, others within `PROFILE_CACHE_SECONDS`.
    pub async fn put_profile(
        &self,
        shop_id: &str,
        profile: Profile,
    ) -> Result<StoredProfile, ServiceError> {
        valid_shop_id(shop_id)?;
        profile
            .check(&self.classifier.labels().tags)
            .map_err(|e| invalid(e.code, e.message))?;
        let store = &self.profiles.store;
        let before = self.stored_profile(shop_id).await?;
        unchanged_experiment(before.as_ref().map(|b| &b.profile), &profile)?;
        let version = before.map_or(0, |p| p.version) + 1;
        let stored = StoredProfile {
            profile,
            updated_at: now(),
            version,
        };
        self.bounded(store.put(shop_id, &stored)).await?;
        self.profiles
            .remember(shop_id, Some(stored.profile.clone()), None);
        Ok(stored)
    }

    /// A shop's stored profile, read from the store (not the cache: an operator sees what is
    /// stored).
    pub async fn profile(&self, shop_id: &str) -> Result<StoredProfile, ServiceError> {
        valid_shop_id(shop_id)?;
        self.stored_profile(shop_id)
            .await?
            .ok_or_else(|| ServiceError::ProfileNotFound(shop_id.to_owned()))
    }

    /// Remove a shop's profile; `false` when it had none.
    pub async fn delete_profile(&self, shop_id: &str) -> Result<bool, ServiceError> {
        valid_shop_id(shop_id)?;
        let deleted = self.bounded(self.profiles.store.delete(shop_id)).await?;
        self.profiles.remember(shop_id, None, None);
        Ok(deleted)
    }

    async fn stored_profile(&self, shop_id: &str) -> Result<Option<StoredProfile>, ServiceError> {
        self.bounded(self.profiles.store.get(shop_id)).await
    }

    /// A profile-store call for an operator (or an outcome): a failure is a 503 here, since
    /// nothing sensible can stand in for it.
    pub(super) async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, ServiceError> {
        match tokio::time::timeout(self.config.store_deadline, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(ServiceError::ProfileUnavailable(e.to_string())),
            Err(_) => Err(ServiceError::ProfileUnavailable(
                "the profile store did not answer within STORE_DEADLINE_MS".into(),
            )),
        }
    }
}

/// A running experiment's variants and shares cannot change under the same name: its records
/// would mix conversations assigned (and thresholds used) under two definitions. A new name
/// starts a new experiment; the old one's records stay.
fn unchanged_experiment(before: Option<&Profile>, after: &Profile) -> Result<(), ServiceError> {
    let old = before.and_then(|p| p.experiment.as_ref());
    match (old, &after.experiment) {
        (Some(old), Some(new)) if old.name == new.name && old != new => Err(invalid(
            "experiment_changed",
            format!(
                "experiment {:?} is running with other variants, shares or thresholds; give \
                 the changed experiment a new name (its records start afresh)",
                new.name
            ),
        )),
        _ => Ok(()),
    }
}

/// Shop ids: 1-128 characters of `[A-Za-z0-9_.:@-]`, like conversation ids (a DynamoDB key,
/// a URL path segment, a log field and a metric dimension).
pub fn valid_shop_id(id: &str) -> Result<(), ServiceError> {
    if super::is_safe_id(id) {
        Ok(())
    } else {
        Err(invalid(
            "invalid_shop_id",
            "shop_id must be 1-128 characters of A-Z, a-z, 0-9, '_', '.', ':', '@', '-'",
        ))
    }
}
