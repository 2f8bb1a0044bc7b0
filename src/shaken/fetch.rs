//! One HTTP(S) GET of an x5u URL under the fetch policy (docs/verification.md; Asterisk AST-2022-001/002).
//!
//! Before any I/O the URL must be absolute, `https` (or `http` when allowed), without userinfo,
//! query or fragment, and name a host; any port is fine (8443 is legitimate, Asterisk #1271).
//! The host is resolved here and every address is vetted: loopback, private, link-local,
//! CGNAT, multicast, broadcast and unspecified addresses are refused unless the policy exempts
//! the host. The request then goes to the vetted addresses only (no second lookup, so DNS
//! rebinding cannot swap them), with no redirects, no proxy from the environment, a body cap
//! and one deadline over lookup, connect, TLS and body.
//!
//! This module must never follow a redirect, read more than `max_bytes` of a body into memory,
//! connect to an address it did not vet, or panic on hostile input.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::header::{HeaderMap, CACHE_CONTROL};
use reqwest::{Certificate, Url};

/// Longest x5u URL accepted; real ones are well under 200 bytes.
pub const MAX_URL_LEN: usize = 2048;
/// At most this many resolved addresses are vetted and used.
const MAX_ADDRS: usize = 16;
/// Longest error detail kept from a lower layer.
const MAX_DETAIL: usize = 300;

/// What may be fetched, from where, and how much.
#[derive(Clone, Debug)]
pub struct FetchPolicy {
    /// Allow `http:` URLs (tests, lab setups). Default false.
    pub allow_http: bool,
    /// Allow any host to resolve to a loopback/private/link-local address. Default false.
    pub allow_private: bool,
    /// `host` or `host:port` entries that may resolve to such addresses (tests: `127.0.0.1`).
    pub allowed_hosts: Vec<String>,
    /// Body cap in bytes. Default 65536.
    pub max_bytes: usize,
    /// Deadline for the whole fetch: lookup, connect, TLS, headers and body. Default 4 s.
    pub timeout: Duration,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            allow_http: false,
            allow_private: false,
            allowed_hosts: Vec::new(),
            max_bytes: 65_536,
            timeout: Duration::from_secs(4),
        }
    }
}

/// Why a fetch was refused or failed. `Display` is the precise reason; [`FetchError::kind`]
/// is the metric label.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("x5u URL is malformed: {0}")]
    BadUrl(String),
    #[error("x5u scheme {0:?} refused")]
    Scheme(String),
    #[error("x5u URL with userinfo refused")]
    UserInfo,
    #[error("x5u URL with a query or fragment refused")]
    QueryOrFragment,
    #[error("x5u host {host} resolves to a private address {ip}")]
    PrivateAddress { host: String, ip: IpAddr },
    #[error("x5u host lookup failed: {0}")]
    Dns(String),
    #[error("x5u connection failed: {0}")]
    Connect(String),
    #[error("x5u fetch timed out")]
    Timeout,
    #[error("x5u server answered {0}")]
    Status(u16),
    #[error("x5u redirect ({0}) refused")]
    Redirect(u16),
    #[error("x5u body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("x5u TLS failed: {0}")]
    Tls(String),
    #[error("x5u body read failed: {0}")]
    Body(String),
    #[error("x5u HTTP client setup failed: {0}")]
    Client(String),
}

impl FetchError {
    /// Every value [`FetchError::kind`] can return, in a fixed order (for counter arrays).
    pub const KINDS: [&'static str; 14] = [
        "bad_url",
        "scheme",
        "userinfo",
        "query_or_fragment",
        "private_address",
        "dns",
        "connect",
        "timeout",
        "status",
        "redirect",
        "too_large",
        "tls",
        "body",
        "client",
    ];

