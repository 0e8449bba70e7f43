//! The request budget of one Pendo subscription (one integration key on one domain), shared by
//! every worker that calls it, across processes and Lambda invocations: a token bucket whose
//! rate adapts to Pendo's answers, and a cap on the calls in flight.
//!
//! - A call takes a token; tokens refill at the current rate up to the burst.
//! - A 429 halves the current rate (never below the floor) and stops every caller until its
//!   `Retry-After` has passed; each success raises the rate by a tenth of the configured rate,
//!   back up to it (additive increase, multiplicative decrease).
//! - A call in flight holds a lease until it settles; a lease whose worker died expires.
//!
//! Pure arithmetic over a [`Budget`] value: a store keeps one per subscription and applies
//! [`Budget::take`] and [`Budget::settle`] with a compare-and-set, so that concurrent workers
//! never spend one token twice. Times are the caller's clock in milliseconds; a clock behind
//! the stored one refills nothing (never negative time).

use serde::{Deserialize, Serialize};

/// What the deployment sets, per subscription.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BudgetSettings {
    /// Calls per second when Pendo answers well.
    pub rate: f64,
    /// Tokens kept at most (calls that may start at once after a quiet time).
    pub burst: f64,
    /// Calls in flight at most.
    pub max_in_flight: u32,
    /// How long a call may hold its lease before it is taken as dead (ms).
    pub lease_ms: i64,
}

impl Default for BudgetSettings {
    /// 2 calls per second (third parties report limits above it; tap-pendo paces itself at one
    /// call per 2 s), bursts of 2, 4 in flight, 15-minute leases (a Lambda's longest run).
    fn default() -> Self {
        Self {
            rate: 2.0,
            burst: 2.0,
            max_in_flight: 4,
            lease_ms: 15 * 60 * 1000,
        }
    }
}

impl BudgetSettings {
    /// The slowest the rate falls after 429s: a hundredth of the configured rate.
    pub fn floor(&self) -> f64 {
        self.rate / 100.0
    }

    /// Settings that make sense: a positive finite rate and burst (at least one token), at
    /// least one call in flight and a positive lease.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(format!(
                "the rate must be above 0 calls per second, not {}",
                self.rate
            ));
        }
        if !(self.burst.is_finite() && self.burst >= 1.0) {
            return Err(format!(
                "the burst must be at least 1 call, not {}",
                self.burst
            ));
        }
        if self.max_in_flight == 0 {
            return Err("at least one call must be allowed in flight".into());
        }
        if self.lease_ms <= 0 {
            return Err("a call's lease must be longer than 0 ms".into());
        }
        Ok(())
    }
}

/// The variables that set a deployment's budget (the Lambda functions' environment, and the
/// local runner's): without a rate there is no shared budget (each process keeps only its own
/// cap on calls in flight).
pub const RATE_VAR: &str = "PENDO_REQUESTS_PER_SECOND";
pub const BURST_VAR: &str = "PENDO_REQUEST_BURST";
pub const IN_FLIGHT_VAR: &str = "PENDO_MAX_IN_FLIGHT";

impl BudgetSettings {
    /// The settings the variables give through `var`: `None` without [`RATE_VAR`]; the burst
    /// defaults to the rate (at least 1), calls in flight to 4.
    ///
    /// # Errors
    /// The variable and why its value is refused.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let Some(rate) = get(RATE_VAR) else {
            return Ok(None);
        };
        let number = |name: &str, v: &str| {
            v.parse::<f64>()
                .map_err(|_| format!("{name}: '{v}' is not a number"))
        };
        let rate = number(RATE_VAR, &rate)?;
        let burst = match get(BURST_VAR) {
            Some(b) => number(BURST_VAR, &b)?,
            None => rate.max(1.0),
        };
        let max_in_flight = match get(IN_FLIGHT_VAR) {
            Some(n) => n
                .parse::<u32>()
                .map_err(|_| format!("{IN_FLIGHT_VAR}: '{n}' is not a whole number"))?,
            None => Self::default().max_in_flight,
        };
        let s = Self {
            rate,
            burst,
            max_in_flight,
            ..Self::default()
        };
        s.validate()
            .map_err(|e| format!("{RATE_VAR}, {BURST_VAR}, {IN_FLIGHT_VAR}: {e}"))?;
        Ok(Some(s))
    }
}

