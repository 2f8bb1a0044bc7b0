//! STI certificate chains, TNAuthList and CRLs against a PKI built at test time with the
//! openssl CLI (tests/common_pki), and against third-party certificates
//! (../shared/thirdparty/shaken). Each broken credential must give its exact `CertError` and
//! SIP code; hostile inputs must give typed errors, never a panic.
//!
//! These tests must never copy third-party files into the repository, and must skip (printing
//! "SKIPPED: ...") rather than fail when openssl or ../shared/thirdparty is absent.

mod common_pki;

use std::path::{Path, PathBuf};

use common_pki::{shared, unix, TestPki};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use shaken_sensor::shaken::certs::{
    parse_and_validate, parse_chain_only, CertChain, CertError, TrustAnchors, MAX_X5U_BYTES,
};
use shaken_sensor::shaken::crl::{check_revocation, parse_and_verify_crl};
use shaken_sensor::shaken::verdict::FailureClass;

fn pki() -> Option<&'static TestPki> {
    shared()
}

fn anchors(p: &TestPki) -> TrustAnchors {
    TrustAnchors::from_pem(&p.root_pem).expect("root anchor")
}

fn validate(p: &TestPki, bundle: &[u8]) -> Result<CertChain, CertError> {
    parse_and_validate(bundle, &anchors(p))
}

fn expect_err(p: &TestPki, bundle: &[u8]) -> CertError {
    match validate(p, bundle) {
        Ok(c) => panic!("chain of {} accepted", c.subject()),
        Err(e) => e,
    }
}

/// 2030-06-01: inside every test leaf's validity except the expired and not-yet-valid ones.
fn t2030() -> i64 {
    unix(2030, 6, 1)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[test]
fn valid_chain_gives_spc_key_serial_crl_url() {
    let Some(p) = pki() else { return };
    let chain = validate(p, &p.valid.bundle_pem).expect("valid chain");
    assert_eq!(chain.spc(), Some(p.options.spc.as_str()));
    assert_eq!(chain.tn_auth().spcs, vec![p.options.spc.clone()]);
    assert_eq!(chain.leaf_public_key().len(), 65);
    assert_eq!(chain.leaf_public_key()[0], 0x04);
    assert_eq!(chain.certs().len(), 3, "leaf, intermediate, root");
    assert_eq!(chain.crl_urls(), vec![p.options.crl_url.clone()]);
    assert!(
        chain.subject().contains("CN=SHAKEN valid"),
        "{}",
        chain.subject()
    );
    // Serial as openssl printed it (leading zero octets aside).
    let hex: String = chain
        .leaf_serial()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert_eq!(
        hex.trim_start_matches('0'),
        p.valid.serial_hex.trim_start_matches('0')
    );
    // notAfter of the chain = the leaf's 2049-12-31T23:59:59Z (earlier than the CAs').
    assert_eq!(chain.not_after(), unix(2050, 1, 1) - 1);
    chain
        .check_validity(t2030(), t2030())
        .expect("valid in 2030");
    chain.check_validity(now(), now()).expect("valid today");

    // The PKCS#8 key signs, and the chain's key verifies: they belong together.
    let rng = SystemRandom::new();
    let kp = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &p.valid.key_pkcs8_der,
        &rng,
    )
    .expect("ring loads the openssl PKCS#8 key");
    let sig = kp.sign(&rng, b"header.payload").expect("sign");
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, chain.leaf_public_key())
        .verify(b"header.payload", sig.as_ref())
        .expect("signature verifies with the chain's leaf key");
    assert!(String::from_utf8_lossy(&p.valid.key_pkcs8_pem).contains("BEGIN PRIVATE KEY"));
}

