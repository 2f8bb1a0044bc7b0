//! The one error type of the SIP parsers ([`SipError`]), with a stable metric label per variant.
//!
//! Errors are small `Copy` values: they never carry the offending bytes (hostile input must not
//! end up in logs or metric labels by accident) and never allocate.

/// Why a SIP message, URI or header value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    #[error("empty message")]
    Empty,
    #[error("malformed start line")]
    BadStartLine,
    #[error("request method is not a token")]
    BadMethod,
    #[error("SIP version is not SIP/2.0")]
    BadVersion,
    #[error("status code is not a 3-digit number in 100-699")]
    BadStatus,
    #[error("header line without a name and a colon")]
    BadHeaderLine,
    #[error("header line longer than the limit")]
    HeaderLineTooLong,
    #[error("more headers than the limit")]
    TooManyHeaders,
    #[error("Call-ID header missing")]
    MissingCallId,
    #[error("From header missing")]
    MissingFrom,
    #[error("To header missing")]
    MissingTo,
    #[error("CSeq header missing")]
    MissingCSeq,
    #[error("CSeq is not `number method`")]
    BadCSeq,
    #[error("URI scheme is not sip, sips or tel")]
    UnsupportedScheme,
    #[error("malformed URI")]
    BadUri,
    #[error("malformed URI host")]
    BadHost,
    #[error("URI port is not a number in 0-65535")]
    BadPort,
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    #[error("`<` without a matching `>`")]
    UnterminatedAngle,
}

impl SipError {
    /// Stable label for metrics (`decode_errors_total{kind}`); never changes once released.
    pub fn kind(&self) -> &'static str {
        match self {
            SipError::Empty => "sip_empty",
            SipError::BadStartLine => "sip_bad_start_line",
            SipError::BadMethod => "sip_bad_method",
            SipError::BadVersion => "sip_bad_version",
            SipError::BadStatus => "sip_bad_status",
            SipError::BadHeaderLine => "sip_bad_header_line",
            SipError::HeaderLineTooLong => "sip_header_line_too_long",
            SipError::TooManyHeaders => "sip_too_many_headers",
            SipError::MissingCallId => "sip_missing_call_id",
            SipError::MissingFrom => "sip_missing_from",
            SipError::MissingTo => "sip_missing_to",
            SipError::MissingCSeq => "sip_missing_cseq",
            SipError::BadCSeq => "sip_bad_cseq",
            SipError::UnsupportedScheme => "sip_unsupported_scheme",
            SipError::BadUri => "sip_bad_uri",
            SipError::BadHost => "sip_bad_host",
            SipError::BadPort => "sip_bad_port",
            SipError::UnterminatedQuote => "sip_unterminated_quote",
            SipError::UnterminatedAngle => "sip_unterminated_angle",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SipError::*;
    use super::*;

    #[test]
    fn kinds_are_unique_and_prefixed() {
        let all = [
            Empty,
            BadStartLine,
            BadMethod,
            BadVersion,
            BadStatus,
            BadHeaderLine,
            HeaderLineTooLong,
            TooManyHeaders,
            MissingCallId,
            MissingFrom,
            MissingTo,
            MissingCSeq,
            BadCSeq,
            UnsupportedScheme,
            BadUri,
            BadHost,
            BadPort,
            UnterminatedQuote,
            UnterminatedAngle,
        ];
        let mut kinds: Vec<_> = all.iter().map(SipError::kind).collect();
        assert!(kinds.iter().all(|k| k.starts_with("sip_")));
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), all.len());
        assert_eq!(MissingCallId.to_string(), "Call-ID header missing");
    }
}
