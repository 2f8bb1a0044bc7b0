//! STI certificates (ATIS-1000080, RFC 8226): parses what an x5u URL served (PEM bundle, leaf
//! first, or one DER certificate), builds the path leaf → intermediates → a configured STI-CA
//! trust anchor, checks every link's signature, name chaining, basicConstraints and
//! pathLenConstraint, key usage, the leaf's EC P-256 key and its TNAuthList, and keeps the
//! result as a time-independent [`CertChain`] that can be cached per URL. Validity periods are
//! checked separately, at the PASSporT's iat and at "now" ([`CertChain::check_validity`]).
//!
//! This module must never panic on any input, never read the system clock, never fetch
//! anything, never accept a body over [`MAX_X5U_BYTES`] or more than [`MAX_BUNDLE_CERTS`]
//! certificates, and never treat a certificate as trusted unless a signature chain reaches an
//! operator-configured anchor.
//!
//! Deliberate choices: a leaf without a keyUsage extension is accepted (RFC 5280: no
//! restriction), one with keyUsage must assert digitalSignature; an issuer without keyUsage is
//! accepted, one with it must assert keyCertSign; every issuer, anchors included, must have
//! basicConstraints CA:TRUE; unknown critical extensions are refused; SHA-1 signatures are
//! refused; names chain by exact DER equality; every certificate of the anchor set is a trust
//! anchor (operators may pin intermediates).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_PKCS1_RSAENCRYPTION, OID_PKCS1_SHA1WITHRSA,
    OID_SHA1_WITH_RSA, OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER, OID_X509_EXT_BASIC_CONSTRAINTS,
    OID_X509_EXT_CERTIFICATE_POLICIES, OID_X509_EXT_CRL_DISTRIBUTION_POINTS,
    OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE, OID_X509_EXT_SUBJECT_ALT_NAME,
    OID_X509_EXT_SUBJECT_KEY_IDENTIFIER,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use super::tnauth::{hex, parse_tn_auth_list, TnAuthList, TN_AUTH_LIST_OID_DER};
use super::verdict::{Failure, FailureClass};
use crate::clock::Timestamp;

/// Largest x5u body accepted (DESIGN §3, AST-2022-001).
pub const MAX_X5U_BYTES: usize = 64 * 1024;
/// Most certificates in one x5u bundle.
pub const MAX_BUNDLE_CERTS: usize = 8;
/// Most intermediates between the leaf and the anchor.
pub const MAX_INTERMEDIATES: usize = 4;
/// Largest trust-anchor file, and most anchors in a set.
pub const MAX_ANCHOR_FILE_BYTES: usize = 1 << 20;
pub const MAX_ANCHORS: usize = 512;
/// Most CRL distribution point URLs kept per certificate, and their longest length.
const MAX_CRL_URLS: usize = 8;
const MAX_URL_LEN: usize = 2048;
/// Longest subject/issuer text kept (names are attacker-chosen).
const MAX_NAME_TEXT: usize = 256;

/// Why a certificate, a chain or a CRL was refused. `Display` is the precise reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("x5u body is neither PEM certificates nor one DER certificate")]
    NotPem,
    #[error("certificate data larger than {MAX_X5U_BYTES} bytes")]
    TooLarge,
    #[error("more than {MAX_BUNDLE_CERTS} certificates")]
    TooManyCerts,
    #[error("malformed certificate: {0}")]
    Parse(String),
    #[error("certificate {subject} expired at {at}")]
    Expired { subject: String, at: String },
    #[error("certificate {subject} not valid before {at}")]
    NotYetValid { subject: String, at: String },
    #[error("untrusted issuer: {0}")]
    UntrustedIssuer(String),
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("not a CA: {0}")]
    NotCa(String),
    #[error("CA certificate used as leaf: {0}")]
    CaAsLeaf(String),
    #[error("path length constraint violated: {0}")]
    PathLen(String),
    #[error("chain longer than {MAX_INTERMEDIATES} intermediates")]
    ChainTooLong,
    #[error("key usage: {0}")]
    KeyUsage(String),
    #[error("leaf key is not EC P-256: {0}")]
    NotP256(String),
    #[error("unsupported critical extension: {0}")]
    CriticalExtension(String),
    #[error("leaf certificate has no TNAuthList (1.3.6.1.5.5.7.1.26) extension")]
    NoTnAuthList,
    #[error("malformed TNAuthList: {0}")]
    BadTnAuthList(String),
    #[error("certificate serial {serial} is revoked")]
    Revoked { serial: String },
    #[error("CRL refused: {0}")]
    CrlInvalid(String),
    #[error("trust anchors: {0}")]
    Anchors(String),
}

