//! A throw-away SHAKEN test PKI built at test time with the real `openssl` CLI: an STI-CA root,
//! an intermediate (pathlen:0), SP leaves with TNAuthList (SPC) and a CRL distribution point,
//! and one leaf for each way a credential can be wrong, plus a CRL revoking one leaf and a CRL
//! signed by the wrong key. Shared by the certificate and verification integration tests
//! (`mod common_pki;`); one PKI per test binary ([`shared`]), or a custom one ([`build`]).
//!
//! This helper must never write outside its own directory under CARGO_TARGET_TMPDIR, never
//! ship keys anywhere, and never make a test fail when `openssl` is absent: it prints
//! "SKIPPED: ..." and returns None. When openssl is present and a command fails, it panics
//! with openssl's output (a broken fixture must not look like a skipped test).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Options of a custom PKI.
#[derive(Clone, Debug)]
pub struct PkiOptions {
    /// CRL distribution point written into every leaf (and the sub-intermediate).
    pub crl_url: String,
    /// SPC of the valid leaf (others get "T" + a digit).
    pub spc: String,
}

impl Default for PkiOptions {
    fn default() -> Self {
        PkiOptions {
            crl_url: "http://127.0.0.1:8931/ca.crl".to_string(),
            spc: "123J".to_string(),
        }
    }
}

/// One end-entity certificate and its key.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub name: String,
    /// The leaf alone (PEM) and its DER.
    pub cert_pem: Vec<u8>,
    pub cert_der: Vec<u8>,
    /// What an x5u URL would serve: leaf, then the intermediates (PEM).
    pub bundle_pem: Vec<u8>,
    pub bundle_path: PathBuf,
    /// Private key, PKCS#8 unencrypted, PEM and DER (ring: `EcdsaKeyPair::from_pkcs8`).
    pub key_pkcs8_pem: Vec<u8>,
    pub key_pkcs8_der: Vec<u8>,
    /// Serial number as openssl prints it (upper-case hex).
    pub serial_hex: String,
    /// The SPC put in its TNAuthList, when it has one.
    pub spc: Option<String>,
}

pub struct TestPki {
    pub dir: PathBuf,
    pub options: PkiOptions,
    pub root_pem: Vec<u8>,
    pub root_path: PathBuf,
    pub intermediate_pem: Vec<u8>,
    pub intermediate_path: PathBuf,
    /// Another root, never configured as an anchor.
    pub untrusted_root_pem: Vec<u8>,
    /// Valid 2020-01-01 .. 2049-12-31, SPC `options.spc`, digitalSignature, CRL DP.
    pub valid: Leaf,
    /// Valid 2020-01-01 .. 2021-01-01.
    pub expired: Leaf,
    /// Valid 2048-01-01 .. 2049-12-31.
    pub not_yet_valid: Leaf,
    /// Issued by the untrusted root (bundle: leaf + untrusted root).
    pub untrusted: Leaf,
    /// Issued by a root that has the trusted root's name but another key (bundle: leaf).
    pub impostor: Leaf,
    /// No TNAuthList extension.
    pub no_tn_auth: Leaf,
    /// RSA 2048 key.
    pub rsa: Leaf,
    /// EC P-384 key.
    pub p384: Leaf,
    /// basicConstraints CA:TRUE, keyCertSign + digitalSignature, TNAuthList.
    pub ca_as_leaf: Leaf,
    /// keyUsage keyAgreement only.
    pub no_digital_signature: Leaf,
    /// Revoked in `crl_der`.
    pub revoked: Leaf,
    /// Issued by a CA below the pathlen:0 intermediate (bundle: leaf + sub-CA + intermediate).
    pub pathlen_violation: Leaf,
    /// CRL of the intermediate listing `revoked` (DER and PEM).
    pub crl_der: Vec<u8>,
    pub crl_pem: Vec<u8>,
    /// A CRL naming the intermediate as issuer but signed by another key (DER).
    pub crl_wrong_key_der: Vec<u8>,
    /// A CRL of the intermediate listing nothing (DER).
    pub crl_empty_der: Vec<u8>,
    /// A second intermediate (PEM), revoked by the root in `root_crl_der`.
    pub revoked_intermediate_pem: Vec<u8>,
    pub revoked_intermediate_serial_hex: String,
    /// Issued by the revoked intermediate (bundle: leaf + revoked intermediate).
    pub under_revoked_intermediate: Leaf,
    /// The root's CRL (DER), listing the revoked intermediate.
    pub root_crl_der: Vec<u8>,
}

