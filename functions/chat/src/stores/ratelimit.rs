//! The per-connection message rate: a token bucket (`MESSAGE_BURST` tokens, refilled at
//! `MESSAGES_PER_SECOND`) kept on the connection's item in DynamoDB and spent with a
//! conditional update, so it holds however many Lambda containers serve the connection.
//! Over the rate, a message gets `rate_limited` with the wait, and is not posted.
//! Pure arithmetic: spending from the stored bucket is [`super::admission`]'s.

/// A bucket's size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub burst: f64,
    pub per_second: f64,
}

/// A bucket as stored: its tokens when last spent, and when (epoch ms).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub tokens: f64,
    pub at_ms: i64,
}

impl Rate {
    /// Spends one token at `now_ms` from `bucket` (a connection without one has a full
    /// bucket): the bucket to store, or how many milliseconds until a token is there.
    pub fn take(&self, bucket: Option<Bucket>, now_ms: i64) -> Result<Bucket, u64> {
        let tokens = match bucket {
            None => self.burst,
            Some(Bucket { tokens, at_ms }) => {
                let elapsed = now_ms.saturating_sub(at_ms).max(0) as f64 / 1000.0;
                (tokens + elapsed * self.per_second).min(self.burst)
            }
        };
        if tokens >= 1.0 {
            // A container whose clock is behind never moves the bucket's time backwards.
            let at_ms = bucket.map_or(now_ms, |bucket| bucket.at_ms.max(now_ms));
            Ok(Bucket {
                tokens: tokens - 1.0,
                at_ms,
            })
        } else {
            Err(((1.0 - tokens) / self.per_second * 1000.0).ceil() as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        burst: 20.0,
        per_second: 5.0,
    };

    #[test]
    fn a_burst_then_the_refill_rate() {
        let mut bucket = None;
        for n in 0..20 {
            bucket = Some(
                RATE.take(bucket, 0)
                    .unwrap_or_else(|_| panic!("message {n} fits the burst")),
            );
        }
        assert_eq!(
            RATE.take(bucket, 0),
            Err(200),
            "one token takes 200 ms at 5/s"
        );
        assert_eq!(RATE.take(bucket, 100), Err(100));
        let refilled = RATE.take(bucket, 200).unwrap();
        assert!(refilled.tokens.abs() < 1e-9);
        assert_eq!(
            RATE.take(bucket, 60_000).unwrap().tokens,
            19.0,
            "never over the burst"
        );
    }

    #[test]
    fn a_clock_going_backwards_refills_nothing() {
        let bucket = Some(Bucket {
            tokens: 0.5,
            at_ms: 10_000,
        });
        assert_eq!(RATE.take(bucket, 9_000), Err(100));
    }
}
