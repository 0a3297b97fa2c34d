//! Stage throttling as API Gateway applies it: token buckets filled at
//! `ThrottlingRateLimit` per second up to `ThrottlingBurstLimit`, one for the stage
//! (`DefaultRouteSettings`) and one for each route the template's `RouteSettings` limits.
//! A request that finds its bucket empty is refused (`Too Many Requests`), not queued.
//! New connections also spend from the account's quota of [`NEW_CONNECTIONS_PER_SECOND`]
//! (per region, adjustable on AWS; raised locally with `--connect-rate`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

/// API Gateway's quota of new WebSocket connections per second, per account and region.
pub const NEW_CONNECTIONS_PER_SECOND: f64 = 500.0;

/// A rate and a burst, as a stage's route settings give them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub rate_per_second: f64,
    pub burst: u32,
}

/// The throttling the template declares for the stage and its routes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub stage: Option<Limit>,
    /// Route key to its own limit.
    pub routes: BTreeMap<String, Limit>,
}

struct Bucket {
    limit: Limit,
    tokens: f64,
    filled_at: Instant,
}

impl Bucket {
    fn new(limit: Limit) -> Bucket {
        Bucket {
            limit,
            tokens: f64::from(limit.burst),
            filled_at: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.filled_at).as_secs_f64();
        self.filled_at = now;
        self.tokens =
            (self.tokens + elapsed * self.limit.rate_per_second).min(f64::from(self.limit.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The buckets of one stage. With throttling off every request passes.
pub struct Throttle {
    stage: Option<Mutex<Bucket>>,
    routes: BTreeMap<String, Mutex<Bucket>>,
    /// The account's new-connection quota.
    connects: Option<Mutex<Bucket>>,
}

impl Throttle {
    pub fn new(settings: &Settings) -> Throttle {
        Throttle {
            stage: settings.stage.map(|limit| Mutex::new(Bucket::new(limit))),
            routes: settings
                .routes
                .iter()
                .map(|(route, limit)| (route.clone(), Mutex::new(Bucket::new(*limit))))
                .collect(),
            connects: None,
        }
    }

    /// With the account's quota of `per_second` new connections (a second's worth of burst).
    pub fn with_connect_rate(mut self, per_second: f64) -> Throttle {
        let burst = per_second.ceil().clamp(1.0, f64::from(u32::MAX)) as u32;
        self.connects = Some(Mutex::new(Bucket::new(Limit {
            rate_per_second: per_second,
            burst,
        })));
        self
    }

    /// Takes a token for one new connection from the account's quota. `false` means
    /// throttled (429).
    pub fn admit_connection(&self) -> bool {
        match &self.connects {
            Some(bucket) => bucket
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(Instant::now()),
            None => true,
        }
    }

    /// No limits at all (`--no-throttle`).
    pub fn off() -> Throttle {
        Throttle::new(&Settings::default())
    }

    /// Takes a token for one request to `route`: from the route's own bucket where the
    /// template sets one, else from the stage's. `false` means throttled.
    pub fn admit(&self, route: &str) -> bool {
        let bucket = self.routes.get(route).or(self.stage.as_ref());
        match bucket {
            Some(bucket) => bucket.lock().expect("bucket").take(Instant::now()),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let mut bucket = Bucket::new(Limit {
            rate_per_second: 10.0,
            burst: 3,
        });
        let start = bucket.filled_at;
        assert!((0..3).all(|_| bucket.take(start)));
        assert!(!bucket.take(start));
        assert!(!bucket.take(start + Duration::from_millis(50)));
        assert!(bucket.take(start + Duration::from_millis(110)));
        // A long pause refills to the burst, never beyond it.
        let later = start + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| bucket.take(later)).count(), 3);
    }

    #[test]
    fn routes_with_their_own_limit_do_not_spend_the_stage_bucket() {
        let limit = |burst| Limit {
            rate_per_second: 0.0,
            burst,
        };
        let throttle = Throttle::new(&Settings {
            stage: Some(limit(2)),
            routes: [("fast".to_owned(), limit(5))].into(),
        });
        assert_eq!((0..10).filter(|_| throttle.admit("fast")).count(), 5);
        assert_eq!((0..10).filter(|_| throttle.admit("onMessage")).count(), 2);
        assert!(
            !throttle.admit("$default"),
            "other routes share the stage bucket"
        );
        assert!((0..100).all(|_| Throttle::off().admit("onMessage")));
    }

    #[test]
    fn new_connections_spend_from_the_accounts_quota() {
        let throttle = Throttle::off().with_connect_rate(NEW_CONNECTIONS_PER_SECOND);
        let admitted = (0..600).filter(|_| throttle.admit_connection()).count();
        assert!((500..=502).contains(&admitted), "{admitted}");
        assert!((0..600).all(|_| Throttle::off().admit_connection()));
    }
}
