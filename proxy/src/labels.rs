//! The closed sets of label values that metrics and records use. Closed sets keep label
//! cardinality bounded, and their strings are an interface (dashboards and alerts name them).

/// Which backend an observation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The legacy backend, which serves clients.
    Primary,
    /// The rebuilt backend receiving mirrored copies.
    Shadow,
    /// The rebuilt backend serving the canary share of live traffic.
    Candidate,
}

impl Side {
    /// Every side, in label order.
    pub const ALL: [Side; 3] = [Side::Primary, Side::Shadow, Side::Candidate];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Primary => "primary",
            Side::Shadow => "shadow",
            Side::Candidate => "candidate",
        }
    }

    /// Position in [`Side::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What the canary judge decided, or what its decision led to
/// (`twinpeak_canary_decisions_total{decision}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryDecision {
    /// The candidate met every threshold over the interval.
    Pass,
    /// The candidate broke at least one threshold over the interval.
    Fail,
    /// Too little candidate traffic over the interval to judge.
    Inconclusive,
    /// The ramp moved to its next step.
    Advance,
    /// The weight was set to 0 (by the judge, or through the admin API).
    Rollback,
}

impl CanaryDecision {
    /// Every decision, in label order.
    pub const ALL: [CanaryDecision; 5] = [
        CanaryDecision::Pass,
        CanaryDecision::Fail,
        CanaryDecision::Inconclusive,
        CanaryDecision::Advance,
        CanaryDecision::Rollback,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CanaryDecision::Pass => "pass",
            CanaryDecision::Fail => "fail",
            CanaryDecision::Inconclusive => "inconclusive",
            CanaryDecision::Advance => "advance",
            CanaryDecision::Rollback => "rollback",
        }
    }

    /// Position in [`CanaryDecision::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The class of an answer's status, or `error` when no answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 1xx
    Informational,
    /// 2xx
    Success,
    /// 3xx
    Redirect,
    /// 4xx
    ClientError,
    /// 5xx, including the 502 the proxy gives when the primary cannot be reached.
    ServerError,
    /// No answer at all (the client went away, or the shadow failed).
    Error,
}

impl StatusClass {
    /// Every class, in label order.
    pub const ALL: [StatusClass; 6] = [
        StatusClass::Informational,
        StatusClass::Success,
        StatusClass::Redirect,
        StatusClass::ClientError,
        StatusClass::ServerError,
        StatusClass::Error,
    ];

    /// The class of a status code.
    pub fn of(status: u16) -> StatusClass {
        match status {
            100..=199 => StatusClass::Informational,
            200..=299 => StatusClass::Success,
            300..=399 => StatusClass::Redirect,
            400..=499 => StatusClass::ClientError,
            500..=599 => StatusClass::ServerError,
            _ => StatusClass::Error,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusClass::Informational => "1xx",
            StatusClass::Success => "2xx",
            StatusClass::Redirect => "3xx",
            StatusClass::ClientError => "4xx",
            StatusClass::ServerError => "5xx",
            StatusClass::Error => "error",
        }
    }

    /// Position in [`StatusClass::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What became of one request as far as mirroring goes; every proxied request gets exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorOutcome {
    /// Copied to the shadow, which answered.
    Sent,
    /// Outside the sampled share, mirroring off, or already a mirrored copy.
    NotSampled,
    /// Its method is not mirrored on this route (writes need an opt-in), or it is an upgrade.
    Method,
    /// Its body is larger than `mirror.max_body_bytes`.
    BodyTooLarge,
    /// Sampled, but dropped: `shadow.max_in_flight` copies were outstanding, or the shadow
    /// could not take the body as fast as the client sent it.
    DroppedInFlight,
    /// Copied, but the shadow refused, reset or answered something unreadable.
    ShadowError,
    /// Copied, but the shadow did not finish within `shadow.timeout`.
    ShadowTimeout,
    /// Sampled, but not sent: the shadow's last copies could not connect or timed out, and
    /// copies are held back for a while (see `mirror::health`).
    ShadowDown,
}

impl MirrorOutcome {
    /// Every outcome, in label order.
    pub const ALL: [MirrorOutcome; 8] = [
        MirrorOutcome::Sent,
        MirrorOutcome::NotSampled,
        MirrorOutcome::Method,
        MirrorOutcome::BodyTooLarge,
        MirrorOutcome::DroppedInFlight,
        MirrorOutcome::ShadowError,
        MirrorOutcome::ShadowTimeout,
        MirrorOutcome::ShadowDown,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            MirrorOutcome::Sent => "sent",
            MirrorOutcome::NotSampled => "not_sampled",
            MirrorOutcome::Method => "method",
            MirrorOutcome::BodyTooLarge => "body_too_large",
            MirrorOutcome::DroppedInFlight => "dropped_in_flight",
            MirrorOutcome::ShadowError => "shadow_error",
            MirrorOutcome::ShadowTimeout => "shadow_timeout",
            MirrorOutcome::ShadowDown => "shadow_down",
        }
    }

    /// Position in [`MirrorOutcome::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What became of a mirrored pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairResult {
    /// Both answers are the same.
    Identical,
    /// The answers differ.
    Different,
    /// The answers differ only in fields known to be noise.
    Noise,
    /// The pair was not compared (the pairing queue was full or the primary never finished).
    Dropped,
    /// A streaming gRPC call (more than one message in the request or an answer): not compared.
    Streaming,
}

impl PairResult {
    /// Every result, in label order.
    pub const ALL: [PairResult; 5] = [
        PairResult::Identical,
        PairResult::Different,
        PairResult::Noise,
        PairResult::Dropped,
        PairResult::Streaming,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            PairResult::Identical => "identical",
            PairResult::Different => "different",
            PairResult::Noise => "noise",
            PairResult::Dropped => "dropped",
            PairResult::Streaming => "streaming",
        }
    }

    /// Position in [`PairResult::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What became of a second legacy answer asked for to learn noise (a resample of the primary,
/// or the secondary); every one asked for gets exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferenceOutcome {
    /// A whole answer came back.
    Answered,
    /// The reference refused, reset or answered something unreadable.
    Error,
    /// No whole answer within `shadow.timeout`.
    Timeout,
}

impl ReferenceOutcome {
    /// Every outcome, in label order.
    pub const ALL: [ReferenceOutcome; 3] = [
        ReferenceOutcome::Answered,
        ReferenceOutcome::Error,
        ReferenceOutcome::Timeout,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReferenceOutcome::Answered => "answered",
            ReferenceOutcome::Error => "error",
            ReferenceOutcome::Timeout => "timeout",
        }
    }

    /// Position in [`ReferenceOutcome::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_the_all_lists() {
        for (i, c) in StatusClass::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
        }
        for (i, o) in MirrorOutcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
        for (i, r) in PairResult::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        for (i, s) in Side::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
        }
        for (i, d) in CanaryDecision::ALL.iter().enumerate() {
            assert_eq!(d.index(), i);
        }
        for (i, o) in ReferenceOutcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i);
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(StatusClass::of(204).as_str(), "2xx");
        assert_eq!(StatusClass::of(502).as_str(), "5xx");
        assert_eq!(StatusClass::of(0).as_str(), "error");
    }
}