#[test]
fn single_der_leaf_with_intermediate_anchor_validates() {
    let Some(p) = pki() else { return };
    // The x5u serves only the leaf (DER); the operator pinned the intermediate.
    let pinned = TrustAnchors::from_pem(&[p.root_pem.clone(), p.intermediate_pem.clone()].concat())
        .expect("anchors");
    assert_eq!(pinned.len(), 2);
    let chain = parse_and_validate(&p.valid.cert_der, &pinned).expect("leaf alone, pinned CA");
    assert_eq!(chain.certs().len(), 2);
    // Without the pinned intermediate the lone leaf does not chain.
    let e = parse_and_validate(&p.valid.cert_der, &anchors(p)).unwrap_err();
    assert!(matches!(e, CertError::UntrustedIssuer(_)), "{e}");
    assert_eq!(e.failure().code(), 437);
}

#[test]
fn anchors_from_paths_files_and_directories() {
    let Some(p) = pki() else { return };
    let a = TrustAnchors::from_paths(std::slice::from_ref(&p.root_path)).expect("file");
    assert_eq!(a.len(), 1);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("root.pem"), &p.root_pem).unwrap();
    std::fs::write(dir.path().join("inter.crt"), &p.intermediate_pem).unwrap();
    std::fs::write(dir.path().join("README.txt"), b"not a cert").unwrap();
    let a = TrustAnchors::from_paths(&[dir.path().to_path_buf()]).expect("dir");
    assert_eq!(a.len(), 2);
    assert!(!a.is_empty());
    let empty = tempfile::tempdir().expect("tempdir");
    let e = TrustAnchors::from_paths(&[empty.path().to_path_buf()]).unwrap_err();
    assert_eq!(e.kind(), "anchors");
    let e = TrustAnchors::from_paths(&[PathBuf::from("/nonexistent/anchors.pem")]).unwrap_err();
    assert_eq!(e.kind(), "anchors");
    assert!(TrustAnchors::from_pem(b"no pem here").is_err());
}