static SHARED: OnceLock<Option<TestPki>> = OnceLock::new();

/// The test binary's PKI (default options), built once; None (after printing SKIPPED) when
/// the openssl CLI is unavailable.
pub fn shared() -> Option<&'static TestPki> {
    SHARED
        .get_or_init(|| {
            if !openssl_available() {
                eprintln!("SKIPPED: the openssl CLI is not available; cannot build the test PKI");
                return None;
            }
            Some(build(&PkiOptions::default()))
        })
        .as_ref()
}

pub fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// DER TLV with a definite length (short or long form).
pub fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut v = vec![tag];
    let n = content.len();
    if n < 0x80 {
        v.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        v.push(0x80 | bytes.len() as u8);
        v.extend_from_slice(&bytes);
    }
    v.extend_from_slice(content);
    v
}

/// TNAuthList DER for one SPC: `SEQUENCE { [0] EXPLICIT IA5String }`.
pub fn tn_auth_list_spc_der(spc: &str) -> Vec<u8> {
    der_tlv(0x30, &der_tlv(0xa0, &der_tlv(0x16, spc.as_bytes())))
}

/// `30:06:a0:...` as openssl's `DER:` config syntax wants it.
pub fn openssl_der_hex(der: &[u8]) -> String {
    der.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Runs openssl in `dir`; panics with its stderr on failure.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl {args:?}: {e}"));
    if !out.status.success() {
        panic!(
            "openssl {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.stdout
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn write(p: &Path, data: &[u8]) {
    std::fs::write(p, data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

/// A fresh directory under CARGO_TARGET_TMPDIR/test-pki (stale siblings from earlier runs,
/// older than an hour, are removed).
fn work_dir() -> PathBuf {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-pki");
    std::fs::create_dir_all(&base).expect("create test-pki dir");
    if let Ok(rd) = std::fs::read_dir(&base) {
        for e in rd.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .map(|age| age.as_secs() > 3600)
                .unwrap_or(false);
            if old {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("pki-")
        .tempdir_in(&base)
        .expect("create PKI dir");
    dir.keep()
}

fn ca_config(dir: &Path, ca: &str, opts: &PkiOptions) -> String {
    let ca_dir = dir.join(ca);
    format!(
        r#"
[ ca ]
default_ca = CA_default

[ CA_default ]
dir = {ca_dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
crlnumber = $dir/crlnumber
certificate = $dir/cert.pem
private_key = $dir/key.pem
default_md = sha256
default_days = 3650
default_crl_days = 30
policy = policy_any
unique_subject = no
copy_extensions = none
preserve = yes
email_in_dn = no
rand_serial = yes

[ policy_any ]
countryName = optional
organizationName = optional
commonName = supplied

[ req ]
distinguished_name = req_dn

[ req_dn ]

[ v3_root ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ v3_inter ]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ v3_sub ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
crlDistributionPoints = URI:{crl}

[ leaf ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
crlDistributionPoints = URI:{crl}
1.3.6.1.5.5.7.1.26 = DER:{tn}

[ leaf_other_spc ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
authorityKeyIdentifier = keyid:always
crlDistributionPoints = URI:{crl}
1.3.6.1.5.5.7.1.26 = DER:{tn_other}

[ leaf_no_tn ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
authorityKeyIdentifier = keyid:always
crlDistributionPoints = URI:{crl}

[ leaf_no_digsig ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, keyAgreement
authorityKeyIdentifier = keyid:always
crlDistributionPoints = URI:{crl}
1.3.6.1.5.5.7.1.26 = DER:{tn_other}

[ leaf_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, digitalSignature, keyCertSign
authorityKeyIdentifier = keyid:always
1.3.6.1.5.5.7.1.26 = DER:{tn_other}
"#,
        ca_dir = ca_dir.display(),
        crl = opts.crl_url,
        tn = openssl_der_hex(&tn_auth_list_spc_der(&opts.spc)),
        tn_other = openssl_der_hex(&tn_auth_list_spc_der("T1")),
    )
}

#[derive(Clone, Copy)]
enum KeyKind {
    P256,
    P384,
    Rsa2048,
}

fn gen_key(dir: &Path, path: &str, kind: KeyKind) {
    let args: &[&str] = match kind {
        KeyKind::P256 => &[
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
        KeyKind::P384 => &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-pkeyopt",
            "ec_param_enc:named_curve",
            "-out",
            path,
        ],
        KeyKind::Rsa2048 => &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            path,
        ],
    };
    openssl(dir, args);
}

/// Creates the CA directory, its key and config (the certificate is made by the caller).
fn new_ca(dir: &Path, ca: &str, opts: &PkiOptions) -> PathBuf {
    let ca_dir = dir.join(ca);
    std::fs::create_dir_all(ca_dir.join("newcerts")).expect("mkdir");
    write(&ca_dir.join("index.txt"), b"");
    write(&ca_dir.join("crlnumber"), b"1000\n");
    write(
        &ca_dir.join("openssl.cnf"),
        ca_config(dir, ca, opts).as_bytes(),
    );
    gen_key(dir, &format!("{ca}/key.pem"), KeyKind::P256);
    ca_dir.join("openssl.cnf")
}

/// Signs `csr` with the CA `ca` (or self-signs with `-selfsign`), between the given dates.
#[allow(clippy::too_many_arguments)]
fn ca_sign(
    dir: &Path,
    ca: &str,
    csr: &str,
    out: &str,
    ext: &str,
    start: &str,
    end: &str,
    selfsign: bool,
) {
    let cnf = format!("{ca}/openssl.cnf");
    let mut args = vec![
        "ca",
        "-batch",
        "-notext",
        "-config",
        &cnf,
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
    openssl(dir, &args);
}

fn csr(dir: &Path, key: &str, subj: &str, out: &str, cnf: &str) {
    openssl(
        dir,
        &[
            "req", "-new", "-config", cnf, "-key", key, "-subj", subj, "-out", out,
        ],
    );
}

/// PEM of one certificate file, normalized to just the PEM block.
fn cert_pem(dir: &Path, path: &str) -> Vec<u8> {
    openssl(dir, &["x509", "-in", path, "-outform", "PEM"])
}

fn cert_der(dir: &Path, path: &str) -> Vec<u8> {
    openssl(dir, &["x509", "-in", path, "-outform", "DER"])
}

fn serial_hex(dir: &Path, path: &str) -> String {
    let out = openssl(dir, &["x509", "-in", path, "-noout", "-serial"]);
    String::from_utf8_lossy(&out)
        .trim()
        .trim_start_matches("serial=")
        .to_string()
}

#[allow(clippy::too_many_arguments)]
fn make_leaf(
    dir: &Path,
    name: &str,
    ca: &str,
    kind: KeyKind,
    ext: &str,
    start: &str,
    end: &str,
    chain_after: &[&[u8]],
    spc: Option<&str>,
) -> Leaf {
    let leaf_dir = dir.join("leaves");
    std::fs::create_dir_all(&leaf_dir).expect("mkdir leaves");
    let key = format!("leaves/{name}.key.pem");
    gen_key(dir, &key, kind);
    let p8_pem = format!("leaves/{name}.p8.pem");
    let p8_der = format!("leaves/{name}.p8.der");
    openssl(
        dir,
        &["pkcs8", "-topk8", "-nocrypt", "-in", &key, "-out", &p8_pem],
    );
    openssl(
        dir,
        &[
            "pkcs8", "-topk8", "-nocrypt", "-in", &key, "-outform", "DER", "-out", &p8_der,
        ],
    );
    let csr_path = format!("leaves/{name}.csr");
    let cnf = format!("{ca}/openssl.cnf");
    csr(
        dir,
        &key,
        &format!("/C=US/O=Test SP {name}/CN=SHAKEN {name}"),
        &csr_path,
        &cnf,
    );
    let cert = format!("leaves/{name}.cert.pem");
    ca_sign(dir, ca, &csr_path, &cert, ext, start, end, false);
    let cert_pem = cert_pem(dir, &cert);
    let mut bundle = cert_pem.clone();
    for c in chain_after {
        bundle.extend_from_slice(c);
    }
    let bundle_path = leaf_dir.join(format!("{name}.x5u.pem"));
    write(&bundle_path, &bundle);
    Leaf {
        name: name.to_string(),
        cert_der: cert_der(dir, &cert),
        cert_pem,
        bundle_pem: bundle,
        bundle_path,
        key_pkcs8_pem: read(&dir.join(&p8_pem)),
        key_pkcs8_der: read(&dir.join(&p8_der)),
        serial_hex: serial_hex(dir, &cert),
        spc: spc.map(str::to_string),
    }
}

const CA_START: &str = "20000101000000Z";
const CA_END: &str = "20991231235959Z";
const LEAF_START: &str = "20200101000000Z";
const LEAF_END: &str = "20491231235959Z";

/// Builds a whole PKI in a fresh directory. Panics when an openssl command fails.
pub fn build(opts: &PkiOptions) -> TestPki {
    let dir = work_dir();
    let d = dir.as_path();

    // Root, intermediate (pathlen:0), sub-CA below it (for the pathlen violation).
    let root_cnf = new_ca(d, "root", opts);
    let root_cnf = root_cnf.to_string_lossy().to_string();
    csr(
        d,
        "root/key.pem",
        "/C=US/O=Test STI-PA/CN=Test STI-CA Root",
        "root/req.csr",
        &root_cnf,
    );
    ca_sign(
        d,
        "root",
        "root/req.csr",
        "root/cert.pem",
        "v3_root",
        CA_START,
        CA_END,
        true,
    );

    let inter_cnf = new_ca(d, "inter", opts).to_string_lossy().to_string();
    csr(
        d,
        "inter/key.pem",
        "/C=US/O=Test STI-CA/CN=Test STI-CA Intermediate",
        "inter/req.csr",
        &inter_cnf,
    );
    ca_sign(
        d,
        "root",
        "inter/req.csr",
        "inter/cert.pem",
        "v3_inter",
        CA_START,
        CA_END,
        false,
    );

    let sub_cnf = new_ca(d, "sub", opts).to_string_lossy().to_string();
    csr(
        d,
        "sub/key.pem",
        "/C=US/O=Test STI-CA/CN=Test STI-CA Sub",
        "sub/req.csr",
        &sub_cnf,
    );
    ca_sign(
        d,
        "inter",
        "sub/req.csr",
        "sub/cert.pem",
        "v3_sub",
        CA_START,
        CA_END,
        false,
    );

    // A root nobody trusts, and an impostor with the trusted root's name.
    let untrusted_cnf = new_ca(d, "untrusted", opts).to_string_lossy().to_string();
    csr(
        d,
        "untrusted/key.pem",
        "/C=US/O=Elsewhere/CN=Untrusted Root",
        "untrusted/req.csr",
        &untrusted_cnf,
    );
    ca_sign(
        d,
        "untrusted",
        "untrusted/req.csr",
        "untrusted/cert.pem",
        "v3_root",
        CA_START,
        CA_END,
        true,
    );

    let impostor_cnf = new_ca(d, "impostor", opts).to_string_lossy().to_string();
    csr(
        d,
        "impostor/key.pem",
        "/C=US/O=Test STI-PA/CN=Test STI-CA Root",
        "impostor/req.csr",
        &impostor_cnf,
    );
    ca_sign(
        d,
        "impostor",
        "impostor/req.csr",
        "impostor/cert.pem",
        "v3_root",
        CA_START,
        CA_END,
        true,
    );

    // Same name as the intermediate, another key: signs the wrong-key CRL.
    let fake_cnf = new_ca(d, "fakeinter", opts).to_string_lossy().to_string();
    csr(
        d,
        "fakeinter/key.pem",
        "/C=US/O=Test STI-CA/CN=Test STI-CA Intermediate",
        "fakeinter/req.csr",
        &fake_cnf,
    );
    ca_sign(
        d,
        "fakeinter",
        "fakeinter/req.csr",
        "fakeinter/cert.pem",
        "v3_root",
        CA_START,
        CA_END,
        true,
    );

    let inter2_cnf = new_ca(d, "inter2", opts).to_string_lossy().to_string();
    csr(
        d,
        "inter2/key.pem",
        "/C=US/O=Test STI-CA 2/CN=Test STI-CA Revoked Intermediate",
        "inter2/req.csr",
        &inter2_cnf,
    );
    ca_sign(
        d,
        "root",
        "inter2/req.csr",
        "inter2/cert.pem",
        "v3_inter",
        CA_START,
        CA_END,
        false,
    );

    let root_pem = cert_pem(d, "root/cert.pem");
    let inter_pem = cert_pem(d, "inter/cert.pem");
    let sub_pem = cert_pem(d, "sub/cert.pem");
    let untrusted_pem = cert_pem(d, "untrusted/cert.pem");
    let root_path = dir.join("root.pem");
    write(&root_path, &root_pem);
    let intermediate_path = dir.join("intermediate.pem");
    write(&intermediate_path, &inter_pem);
    let inter: &[&[u8]] = &[&inter_pem];

    let spc = opts.spc.as_str();
    let t1 = Some("T1");
    let valid = make_leaf(
        d,
        "valid",
        "inter",
        KeyKind::P256,
        "leaf",
        LEAF_START,
        LEAF_END,
        inter,
        Some(spc),
    );
    let expired = make_leaf(
        d,
        "expired",
        "inter",
        KeyKind::P256,
        "leaf",
        LEAF_START,
        "20210101000000Z",
        inter,
        Some(spc),
    );
    let not_yet_valid = make_leaf(
        d,
        "not_yet_valid",
        "inter",
        KeyKind::P256,
        "leaf",
        "20480101000000Z",
        LEAF_END,
        inter,
        Some(spc),
    );
    let untrusted = make_leaf(
        d,
        "untrusted",
        "untrusted",
        KeyKind::P256,
        "leaf",
        LEAF_START,
        LEAF_END,
        &[&untrusted_pem],
        Some(spc),
    );
    let impostor = make_leaf(
        d,
        "impostor",
        "impostor",
        KeyKind::P256,
        "leaf",
        LEAF_START,
        LEAF_END,
        &[],
        Some(spc),
    );
    let no_tn_auth = make_leaf(
        d,
        "no_tn_auth",
        "inter",
        KeyKind::P256,
        "leaf_no_tn",
        LEAF_START,
        LEAF_END,
        inter,
        None,
    );
    let rsa = make_leaf(
        d,
        "rsa",
        "inter",
        KeyKind::Rsa2048,
        "leaf_other_spc",
        LEAF_START,
        LEAF_END,
        inter,
        t1,
    );
    let p384 = make_leaf(
        d,
        "p384",
        "inter",
        KeyKind::P384,
        "leaf_other_spc",
        LEAF_START,
        LEAF_END,
        inter,
        t1,
    );
    let ca_as_leaf = make_leaf(
        d,
        "ca_as_leaf",
        "inter",
        KeyKind::P256,
        "leaf_ca",
        LEAF_START,
        LEAF_END,
        inter,
        t1,
    );
    let no_digital_signature = make_leaf(
        d,
        "no_digital_signature",
        "inter",
        KeyKind::P256,
        "leaf_no_digsig",
        LEAF_START,
        LEAF_END,
        inter,
        t1,
    );
    let revoked = make_leaf(
        d,
        "revoked",
        "inter",
        KeyKind::P256,
        "leaf",
        LEAF_START,
        LEAF_END,
        inter,
        Some(spc),
    );
    let pathlen_violation = make_leaf(
        d,
        "pathlen_violation",
        "sub",
        KeyKind::P256,
        "leaf_other_spc",
        LEAF_START,
        LEAF_END,
        &[&sub_pem, &inter_pem],
        t1,
    );

    let inter2_pem = cert_pem(d, "inter2/cert.pem");
    let under_revoked_intermediate = make_leaf(
        d,
        "under_revoked_intermediate",
        "inter2",
        KeyKind::P256,
        "leaf",
        LEAF_START,
        LEAF_END,
        &[&inter2_pem],
        Some(spc),
    );
    let revoked_intermediate_serial_hex = serial_hex(d, "inter2/cert.pem");
    openssl(
        d,
        &[
            "ca",
            "-batch",
            "-config",
            &root_cnf,
            "-revoke",
            "inter2/cert.pem",
            "-crl_reason",
            "cACompromise",
        ],
    );
    openssl(
        d,
        &[
            "ca",
            "-batch",
            "-config",
            &root_cnf,
            "-gencrl",
            "-out",
            "root/crl.pem",
        ],
    );
    let root_crl_der = openssl(d, &["crl", "-in", "root/crl.pem", "-outform", "DER"]);

    // CRLs: empty first, then with `revoked` listed; and one from the same-named wrong key.
    openssl(
        d,
        &[
            "ca",
            "-batch",
            "-config",
            &inter_cnf,
            "-gencrl",
            "-out",
            "inter/empty.crl.pem",
        ],
    );
    let crl_empty_der = openssl(d, &["crl", "-in", "inter/empty.crl.pem", "-outform", "DER"]);
    openssl(
        d,
        &[
            "ca",
            "-batch",
            "-config",
            &inter_cnf,
            "-revoke",
            "leaves/revoked.cert.pem",
            "-crl_reason",
            "keyCompromise",
        ],
    );
    openssl(
        d,
        &[
            "ca",
            "-batch",
            "-config",
            &inter_cnf,
            "-gencrl",
            "-out",
            "inter/crl.pem",
        ],
    );
    let crl_pem = read(&d.join("inter/crl.pem"));
    let crl_der = openssl(d, &["crl", "-in", "inter/crl.pem", "-outform", "DER"]);
    write(&d.join("inter/crl.der"), &crl_der);
    openssl(
        d,
        &[
            "ca",
            "-batch",
            "-config",
            &fake_cnf,
            "-gencrl",
            "-out",
            "fakeinter/crl.pem",
        ],
    );
    let crl_wrong_key_der = openssl(d, &["crl", "-in", "fakeinter/crl.pem", "-outform", "DER"]);

    TestPki {
        options: opts.clone(),
        root_pem,
        root_path,
        intermediate_pem: inter_pem,
        intermediate_path,
        untrusted_root_pem: untrusted_pem,
        valid,
        expired,
        not_yet_valid,
        untrusted,
        impostor,
        no_tn_auth,
        rsa,
        p384,
        ca_as_leaf,
        no_digital_signature,
        revoked,
        pathlen_violation,
        crl_der,
        crl_pem,
        crl_wrong_key_der,
        crl_empty_der,
        revoked_intermediate_pem: inter2_pem,
        revoked_intermediate_serial_hex,
        under_revoked_intermediate,
        root_crl_der,
        dir,
    }
}

/// Unix seconds of a UTC date, for tests (no chrono here).
pub fn unix(y: i64, m: i64, d: i64) -> i64 {
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400
}
