//! The reference: a second legacy answer to a mirrored request, asked for beside the shadow's,
//! so that what differs between two legacy answers is learned as noise. It is the secondary
//! (`diff.noise.secondary`) when one is configured, otherwise the primary asked again for
//! `diff.noise.resample_percent` of the copies.

use std::time::Instant;

use pingora_http::RequestHeader;

use super::client::{ShadowFailure, ShadowTarget};
use crate::capture::{BodyCapture, CapturedResponse};
use crate::config::{Config, ShadowConfig};
use crate::error::SetupError;
use crate::labels::ReferenceOutcome;
use crate::sampling::Sampler;
use crate::units::{is_safe, Percent, SampleKey};

/// Where a second legacy answer is asked for, and for which copies.
pub struct Reference {
    target: ShadowTarget,
    /// Which mirrored safe requests also go there.
    share: Sampler,
}

impl Reference {
    /// The secondary when one is configured (every mirrored safe request goes there too),
    /// otherwise the primary for `resample_percent` of them; none without a shadow.
    pub fn from_config(config: &Config) -> Result<Option<Reference>, SetupError> {
        let Some(shadow) = config.shadow.as_ref() else {
            return Ok(None);
        };
        let noise = &config.diff.noise;
        let (url, share, key, http2, tls) = match (&noise.secondary, noise.resample_percent.value())
        {
            (Some(url), _) => (
                url.clone(),
                Percent::new(100.0).expect("a percentage"),
                "diff.noise.secondary",
                false,
                None,
            ),
            // The primary asked again is reached the way the request path reaches it.
            (None, p) if p > 0.0 => (
                config.primary.url.clone(),
                noise.resample_percent,
                "primary.url",
                config.primary.http2,
                config.primary.tls.clone(),
            ),
            _ => return Ok(None),
        };
        let shadow = ShadowConfig {
            url,
            timeout: shadow.timeout,
            max_in_flight: shadow.max_in_flight,
            http2,
            tls,
        };
        Ok(Some(Reference {
            target: ShadowTarget::new(&shadow, key)?,
            share: Sampler::new(share, SampleKey::Random),
        }))
    }

    /// Whether a copy is asked of the reference too: safe requests without a body (asking
    /// again must change nothing), in the reference's share.
    pub fn wants(&self, header: &RequestHeader, has_body: bool) -> bool {
        !has_body && is_safe(&header.method) && self.share.includes(&header.headers)
    }

    /// Asks the reference for its answer to the same request, within the shadow's timeout.
    pub async fn ask(
        &self,
        header: RequestHeader,
        capture: BodyCapture,
    ) -> (Option<CapturedResponse>, ReferenceOutcome) {
        match self
            .target
            .send(header, None, capture, Instant::now())
            .await
        {
            Ok(answer) => (Some(answer), ReferenceOutcome::Answered),
            Err(ShadowFailure::TimedOut) => (None, ReferenceOutcome::Timeout),
            Err(_) => (None, ReferenceOutcome::Error),
        }
    }
}