impl CertError {
    /// Metric label (bounded set).
    pub fn kind(&self) -> &'static str {
        match self {
            CertError::NotPem => "not_pem",
            CertError::TooLarge => "too_large",
            CertError::TooManyCerts => "too_many_certs",
            CertError::Parse(_) => "parse",
            CertError::Expired { .. } => "expired",
            CertError::NotYetValid { .. } => "not_yet_valid",
            CertError::UntrustedIssuer(_) => "untrusted_issuer",
            CertError::BadSignature(_) => "bad_signature",
            CertError::NotCa(_) => "not_ca",
            CertError::CaAsLeaf(_) => "ca_as_leaf",
            CertError::PathLen(_) => "path_len",
            CertError::ChainTooLong => "chain_too_long",
            CertError::KeyUsage(_) => "key_usage",
            CertError::NotP256(_) => "not_p256",
            CertError::CriticalExtension(_) => "critical_extension",
            CertError::NoTnAuthList => "no_tn_auth_list",
            CertError::BadTnAuthList(_) => "bad_tn_auth_list",
            CertError::Revoked { .. } => "revoked",
            CertError::CrlInvalid(_) => "crl_invalid",
            CertError::Anchors(_) => "anchors",
        }
    }

    /// The verification failure: 436 (Bad Identity Info) when the body is not certificates at
    /// all or is oversized, 437 (Unsupported Credential) for everything else.
    pub fn failure(&self) -> Failure {
        let class = match self {
            CertError::NotPem | CertError::TooLarge => FailureClass::BadIdentityInfo,
            _ => FailureClass::UnsupportedCredential,
        };
        Failure::new(class, self.to_string())
    }
}

/// The key-usage bits this crate looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyUsageBits {
    pub digital_signature: bool,
    pub key_cert_sign: bool,
    pub crl_sign: bool,
}

/// One certificate, decoded and owned. Produced by [`parse_chain_only`] (no trust decision)
/// and kept inside a [`CertChain`] (trusted path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedCert {
    /// The DER encoding.
    pub der: Vec<u8>,
    /// Subject and issuer as `C=US, O=..., CN=...` (control characters replaced, capped).
    pub subject: String,
    pub issuer: String,
    /// `CN=<common name>` when there is one, else the subject: used in reasons.
    pub label: String,
    /// The serial number's INTEGER content octets.
    pub serial: Vec<u8>,
    /// Validity, unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// basicConstraints CA:TRUE, and its pathLenConstraint.
    pub is_ca: bool,
    pub path_len: Option<u32>,
    /// None when there is no keyUsage extension.
    pub key_usage: Option<KeyUsageBits>,
    /// The uncompressed P-256 point (65 bytes) when the key is EC P-256.
    pub p256_key: Option<Vec<u8>>,
    /// The key type in words, e.g. `EC P-256`, `RSA 2048`, `EC 1.3.132.0.34`.
    pub key_description: String,
    /// None when the TNAuthList extension is absent.
    pub tn_auth: Option<Result<TnAuthList, CertError>>,
    /// CRL distribution point URIs.
    pub crl_urls: Vec<String>,
    /// OIDs of critical extensions this crate does not process.
    pub unknown_critical: Vec<String>,
    pub(crate) subject_raw: Vec<u8>,
    pub(crate) issuer_raw: Vec<u8>,
}

impl ParsedCert {
    /// The first SPC of a well-formed TNAuthList.
    pub fn spc(&self) -> Option<&str> {
        match &self.tn_auth {
            Some(Ok(t)) => t.spc(),
            _ => None,
        }
    }

    pub fn serial_hex(&self) -> String {
        hex(&self.serial)
    }