    /// Metric label (`cert_fetch_errors_total{kind}`); no host, IP or URL in it.
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    /// Position of [`FetchError::kind`] in [`FetchError::KINDS`].
    pub fn kind_index(&self) -> usize {
        match self {
            FetchError::BadUrl(_) => 0,
            FetchError::Scheme(_) => 1,
            FetchError::UserInfo => 2,
            FetchError::QueryOrFragment => 3,
            FetchError::PrivateAddress { .. } => 4,
            FetchError::Dns(_) => 5,
            FetchError::Connect(_) => 6,
            FetchError::Timeout => 7,
            FetchError::Status(_) => 8,
            FetchError::Redirect(_) => 9,
            FetchError::TooLarge(_) => 10,
            FetchError::Tls(_) => 11,
            FetchError::Body(_) => 12,
            FetchError::Client(_) => 13,
        }
    }
}

/// A fetched body and how long the server lets us keep it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub body: Vec<u8>,
    /// From `Cache-Control: max-age` (`s-maxage` ignored; `no-store`/`no-cache` → `Some(0)`).
    pub max_age: Option<Duration>,
}

/// A URL that passed the static checks.
#[derive(Debug)]
struct Target {
    url: Url,
    /// As the URL spells it, lower case; IPv6 literals in brackets.
    host: String,
    port: u16,
    literal: Option<IpAddr>,
}

/// Fetches x5u URLs under one [`FetchPolicy`].
///
/// An HTTP client is built per fetch with DNS pinned to the addresses vetted for that fetch,
/// so a rebinding name cannot make a pooled or later connection go elsewhere.
#[derive(Debug)]
pub struct Fetcher {
    policy: FetchPolicy,
    extra_roots: Vec<Certificate>,
}

impl Fetcher {
    /// `extra_root_pem`: PEM certificates trusted in addition to the built-in web PKI roots
    /// (a lab CA; tests use a CA made at test time).
    pub fn new(policy: FetchPolicy, extra_root_pem: Option<&[u8]>) -> Result<Self, FetchError> {
        let extra_roots = match extra_root_pem {
            None => Vec::new(),
            Some(pem) => {
                let certs = Certificate::from_pem_bundle(pem)
                    .map_err(|e| FetchError::Client(format!("extra root PEM: {e}")))?;
                if certs.is_empty() {
                    return Err(FetchError::Client(
                        "extra root PEM holds no certificate".into(),
                    ));
                }
                certs
            }
        };
        let fetcher = Fetcher {
            policy,
            extra_roots,
        };
        // Fail at start-up, not on the first call, if the TLS setup is unusable.
        fetcher.client(None, &[])?;
        Ok(fetcher)
    }

    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// The checks made before any I/O; `Ok` does not mean the fetch will be allowed (the
    /// resolved addresses are vetted later).
    pub fn check_url(&self, url: &str) -> Result<(), FetchError> {
        self.target(url).map(|_| ())
    }

