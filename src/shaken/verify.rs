//! The verification steps of docs/verification.md for one INVITE, in order: Identity header syntax, JWS,
//! PASSporT header and claims, freshness, TN match, then (with the x5u credential) validity,
//! revocation and the ES256 signature over the exact received `header.payload`.
//!
//! Split in two so that a worker never waits for a certificate: [`Verifier::precheck`] does
//! everything that needs no credential; [`Verifier::finish`] completes a check once the
//! credential is at hand (immediately when cached, later when fetched). [`Verifier::verdict`]
//! turns the checks of one INVITE into the call's verstat.

use super::certs::CertChain;
use super::identity::parse_identity;
use super::passport::{self, Passport};
use super::replay::ReplayGuard;
use super::verdict::{Failure, FailureClass, Verstat};
use crate::record::{DivResult, ShakenResult};
use crate::sip::tn::{canonicalize, Tn};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use std::sync::Arc;

/// What a verified x5u credential offers a check: validity, the key and the signer.
pub trait Credential {
    /// Every certificate of the chain valid at `iat` and at `now` (and not revoked).
    fn check_validity(&self, iat: i64, now: i64) -> Result<(), Failure>;
    /// The leaf's P-256 public key, uncompressed (65 bytes).
    fn public_key(&self) -> &[u8];
    /// The Service Provider Code from the leaf's TNAuthList.
    fn spc(&self) -> Option<&str>;
}

impl Credential for CertChain {
    fn check_validity(&self, iat: i64, now: i64) -> Result<(), Failure> {
        CertChain::check_validity(self, iat, now).map_err(|e| e.failure())
    }

    fn public_key(&self) -> &[u8] {
        self.leaf_public_key()
    }

    fn spc(&self) -> Option<&str> {
        CertChain::spc(self)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct VerifyPolicy {
    /// Largest |now − iat| accepted, seconds (RFC 8224 §6.2.1 recommends 60).
    pub max_iat_age_s: i64,
}

impl Default for VerifyPolicy {
    fn default() -> Self {
        VerifyPolicy { max_iat_age_s: 60 }
    }
}

/// The numbers an initial INVITE presents, canonicalized by the one TN canonicalizer (the
/// dialog keeps them for the record, verification matches the PASSporT against them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallNumbers {
    /// P-Asserted-Identity (first entry with a number), else From.
    pub orig: Option<Tn>,
    /// Request-URI and To: dest.tn must contain one of them.
    pub ruri: Option<Tn>,
    pub to: Option<Tn>,
}

impl CallNumbers {
    /// The called number a record shows: the Request-URI's, else To's.
    pub fn dest(&self) -> Option<Tn> {
        self.ruri.or(self.to)
    }
}

/// One Identity header on its way through the steps.
#[derive(Clone, Debug)]
pub struct HeaderCheck {
    /// The header's ppt parameter or the PASSporT's, once known.
    pub ppt: Option<String>,
    pub passport: Option<Passport>,
    /// `header.payload` as received, kept (owned) until the signature is checked.
    pub signing_input: Vec<u8>,
    /// None while the credential is awaited; then the outcome.
    pub result: Option<Result<(), Failure>>,
    pub spc: Option<String>,
}

impl HeaderCheck {
    fn failed(ppt: Option<String>, passport: Option<Passport>, failure: Failure) -> Self {
        HeaderCheck {
            ppt,
            passport,
            signing_input: Vec::new(),
            result: Some(Err(failure)),
            spc: None,
        }
    }

    /// The x5u this check waits for, if it does.
    pub fn awaited_x5u(&self) -> Option<&str> {
        match (&self.result, &self.passport) {
            (None, Some(p)) => Some(&p.x5u),
            _ => None,
        }
    }

    /// SHAKEN decides the call; a header whose ppt could not be read counts as SHAKEN.
    pub fn is_shaken(&self) -> bool {
        self.ppt.as_deref().is_none_or(|p| p == "shaken")
    }
}

pub struct Verifier {
    policy: VerifyPolicy,
    replay: Arc<ReplayGuard>,
}

fn invalid(reason: impl Into<String>) -> Failure {
    Failure::new(FailureClass::InvalidIdentity, reason)
}

impl Verifier {
    pub fn new(policy: VerifyPolicy, replay: Arc<ReplayGuard>) -> Self {
        Verifier { policy, replay }
    }