    /// True when issuer and subject names are the same (a root, typically).
    pub fn is_self_issued(&self) -> bool {
        self.subject_raw == self.issuer_raw
    }

    /// Whether `t` (unix seconds) lies within notBefore..=notAfter.
    pub fn check_validity_at(&self, t: i64) -> Result<(), CertError> {
        if t < self.not_before {
            return Err(CertError::NotYetValid {
                subject: self.label.clone(),
                at: fmt_time(self.not_before),
            });
        }
        if t > self.not_after {
            return Err(CertError::Expired {
                subject: self.label.clone(),
                at: fmt_time(self.not_after),
            });
        }
        Ok(())
    }
}

/// `2023-10-13T10:11:27Z`.
pub fn fmt_time(secs: i64) -> String {
    let s = Timestamp::from_secs(secs).to_rfc3339();
    match s.strip_suffix(".000000Z") {
        Some(p) => format!("{p}Z"),
        None => s,
    }
}

/// The operator's STI-CA roots (and optionally pinned intermediates). Every certificate in the
/// set is trusted as an anchor.
#[derive(Clone, Debug, Default)]
pub struct TrustAnchors {
    certs: Vec<ParsedCert>,
}

impl TrustAnchors {
    /// PEM (one or more CERTIFICATE blocks) or one DER certificate.
    pub fn from_pem(bytes: &[u8]) -> Result<Self, CertError> {
        let mut a = TrustAnchors::default();
        a.add_bytes(bytes, "PEM input")?;
        if a.certs.is_empty() {
            return Err(CertError::Anchors("no certificate found".into()));
        }
        Ok(a)
    }