#[test]
fn validity_at_iat_and_now() {
    let Some(p) = pki() else { return };
    // Structure and signatures are fine: the chain is built; time decides later.
    let expired = validate(p, &p.expired.bundle_pem).expect("expired chain is well-formed");
    let e = expired.check_validity(t2030(), t2030()).unwrap_err();
    assert_eq!(
        e,
        CertError::Expired {
            subject: "CN=SHAKEN expired".into(),
            at: "2021-01-01T00:00:00Z".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "certificate CN=SHAKEN expired expired at 2021-01-01T00:00:00Z"
    );
    assert_eq!(e.failure().code(), 437);
    assert_eq!(e.failure().class, FailureClass::UnsupportedCredential);
    assert_eq!(e.kind(), "expired");
    // Valid at iat but not now: refused (both instants must be inside the validity).
    let in_2020 = unix(2020, 6, 1);
    assert!(matches!(
        expired.check_validity(in_2020, t2030()),
        Err(CertError::Expired { .. })
    ));
    // Valid at both.
    expired
        .check_validity(in_2020, in_2020 + 60)
        .expect("valid in 2020");
    // Expired at iat, "now" in range (a replayed capture with an old iat).
    assert!(matches!(
        expired.check_validity(unix(2022, 1, 1), in_2020),
        Err(CertError::Expired { .. })
    ));

    let nyv = validate(p, &p.not_yet_valid.bundle_pem).expect("well-formed");
    let e = nyv.check_validity(t2030(), t2030()).unwrap_err();
    assert_eq!(
        e,
        CertError::NotYetValid {
            subject: "CN=SHAKEN not_yet_valid".into(),
            at: "2048-01-01T00:00:00Z".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "certificate CN=SHAKEN not_yet_valid not valid before 2048-01-01T00:00:00Z"
    );
    nyv.check_validity(unix(2048, 6, 1), unix(2048, 6, 1))
        .expect("valid in 2048");
    // The anchor's own validity counts too (root valid from 2000).
    let valid = validate(p, &p.valid.bundle_pem).unwrap();
    assert!(matches!(
        valid.check_validity(unix(2019, 1, 1), t2030()),
        Err(CertError::NotYetValid { .. })
    ));
}

#[test]
fn each_broken_credential_gives_its_error() {
    let Some(p) = pki() else { return };
    let cases: Vec<(&str, &[u8], &str)> = vec![
        (
            "untrusted root",
            &p.untrusted.bundle_pem,
            "untrusted_issuer",
        ),
        (
            "impostor root (same name, other key)",
            &p.impostor.bundle_pem,
            "bad_signature",
        ),
        ("no TNAuthList", &p.no_tn_auth.bundle_pem, "no_tn_auth_list"),
        ("RSA 2048 leaf", &p.rsa.bundle_pem, "not_p256"),
        ("P-384 leaf", &p.p384.bundle_pem, "not_p256"),
        ("CA cert as leaf", &p.ca_as_leaf.bundle_pem, "ca_as_leaf"),
        (
            "leaf without digitalSignature",
            &p.no_digital_signature.bundle_pem,
            "key_usage",
        ),
        (
            "CA below a pathlen:0 intermediate",
            &p.pathlen_violation.bundle_pem,
            "path_len",
        ),
    ];
    for (what, bundle, kind) in cases {
        let e = expect_err(p, bundle);
        println!("{what}: {} ({})", e, e.failure());
        assert_eq!(e.kind(), kind, "{what}: {e}");
        assert_eq!(e.failure().code(), 437, "{what}");
    }
    assert_eq!(
        expect_err(p, &p.no_tn_auth.bundle_pem),
        CertError::NoTnAuthList
    );
    assert_eq!(
        expect_err(p, &p.rsa.bundle_pem),
        CertError::NotP256("CN=SHAKEN rsa has an RSA 2048 key".into())
    );
    assert_eq!(
        expect_err(p, &p.p384.bundle_pem),
        CertError::NotP256("CN=SHAKEN p384 has an EC P-384 key".into())
    );
    assert_eq!(
        expect_err(p, &p.untrusted.bundle_pem),
        CertError::UntrustedIssuer(
            "chain ends at CN=Untrusted Root, which is not a configured STI-CA trust anchor".into()
        )
    );
    assert_eq!(
        expect_err(p, &p.pathlen_violation.bundle_pem),
        CertError::PathLen(
            "CN=Test STI-CA Intermediate allows 0 intermediate CA(s) below it, the chain has 1"
                .into()
        )
    );
    // The untrusted chain verifies once its root is configured: the refusal was about trust.
    let other = TrustAnchors::from_pem(&p.untrusted_root_pem).unwrap();
    let c = parse_and_validate(&p.untrusted.bundle_pem, &other).expect("chains to its own root");
    assert_eq!(c.spc(), Some(p.options.spc.as_str()));
}

#[test]
fn tampered_signatures_and_bundles() {
    let Some(p) = pki() else { return };
    // Flip the last byte of the leaf's signature.
    let mut der = p.valid.cert_der.clone();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let pinned =
        TrustAnchors::from_pem(&[p.root_pem.clone(), p.intermediate_pem.clone()].concat()).unwrap();
    let e = parse_and_validate(&der, &pinned).unwrap_err();
    assert!(matches!(e, CertError::BadSignature(_)), "{e}");
    assert_eq!(e.failure().code(), 437);
    // Intermediates in the wrong order or duplicated are fine; a missing one is not.
    let reordered = [
        p.pathlen_violation.cert_pem.clone(),
        p.intermediate_pem.clone(),
    ]
    .concat();
    assert!(validate(p, &reordered).is_err());
    let dup = [
        p.valid.bundle_pem.clone(),
        p.intermediate_pem.clone(),
        p.root_pem.clone(),
    ]
    .concat();
    validate(p, &dup).expect("extra intermediate and root in the bundle are tolerated");
    // Nine certificates: over the cap.
    let nine: Vec<u8> = std::iter::repeat_n(p.valid.cert_pem.clone(), 9)
        .flatten()
        .collect();
    assert_eq!(validate(p, &nine).unwrap_err(), CertError::TooManyCerts);
}

#[test]
fn crl_revocation() {
    let Some(p) = pki() else { return };
    let a = anchors(p);
    let valid = parse_and_validate(&p.valid.bundle_pem, &a).unwrap();
    let revoked = parse_and_validate(&p.revoked.bundle_pem, &a).unwrap();
    assert_eq!(revoked.crl_urls(), vec![p.options.crl_url.clone()]);

    let crl = parse_and_verify_crl(&p.crl_der, &valid, &a).expect("CRL verifies");
    assert_eq!(crl.len(), 1);
    assert!(crl.is_revoked(revoked.leaf_serial()));
    assert!(!crl.is_revoked(valid.leaf_serial()));
    let next = crl.next_update().expect("nextUpdate");
    assert!(next > crl.this_update());
    crl.check_fresh(crl.this_update() + 60).expect("fresh");
    assert_eq!(crl.check_fresh(next + 1).unwrap_err().kind(), "crl_invalid");

    check_revocation(&valid, &crl).expect("valid leaf not revoked");
    let e = check_revocation(&revoked, &crl).unwrap_err();
    let serial = p.revoked.serial_hex.to_ascii_lowercase();
    assert_eq!(
        e,
        CertError::Revoked {
            serial: serial.trim_start_matches("00").to_string()
        }
    );
    assert_eq!(e.failure().code(), 437);
    assert_eq!(e.kind(), "revoked");

    // PEM form works too; the empty CRL revokes nothing.
    let crl = parse_and_verify_crl(&p.crl_pem, &revoked, &a).expect("PEM CRL");
    assert!(crl.is_revoked(revoked.leaf_serial()));
    let empty = parse_and_verify_crl(&p.crl_empty_der, &revoked, &a).expect("empty CRL");
    assert!(empty.is_empty());
    check_revocation(&revoked, &empty).expect("not listed in the earlier CRL");
}

#[test]
fn crl_of_the_root_revokes_an_intermediate() {
    let Some(p) = pki() else { return };
    let a = anchors(p);
    let chain = parse_and_validate(&p.under_revoked_intermediate.bundle_pem, &a).unwrap();
    // Signed by the root, an anchor: the signer is found among the anchors.
    let crl = parse_and_verify_crl(&p.root_crl_der, &chain, &a).expect("root CRL verifies");
    assert_eq!(crl.len(), 1);
    assert!(
        crl.issuer().contains("CN=Test STI-CA Root"),
        "{}",
        crl.issuer()
    );
    let e = check_revocation(&chain, &crl).unwrap_err();
    let want = p.revoked_intermediate_serial_hex.to_ascii_lowercase();
    assert_eq!(
        e,
        CertError::Revoked {
            serial: want.trim_start_matches("00").to_string()
        }
    );
    // The other intermediate is not listed; the leaf serial is not either.
    let valid = parse_and_validate(&p.valid.bundle_pem, &a).unwrap();
    let crl = parse_and_verify_crl(&p.root_crl_der, &valid, &a).unwrap();
    check_revocation(&valid, &crl).expect("intermediate 1 not revoked by the root");
    // The intermediate's own CRL says nothing about intermediate 2.
    let e = parse_and_verify_crl(&p.crl_der, &chain, &a).unwrap_err();
    assert!(matches!(e, CertError::CrlInvalid(_)), "{e}");
}

#[test]
fn crl_signed_by_the_wrong_key_or_nobody_known() {
    let Some(p) = pki() else { return };
    let a = anchors(p);
    let valid = parse_and_validate(&p.valid.bundle_pem, &a).unwrap();
    let e = parse_and_verify_crl(&p.crl_wrong_key_der, &valid, &a).unwrap_err();
    assert!(
        matches!(e, CertError::CrlInvalid(ref m) if m.contains("does not verify")),
        "{e}"
    );
    assert_eq!(e.failure().code(), 437);
    // The right CRL, but a chain that does not contain its issuer.
    let other = TrustAnchors::from_pem(&p.untrusted_root_pem).unwrap();
    let foreign = parse_and_validate(&p.untrusted.bundle_pem, &other).unwrap();
    let e = parse_and_verify_crl(&p.crl_der, &foreign, &other).unwrap_err();
    assert!(
        matches!(e, CertError::CrlInvalid(ref m) if m.contains("no certificate")),
        "{e}"
    );
    // Tampered CRL bytes.
    let mut bad = p.crl_der.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    assert_eq!(
        parse_and_verify_crl(&bad, &valid, &a).unwrap_err().kind(),
        "crl_invalid"
    );
    // Garbage, truncation, oversize.
    for body in [
        &b""[..],
        &b"garbage"[..],
        &p.crl_der[..p.crl_der.len() / 2],
        &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..],
    ] {
        assert_eq!(
            parse_and_verify_crl(body, &valid, &a).unwrap_err().kind(),
            "crl_invalid"
        );
    }
    let huge = vec![0x30u8; (1 << 20) + 1];
    assert_eq!(
        parse_and_verify_crl(&huge, &valid, &a).unwrap_err().kind(),
        "crl_invalid"
    );
}

#[test]
fn hostile_x5u_bodies_give_typed_errors() {
    let Some(p) = pki() else { return };
    let a = anchors(p);
    let check = |body: &[u8], kind: &str, code: u16| {
        let e = parse_and_validate(body, &a).unwrap_err();
        assert_eq!(e.kind(), kind, "{e}");
        assert_eq!(e.failure().code(), code, "{e}");
    };
    check(b"", "not_pem", 436);
    check(b"<html>404</html>", "not_pem", 436);
    check(&vec![b'A'; MAX_X5U_BYTES + 1], "too_large", 436);
    check(b"-----BEGIN CERTIFICATE-----\nAAAA\n", "parse", 437);
    check(
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        "parse",
        437,
    );
    check(
        b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
        "parse",
        437,
    );
    check(&[0x30, 0x82, 0xff, 0xff, 0x00], "parse", 437);
    // Every truncation of a real bundle and of a real DER certificate: an error, no panic.
    let bundle = &p.valid.bundle_pem;
    for cut in (0..bundle.len()).step_by(7) {
        let _ = parse_and_validate(&bundle[..cut], &a);
    }
    let der = &p.valid.cert_der;
    for cut in 0..der.len() {
        assert!(parse_and_validate(&der[..cut], &a).is_err(), "{cut}");
    }
    // Trailing garbage after a DER certificate.
    let mut trailing = der.clone();
    trailing.extend_from_slice(b"\0\0");
    assert_eq!(
        parse_and_validate(&trailing, &a).unwrap_err().kind(),
        "parse"
    );
    // Bit flips all over the DER: typed errors (or, for don't-care bytes, still a chain).
    for i in 0..der.len() {
        let mut v = der.clone();
        v[i] ^= 0x5a;
        let _ = parse_and_validate(&v, &a);
    }
}

// ---- third-party certificates (../shared/thirdparty/shaken) ----

fn thirdparty(name: &str) -> Option<Vec<u8>> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/thirdparty/shaken")
        .join(name);
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(e) => {
            eprintln!("SKIPPED: {} is absent ({e})", p.display());
            None
        }
    }
}

