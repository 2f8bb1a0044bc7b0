//! Certificate revocation lists for STI certificates (RFC 5280 §5, ATIS-1000080): parses a
//! CRL (DER or PEM "X509 CRL"), verifies its signature with the key of the certificate that
//! issued it (looked up by name among the chain's certificates and the trust anchors), and
//! answers whether the certificates of a [`CertChain`] are revoked.
//!
//! This module must never panic on any input, never fetch anything, never read the system
//! clock, never accept a CRL over [`MAX_CRL_BYTES`] or with more than [`MAX_CRL_ENTRIES`]
//! entries, and never believe a CRL whose signature it has not verified.
//!
//! Not supported, refused as `CrlInvalid`: delta CRLs, indirect CRLs, CRLs partitioned by
//! reason, unknown critical CRL or entry extensions. The staleness of a CRL (nextUpdate) is
//! the caller's decision: see [`Crl::check_fresh`].

use std::collections::HashSet;

use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::{
    OID_PKCS1_SHA1WITHRSA, OID_SHA1_WITH_RSA, OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER,
    OID_X509_EXT_CRL_NUMBER, OID_X509_EXT_DELTA_CRL_INDICATOR, OID_X509_EXT_INVALIDITY_DATE,
    OID_X509_EXT_ISSUER_DISTRIBUTION_POINT, OID_X509_EXT_REASON_CODE,
};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::certs::{fmt_time, pem_blocks, CertChain, CertError, TrustAnchors};
use super::tnauth::hex;

/// Largest CRL accepted.
pub const MAX_CRL_BYTES: usize = 1 << 20;
/// Most revoked entries accepted.
pub const MAX_CRL_ENTRIES: usize = 1_000_000;

/// A verified CRL.
#[derive(Clone, Debug)]
pub struct Crl {
    issuer: String,
    issuer_raw: Vec<u8>,
    this_update: i64,
    next_update: Option<i64>,
    /// Serial numbers, leading zero octets removed.
    revoked: HashSet<Vec<u8>>,
    only_user_certs: bool,
    only_ca_certs: bool,
}

impl Crl {
    /// nextUpdate (unix seconds), when the CRL has one.
    pub fn next_update(&self) -> Option<i64> {
        self.next_update
    }

    pub fn this_update(&self) -> i64 {
        self.this_update
    }

    /// The issuer's name as text.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Whether a serial (INTEGER content octets, as in the certificate) is listed.
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        self.revoked.contains(normalize_serial(serial))
    }

    /// Number of revoked entries.
    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }

    /// `CrlInvalid` when `now` is before thisUpdate or after nextUpdate.
    pub fn check_fresh(&self, now: i64) -> Result<(), CertError> {
        if now < self.this_update {
            return Err(CertError::CrlInvalid(format!(
                "CRL of {} not valid before {}",
                self.issuer,
                fmt_time(self.this_update)
            )));
        }
        match self.next_update {
            Some(n) if now > n => Err(CertError::CrlInvalid(format!(
                "CRL of {} is stale since {}",
                self.issuer,
                fmt_time(n)
            ))),
            _ => Ok(()),
        }
    }
}

fn normalize_serial(s: &[u8]) -> &[u8] {
    let mut s = s;
    while s.len() > 1 && s.first() == Some(&0) {
        s = &s[1..];
    }
    s
}

fn invalid(m: impl Into<String>) -> CertError {
    CertError::CrlInvalid(m.into())
}