    /// Files, or directories whose `*.pem` / `*.crt` files (not recursive) hold anchors.
    pub fn from_paths(paths: &[PathBuf]) -> Result<Self, CertError> {
        let mut a = TrustAnchors::default();
        for p in paths {
            let meta = std::fs::metadata(p)
                .map_err(|e| CertError::Anchors(format!("{}: {e}", p.display())))?;
            if meta.is_dir() {
                let rd = std::fs::read_dir(p)
                    .map_err(|e| CertError::Anchors(format!("{}: {e}", p.display())))?;
                let mut files: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| {
                        f.is_file()
                            && f.extension()
                                .and_then(|x| x.to_str())
                                .map(|x| {
                                    x.eq_ignore_ascii_case("pem") || x.eq_ignore_ascii_case("crt")
                                })
                                .unwrap_or(false)
                    })
                    .collect();
                files.sort();
                for f in files {
                    a.add_file(&f)?;
                }
            } else {
                a.add_file(p)?;
            }
        }
        if a.certs.is_empty() {
            let list: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            return Err(CertError::Anchors(format!(
                "no certificate found in {}",
                list.join(", ")
            )));
        }
        Ok(a)
    }

    fn add_file(&mut self, f: &Path) -> Result<(), CertError> {
        // Bounded whatever the file claims: a device or pipe reports size 0 and never ends.
        let bytes = crate::config::read_bounded(f, MAX_ANCHOR_FILE_BYTES as u64)
            .map_err(|e| CertError::Anchors(e.to_string()))?;
        self.add_bytes(&bytes, &f.display().to_string())
    }

    fn add_bytes(&mut self, bytes: &[u8], origin: &str) -> Result<(), CertError> {
        if bytes.len() > MAX_ANCHOR_FILE_BYTES {
            return Err(CertError::Anchors(format!(
                "{origin}: larger than {MAX_ANCHOR_FILE_BYTES} bytes"
            )));
        }
        let ders = decode_certs(bytes, MAX_ANCHORS)
            .map_err(|e| CertError::Anchors(format!("{origin}: {e}")))?;
        for der in ders {
            let c = parse_cert(&der).map_err(|e| CertError::Anchors(format!("{origin}: {e}")))?;
            if self.certs.iter().any(|x| x.der == c.der) {
                continue;
            }
            if self.certs.len() >= MAX_ANCHORS {
                return Err(CertError::Anchors(format!(
                    "more than {MAX_ANCHORS} anchors"
                )));
            }
            self.certs.push(c);
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    pub fn certs(&self) -> &[ParsedCert] {
        &self.certs
    }
}

/// A validated path: leaf first, then intermediates, then the anchor it reached. Signatures,
/// names, constraints, key and TNAuthList are checked; validity periods are not (they depend on
/// time, see [`CertChain::check_validity`]).
#[derive(Clone, Debug)]
pub struct CertChain {
    certs: Vec<ParsedCert>,
    leaf_key: Vec<u8>,
    tn: TnAuthList,
}

impl CertChain {
    /// Uncompressed P-256 point (65 bytes), for `ring::signature::ECDSA_P256_SHA256_FIXED`.
    pub fn leaf_public_key(&self) -> &[u8] {
        &self.leaf_key
    }

    pub fn tn_auth(&self) -> &TnAuthList {
        &self.tn
    }

    /// The first SPC of the leaf's TNAuthList; None when it holds only ranges, TNs or unknown
    /// entries.
    pub fn spc(&self) -> Option<&str> {
        self.tn.spc()
    }

    /// Earliest notAfter of the chain, anchor included (unix seconds).
    pub fn not_after(&self) -> i64 {
        self.certs
            .iter()
            .map(|c| c.not_after)
            .min()
            .unwrap_or(i64::MIN)
    }

    /// Every certificate of the chain, anchor included, valid at `iat` and at `now`.
    pub fn check_validity(&self, iat: i64, now: i64) -> Result<(), CertError> {
        for c in &self.certs {
            c.check_validity_at(iat)?;
            c.check_validity_at(now)?;
        }
        Ok(())
    }

    /// CRL distribution point URIs of the leaf and the intermediates, deduplicated, in order.
    pub fn crl_urls(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for c in &self.certs[..self.anchor_index()] {
            for u in &c.crl_urls {
                if seen.insert(u.as_str()) {
                    out.push(u.clone());
                }
            }
        }
        out
    }

    pub fn leaf_serial(&self) -> &[u8] {
        self.leaf().map(|c| c.serial.as_slice()).unwrap_or(&[])
    }

    pub fn subject(&self) -> String {
        self.leaf().map(|c| c.subject.clone()).unwrap_or_default()
    }

    /// Leaf, intermediates, anchor.
    pub fn certs(&self) -> &[ParsedCert] {
        &self.certs
    }

    /// Index of the anchor in [`CertChain::certs`] (always the last one).
    pub fn anchor_index(&self) -> usize {
        self.certs.len().saturating_sub(1)
    }

    fn leaf(&self) -> Option<&ParsedCert> {
        self.certs.first()
    }
}

/// Splits a body into DER certificates: one DER certificate (first byte 0x30) or PEM
/// CERTIFICATE blocks (other PEM blocks are ignored). Size caps are the caller's.
fn decode_certs(body: &[u8], max: usize) -> Result<Vec<Vec<u8>>, CertError> {
    if body.first() == Some(&0x30) {
        return Ok(vec![body.to_vec()]);
    }
    let blocks = pem_blocks(body, "CERTIFICATE", max)?;
    if blocks.is_empty() {
        return Err(CertError::NotPem);
    }
    Ok(blocks)
}

/// Decodes the PEM blocks labelled `label` (RFC 7468, strict base64 with padding, no
/// RFC 1421 headers). `NotPem` when there is no PEM block at all, `TooManyCerts` past `max`
/// blocks of that label, `Parse` for a broken block.
pub(crate) fn pem_blocks(body: &[u8], label: &str, max: usize) -> Result<Vec<Vec<u8>>, CertError> {
    let mut out = Vec::new();
    let mut any_block = false;
    // (label of the open block, base64 collected so far)
    let mut open: Option<(Vec<u8>, Vec<u8>)> = None;
    for line in body.split(|b| *b == b'\n') {
        let line = line.trim_ascii();
        if let Some((blabel, b64)) = open.as_mut() {
            if let Some(end) = line
                .strip_prefix(b"-----END ".as_slice())
                .and_then(|r| r.strip_suffix(b"-----".as_slice()))
            {
                if end != blabel.as_slice() {
                    return Err(CertError::Parse(
                        "PEM END label does not match BEGIN".into(),
                    ));
                }
                if blabel.as_slice() == label.as_bytes() {
                    if out.len() >= max {
                        return Err(CertError::TooManyCerts);
                    }
                    let der = STANDARD
                        .decode(&b64[..])
                        .map_err(|_| CertError::Parse("PEM block is not valid base64".into()))?;
                    out.push(der);
                }
                open = None;
            } else if line.starts_with(b"-----") {
                return Err(CertError::Parse("PEM block not terminated".into()));
            } else if line.contains(&b':') {
                return Err(CertError::Parse("PEM headers are not supported".into()));
            } else {
                b64.extend_from_slice(line);
            }
        } else if let Some(begin) = line
            .strip_prefix(b"-----BEGIN ".as_slice())
            .and_then(|r| r.strip_suffix(b"-----".as_slice()))
        {
            any_block = true;
            open = Some((begin.to_vec(), Vec::new()));
        }
    }
    if open.is_some() {
        return Err(CertError::Parse("PEM block not terminated".into()));
    }
    if !any_block {
        return Err(CertError::NotPem);
    }
    Ok(out)
}

/// Decodes an x5u body into its certificates, leaf first, without any trust decision.
/// For inspection (`inspect`, tests on third-party certificates) and as the first step of
/// [`parse_and_validate`].
pub fn parse_chain_only(body: &[u8]) -> Result<Vec<ParsedCert>, CertError> {
    if body.len() > MAX_X5U_BYTES {
        return Err(CertError::TooLarge);
    }
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(CertError::NotPem);
    }
    let ders = decode_certs(body, MAX_BUNDLE_CERTS)?;
    ders.iter().map(|d| parse_cert(d)).collect()
}