/// The stored state of one subscription's budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Tokens at `at_ms`.
    pub tokens: f64,
    /// The current rate (calls per second), at most the configured one.
    pub rate: f64,
    /// When `tokens` was computed.
    pub at_ms: i64,
    /// No call starts before this time (the last 429's `Retry-After`).
    pub blocked_until_ms: i64,
    /// The lease expiry of each call in flight.
    pub in_flight: Vec<i64>,
}

/// A call's answer, as the budget counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Pendo answered (whatever the status but 429).
    Answered,
    /// Pendo answered 429; `retry_after_ms` from its `Retry-After`, if any.
    Throttled { retry_after_ms: Option<i64> },
    /// No answer (a timeout, a connection error): the lease is returned, the rate unchanged.
    Lost,
}

/// What [`Budget::take`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// The call may start; it holds the lease that expires at `lease_until_ms` until it settles.
    Granted { lease_until_ms: i64 },
    /// Try again in `ms`.
    Wait { ms: i64 },
}

/// The shortest wait a 429 imposes when Pendo sends no usable `Retry-After`.
pub const DEFAULT_RETRY_AFTER_MS: i64 = 1_000;

impl Budget {
    /// A budget never used: a full bucket at the configured rate.
    pub fn fresh(s: &BudgetSettings, now_ms: i64) -> Self {
        Self {
            tokens: s.burst,
            rate: s.rate,
            at_ms: now_ms,
            blocked_until_ms: 0,
            in_flight: Vec::new(),
        }
    }

    /// The state at `now_ms`: tokens refilled, expired leases dropped, the rate within the
    /// settings (they may have changed since it was stored).
    fn at(&self, s: &BudgetSettings, now_ms: i64) -> Self {
        let rate = self.rate.clamp(s.floor(), s.rate);
        let elapsed = (now_ms - self.at_ms).max(0) as f64 / 1000.0;
        let tokens = if self.tokens.is_finite() {
            (self.tokens + elapsed * rate).min(s.burst)
        } else {
            0.0
        };
        Self {
            tokens,
            rate,
            at_ms: now_ms.max(self.at_ms),
            blocked_until_ms: self.blocked_until_ms,
            in_flight: self
                .in_flight
                .iter()
                .copied()
                .filter(|until| *until > now_ms)
                .collect(),
        }
    }

    /// Takes a token and a lease for a call starting at `now_ms`, or says how long to wait.
    /// The budget to store is returned beside (unchanged but refilled when the call waits).
    pub fn take(&self, s: &BudgetSettings, now_ms: i64) -> (Budget, Take) {
        let mut b = self.at(s, now_ms);
        if now_ms < b.blocked_until_ms {
            let ms = b.blocked_until_ms - now_ms;
            return (b, Take::Wait { ms });
        }
        if b.in_flight.len() >= s.max_in_flight as usize {
            // The first lease to expire, or a quick look again when a call settles sooner.
            let first = b.in_flight.iter().copied().min().unwrap_or(now_ms);
            let ms = (first - now_ms).clamp(1, wait_for_token_ms(1.0, b.rate).max(100));
            return (b, Take::Wait { ms });
        }
        if b.tokens < 1.0 {
            let ms = wait_for_token_ms(1.0 - b.tokens, b.rate);
            return (b, Take::Wait { ms });
        }
        b.tokens -= 1.0;
        let lease_until_ms = now_ms + s.lease_ms;
        b.in_flight.push(lease_until_ms);
        (b, Take::Granted { lease_until_ms })
    }

    /// Settles the call granted the lease `lease_until_ms` with its answer at `now_ms`.
    pub fn settle(
        &self,
        s: &BudgetSettings,
        now_ms: i64,
        lease_until_ms: i64,
        answer: Answer,
    ) -> Budget {
        let mut b = self.at(s, now_ms);
        if let Some(i) = b.in_flight.iter().position(|l| *l == lease_until_ms) {
            b.in_flight.swap_remove(i);
        }
        match answer {
            Answer::Answered => b.rate = (b.rate + s.rate / 10.0).min(s.rate),
            Answer::Throttled { retry_after_ms } => {
                b.rate = (b.rate / 2.0).max(s.floor());
                b.tokens = b.tokens.min(0.0);
                let wait = retry_after_ms
                    .filter(|ms| *ms > 0)
                    .unwrap_or(DEFAULT_RETRY_AFTER_MS);
                b.blocked_until_ms = b.blocked_until_ms.max(now_ms.saturating_add(wait));
            }
            Answer::Lost => {}
        }
        b
    }
}