#[test]
fn thirdparty_asterisk_spc_1_and_expired() {
    let Some(pem) = thirdparty("asterisk-testsuite-SPAST1-cert.pem") else {
        return;
    };
    let certs = parse_chain_only(&pem).expect("parses");
    assert_eq!(certs.len(), 1);
    let c = &certs[0];
    let tn = c
        .tn_auth
        .clone()
        .expect("TNAuthList present")
        .expect("well-formed");
    assert_eq!(tn.spcs, vec!["1"]);
    assert_eq!(c.spc(), Some("1"));
    assert_eq!(c.p256_key.as_ref().map(Vec::len), Some(65));
    assert_eq!(c.not_after, unix(2026, 6, 1) + 16 * 3600 + 23 * 60 + 26);
    assert_eq!(
        c.check_validity_at(now()),
        Err(CertError::Expired {
            subject: "CN=SHAKEN 1".into(),
            at: "2026-06-01T16:23:26Z".into()
        })
    );
    c.check_validity_at(unix(2025, 1, 1))
        .expect("valid in 2025");
    // Its CA (ca.asterisk.org) is not ours: no trust without it.
    let Some(ca) = thirdparty("libstirshaken/ca.pem") else {
        return;
    };
    let a = TrustAnchors::from_pem(&ca).unwrap();
    assert!(matches!(
        parse_and_validate(&pem, &a),
        Err(CertError::UntrustedIssuer(_))
    ));
}