/// Parses and verifies a CRL. The signer is a certificate of `chain` or of `anchors` whose
/// subject equals the CRL's issuer and whose key verifies the signature; when the signer has
/// a keyUsage extension it must assert cRLSign.
pub fn parse_and_verify_crl(
    body: &[u8],
    chain: &CertChain,
    anchors: &TrustAnchors,
) -> Result<Crl, CertError> {
    if body.len() > MAX_CRL_BYTES {
        return Err(invalid(format!("larger than {MAX_CRL_BYTES} bytes")));
    }
    let pem;
    let der: &[u8] = match body.first() {
        Some(0x30) => body,
        Some(_) => {
            pem = pem_blocks(body, "X509 CRL", 1).map_err(|e| match e {
                CertError::TooManyCerts => invalid("more than one PEM X509 CRL block"),
                CertError::NotPem => invalid("neither DER nor PEM"),
                e => invalid(e.to_string()),
            })?;
            pem.first()
                .map(Vec::as_slice)
                .ok_or_else(|| invalid("no PEM X509 CRL block"))?
        }
        None => return Err(invalid("empty")),
    };
    let (rest, crl) = CertificateRevocationList::from_der(der)
        .map_err(|e| invalid(format!("not a CRL ({e})")))?;
    if !rest.is_empty() {
        return Err(invalid("trailing bytes after the CRL"));
    }
    let tbs = &crl.tbs_cert_list;
    if tbs.signature != crl.signature_algorithm {
        return Err(invalid("inner and outer signature algorithms differ"));
    }
    let alg = &crl.signature_algorithm.algorithm;
    if *alg == OID_PKCS1_SHA1WITHRSA || *alg == OID_SHA1_WITH_RSA {
        return Err(invalid("signed with SHA-1"));
    }

    let mut only_user_certs = false;
    let mut only_ca_certs = false;
    for ext in tbs.extensions() {
        match ext.parsed_extension() {
            _ if ext.oid == OID_X509_EXT_DELTA_CRL_INDICATOR => {
                return Err(invalid("delta CRLs are not supported"));
            }
            ParsedExtension::IssuingDistributionPoint(idp) => {
                if idp.indirect_crl {
                    return Err(invalid("indirect CRLs are not supported"));
                }
                if idp.only_some_reasons.is_some() {
                    return Err(invalid("CRLs partitioned by reason are not supported"));
                }
                if idp.only_contains_attribute_certs {
                    return Err(invalid("CRL covers attribute certificates only"));
                }
                only_user_certs = idp.only_contains_user_certs;
                only_ca_certs = idp.only_contains_ca_certs;
            }
            ParsedExtension::ParseError { .. } if ext.critical => {
                return Err(invalid(format!(
                    "malformed critical extension {}",
                    ext.oid.to_id_string()
                )));
            }
            _ => {
                let known = ext.oid == OID_X509_EXT_CRL_NUMBER
                    || ext.oid == OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER
                    || ext.oid == OID_X509_EXT_ISSUER_DISTRIBUTION_POINT;
                if ext.critical && !known {
                    return Err(invalid(format!(
                        "unsupported critical extension {}",
                        ext.oid.to_id_string()
                    )));
                }
            }
        }
    }

    // Find the signer: same name, and its key verifies the signature.
    let issuer_raw = tbs.issuer.as_raw();
    let mut named = false;
    let mut signer = None;
    for cand in chain.certs().iter().chain(anchors.certs()) {
        if cand.subject_raw != issuer_raw {
            continue;
        }
        named = true;
        let cert = match x509_parser::certificate::X509Certificate::from_der(&cand.der) {
            Ok((_, c)) => c,
            Err(_) => continue,
        };
        if crl.verify_signature(cert.public_key()).is_ok() {
            signer = Some(cand);
            break;
        }
    }
    let issuer_text = match parse_cert_name(chain, anchors, issuer_raw) {
        Some(n) => n,
        None => "(an issuer not in the chain or the anchors)".to_string(),
    };
    let signer = match (signer, named) {
        (Some(s), _) => s,
        (None, true) => {
            return Err(invalid(format!(
                "signature of the CRL issued by {issuer_text} does not verify"
            )))
        }
        (None, false) => {
            return Err(invalid(
                "no certificate of the chain or the trust anchors issued this CRL",
            ))
        }
    };
    if let Some(ku) = signer.key_usage {
        if !ku.crl_sign {
            return Err(invalid(format!("{} keyUsage lacks cRLSign", signer.label)));
        }
    }

    let count = tbs.revoked_certificates.len();
    if count > MAX_CRL_ENTRIES {
        return Err(invalid(format!("more than {MAX_CRL_ENTRIES} entries")));
    }
    let mut revoked = HashSet::with_capacity(count);
    for entry in crl.iter_revoked_certificates() {
        for ext in entry.extensions() {
            let known =
                ext.oid == OID_X509_EXT_REASON_CODE || ext.oid == OID_X509_EXT_INVALIDITY_DATE;
            if ext.critical && !known {
                return Err(invalid(format!(
                    "unsupported critical entry extension {}",
                    ext.oid.to_id_string()
                )));
            }
        }
        revoked.insert(normalize_serial(entry.raw_serial()).to_vec());
    }
    Ok(Crl {
        issuer: signer.subject.clone(),
        issuer_raw: issuer_raw.to_vec(),
        this_update: tbs.this_update.timestamp(),
        next_update: tbs.next_update.map(|t| t.timestamp()),
        revoked,
        only_user_certs,
        only_ca_certs,
    })
}

/// The subject text of the first certificate named `raw`.
fn parse_cert_name(chain: &CertChain, anchors: &TrustAnchors, raw: &[u8]) -> Option<String> {
    chain
        .certs()
        .iter()
        .chain(anchors.certs())
        .find(|c| c.subject_raw == raw)
        .map(|c| c.subject.clone())
}

/// `Revoked` when the CRL lists the leaf (the CRL was fetched from the leaf's distribution
/// point, so it speaks for it) or an intermediate whose issuer is the CRL's issuer; the CRL's
/// onlyContainsUserCerts / onlyContainsCACerts scope is honoured. Anchors are not checked.
pub fn check_revocation(chain: &CertChain, crl: &Crl) -> Result<(), CertError> {
    let certs = chain.certs();
    for (i, c) in certs.iter().enumerate().take(chain.anchor_index()) {
        let is_leaf = i == 0;
        let in_scope = if is_leaf {
            !crl.only_ca_certs
        } else {
            !crl.only_user_certs && c.issuer_raw == crl.issuer_raw
        };
        if in_scope && crl.is_revoked(&c.serial) {
            return Err(CertError::Revoked {
                serial: hex(normalize_serial(&c.serial)),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_compare_without_leading_zeros() {
        assert_eq!(normalize_serial(&[0, 0x80, 1]), &[0x80, 1]);
        assert_eq!(normalize_serial(&[0]), &[0]);
        assert_eq!(normalize_serial(&[]), &[] as &[u8]);
    }
}