fn parse_x509(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| CertError::Parse(format!("not an X.509 certificate ({e})")))?;
    if !rest.is_empty() {
        return Err(CertError::Parse(
            "trailing bytes after the certificate".into(),
        ));
    }
    Ok(cert)
}

/// Decodes one DER certificate into a [`ParsedCert`].
pub fn parse_cert(der: &[u8]) -> Result<ParsedCert, CertError> {
    let cert = parse_x509(der)?;
    let subject = dn_text(cert.subject());
    let label = cn_label(cert.subject()).unwrap_or_else(|| subject.clone());
    if cert.tbs_certificate.signature != cert.signature_algorithm {
        return Err(CertError::Parse(format!(
            "{label}: inner and outer signature algorithms differ"
        )));
    }
    let mut seen: HashSet<&[u8]> = HashSet::new();
    let mut is_ca = false;
    let mut path_len = None;
    let mut key_usage = None;
    let mut tn_auth = None;
    let mut crl_urls = Vec::new();
    let mut unknown_critical = Vec::new();
    for ext in cert.extensions() {
        let oid = ext.oid.as_bytes();
        if !seen.insert(oid) {
            return Err(CertError::Parse(format!(
                "{label}: extension {} appears twice",
                ext.oid.to_id_string()
            )));
        }
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) => {
                is_ca = bc.ca;
                path_len = bc.path_len_constraint;
            }
            ParsedExtension::KeyUsage(ku) => {
                key_usage = Some(KeyUsageBits {
                    digital_signature: ku.digital_signature(),
                    key_cert_sign: ku.key_cert_sign(),
                    crl_sign: ku.crl_sign(),
                });
            }
            ParsedExtension::CRLDistributionPoints(points) => {
                for p in points.iter() {
                    if let Some(DistributionPointName::FullName(names)) = &p.distribution_point {
                        for n in names {
                            if let GeneralName::URI(u) = n {
                                if crl_urls.len() < MAX_CRL_URLS
                                    && u.len() <= MAX_URL_LEN
                                    && u.bytes().all(|b| (0x21..=0x7e).contains(&b))
                                {
                                    crl_urls.push((*u).to_string());
                                }
                            }
                        }
                    }
                }
            }
            ParsedExtension::ParseError { .. }
                if ext.oid == OID_X509_EXT_BASIC_CONSTRAINTS
                    || ext.oid == OID_X509_EXT_KEY_USAGE =>
            {
                return Err(CertError::Parse(format!(
                    "{label}: malformed {} extension",
                    ext.oid.to_id_string()
                )));
            }
            _ if oid == TN_AUTH_LIST_OID_DER => tn_auth = Some(parse_tn_auth_list(ext.value)),
            _ => {}
        }
        let understood = oid == TN_AUTH_LIST_OID_DER
            || [
                &OID_X509_EXT_BASIC_CONSTRAINTS,
                &OID_X509_EXT_KEY_USAGE,
                &OID_X509_EXT_EXTENDED_KEY_USAGE,
                &OID_X509_EXT_SUBJECT_ALT_NAME,
                &OID_X509_EXT_SUBJECT_KEY_IDENTIFIER,
                &OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER,
                &OID_X509_EXT_CRL_DISTRIBUTION_POINTS,
                &OID_X509_EXT_CERTIFICATE_POLICIES,
            ]
            .iter()
            .any(|o| ext.oid == **o);
        let parse_failed = matches!(ext.parsed_extension(), ParsedExtension::ParseError { .. });
        if ext.critical && (!understood || parse_failed) {
            unknown_critical.push(ext.oid.to_id_string());
        }
    }
    let (p256_key, key_description) = describe_key(&cert);
    Ok(ParsedCert {
        der: der.to_vec(),
        issuer: dn_text(cert.issuer()),
        subject,
        label,
        serial: cert.raw_serial().to_vec(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        is_ca,
        path_len,
        key_usage,
        p256_key,
        key_description,
        tn_auth,
        crl_urls,
        unknown_critical,
        subject_raw: cert.subject().as_raw().to_vec(),
        issuer_raw: cert.issuer().as_raw().to_vec(),
    })
}