#[test]
fn thirdparty_comcast_leaf_spc_crl_dp_expired() {
    let Some(der) = thirdparty("real-carrier-leaf-comcast.der") else {
        return;
    };
    let certs = parse_chain_only(&der).expect("parses DER");
    let c = &certs[0];
    assert_eq!(c.spc(), Some("318J"));
    assert_eq!(c.crl_urls.len(), 1);
    println!("comcast leaf CRL distribution point: {}", c.crl_urls[0]);
    assert!(c.crl_urls[0].starts_with("https://"), "{}", c.crl_urls[0]);
    assert_eq!(c.key_usage.map(|k| k.digital_signature), Some(true));
    assert!(!c.is_ca);
    let e = c.check_validity_at(now()).unwrap_err();
    assert_eq!(
        e,
        CertError::Expired {
            subject: "CN=SHAKEN".into(),
            at: "2023-10-13T10:11:27Z".into()
        }
    );
    assert_eq!(e.failure().code(), 437);
}

#[test]
fn thirdparty_libstirshaken_sp_chains_to_ca_and_wrongsp_does_not() {
    let (Some(ca), Some(sp), Some(wrong)) = (
        thirdparty("libstirshaken/ca.pem"),
        thirdparty("libstirshaken/sp.pem"),
        thirdparty("libstirshaken/wrongsp.pem"),
    ) else {
        return;
    };
    let a = TrustAnchors::from_pem(&ca).expect("ca.pem");
    let chain = parse_and_validate(&sp, &a).expect("sp.pem chains to ca.pem");
    // Its TNAuthList is the legacy bare IA5String (a URI), kept as an unknown entry: no SPC.
    assert_eq!(chain.spc(), None);
    assert!(chain.tn_auth().authorizes_nothing());
    assert_eq!(
        chain.tn_auth().unknown_text(),
        vec!["ca.shaken.signalwire.cloud/sti-ca/acme/TNAuthList".to_string()]
    );
    assert_eq!(chain.leaf_public_key().len(), 65);
    assert!(chain.crl_urls().is_empty());
    // Valid around the iat of libstirshaken's README tokens (1616442523) and today.
    chain
        .check_validity(1_616_442_523, 1_616_442_523 + 30)
        .expect("valid at the tokens' iat");
    chain
        .check_validity(now(), now())
        .expect("valid until 2047");

    // wrongsp.pem: another CA ("Wrong CA") and another key. It must not verify those tokens.
    let e = parse_and_validate(&wrong, &a).unwrap_err();
    assert!(matches!(e, CertError::UntrustedIssuer(_)), "{e}");
    assert_eq!(e.failure().code(), 437);
    let w = &parse_chain_only(&wrong).unwrap()[0];
    assert_ne!(w.p256_key.as_deref(), Some(chain.leaf_public_key()));
    // Even if its bytes were served with sp.pem's intermediate set, it does not chain.
    let both = [wrong.clone(), ca.clone()].concat();
    assert!(parse_and_validate(&both, &a).is_err());
}