    /// The replay-detection set (for its metrics).
    pub fn replay_guard(&self) -> &ReplayGuard {
        &self.replay
    }

    pub fn policy(&self) -> VerifyPolicy {
        self.policy
    }

    /// Every step that needs no credential.
    pub fn precheck(&self, value: &[u8], numbers: &CallNumbers, now: i64) -> HeaderCheck {
        let id = match parse_identity(value) {
            Ok(id) => id,
            Err(e) => return HeaderCheck::failed(None, None, invalid(e.to_string())),
        };
        let ppt_param = id.ppt.map(|p| String::from_utf8_lossy(p).into_owned());
        let jws = match passport::split_jws(id.token) {
            Ok(j) => j,
            Err(e) => return HeaderCheck::failed(ppt_param, None, invalid(e.to_string())),
        };
        let p = match passport::decode(&jws, &id) {
            Ok(p) => p,
            Err(e) => return HeaderCheck::failed(ppt_param, None, invalid(e.to_string())),
        };
        let ppt = Some(p.ppt.clone());
        let age = now - p.iat;
        if age.abs() > self.policy.max_iat_age_s {
            let when = if age > 0 { "old" } else { "in the future" };
            let reason = format!(
                "Stale Date: iat {} is {} s {when} (limit {} s)",
                p.iat,
                age.abs(),
                self.policy.max_iat_age_s
            );
            return HeaderCheck::failed(ppt, Some(p), Failure::new(FailureClass::Stale, reason));
        }
        if let Err(f) = match_numbers(&p, numbers) {
            return HeaderCheck::failed(ppt, Some(p), f);
        }
        HeaderCheck {
            ppt,
            passport: Some(p),
            signing_input: jws.signing_input.to_vec(),
            result: None,
            spc: None,
        }
    }

    /// Completes a check with its credential, or with the reason there is none.
    pub fn finish(
        &self,
        check: &mut HeaderCheck,
        credential: Result<&dyn Credential, Failure>,
        now: i64,
    ) {
        if check.result.is_some() {
            return;
        }
        let Some(p) = &check.passport else {
            check.result = Some(Err(invalid("no PASSporT to verify")));
            return;
        };
        let outcome = credential.and_then(|c| {
            check.spc = c.spc().map(str::to_string);
            c.check_validity(p.iat, now)?;
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, c.public_key())
                .verify(&check.signing_input, &p.signature)
                .map_err(|_| invalid("signature does not verify"))
        });
        check.signing_input = Vec::new();
        check.result = Some(outcome);
    }

    /// The call's verdict from the checks of all its Identity headers. `ppt=shaken` decides;
    /// a passing SHAKEN PASSporT wins over failing ones; `div` PASSporTs are reported.
    pub fn verdict(&self, call_id: &[u8], checks: &[HeaderCheck], now: i64) -> ShakenResult {
        let mut out = ShakenResult {
            identity_headers: checks.len().min(u16::MAX as usize) as u16,
            ..ShakenResult::default()
        };
        for c in checks.iter().filter(|c| !c.is_shaken()) {
            let p = c.passport.as_ref();
            let (verstat, code, reason) = outcome_fields(c);
            out.div.push(DivResult {
                verstat,
                code,
                reason,
                orig: p.map(|p| p.orig_tn.clone()),
                dest: p.map(|p| p.dest_tns.clone()).unwrap_or_default(),
                div: p.and_then(|p| p.div_tn.clone()),
                x5u: p.map(|p| p.x5u.clone()),
            });
        }
        let shaken: Vec<&HeaderCheck> = checks.iter().filter(|c| c.is_shaken()).collect();
        let decisive = shaken
            .iter()
            .find(|c| matches!(c.result, Some(Ok(()))))
            .or_else(|| shaken.first());
        let Some(c) = decisive else {
            // Unsigned (or only diverted): nothing vouches for the caller.
            out.verstat = Some(Verstat::NoValidation.as_str().to_string());
            return out;
        };
        let (verstat, code, reason) = outcome_fields(c);
        out.verstat = Some(verstat);
        out.code = code;
        out.reason = reason;
        out.spc = c.spc.clone();
        if let Some(p) = &c.passport {
            out.attest = p.attest.clone();
            out.origid = p.origid.clone();
            out.x5u = Some(p.x5u.clone());
            out.iat = Some(p.iat);
            if matches!(c.result, Some(Ok(()))) {
                out.replayed =
                    self.replay
                        .seen(&p.signature, call_id, p.iat, now, self.policy.max_iat_age_s);
            }
        }
        out
    }
}

