//! The scenario's STIR/SHAKEN PKI, made with the `openssl` command-line tool: one STI-CA root
//! (the trust anchor of the generated sensor.toml) and one P-256 signer certificate per signing
//! carrier, with its SPC in a TNAuthList extension (RFC 8226: `SEQUENCE { [0] IA5String }`),
//! valid 2020..2049 so any capture time in between verifies. Also signs PASSporTs (ES256, ring).
//!
//! Keys are throw-away lab keys written next to the scenario; this module must never be used
//! to make production credentials, and never writes outside the directory it is given.

use super::rng::Rng;
use crate::shaken::b64;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot run openssl (the `scenario` command needs the openssl CLI): {0}")]
    NoOpenssl(std::io::Error),
    #[error("openssl {args} failed: {stderr}")]
    Openssl { args: String, stderr: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the signer key of {0} is not a P-256 PKCS#8 key")]
    BadKey(String),
}

/// One signing carrier's credential.
pub struct Signer {
    pub spc: String,
    pub x5u: String,
    pub cert_path: PathBuf,
    key: EcdsaKeyPair,
}

/// What a PASSporT says.
pub struct Claims<'a> {
    pub attest: char,
    pub orig: &'a str,
    pub dest: &'a [String],
    pub iat: i64,
    pub origid: &'a str,
}

impl Signer {
    /// The value of an Identity header (RFC 8224 §4.1) carrying a freshly signed PASSporT.
    pub fn identity(&self, rng: &dyn SecureRandom, c: &Claims<'_>) -> String {
        let header = format!(
            r#"{{"alg":"ES256","ppt":"shaken","typ":"passport","x5u":"{}"}}"#,
            self.x5u
        );
        let dest = c
            .dest
            .iter()
            .map(|d| format!("\"{d}\""))
            .collect::<Vec<_>>()
            .join(",");
        let claims = format!(
            r#"{{"attest":"{}","dest":{{"tn":[{dest}]}},"iat":{},"orig":{{"tn":"{}"}},"origid":"{}"}}"#,
            c.attest, c.iat, c.orig, c.origid
        );
        let input = format!(
            "{}.{}",
            b64::encode(header.as_bytes()),
            b64::encode(claims.as_bytes())
        );
        // ring only fails to sign on an internal RNG failure; a scenario cannot continue then.
        let sig = self
            .key
            .sign(rng, input.as_bytes())
            .expect("ECDSA signing failed (system RNG unavailable)");
        format!(
            "{input}.{};info=<{}>;alg=ES256;ppt=shaken",
            b64::encode(sig.as_ref()),
            self.x5u
        )
    }

    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }
}

pub struct Pki {
    pub root_path: PathBuf,
    pub signers: Vec<Signer>,
}

