//! The scenario's STIR/SHAKEN PKI, made with the `openssl` command-line tool: one STI-CA root
//! (the trust anchor of the generated sensor.toml) and one P-256 signer certificate per signing
//! carrier, with its SPC in a TNAuthList extension (RFC 8226: `SEQUENCE { [0] IA5String }`),
//! valid 2020..2049 so any capture time in between verifies. Also signs PASSporTs (ES256, ring).
//!
//! Keys are throw-away lab keys written next to the scenario; this module must never be used
//! to make production credentials, and never writes outside the directory it is given.

use super::rng::Rng;
use crate::shaken::b64;
use ring::rand::SystemRandom;
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
    pub fn identity(&self, rng: &SystemRandom, c: &Claims<'_>) -> String {
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

/// Builds the PKI in `dir` (created): `sti-ca-root.pem` and, per (SPC, x5u), `<SPC>.pem` (the
/// certificate the x5u URL serves) and `<SPC>.key.der` (PKCS#8). Serial numbers come from
/// `rng` so reruns with one seed name the same serials.
pub fn build(dir: &Path, carriers: &[(String, String)], rng: &mut Rng) -> Result<Pki, PkiError> {
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
        genkey(&key)?;
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
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|_| PkiError::BadKey(spc.clone()))?;
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
    fn tn_auth_list_der_for_one_spc() {
        // SEQUENCE(6) { [0](4) { IA5String(2) "1A" } }
        assert_eq!(tn_auth_list_hex("1A"), "30:06:a0:04:16:02:31:41");
    }
}
