//! The outcome of verifying one INVITE: a verstat (RFC 8588 / ATIS-1000074), the SIP code of a
//! failure (RFC 8224 §6.2.2: 403 Stale Date, 436 Bad Identity Info, 437 Unsupported Credential,
//! 438 Invalid Identity Header) and a precise human-readable reason.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Verstat {
    #[serde(rename = "TN-Validation-Passed")]
    Passed,
    #[serde(rename = "TN-Validation-Failed")]
    Failed,
    #[serde(rename = "No-TN-Validation")]
    NoValidation,
}

impl Verstat {
    pub fn as_str(self) -> &'static str {
        match self {
            Verstat::Passed => "TN-Validation-Passed",
            Verstat::Failed => "TN-Validation-Failed",
            Verstat::NoValidation => "No-TN-Validation",
        }
    }
}

/// Which verification step failed; decides the SIP code and the verstat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// 438, Failed: header syntax, JWS, PASSporT header or claims, TN mismatch, signature.
    InvalidIdentity,
    /// 403 "Stale Date", Failed: iat outside the freshness window.
    Stale,
    /// 436, No-TN-Validation: x5u unreachable, refused by policy, oversized, not PEM.
    BadIdentityInfo,
    /// 437, Failed: chain, validity, key, key usage, TNAuthList, revocation.
    UnsupportedCredential,
}

impl FailureClass {
    pub fn code(self) -> u16 {
        match self {
            FailureClass::InvalidIdentity => 438,
            FailureClass::Stale => 403,
            FailureClass::BadIdentityInfo => 436,
            FailureClass::UnsupportedCredential => 437,
        }
    }

    pub fn verstat(self) -> Verstat {
        match self {
            FailureClass::BadIdentityInfo => Verstat::NoValidation,
            _ => Verstat::Failed,
        }
    }
}

/// A failed step: its class and the exact cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub class: FailureClass,
    pub reason: String,
}

impl Failure {
    pub fn new(class: FailureClass, reason: impl Into<String>) -> Self {
        Failure {
            class,
            reason: reason.into(),
        }
    }

    pub fn code(&self) -> u16 {
        self.class.code()
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code(), self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_map_to_codes_and_verstats() {
        assert_eq!(FailureClass::Stale.code(), 403);
        assert_eq!(
            FailureClass::BadIdentityInfo.verstat(),
            Verstat::NoValidation
        );
        assert_eq!(
            FailureClass::UnsupportedCredential.verstat(),
            Verstat::Failed
        );
        assert_eq!(Verstat::Passed.as_str(), "TN-Validation-Passed");
        let f = Failure::new(FailureClass::InvalidIdentity, "signature does not verify");
        assert_eq!(f.to_string(), "438 signature does not verify");
    }
}