    /// GETs `url` under the policy.
    pub async fn get(&self, url: &str) -> Result<Fetched, FetchError> {
        let target = self.target(url)?;
        match tokio::time::timeout(self.policy.timeout, self.fetch(target)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout),
        }
    }

    async fn fetch(&self, target: Target) -> Result<Fetched, FetchError> {
        let addrs = self.vet(&target).await?;
        let client = self.client(Some(&target), &addrs)?;
        let mut resp = client.get(target.url).send().await.map_err(classify)?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(FetchError::Redirect(status.as_u16()));
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let max = self.policy.max_bytes;
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(FetchError::TooLarge(max));
        }
        let max_age = max_age(resp.headers());
        let mut body = Vec::with_capacity(resp.content_length().map_or(4096, |n| n as usize));
        while let Some(chunk) = resp.chunk().await.map_err(classify)? {
            if chunk.len() > max - body.len() {
                return Err(FetchError::TooLarge(max));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { body, max_age })
    }

    fn target(&self, raw: &str) -> Result<Target, FetchError> {
        let bad = |why: &str| Err(FetchError::BadUrl(why.to_owned()));
        if raw.len() > MAX_URL_LEN {
            return bad("longer than 2048 bytes");
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return bad("white space, control or non-ASCII character");
        }
        if raw.contains('\\') {
            return bad("backslash");
        }
        let url = Url::parse(raw).map_err(|e| FetchError::BadUrl(e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if self.policy.allow_http => {}
            other => return Err(FetchError::Scheme(other.to_owned())),
        }
        // The parser forgives `https:host` and `https:///host`; a hostile header gets no such
        // help, so the authority is checked as written.
        let rest = raw
            .get(url.scheme().len()..)
            .and_then(|r| r.strip_prefix("://"))
            .ok_or_else(|| FetchError::BadUrl("no '//' authority".into()))?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.is_empty() {
            return bad("no host");
        }
        if authority.contains('@') || !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::UserInfo);
        }
        if url.query().is_some() || url.fragment().is_some() || raw.contains(['?', '#']) {
            return Err(FetchError::QueryOrFragment);
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        if host.is_empty() {
            return bad("no host");
        }
        // The parser has canonicalised IP literals (`0x7f.1` is `127.0.0.1` by now).
        let literal = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => {
                Some(IpAddr::V6(v6.parse().map_err(|_| {
                    FetchError::BadUrl("bad IPv6 literal".into())
                })?))
            }
            None => host.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| FetchError::BadUrl("no port".into()))?;
        Ok(Target {
            url,
            host,
            port,
            literal,
        })
    }

    fn host_exempt(&self, t: &Target) -> bool {
        if self.policy.allow_private {
            return true;
        }
        let bare = t.host.trim_start_matches('[').trim_end_matches(']');
        let with_port = format!("{}:{}", t.host, t.port);
        self.policy.allowed_hosts.iter().any(|e| {
            let e = e.trim();
            e.eq_ignore_ascii_case(&t.host)
                || e.eq_ignore_ascii_case(bare)
                || e.eq_ignore_ascii_case(&with_port)
        })
    }

    async fn vet(&self, t: &Target) -> Result<Vec<SocketAddr>, FetchError> {
        let addrs: Vec<SocketAddr> = match t.literal {
            Some(ip) => vec![SocketAddr::new(ip, t.port)],
            None => tokio::net::lookup_host((t.host.as_str(), t.port))
                .await
                .map_err(|e| FetchError::Dns(detail(&format!("{}: {e}", t.host))))?
                .take(MAX_ADDRS)
                .collect(),
        };
        if addrs.is_empty() {
            return Err(FetchError::Dns(format!("{}: no address", t.host)));
        }
        if !self.host_exempt(t) {
            if let Some(a) = addrs.iter().find(|a| refused_range(a.ip()).is_some()) {
                return Err(FetchError::PrivateAddress {
                    host: t.host.clone(),
                    ip: a.ip(),
                });
            }
        }
        Ok(addrs)
    }

    /// A client for one fetch; `target` None builds one only to validate the configuration.
    fn client(
        &self,
        target: Option<&Target>,
        addrs: &[SocketAddr],
    ) -> Result<reqwest::Client, FetchError> {
        let p = &self.policy;
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .referer(false)
            .https_only(!p.allow_http)
            .timeout(p.timeout)
            .connect_timeout(p.timeout)
            .pool_max_idle_per_host(0)
            .user_agent(concat!("shaken-sensor/", env!("CARGO_PKG_VERSION")));
        for root in &self.extra_roots {
            b = b.add_root_certificate(root.clone());
        }
        if let Some(t) = target {
            if t.literal.is_none() {
                b = b.resolve_to_addrs(&t.host, addrs);
            }
        }
        b.build().map_err(|e| FetchError::Client(chain(&e)))
    }
}