fn describe_key(cert: &X509Certificate<'_>) -> (Option<Vec<u8>>, String) {
    let spki = cert.public_key();
    let alg = &spki.algorithm.algorithm;
    let point = &spki.subject_public_key.data;
    if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        match curve {
            Some(c) if c == OID_EC_P256 => {
                if point.len() == 65 && point.first() == Some(&0x04) {
                    (Some(point.to_vec()), "EC P-256".to_string())
                } else {
                    (
                        None,
                        "EC P-256 with a compressed or malformed point".to_string(),
                    )
                }
            }
            Some(c) => (None, format!("EC {}", curve_name(&c.to_id_string()))),
            None => (None, "EC without named curve".to_string()),
        }
    } else if *alg == OID_PKCS1_RSAENCRYPTION {
        let bits = spki.parsed().map(|k| k.key_size()).unwrap_or(0);
        (None, format!("RSA {bits}"))
    } else {
        (None, format!("algorithm {}", alg.to_id_string()))
    }
}

fn curve_name(oid: &str) -> String {
    match oid {
        "1.3.132.0.34" => "P-384".into(),
        "1.3.132.0.35" => "P-521".into(),
        "1.3.132.0.10" => "secp256k1".into(),
        o => o.into(),
    }
}

fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(MAX_NAME_TEXT)
        .collect()
}

fn attr_name(oid: &str) -> &str {
    match oid {
        "2.5.4.3" => "CN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "0.9.2342.19200300.100.1.25" => "DC",
        o => o,
    }
}

/// `C=US, O=Comcast, CN=SHAKEN`: printable, capped.
fn dn_text(name: &X509Name<'_>) -> String {
    let mut parts = Vec::new();
    for a in name.iter_attributes() {
        let oid = a.attr_type().to_id_string();
        let value = match a.as_str() {
            Ok(s) => s.to_string(),
            Err(_) => format!("#{}", hex(a.as_slice())),
        };
        parts.push(format!("{}={}", attr_name(&oid), value));
        if parts.len() > 32 {
            break;
        }
    }
    if parts.is_empty() {
        return "(empty name)".into();
    }
    clean(&parts.join(", "))
}

fn cn_label(name: &X509Name<'_>) -> Option<String> {
    let cn = name.iter_common_name().next()?.as_str().ok()?;
    Some(clean(&format!("CN={cn}")))
}