/// The time `missing` tokens take to refill at `rate`, in whole milliseconds (at least 1).
fn wait_for_token_ms(missing: f64, rate: f64) -> i64 {
    let ms = (missing / rate * 1000.0).ceil();
    if ms.is_finite() && ms >= 1.0 {
        ms.min(i64::MAX as f64) as i64
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn settings() -> BudgetSettings {
        BudgetSettings {
            rate: 2.0,
            burst: 2.0,
            max_in_flight: 4,
            lease_ms: 60_000,
        }
    }

    fn granted(t: Take) -> i64 {
        match t {
            Take::Granted { lease_until_ms } => Some(lease_until_ms),
            Take::Wait { .. } => None,
        }
        .expect("granted")
    }

    #[test]
    fn a_burst_then_one_call_per_half_second() {
        let s = settings();
        let b = Budget::fresh(&s, 0);
        let (b, t1) = b.take(&s, 0);
        let (b, t2) = b.take(&s, 0);
        let (b, t3) = b.take(&s, 0);
        let b = b.settle(&s, 0, granted(t1), Answer::Answered);
        let b = b.settle(&s, 0, granted(t2), Answer::Answered);
        assert_eq!(t3, Take::Wait { ms: 500 });
        let (b, t4) = b.take(&s, 250);
        assert_eq!(
            t4,
            Take::Wait { ms: 250 },
            "half a token after 250 ms at 2/s"
        );
        let (b, t5) = b.take(&s, 500);
        assert_eq!(
            t5,
            Take::Granted {
                lease_until_ms: 60_500
            }
        );
        assert_eq!((b.tokens, b.in_flight.clone()), (0.0, vec![60_500]));
    }

    #[test]
    fn a_429_halves_the_rate_and_stops_everyone_until_retry_after() {
        let s = settings();
        let (b, t) = Budget::fresh(&s, 0).take(&s, 0);
        let b = b.settle(
            &s,
            100,
            granted(t),
            Answer::Throttled {
                retry_after_ms: Some(3_000),
            },
        );
        assert_eq!(
            (b.rate, b.blocked_until_ms, b.in_flight.len()),
            (1.0, 3_100, 0)
        );
        assert_eq!(b.take(&s, 3_000).1, Take::Wait { ms: 100 });
        // 0 tokens at 100 ms (the 429 drops the rest), 1/s since: 3 tokens capped at 2.
        let (b, t) = b.take(&s, 3_100);
        assert_eq!(
            t,
            Take::Granted {
                lease_until_ms: 63_100
            }
        );
        // Successes raise the rate by 0.2/s each, back to 2/s and no further.
        let mut b = b.settle(&s, 3_200, 63_100, Answer::Answered);
        assert!((b.rate - 1.2).abs() < 1e-9, "{}", b.rate);
        for i in 0..10 {
            b = b.settle(&s, 3_300 + i, 0, Answer::Answered);
        }
        assert_eq!(b.rate, 2.0);
    }

    #[test]
    fn no_retry_after_waits_a_second_and_the_rate_has_a_floor() {
        let s = settings();
        let mut b = Budget::fresh(&s, 0);
        for i in 0..20 {
            b = b.settle(
                &s,
                i,
                0,
                Answer::Throttled {
                    retry_after_ms: None,
                },
            );
        }
        assert_eq!((b.rate, b.blocked_until_ms), (0.02, 1_019));
        let b = b.settle(&s, 20, 0, Answer::Lost);
        assert_eq!(b.rate, 0.02, "a lost call changes no rate");
    }

    #[test]
    fn calls_in_flight_are_capped_and_a_dead_workers_lease_expires() {
        let s = BudgetSettings {
            burst: 10.0,
            ..settings()
        };
        let mut b = Budget::fresh(&s, 0);
        let mut leases = Vec::new();
        for _ in 0..4 {
            let (next, t) = b.take(&s, 0);
            leases.push(granted(t));
            b = next;
        }
        assert_eq!(b.take(&s, 10).1, Take::Wait { ms: 500 });
        // One settles: one more may start.
        let b2 = b.settle(&s, 20, leases[0], Answer::Answered);
        assert!(matches!(b2.take(&s, 20).1, Take::Granted { .. }));
        // Nobody settles: the leases expire after lease_ms.
        assert!(matches!(b.take(&s, 60_000).1, Take::Granted { .. }));
    }

    #[test]
    fn a_clock_behind_the_stored_one_refills_nothing() {
        let s = settings();
        let (b, _) = Budget::fresh(&s, 10_000).take(&s, 10_000);
        let (b, _) = b.take(&s, 10_000);
        let (b2, t) = b.take(&s, 5_000);
        assert_eq!(t, Take::Wait { ms: 500 });
        assert_eq!((b2.tokens, b2.at_ms), (0.0, 10_000));
    }

    #[test]
    fn settings_are_checked() {
        assert!(BudgetSettings::default().validate().is_ok());
        for bad in [
            BudgetSettings {
                rate: 0.0,
                ..settings()
            },
            BudgetSettings {
                rate: f64::NAN,
                ..settings()
            },
            BudgetSettings {
                burst: 0.5,
                ..settings()
            },
            BudgetSettings {
                max_in_flight: 0,
                ..settings()
            },
            BudgetSettings {
                lease_ms: 0,
                ..settings()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn settings_come_from_the_environment() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(BudgetSettings::from_vars(vars(&[])), Ok(None));
        assert_eq!(
            BudgetSettings::from_vars(vars(&[(RATE_VAR, " 0.5 ")])),
            Ok(Some(BudgetSettings {
                rate: 0.5,
                burst: 1.0,
                ..BudgetSettings::default()
            }))
        );
        assert_eq!(
            BudgetSettings::from_vars(vars(&[
                (RATE_VAR, "5"),
                (BURST_VAR, "10"),
                (IN_FLIGHT_VAR, "2")
            ])),
            Ok(Some(BudgetSettings {
                rate: 5.0,
                burst: 10.0,
                max_in_flight: 2,
                ..BudgetSettings::default()
            }))
        );
        for bad in [
            &[(RATE_VAR, "fast")][..],
            &[(RATE_VAR, "0")],
            &[(RATE_VAR, "2"), (IN_FLIGHT_VAR, "0")],
            &[(RATE_VAR, "2"), (BURST_VAR, "-1")],
        ] {
            let err = BudgetSettings::from_vars(vars(bad)).unwrap_err();
            assert!(err.contains("PENDO_"), "{err}");
        }
    }

    proptest! {
        /// Whatever the interleaving of takes and answers, over any stretch of time the calls
        /// granted are at most the burst plus the rate times the stretch, and never more are in
        /// flight than allowed (the rule Pendo's limit stands for: a leaky bucket per key).
        #[test]
        fn grants_never_exceed_the_bucket(
            steps in prop::collection::vec((0i64..400, 0u8..6), 1..200),
        ) {
            let s = settings();
            let mut b = Budget::fresh(&s, 0);
            let mut now = 0;
            let mut grants: Vec<i64> = Vec::new();
            let mut open: Vec<i64> = Vec::new();
            for (dt, what) in steps {
                now += dt;
                match what {
                    0..=2 => {
                        let (next, t) = b.take(&s, now);
                        b = next;
                        if let Take::Granted { lease_until_ms } = t {
                            grants.push(now);
                            open.push(lease_until_ms);
                        }
                    }
                    3 | 4 if !open.is_empty() => {
                        let lease = open.remove(0);
                        let answer = if what == 3 {
                            Answer::Answered
                        } else {
                            Answer::Throttled { retry_after_ms: Some(dt) }
                        };
                        b = b.settle(&s, now, lease, answer);
                    }
                    _ => {}
                }
                prop_assert!(b.in_flight.len() <= s.max_in_flight as usize);
                prop_assert!(b.tokens <= s.burst + 1e-9);
                prop_assert!(b.rate >= s.floor() - 1e-12 && b.rate <= s.rate + 1e-12);
            }
            for (i, start) in grants.iter().enumerate() {
                for end in &grants[i..] {
                    let n = grants.iter().filter(|g| *g >= start && *g <= end).count() as f64;
                    let allowed = s.burst + s.rate * (end - start) as f64 / 1000.0;
                    prop_assert!(n <= allowed + 1e-9, "{} grants in [{}, {}]", n, start, end);
                }
            }
        }
    }
}