/// Why `ip` may not be fetched from without an exemption, or None when it is public.
/// Documentation ranges (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32) are allowed.
pub fn refused_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if o[0] == 0 {
        Some("unspecified (0/8)")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private (RFC 1918)")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("shared (CGNAT 100.64/10)")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("IETF protocol assignments (192.0.0/24)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if o[0] >= 240 {
        Some("reserved or broadcast (240/4)")
    } else {
        None
    }
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_loopback() {
        Some("loopback")
    } else if let Some(v4) = ip.to_ipv4_mapped() {
        refused_v4(v4)
    } else if s[..6] == [0; 6] {
        // IPv4-compatible (deprecated) ::a.b.c.d
        refused_v4(embedded(s[6], s[7]))
    } else if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        // NAT64 well-known prefix: the gateway would connect to the embedded IPv4 address.
        refused_v4(embedded(s[6], s[7]))
    } else if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        Some("NAT64 local-use (64:ff9b:1::/48)")
    } else if s[0] == 0x2002 {
        refused_v4(embedded(s[1], s[2]))
    } else if (s[0] & 0xfe00) == 0xfc00 {
        Some("unique local (fc00::/7)")
    } else if (s[0] & 0xffc0) == 0xfe80 {
        Some("link-local (fe80::/10)")
    } else if (s[0] & 0xffc0) == 0xfec0 {
        Some("site-local (fec0::/10)")
    } else if (s[0] & 0xff00) == 0xff00 {
        Some("multicast")
    } else {
        None
    }
}

/// `max-age` from every Cache-Control header (the smallest when repeated); `s-maxage` is for
/// shared caches and ignored; `no-store` or `no-cache` → zero.
pub fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut age: Option<u64> = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Some(Duration::ZERO);
            }
            if name.eq_ignore_ascii_case("max-age") {
                if let Some(n) = arg.and_then(delta_seconds) {
                    age = Some(age.map_or(n, |a| a.min(n)));
                }
            }
        }
    }
    age.map(Duration::from_secs)
}

/// RFC 9111 delta-seconds: digits only; too large saturates.
fn delta_seconds(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

fn classify(e: reqwest::Error) -> FetchError {
    if e.is_timeout() {
        return FetchError::Timeout;
    }
    let text = chain(&e);
    if e.is_body() || e.is_decode() {
        FetchError::Body(text)
    } else if e.is_builder() {
        FetchError::BadUrl(text)
    } else if looks_like_tls(&text) {
        FetchError::Tls(text)
    } else {
        FetchError::Connect(text)
    }
}

fn looks_like_tls(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    ["certificate", "tls", "handshake", "alert", "ssl"]
        .iter()
        .any(|w| t.contains(w))
}

/// The causes under `e`, without reqwest's top line (which repeats the URL).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        if !out.is_empty() {
            out.push_str(": ");
        }
        let _ = write!(out, "{s}");
        cur = s.source();
    }
    if out.is_empty() {
        let _ = write!(out, "{e}");
    }
    detail(&out)
}