fn outcome_fields(c: &HeaderCheck) -> (String, Option<u16>, Option<String>) {
    match &c.result {
        Some(Ok(())) => (Verstat::Passed.as_str().into(), None, None),
        Some(Err(f)) => (
            f.class.verstat().as_str().into(),
            Some(f.code()),
            Some(f.reason.clone()),
        ),
        None => (
            Verstat::NoValidation.as_str().into(),
            Some(FailureClass::BadIdentityInfo.code()),
            Some("certificate not available before the deadline".into()),
        ),
    }
}

/// orig.tn must equal the caller's number; dest.tn must contain the called number.
fn match_numbers(p: &Passport, numbers: &CallNumbers) -> Result<(), Failure> {
    let orig = canonicalize(p.orig_tn.as_bytes());
    match (orig, numbers.orig) {
        (Some(claimed), Some(presented)) if claimed == presented => {}
        (_, presented) => {
            return Err(invalid(format!(
                "orig.tn {:?} does not match the caller {}",
                p.orig_tn,
                presented.map_or(
                    "(no number in P-Asserted-Identity or From)".to_string(),
                    |t| t.to_string()
                )
            )))
        }
    }
    let claimed: Vec<Tn> = p
        .dest_tns
        .iter()
        .filter_map(|t| canonicalize(t.as_bytes()))
        .collect();
    let called = [numbers.ruri, numbers.to];
    if called.iter().flatten().any(|d| claimed.contains(d)) {
        return Ok(());
    }
    let presented: Vec<String> = called.iter().flatten().map(|t| t.to_string()).collect();
    Err(invalid(format!(
        "dest.tn {:?} does not contain the called number {}",
        p.dest_tns,
        if presented.is_empty() {
            "(none in Request-URI or To)".to_string()
        } else {
            presented.join(" or ")
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shaken::b64::encode;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    struct TestCred {
        key: Vec<u8>,
        validity: Result<(), Failure>,
    }

    impl Credential for TestCred {
        fn check_validity(&self, _iat: i64, _now: i64) -> Result<(), Failure> {
            self.validity.clone()
        }
        fn public_key(&self) -> &[u8] {
            &self.key
        }
        fn spc(&self) -> Option<&str> {
            Some("123A")
        }
    }

    /// A credential for `key` that is valid at any time.
    fn valid_cred(key: &EcdsaKeyPair) -> TestCred {
        TestCred {
            key: key.public_key().as_ref().to_vec(),
            validity: Ok(()),
        }
    }

    fn keypair() -> EcdsaKeyPair {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap()
    }

    const X5U: &str = "https://cert.example/sp.pem";

    fn signed(key: &EcdsaKeyPair, ppt: &str, claims: &str) -> String {
        let hdr = format!(r#"{{"alg":"ES256","typ":"passport","ppt":"{ppt}","x5u":"{X5U}"}}"#);
        let input = format!("{}.{}", encode(hdr.as_bytes()), encode(claims.as_bytes()));
        let sig = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!(
            "{input}.{};info=<{X5U}>;alg=ES256;ppt={ppt}",
            encode(sig.as_ref())
        )
    }

    fn claims(iat: i64, orig: &str, dest: &str) -> String {
        format!(
            r#"{{"attest":"A","dest":{{"tn":[{dest}]}},"iat":{iat},"orig":{{"tn":"{orig}"}},"origid":"e32f4189-cb86-460f-bb92-bd3acb89f29c"}}"#
        )
    }

    fn numbers() -> CallNumbers {
        CallNumbers {
            orig: canonicalize(b"+12025550143"),
            ruri: canonicalize(b"+13035550177"),
            to: None,
        }
    }

    fn verifier() -> Verifier {
        Verifier::new(VerifyPolicy::default(), Arc::new(ReplayGuard::new(1000)))
    }

    const NOW: i64 = 1_795_000_000;

    fn run(v: &Verifier, header: &str, cred: Result<&dyn Credential, Failure>) -> ShakenResult {
        let mut c = v.precheck(header.as_bytes(), &numbers(), NOW);
        v.finish(&mut c, cred, NOW);
        v.verdict(b"call-1", &[c], NOW)
    }

    #[test]
    fn a_valid_passport_passes_with_its_details() {
        let key = keypair();
        let cred = valid_cred(&key);
        let h = signed(
            &key,
            "shaken",
            &claims(NOW - 5, "12025550143", r#""13035550177""#),
        );
        let r = run(&verifier(), &h, Ok(&cred));
        assert_eq!(r.verstat.as_deref(), Some("TN-Validation-Passed"), "{r:?}");
        assert_eq!((r.code, r.reason.as_deref()), (None, None));
        assert_eq!(r.attest.as_deref(), Some("A"));
        assert_eq!(r.spc.as_deref(), Some("123A"));
        assert_eq!(r.x5u.as_deref(), Some(X5U));
        assert_eq!(r.iat, Some(NOW - 5));
        assert!(!r.replayed);
    }

    #[test]
    fn every_step_fails_with_its_code_and_verstat() {
        let key = keypair();
        let other = keypair();
        let good = valid_cred(&key);
        let wrong_key = TestCred {
            key: other.public_key().as_ref().to_vec(),
            validity: Ok(()),
        };
        let expired = TestCred {
            key: key.public_key().as_ref().to_vec(),
            validity: Err(Failure::new(
                FailureClass::UnsupportedCredential,
                "certificate expired at 2023-10-13T00:00:00Z",
            )),
        };
        let v = verifier();
        let ok_claims = claims(NOW, "12025550143", r#""13035550177""#);
        type Case<'a> = (
            String,
            Result<&'a dyn Credential, Failure>,
            &'a str,
            u16,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (
                "garbage;info=<x".into(),
                Ok(&good),
                "TN-Validation-Failed",
                438,
                "Identity header parameter",
            ),
            (
                "a.b;ppt=shaken".into(),
                Ok(&good),
                "TN-Validation-Failed",
                438,
                "compact form",
            ),
            (
                signed(
                    &key,
                    "shaken",
                    &claims(NOW - 61, "12025550143", r#""13035550177""#),
                ),
                Ok(&good),
                "TN-Validation-Failed",
                403,
                "Stale Date: iat",
            ),
            (
                signed(
                    &key,
                    "shaken",
                    &claims(NOW + 61, "12025550143", r#""13035550177""#),
                ),
                Ok(&good),
                "TN-Validation-Failed",
                403,
                "in the future",
            ),
            (
                signed(
                    &key,
                    "shaken",
                    &claims(NOW, "12025550199", r#""13035550177""#),
                ),
                Ok(&good),
                "TN-Validation-Failed",
                438,
                "orig.tn",
            ),
            (
                signed(
                    &key,
                    "shaken",
                    &claims(NOW, "12025550143", r#""13035550100""#),
                ),
                Ok(&good),
                "TN-Validation-Failed",
                438,
                "dest.tn",
            ),
            (
                signed(&key, "shaken", &ok_claims),
                Ok(&wrong_key),
                "TN-Validation-Failed",
                438,
                "signature does not verify",
            ),
            (
                signed(&key, "shaken", &ok_claims),
                Ok(&expired),
                "TN-Validation-Failed",
                437,
                "expired at",
            ),
            (
                signed(&key, "shaken", &ok_claims),
                Err(Failure::new(
                    FailureClass::BadIdentityInfo,
                    "x5u host resolves to a private address 10.0.0.5",
                )),
                "No-TN-Validation",
                436,
                "private address",
            ),
        ];
        for (header, cred, verstat, code, reason) in cases {
            let r = run(&v, &header, cred);
            assert_eq!(r.verstat.as_deref(), Some(verstat), "{header}: {r:?}");
            assert_eq!(r.code, Some(code), "{header}: {r:?}");
            assert!(
                r.reason.as_deref().unwrap().contains(reason),
                "{header}: {r:?}"
            );
        }
    }

    #[test]
    fn tampered_payload_does_not_verify() {
        let key = keypair();
        let cred = valid_cred(&key);
        let h = signed(
            &key,
            "shaken",
            &claims(NOW, "12025550143", r#""13035550177""#),
        );
        let (token, params) = h.split_once(';').unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[1] = encode(claims(NOW, "12025550143", r#""13035550177","13035550178""#).as_bytes());
        let r = run(
            &verifier(),
            &format!("{};{params}", parts.join(".")),
            Ok(&cred),
        );
        assert_eq!(r.code, Some(438));
        assert_eq!(r.reason.as_deref(), Some("signature does not verify"));
    }

    #[test]
    fn every_dest_tn_is_compared_not_only_the_first() {
        let key = keypair();
        let cred = valid_cred(&key);
        let h = signed(
            &key,
            "shaken",
            &claims(NOW, "+1-202-555-0143", r#""13035550100","+13035550177""#),
        );
        let r = run(&verifier(), &h, Ok(&cred));
        assert_eq!(r.verstat.as_deref(), Some("TN-Validation-Passed"), "{r:?}");
    }

    #[test]
    fn unsigned_div_only_and_mixed_calls() {
        let v = verifier();
        let r = v.verdict(b"c", &[], NOW);
        assert_eq!(r.verstat.as_deref(), Some("No-TN-Validation"));
        assert_eq!((r.code, r.identity_headers), (None, 0));

        let key = keypair();
        let cred = valid_cred(&key);
        let div_claims = r#"{"dest":{"tn":["13035550177"]},"div":{"tn":"13035550100"},"iat":1795000000,"orig":{"tn":"12025550143"}}"#;
        let mut d = v.precheck(signed(&key, "div", div_claims).as_bytes(), &numbers(), NOW);
        v.finish(&mut d, Ok(&cred), NOW);
        let mut bad = v.precheck(b"not.a.passport", &numbers(), NOW);
        v.finish(&mut bad, Ok(&cred), NOW);
        let mut good = v.precheck(
            signed(
                &key,
                "shaken",
                &claims(NOW, "12025550143", r#""13035550177""#),
            )
            .as_bytes(),
            &numbers(),
            NOW,
        );
        v.finish(&mut good, Ok(&cred), NOW);
        let r = v.verdict(b"c", &[d.clone(), bad.clone(), good], NOW);
        assert_eq!(
            r.verstat.as_deref(),
            Some("TN-Validation-Passed"),
            "a passing SHAKEN PASSporT decides"
        );
        assert_eq!(r.identity_headers, 3);
        assert_eq!(r.div.len(), 1);
        assert_eq!(r.div[0].verstat, "TN-Validation-Passed");
        assert_eq!(r.div[0].div.as_deref(), Some("13035550100"));
        let r = v.verdict(b"c", &[d, bad], NOW);
        assert_eq!(r.verstat.as_deref(), Some("TN-Validation-Failed"));
        assert_eq!(r.code, Some(438));
    }

    #[test]
    fn a_token_copied_onto_another_call_is_flagged_replayed() {
        let key = keypair();
        let cred = valid_cred(&key);
        let h = signed(
            &key,
            "shaken",
            &claims(NOW, "12025550143", r#""13035550177""#),
        );
        let v = verifier();
        let check = |call: &[u8]| {
            let mut c = v.precheck(h.as_bytes(), &numbers(), NOW);
            v.finish(&mut c, Ok(&cred), NOW);
            v.verdict(call, &[c], NOW)
        };
        assert!(!check(b"call-1").replayed);
        assert!(
            !check(b"call-1").replayed,
            "the same call again is a retransmission"
        );
        let r = check(b"call-2");
        assert!(r.replayed);
        assert_eq!(
            r.verstat.as_deref(),
            Some("TN-Validation-Passed"),
            "replay is a signal, not a failure"
        );
    }

    #[test]
    fn a_check_waiting_for_its_certificate_names_the_x5u() {
        let key = keypair();
        let v = verifier();
        let c = v.precheck(
            signed(
                &key,
                "shaken",
                &claims(NOW, "12025550143", r#""13035550177""#),
            )
            .as_bytes(),
            &numbers(),
            NOW,
        );
        assert_eq!(c.awaited_x5u(), Some(X5U));
        let r = v.verdict(b"c", &[c], NOW);
        assert_eq!(
            r.code,
            Some(436),
            "a deadline passed without the certificate"
        );
    }
}