/// Checks that `issuer` signed `child`.
pub(crate) fn verify_signed_by(child: &ParsedCert, issuer: &ParsedCert) -> Result<(), CertError> {
    let c = parse_x509(&child.der)?;
    let i = parse_x509(&issuer.der)?;
    let alg = &c.signature_algorithm.algorithm;
    if *alg == OID_PKCS1_SHA1WITHRSA || *alg == OID_SHA1_WITH_RSA {
        return Err(CertError::BadSignature(format!(
            "{} is signed with SHA-1",
            child.label
        )));
    }
    c.verify_signature(Some(i.public_key()))
        .map_err(|e| match e {
            x509_parser::error::X509Error::SignatureUnsupportedAlgorithm => {
                CertError::BadSignature(format!(
                    "signature algorithm {} of {} (or the key of {}) is not supported",
                    alg.to_id_string(),
                    child.label,
                    issuer.label
                ))
            }
            _ => CertError::BadSignature(format!(
                "signature of {} does not verify with the key of {}",
                child.label, issuer.label
            )),
        })
}

fn check_leaf(leaf: &ParsedCert) -> Result<(), CertError> {
    if leaf.is_ca {
        return Err(CertError::CaAsLeaf(format!(
            "{} has basicConstraints CA:TRUE",
            leaf.label
        )));
    }
    if let Some(oid) = leaf.unknown_critical.first() {
        return Err(CertError::CriticalExtension(format!(
            "{oid} in {}",
            leaf.label
        )));
    }
    if leaf.p256_key.is_none() {
        return Err(CertError::NotP256(format!(
            "{} has an {} key",
            leaf.label, leaf.key_description
        )));
    }
    if let Some(ku) = leaf.key_usage {
        if !ku.digital_signature {
            return Err(CertError::KeyUsage(format!(
                "{} keyUsage lacks digitalSignature",
                leaf.label
            )));
        }
    }
    match &leaf.tn_auth {
        None => Err(CertError::NoTnAuthList),
        Some(Err(e)) => Err(e.clone()),
        Some(Ok(_)) => Ok(()),
    }
}

/// `issuer` signs a certificate with `below` intermediates between it and the leaf.
fn check_issuer(issuer: &ParsedCert, child: &ParsedCert, below: usize) -> Result<(), CertError> {
    if let Some(oid) = issuer.unknown_critical.first() {
        return Err(CertError::CriticalExtension(format!(
            "{oid} in {}",
            issuer.label
        )));
    }
    if !issuer.is_ca {
        return Err(CertError::NotCa(format!(
            "{} issued {} but lacks basicConstraints CA:TRUE",
            issuer.label, child.label
        )));
    }
    if let Some(n) = issuer.path_len {
        if below > n as usize {
            return Err(CertError::PathLen(format!(
                "{} allows {n} intermediate CA(s) below it, the chain has {below}",
                issuer.label
            )));
        }
    }
    if let Some(ku) = issuer.key_usage {
        if !ku.key_cert_sign {
            return Err(CertError::KeyUsage(format!(
                "{} issued {} but its keyUsage lacks keyCertSign",
                issuer.label, child.label
            )));
        }
    }
    Ok(())
}