fn detail(s: &str) -> String {
    if s.len() <= MAX_DETAIL {
        return s.to_owned();
    }
    let mut end = MAX_DETAIL;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn fetcher(allow_http: bool) -> Fetcher {
        let policy = FetchPolicy {
            allow_http,
            ..FetchPolicy::default()
        };
        Fetcher::new(policy, None).unwrap()
    }

    #[test]
    fn url_rules() {
        let f = fetcher(false);
        assert_eq!(f.check_url("https://cert.example:8443/a.pem"), Ok(()));
        assert_eq!(f.check_url("https://CERT.example/a/b.pem"), Ok(()));
        assert_eq!(f.check_url("https://[2001:db8::1]/a.pem"), Ok(()));
        let bad = |u: &str| f.check_url(u).unwrap_err();
        assert_eq!(
            bad("http://cert.example/a.pem"),
            FetchError::Scheme("http".into())
        );
        assert_eq!(
            bad("ftp://cert.example/a.pem"),
            FetchError::Scheme("ftp".into())
        );
        assert_eq!(bad("file:///etc/passwd"), FetchError::Scheme("file".into()));
        assert_eq!(bad("https://u:p@cert.example/a.pem"), FetchError::UserInfo);
        assert_eq!(bad("https://@cert.example/a.pem"), FetchError::UserInfo);
        assert_eq!(
            bad("https://cert.example/a.pem?x=1"),
            FetchError::QueryOrFragment
        );
        assert_eq!(
            bad("https://cert.example/a.pem?"),
            FetchError::QueryOrFragment
        );
        assert_eq!(
            bad("https://cert.example/a.pem#f"),
            FetchError::QueryOrFragment
        );
        for u in [
            "/a.pem",
            "a.pem",
            "",
            "https://",
            "https:///a.pem",
            "https:cert.example/a.pem",
            "https:/cert.example/a.pem",
            "https://cert.example/a b.pem",
            "https://cert.example\\@evil/a.pem",
            "https://cert.example/\u{e9}.pem",
            " https://cert.example/a.pem",
        ] {
            assert!(matches!(bad(u), FetchError::BadUrl(_)), "{u:?}");
        }
        let long = format!("https://cert.example/{}", "a".repeat(MAX_URL_LEN));
        assert!(matches!(bad(&long), FetchError::BadUrl(_)));
        assert_eq!(fetcher(true).check_url("http://cert.example/a.pem"), Ok(()));
    }

    #[test]
    fn address_ranges() {
        let refused = |s: &str| refused_range(s.parse().unwrap()).is_some();
        for ip in [
            "127.0.0.1",
            "10.0.0.5",
            "172.16.3.4",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.0.170",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::10.1.2.3",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:c0a8:0101::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(refused(ip), "{ip} should be refused");
        }
        for ip in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "192.0.2.10",
            "198.51.100.7",
            "203.0.113.9",
            "2001:db8::1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!refused(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn cache_control() {
        let h = |vals: &[&str]| {
            let mut m = HeaderMap::new();
            for v in vals {
                m.append(CACHE_CONTROL, HeaderValue::from_str(v).unwrap());
            }
            max_age(&m)
        };
        let secs = |n| Some(Duration::from_secs(n));
        assert_eq!(h(&[]), None);
        assert_eq!(h(&["public, max-age=300"]), secs(300));
        assert_eq!(h(&["Max-Age=\"120\""]), secs(120));
        assert_eq!(h(&["s-maxage=10"]), None);
        assert_eq!(h(&["s-maxage=10, max-age=3600"]), secs(3600));
        assert_eq!(h(&["max-age=3600", "max-age=60"]), secs(60));
        assert_eq!(h(&["max-age=3600, no-cache"]), secs(0));
        assert_eq!(h(&["no-store"]), secs(0));
        assert_eq!(h(&["max-age=-5"]), None);
        assert_eq!(h(&["max-age=abc"]), None);
        assert_eq!(h(&["max-age=99999999999999999999999"]), secs(u64::MAX));
    }

    #[test]
    fn kinds_and_reasons() {
        let e = FetchError::PrivateAddress {
            host: "x5u.example".into(),
            ip: "10.0.0.5".parse().unwrap(),
        };
        assert_eq!(e.kind(), "private_address");
        assert_eq!(
            e.to_string(),
            "x5u host x5u.example resolves to a private address 10.0.0.5"
        );
        assert_eq!(
            FetchError::TooLarge(65536).to_string(),
            "x5u body exceeds 65536 bytes"
        );
        assert_eq!(
            FetchError::Redirect(302).to_string(),
            "x5u redirect (302) refused"
        );
        assert_eq!(FetchError::Client(String::new()).kind(), "client");
        assert_eq!(FetchError::Timeout.kind(), "timeout");
    }

    #[tokio::test]
    async fn literal_and_named_private_hosts_refused_before_connecting() {
        let f = fetcher(false);
        for (url, ip) in [
            ("https://0x7f.1/a.pem", "127.0.0.1"),
            ("https://2130706433:8443/a.pem", "127.0.0.1"),
            (
                "https://[::ffff:169.254.169.254]/a.pem",
                "::ffff:169.254.169.254",
            ),
            ("https://10.0.0.5/a.pem", "10.0.0.5"),
        ] {
            match f.get(url).await {
                Err(FetchError::PrivateAddress { ip: got, .. }) => {
                    assert_eq!(got, ip.parse::<IpAddr>().unwrap(), "{url}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        // A name is resolved and every address vetted (localhost comes from /etc/hosts).
        match f.get("https://localhost:1/a.pem").await {
            Err(FetchError::PrivateAddress { host, .. }) => assert_eq!(host, "localhost"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_extra_root_is_refused() {
        let err = Fetcher::new(FetchPolicy::default(), Some(b"not a pem")).unwrap_err();
        assert_eq!(err.kind(), "client");
    }
}
