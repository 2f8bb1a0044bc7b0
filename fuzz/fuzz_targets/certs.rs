//! Fuzz target: certificate and TNAuthList parsing. The first byte picks the entry point: one
//! DER certificate, an x5u body (PEM bundle or DER), a TNAuthList extension value, or a full
//! chain validation against a fixed test root (fuzz/anchor.pem, a public certificate only).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shaken_sensor::shaken::certs::{
    parse_and_validate, parse_cert, parse_chain_only, TrustAnchors,
};
use shaken_sensor::shaken::tnauth::parse_tn_auth_list;
use std::sync::OnceLock;

static ANCHOR_PEM: &[u8] = include_bytes!("../anchor.pem");

fn anchors() -> &'static TrustAnchors {
    static A: OnceLock<TrustAnchors> = OnceLock::new();
    A.get_or_init(|| TrustAnchors::from_pem(ANCHOR_PEM).expect("fuzz/anchor.pem parses"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    match sel % 4 {
        0 => {
            if let Ok(c) = parse_cert(rest) {
                let _ = c.serial_hex();
                let _ = c.spc();
                let _ = c.check_validity_at(1_700_000_000);
            }
        }
        1 => {
            let _ = parse_chain_only(rest);
        }
        2 => {
            if let Ok(t) = parse_tn_auth_list(rest) {
                let _ = t.spc();
                let _ = t.unknown_text();
            }
        }
        _ => {
            if let Ok(chain) = parse_and_validate(rest, anchors()) {
                let _ = chain.check_validity(1_700_000_000, 1_700_000_000);
                let _ = chain.crl_urls();
                let _ = chain.subject();
            }
        }
    }
});
