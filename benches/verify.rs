//! Verification with a cached credential against ring's raw ES256 verify of the same
//! signatures, in the same run: the goal is at least 90% of ring's rate per core.
//! Run: `cargo bench --bench verify`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use shaken_sensor::shaken::b64;
use shaken_sensor::shaken::replay::ReplayGuard;
use shaken_sensor::shaken::verdict::Failure;
use shaken_sensor::shaken::verify::{CallNumbers, Credential, Verifier, VerifyPolicy};
use shaken_sensor::sip::tn::canonicalize;
use std::sync::Arc;

struct Cached {
    key: Vec<u8>,
}

impl Credential for Cached {
    fn check_validity(&self, _iat: i64, _now: i64) -> Result<(), Failure> {
        Ok(())
    }
    fn public_key(&self) -> &[u8] {
        &self.key
    }
    fn spc(&self) -> Option<&str> {
        Some("123A")
    }
}

const NOW: i64 = 1_795_000_000;
const TOKENS: usize = 256;

fn bench(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let cred = Cached {
        key: key.public_key().as_ref().to_vec(),
    };
    let hdr = r#"{"alg":"ES256","typ":"passport","ppt":"shaken","x5u":"https://cert.example.org/sp.pem"}"#;
    // Distinct tokens (distinct origid and dest), so nothing is cached by accident.
    let headers: Vec<(String, Vec<u8>, Vec<u8>)> = (0..TOKENS)
        .map(|i| {
            let claims = format!(
                r#"{{"attest":"A","dest":{{"tn":["1303555{:04}"]}},"iat":{NOW},"orig":{{"tn":"12025550143"}},"origid":"de305d54-75b4-431b-adb2-eb6b9e5{:05x}"}}"#,
                i, i
            );
            let input = format!("{}.{}", b64::encode(hdr.as_bytes()), b64::encode(claims.as_bytes()));
            let sig = key.sign(&rng, input.as_bytes()).unwrap();
            let header = format!(
                "{input}.{};info=<https://cert.example.org/sp.pem>;alg=ES256;ppt=shaken",
                b64::encode(sig.as_ref())
            );
            (header, input.into_bytes(), sig.as_ref().to_vec())
        })
        .collect();
    let numbers: Vec<CallNumbers> = (0..TOKENS)
        .map(|i| CallNumbers {
            orig: canonicalize(b"+12025550143"),
            ruri: canonicalize(format!("1303555{i:04}").as_bytes()),
            to: None,
        })
        .collect();

    let mut g = c.benchmark_group("es256");
    g.throughput(Throughput::Elements(TOKENS as u64));
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, cred.key.clone());
    g.bench_function("ring raw verify", |b| {
        b.iter(|| {
            for (_, input, sig) in &headers {
                public.verify(black_box(input), black_box(sig)).unwrap();
            }
        })
    });
    let verifier = Verifier::new(VerifyPolicy::default(), Arc::new(ReplayGuard::new(1 << 20)));
    g.bench_function("full verification, cached certificate", |b| {
        b.iter(|| {
            for (i, (header, _, _)) in headers.iter().enumerate() {
                let mut check = verifier.precheck(black_box(header.as_bytes()), &numbers[i], NOW);
                verifier.finish(&mut check, Ok(&cred), NOW);
                let v = verifier.verdict(b"bench-call", std::slice::from_ref(&check), NOW);
                assert!(v.code.is_none());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