/// Parses the x5u body and validates it against the anchors (see the module doc for the
/// rules). Validity periods are left to [`CertChain::check_validity`].
pub fn parse_and_validate(body: &[u8], anchors: &TrustAnchors) -> Result<CertChain, CertError> {
    let certs = parse_chain_only(body)?;
    let leaf = certs.first().ok_or(CertError::NotPem)?;
    check_leaf(leaf)?;
    let leaf_key = leaf
        .p256_key
        .clone()
        .ok_or_else(|| CertError::NotP256(leaf.label.clone()))?;
    let tn = match &leaf.tn_auth {
        Some(Ok(t)) => t.clone(),
        _ => return Err(CertError::NoTnAuthList),
    };
    let mut path: Vec<ParsedCert> = vec![leaf.clone()];
    let mut used = vec![false; certs.len()];
    if let Some(u) = used.first_mut() {
        *u = true;
    }
    loop {
        let cur = match path.last() {
            Some(c) => c.clone(),
            None => return Err(CertError::NotPem),
        };
        let below = path.len() - 1;
        let mut sig_err = None;
        for a in anchors
            .certs
            .iter()
            .filter(|a| a.subject_raw == cur.issuer_raw)
        {
            match verify_signed_by(&cur, a) {
                Ok(()) => {
                    check_issuer(a, &cur, below)?;
                    path.push(a.clone());
                    return Ok(CertChain {
                        certs: path,
                        leaf_key,
                        tn,
                    });
                }
                Err(e) => sig_err = Some(e),
            }
        }
        let mut next = None;
        for (j, c) in certs.iter().enumerate() {
            if used.get(j).copied().unwrap_or(true) || c.subject_raw != cur.issuer_raw {
                continue;
            }
            match verify_signed_by(&cur, c) {
                Ok(()) => {
                    next = Some(j);
                    break;
                }
                Err(e) => sig_err = Some(e),
            }
        }
        match (next, sig_err) {
            (Some(j), _) => {
                if below >= MAX_INTERMEDIATES {
                    return Err(CertError::ChainTooLong);
                }
                let issuer = &certs[j];
                check_issuer(issuer, &cur, below)?;
                used[j] = true;
                path.push(issuer.clone());
            }
            (None, Some(e)) => return Err(e),
            (None, None) => {
                return Err(CertError::UntrustedIssuer(if cur.is_self_issued() {
                    format!(
                        "chain ends at {}, which is not a configured STI-CA trust anchor",
                        cur.label
                    )
                } else {
                    format!(
                        "no trust anchor or bundled certificate is named {} (issuer of {})",
                        cur.issuer, cur.label
                    )
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_rules() {
        let b64 = STANDARD.encode([0x30u8, 0x00]);
        let one =
            format!("junk\n-----BEGIN CERTIFICATE-----\r\n{b64}\r\n-----END CERTIFICATE-----\n");
        assert_eq!(
            pem_blocks(one.as_bytes(), "CERTIFICATE", 8).unwrap(),
            vec![vec![0x30, 0]]
        );
        let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            pem_blocks(key.as_bytes(), "CERTIFICATE", 8).unwrap(),
            Vec::<Vec<u8>>::new()
        );
        assert_eq!(
            pem_blocks(b"hello", "CERTIFICATE", 8),
            Err(CertError::NotPem)
        );
        let unterminated = "-----BEGIN CERTIFICATE-----\nAAAA\n";
        assert!(matches!(
            pem_blocks(unterminated.as_bytes(), "CERTIFICATE", 8),
            Err(CertError::Parse(_))
        ));
        let mismatched = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n";
        assert!(matches!(
            pem_blocks(mismatched.as_bytes(), "CERTIFICATE", 8),
            Err(CertError::Parse(_))
        ));
        let bad64 = "-----BEGIN CERTIFICATE-----\nA!AA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            pem_blocks(bad64.as_bytes(), "CERTIFICATE", 8),
            Err(CertError::Parse(_))
        ));
        let many = one.repeat(9);
        assert_eq!(
            pem_blocks(many.as_bytes(), "CERTIFICATE", 8),
            Err(CertError::TooManyCerts)
        );
    }

    #[test]
    fn error_classes_and_kinds() {
        assert_eq!(CertError::NotPem.failure().code(), 436);
        assert_eq!(CertError::TooLarge.failure().code(), 436);
        assert_eq!(CertError::NoTnAuthList.failure().code(), 437);
        let e = CertError::Expired {
            subject: "CN=SHAKEN".into(),
            at: fmt_time(1_697_191_887),
        };
        assert_eq!(
            e.to_string(),
            "certificate CN=SHAKEN expired at 2023-10-13T10:11:27Z"
        );
        assert_eq!(
            e.failure().to_string(),
            "437 certificate CN=SHAKEN expired at 2023-10-13T10:11:27Z"
        );
        assert_eq!(e.kind(), "expired");
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for n in 0..3000usize {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut v: Vec<u8> = (0..(n % 300)).map(|i| (x >> ((i % 8) * 8)) as u8).collect();
            if n % 2 == 0 {
                if let Some(f) = v.first_mut() {
                    *f = 0x30;
                }
            }
            let _ = parse_chain_only(&v);
            let _ = parse_and_validate(&v, &TrustAnchors::default());
        }
        assert_eq!(parse_chain_only(b""), Err(CertError::NotPem));
        assert_eq!(
            parse_chain_only(&vec![b' '; MAX_X5U_BYTES + 1]),
            Err(CertError::TooLarge)
        );
    }
}