fn run(dir: &Path, args: &[&str]) -> Result<(), PkiError> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(PkiError::NoOpenssl)?;
    if !out.status.success() {
        return Err(PkiError::Openssl {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

fn write(path: &Path, data: &[u8]) -> Result<(), PkiError> {
    std::fs::write(path, data).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// DER of a TNAuthList with one SPC, as hex pairs for openssl's `DER:` extension syntax.
fn tn_auth_list_hex(spc: &str) -> String {
    let ia5 = [&[0x16, spc.len() as u8][..], spc.as_bytes()].concat();
    let tagged = [&[0xa0, ia5.len() as u8][..], &ia5].concat();
    let seq = [&[0x30, tagged.len() as u8][..], &tagged].concat();
    seq.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

const CA_START: &str = "20000101000000Z";
const CA_END: &str = "20991231235959Z";
const LEAF_START: &str = "20200101000000Z";
const LEAF_END: &str = "20491231235959Z";

/// Where the signer keys come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// `openssl genpkey`: fresh keys on every run (the single-sensor scenario).
    Random,
    /// Private scalars drawn from the scenario's seeded [`Rng`], and PASSporTs signed with a
    /// nonce derived from the key and the message (see [`deterministic_rng`]): the same seed
    /// gives byte-identical PASSporTs. Only the CA's signatures on the certificates still
    /// differ from run to run (OpenSSL 3.0 has no deterministic ECDSA). Anyone with the seed
    /// has the keys: a lab scenario's keys, never anything a sensor should trust elsewhere.
    Seeded,
}

/// The "random" source that makes ring's ECDSA deterministic for [`Keys::Seeded`] signers.
/// ring hashes the key, this source's bytes and the message digest into the nonce, so a
/// constant source gives a nonce that is still secret (it depends on the private key) and
/// distinct per message, as RFC 6979 does. Only for lab keys written next to a scenario.
#[allow(deprecated)]
pub fn deterministic_rng() -> impl SecureRandom {
    ring::test::rand::FixedByteRandom { byte: 0x5c }
}

/// A P-256 private scalar drawn from `rng`: the first byte is kept below 0xff and the last
/// above 0, so it lies in [1, n).
fn p256_scalar(rng: &mut Rng) -> [u8; 32] {
    let mut d = [0u8; 32];
    for chunk in d.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_be_bytes());
    }
    d[0] = d[0].min(0xfe);
    d[31] |= 1;
    d
}

/// SEC 1 `ECPrivateKey` DER of a P-256 key: `SEQUENCE { 1, OCTET STRING d, [0] prime256v1,
/// [1] BIT STRING point }`, the point omitted when `point` is None.
fn sec1_p256(d: &[u8; 32], point: Option<&[u8]>) -> Vec<u8> {
    let mut body = vec![0x02, 0x01, 0x01, 0x04, 0x20];
    body.extend_from_slice(d);
    body.extend_from_slice(&[
        0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ]);
    if let Some(q) = point {
        body.extend_from_slice(&[0xa1, q.len() as u8 + 3, 0x03, q.len() as u8 + 1, 0x00]);
        body.extend_from_slice(q);
    }
    [&[0x30, body.len() as u8][..], &body].concat()
}

/// Writes `<spc>.key.pem` (PKCS#8 with its public point) for a scalar drawn from `rng`:
/// openssl derives the point from a key written without it, and the key is written again
/// with it (ring needs the point in the PKCS#8).
fn seeded_key(dir: &Path, spc: &str, rng: &mut Rng) -> Result<(), PkiError> {
    let d = p256_scalar(rng);
    let bare = format!("{spc}.key.bare.der");
    write(&dir.join(&bare), &sec1_p256(&d, None))?;
    let spki = format!("{spc}.pub.der");
    run(
        dir,
        &[
            "ec", "-inform", "DER", "-in", &bare, "-pubout", "-outform", "DER", "-out", &spki,
        ],
    )?;
    let spki_path = dir.join(&spki);
    let spki_der = std::fs::read(&spki_path).map_err(|source| PkiError::Io {
        path: spki_path,
        source,
    })?;
    // The uncompressed point (0x04, X, Y) ends the SubjectPublicKeyInfo.
    let point = spki_der
        .get(spki_der.len().saturating_sub(65)..)
        .filter(|q| q.len() == 65 && q[0] == 4)
        .ok_or_else(|| PkiError::BadKey(spc.to_string()))?;
    let full = format!("{spc}.key.sec1.der");
    write(&dir.join(&full), &sec1_p256(&d, Some(point)))?;
    let _ = std::fs::remove_file(dir.join(&bare));
    let _ = std::fs::remove_file(dir.join(&spki));
    run(
        dir,
        &[
            "pkey",
            "-inform",
            "DER",
            "-in",
            &full,
            "-out",
            &format!("{spc}.key.pem"),
        ],
    )
}

/// Builds the PKI in `dir` (created) with fresh signer keys: see [`build_with`].
pub fn build(dir: &Path, carriers: &[(String, String)], rng: &mut Rng) -> Result<Pki, PkiError> {
    build_with(dir, carriers, rng, Keys::Random)
}

/// Builds the PKI in `dir` (created): `sti-ca-root.pem` and, per (SPC, x5u), `<SPC>.pem` (the
/// certificate the x5u URL serves) and `<SPC>.key.der` (PKCS#8). Serial numbers (and with
/// [`Keys::Seeded`] the signer keys) come from `rng`, so reruns with one seed name the same
/// serials.
pub fn build_with(
    dir: &Path,
    carriers: &[(String, String)],
    rng: &mut Rng,
    keys: Keys,
) -> Result<Pki, PkiError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PkiError::Io { path, source }
    };
    std::fs::create_dir_all(dir.join("ca/newcerts")).map_err(io(dir))?;
    write(&dir.join("ca/index.txt"), b"")?;
    let mut sections = String::new();
    for (spc, _) in carriers {
        sections.push_str(&format!(
            "\n[ leaf_{spc} ]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n\
             subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n1.3.6.1.5.5.7.1.26 = DER:{}\n",
            tn_auth_list_hex(spc)
        ));
    }
    let cnf = format!(
        "[ ca ]\ndefault_ca = CA_default\n\n[ CA_default ]\ndir = ca\ndatabase = $dir/index.txt\n\
         new_certs_dir = $dir/newcerts\ncertificate = $dir/cert.pem\nprivate_key = $dir/key.pem\n\
         default_md = sha256\npolicy = policy_any\nunique_subject = no\ncopy_extensions = none\n\
         preserve = yes\nemail_in_dn = no\nserial = $dir/serial\n\n[ policy_any ]\ncountryName = optional\n\
         organizationName = optional\ncommonName = supplied\n\n[ req ]\ndistinguished_name = req_dn\n\n\
         [ req_dn ]\n\n[ v3_root ]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n\
         subjectKeyIdentifier = hash\n{sections}"
    );
    write(&dir.join("openssl.cnf"), cnf.as_bytes())?;
    let serial = |rng: &mut Rng| format!("{:016X}\n", rng.next_u64() >> 1);
    write(&dir.join("ca/serial"), serial(rng).as_bytes())?;
    let genkey = |path: &str| {
        run(
            dir,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-pkeyopt",
                "ec_param_enc:named_curve",
                "-out",
                path,
            ],
        )
    };
    let sign = |csr: &str, out: &str, ext: &str, start: &str, end: &str, selfsign: bool| {
        let mut args = vec![
            "ca",
            "-batch",
            "-notext",
            "-config",
            "openssl.cnf",
            "-in",
            csr,
            "-out",
            out,
            "-extensions",
            ext,
            "-startdate",
            start,
            "-enddate",
            end,
        ];
        if selfsign {
            args.push("-selfsign");
        }
        run(dir, &args)
    };
    genkey("ca/key.pem")?;
    run(
        dir,
        &[
            "req",
            "-new",
            "-config",
            "openssl.cnf",
            "-key",
            "ca/key.pem",
            "-subj",
            "/C=US/O=Scenario STI-PA/CN=Scenario STI-CA Root",
            "-out",
            "ca/req.csr",
        ],
    )?;
    sign(
        "ca/req.csr",
        "ca/cert.pem",
        "v3_root",
        CA_START,
        CA_END,
        true,
    )?;
    let root_path = dir.join("sti-ca-root.pem");
    run(
        dir,
        &["x509", "-in", "ca/cert.pem", "-out", "sti-ca-root.pem"],
    )?;
    let mut signers = Vec::new();
    for (spc, x5u) in carriers {
        write(&dir.join("ca/serial"), serial(rng).as_bytes())?;
        let key = format!("{spc}.key.pem");
        match keys {
            Keys::Random => genkey(&key)?,
            Keys::Seeded => seeded_key(dir, spc, rng)?,
        }
        let der = format!("{spc}.key.der");
        run(
            dir,
            &[
                "pkcs8", "-topk8", "-nocrypt", "-in", &key, "-outform", "DER", "-out", &der,
            ],
        )?;
        let csr = format!("ca/{spc}.csr");
        run(
            dir,
            &[
                "req",
                "-new",
                "-config",
                "openssl.cnf",
                "-key",
                &key,
                "-subj",
                &format!("/C=US/O=Scenario carrier {spc}/CN=SHAKEN {spc}"),
                "-out",
                &csr,
            ],
        )?;
        let signed = format!("ca/{spc}.cert.pem");
        sign(
            &csr,
            &signed,
            &format!("leaf_{spc}"),
            LEAF_START,
            LEAF_END,
            false,
        )?;
        let cert = format!("{spc}.pem");
        run(dir, &["x509", "-in", &signed, "-out", &cert])?;
        let der_path = dir.join(&der);
        let pkcs8 = std::fs::read(&der_path).map_err(io(&der_path))?;
        let loaded = match keys {
            Keys::Random => EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &pkcs8,
                &SystemRandom::new(),
            ),
            Keys::Seeded => EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &pkcs8,
                &deterministic_rng(),
            ),
        };
        let key = loaded.map_err(|_| PkiError::BadKey(spc.clone()))?;
        signers.push(Signer {
            spc: spc.clone(),
            x5u: x5u.clone(),
            cert_path: dir.join(cert),
            key,
        });
    }
    Ok(Pki { root_path, signers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sec1_key_der_lengths_and_scalar_range() {
        let d = p256_scalar(&mut Rng::new(1));
        assert!(d[0] < 0xff && d[31] & 1 == 1);
        let bare = sec1_p256(&d, None);
        assert_eq!(&bare[..2], &[0x30, 0x31]);
        assert_eq!(bare.len(), 2 + 0x31);
        let full = sec1_p256(&d, Some(&[4u8; 65]));
        assert_eq!(&full[..2], &[0x30, 0x77]);
        assert_eq!(full.len(), 2 + 0x77);
        assert_eq!(&full[7..39], &d);
        assert_eq!(&full[51..56], &[0xa1, 0x44, 0x03, 0x42, 0x00]);
    }

    #[test]
    fn tn_auth_list_der_for_one_spc() {
        // SEQUENCE(6) { [0](4) { IA5String(2) "1A" } }
        assert_eq!(tn_auth_list_hex("1A"), "30:06:a0:04:16:02:31:41");
    }
}
