//! The real client address behind a load balancer (PROXY-11..13): trusted proxy ranges,
//! `X-Forwarded-For` (rightmost untrusted hop) and the HAProxy PROXY protocol v1/v2.
//!
//! Forwarding information is believed only when the TCP peer itself is in `trusted_proxies`
//! (PROXY-11): anyone can write an `X-Forwarded-For` header or a PROXY line, so from any
//! other peer it is ignored and the peer's own address is the client.

use http::HeaderMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// At most this many `X-Forwarded-For` hops are examined from the right; a longer chain is
/// either hostile or a loop, and walking it costs time on every request.
const MAX_XFF_HOPS: usize = 32;

/// An IP range such as `10.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or a bare address (a single host). Host bits must be zero, so a
    /// typo such as `10.0.0.1/8` is refused rather than silently widened.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{addr}' is not an IP address"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'/{p}' is not a prefix length between 0 and {max}"))?,
        };
        let cidr = Self { network, prefix };
        if cidr.mask(network) != network {
            return Err(format!(
                "'{text}' has host bits set; write the network address (e.g. {}/{prefix})",
                cidr.mask(network)
            ));
        }
        Ok(cidr)
    }

    /// `ip` with the bits beyond the prefix cleared (in this range's family).
    fn mask(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(bits & mask))
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
        }
    }

    /// True when `ip` lies in the range. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a
    /// dual-stack socket reports IPv4 peers) is compared as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if ip.is_ipv4() != self.network.is_ipv4() {
            return false;
        }
        self.mask(ip) == self.network
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// `::ffff:a.b.c.d` → `a.b.c.d`; every other address unchanged.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The `trusted_proxies` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// The given ranges; empty trusts nobody (forwarding headers are always ignored).
    pub fn new(ranges: Vec<Cidr>) -> Self {
        Self(ranges)
    }

    /// True when `ip` is in one of the ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// True when no range is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client address of a request from `peer` (PROXY-11, PROXY-12).
    ///
    /// `peer` is the TCP peer, or the source a trusted PROXY header announced. Only when it is
    /// trusted are the `X-Forwarded-For` headers read, from the right: each trusted hop is
    /// skipped and the first untrusted one is the client. Everything left of it was written
    /// by that client and is not believed. A hop that does not parse stops the walk at the
    /// last believed address, so garbage can never move the result further left. When every
    /// hop is trusted, the leftmost is the client.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        // Several header lines form one list in order (RFC 9110 §5.3).
        let lines: Vec<&[u8]> = headers
            .get_all("x-forwarded-for")
            .iter()
            .map(http::HeaderValue::as_bytes)
            .collect();
        let hops = lines
            .iter()
            .rev()
            .flat_map(|line| line.rsplit(|b| *b == b','))
            .take(MAX_XFF_HOPS);
        for hop in hops {
            let Some(ip) = parse_hop(hop) else {
                return client;
            };
            client = ip;
            if !self.contains(ip) {
                return ip;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` element: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or
/// `[2001:db8::1]:5678`, surrounded by optional spaces. Anything else (`unknown`, an obfuscated
/// RFC 7239 name, junk) is `None`.
fn parse_hop(raw: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(raw).ok()?.trim_matches([' ', '\t']);
    if text.len() > 64 {
        return None;
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sock) = text.parse::<SocketAddr>() {
        return Some(canonical(sock.ip()));
    }
    None
}

/// The longest PROXY v1 line, CRLF included (the spec's 107 bytes).
const V1_MAX: usize = 107;
/// The PROXY v2 signature.
const V2_SIG: [u8; 12] = [
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
];
/// The largest v2 address block accepted: addresses plus TLVs (ALPN, authority, SSL info…)
/// that HAProxy may add stay far below this.
const V2_MAX_LEN: usize = 1024;

/// Why a PROXY protocol header was refused; the connection is then closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The connection did not start with a PROXY v1 or v2 header.
    #[error("the connection did not start with a PROXY protocol header")]
    Missing,
    /// The header is malformed.
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
    /// The header did not arrive in time.
    #[error("the PROXY protocol header did not arrive in time")]
    Timeout,
    /// The connection closed or failed while reading it.
    #[error("the connection closed during the PROXY protocol header")]
    Io,
}

/// What a PROXY header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// A proxied connection from this source address.
    Source(SocketAddr),
    /// `LOCAL` (v2) or `UNKNOWN` (v1): the balancer's own connection (a health check) or an
    /// unsupported family; the TCP peer stands for itself.
    Local,
}

/// Parses a complete v1 line (`PROXY TCP4 src dst sport dport\r\n`).
pub fn parse_v1(line: &[u8]) -> Result<ProxyHeader, ProxyHeaderError> {
    let bad = ProxyHeaderError::Malformed;
    let text = line
        .strip_suffix(b"\r\n")
        .ok_or(bad("v1 line not ended by CRLF"))?;
    let text = std::str::from_utf8(text).map_err(|_| bad("v1 line is not ASCII"))?;
    let mut words = text.split(' ');
    if words.next() != Some("PROXY") {
        return Err(ProxyHeaderError::Missing);
    }
    let family = words.next().ok_or(bad("v1 family missing"))?;
    if family == "UNKNOWN" {
        // The rest of the line may be anything and is ignored (spec §2.1).
        return Ok(ProxyHeader::Local);
    }
    let fields: Vec<&str> = words.collect();
    let [src, dst, sport, dport] = fields[..] else {
        return Err(bad("v1 needs exactly 4 fields after the family"));
    };
    // The destination is checked for syntax only: the proxy does not need it.
    let (src, _dst): (IpAddr, IpAddr) = match family {
        "TCP4" => (
            IpAddr::V4(src.parse().map_err(|_| bad("v1 source is not IPv4"))?),
            IpAddr::V4(dst.parse().map_err(|_| bad("v1 destination is not IPv4"))?),
        ),
        "TCP6" => (
            IpAddr::V6(src.parse().map_err(|_| bad("v1 source is not IPv6"))?),
            IpAddr::V6(dst.parse().map_err(|_| bad("v1 destination is not IPv6"))?),
        ),
        _ => return Err(bad("v1 family must be TCP4, TCP6 or UNKNOWN")),
    };
    let port = |p: &str| -> Result<u16, ProxyHeaderError> {
        // No sign, no leading zeros (spec §2.1), at most 65535.
        if p.is_empty()
            || (p.len() > 1 && p.starts_with('0'))
            || !p.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad("v1 port is not a decimal number"));
        }
        p.parse().map_err(|_| bad("v1 port out of range"))
    };
    let sport = port(sport)?;
    port(dport)?;
    Ok(ProxyHeader::Source(SocketAddr::new(src, sport)))
}

/// Parses the v2 address block after the 16-byte fixed part (`ver_cmd`, `family`, then
/// `block` of the announced length).
pub fn parse_v2(ver_cmd: u8, family: u8, block: &[u8]) -> Result<ProxyHeader, ProxyHeaderError> {
    let bad = ProxyHeaderError::Malformed;
    if ver_cmd >> 4 != 2 {
        return Err(bad("v2 version is not 2"));
    }
    match ver_cmd & 0x0F {
        0x0 => return Ok(ProxyHeader::Local),
        0x1 => {}
        _ => return Err(bad("v2 command is neither LOCAL nor PROXY")),
    }
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    match family {
        // TCP over IPv4 / UDP over IPv4: 4 + 4 + 2 + 2 bytes, then TLVs (ignored).
        0x11 | 0x12 => {
            let a = block.get(..12).ok_or(bad("v2 IPv4 block too short"))?;
            let src = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Ok(ProxyHeader::Source(SocketAddr::new(
                IpAddr::V4(src),
                port(&a[8..10]),
            )))
        }
        // IPv6: 16 + 16 + 2 + 2 bytes.
        0x21 | 0x22 => {
            let a = block.get(..36).ok_or(bad("v2 IPv6 block too short"))?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            Ok(ProxyHeader::Source(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                port(&a[32..34]),
            )))
        }
        // AF_UNSPEC or AF_UNIX: no usable IP; the peer stands for itself (spec §2.2).
        _ => Ok(ProxyHeader::Local),
    }
}

/// Reads one PROXY v1 or v2 header from the start of `stream`, consuming exactly its bytes
/// so the HTTP request that follows is untouched. Bounded in size and in time.
pub async fn read_proxy_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> Result<ProxyHeader, ProxyHeaderError> {
    match tokio::time::timeout(timeout, read_header(stream)).await {
        Ok(result) => result,
        Err(_) => Err(ProxyHeaderError::Timeout),
    }
}

async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<ProxyHeader, ProxyHeaderError> {
    let mut start = [0u8; 5];
    stream
        .read_exact(&mut start)
        .await
        .map_err(|_| ProxyHeaderError::Io)?;
    if &start == b"PROXY" {
        // v1: read byte by byte up to LF so nothing after the line is consumed.
        let mut line = start.to_vec();
        while line.last() != Some(&b'\n') {
            if line.len() >= V1_MAX {
                return Err(ProxyHeaderError::Malformed("v1 line longer than 107 bytes"));
            }
            let byte = stream.read_u8().await.map_err(|_| ProxyHeaderError::Io)?;
            line.push(byte);
        }
        return parse_v1(&line);
    }
    if start[..] != V2_SIG[..5] {
        return Err(ProxyHeaderError::Missing);
    }
    let mut fixed = [0u8; 11];
    stream
        .read_exact(&mut fixed)
        .await
        .map_err(|_| ProxyHeaderError::Io)?;
    if fixed[..7] != V2_SIG[5..] {
        return Err(ProxyHeaderError::Missing);
    }
    let (ver_cmd, family) = (fixed[7], fixed[8]);
    let len = usize::from(u16::from_be_bytes([fixed[9], fixed[10]]));
    if len > V2_MAX_LEN {
        return Err(ProxyHeaderError::Malformed("v2 address block too long"));
    }
    let mut block = vec![0u8; len];
    stream
        .read_exact(&mut block)
        .await
        .map_err(|_| ProxyHeaderError::Io)?;
    parse_v2(ver_cmd, family, &block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted(ranges: &[&str]) -> TrustedProxies {
        TrustedProxies::new(ranges.iter().map(|r| Cidr::parse(r).unwrap()).collect())
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn cidr_parse_and_contains() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.255.1.2")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(!c.contains(ip("::1")));
        assert!(
            c.contains(ip("::ffff:10.1.2.3")),
            "v4-mapped compares as v4"
        );
        let host = Cidr::parse("127.0.0.1").unwrap();
        assert_eq!(host.to_string(), "127.0.0.1/32");
        assert!(!host.contains(ip("127.0.0.2")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001::1")));
    }

    #[test]
    fn cidr_refuses_junk_and_host_bits() {
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "nope",
            "",
            "10.0.0.0/8/8",
            "::1/+1",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        let e = Cidr::parse("10.0.0.1/8").unwrap_err();
        assert!(e.contains("10.0.0.0/8"), "{e}");
    }

    #[test]
    fn untrusted_peer_forged_xff_is_ignored_proxy_11() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = xff(&["203.0.113.9"]);
        assert_eq!(t.client_ip(ip("198.51.100.7"), &h), ip("198.51.100.7"));
        let nobody = TrustedProxies::default();
        assert_eq!(nobody.client_ip(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn rightmost_untrusted_hop_wins_proxy_12() {
        let t = trusted(&["10.0.0.0/8", "127.0.0.1/32"]);
        // The client forged "1.1.1.1"; the edge balancer appended the real 203.0.113.9, an
        // inner balancer appended 10.0.0.5.
        let h = xff(&["1.1.1.1, 203.0.113.9, 10.0.0.5"]);
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("203.0.113.9"));
        // The same list split over several header lines.
        let h = xff(&["1.1.1.1", "203.0.113.9,10.0.0.5"]);
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("203.0.113.9"));
        // Ports and brackets as some balancers write them.
        let h = xff(&["[2001:db8::7]:4711, 10.0.0.5:80"]);
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("2001:db8::7"));
        // No header: the trusted peer itself.
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
        // Every hop trusted: the leftmost.
        let h = xff(&["10.0.0.9, 10.0.0.5"]);
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("10.0.0.9"));
        // A v4-mapped peer from a dual-stack socket is still trusted.
        let h = xff(&["203.0.113.9"]);
        assert_eq!(t.client_ip(ip("::ffff:127.0.0.1"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn hostile_xff_cannot_move_left_of_garbage() {
        let t = trusted(&["10.0.0.0/8", "127.0.0.1/32"]);
        for (value, want) in [
            ("1.1.1.1, unknown", "127.0.0.1"),
            ("1.1.1.1, garbage, 10.0.0.5", "10.0.0.5"),
            ("1.1.1.1,,10.0.0.5", "10.0.0.5"),
            ("", "127.0.0.1"),
            (" , ", "127.0.0.1"),
            ("999.1.1.1", "127.0.0.1"),
            ("1.1.1.1:99999", "127.0.0.1"),
            ("_hidden, 203.0.113.1", "203.0.113.1"),
        ] {
            let h = xff(&[value]);
            assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip(want), "{value:?}");
        }
        // Non-UTF-8 bytes in the header.
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"1.1.1.1, \xff\xfe").unwrap(),
        );
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("127.0.0.1"));
        // A huge all-trusted chain is cut at MAX_XFF_HOPS from the right.
        let long = vec!["10.0.0.1"; 10_000].join(",");
        let h = xff(&[&format!("203.0.113.1,{long}")]);
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn v1_lines() {
        let src = |s: &str| ProxyHeader::Source(s.parse().unwrap());
        assert_eq!(
            parse_v1(b"PROXY TCP4 203.0.113.9 10.0.0.1 56324 443\r\n").unwrap(),
            src("203.0.113.9:56324")
        );
        assert_eq!(
            parse_v1(b"PROXY TCP6 2001:db8::7 ::1 1 65535\r\n").unwrap(),
            src("[2001:db8::7]:1")
        );
        assert_eq!(
            parse_v1(b"PROXY UNKNOWN whatever\r\n").unwrap(),
            ProxyHeader::Local
        );
        assert_eq!(parse_v1(b"PROXY UNKNOWN\r\n").unwrap(), ProxyHeader::Local);
        for bad in [
            &b"PROXY TCP4 203.0.113.9 10.0.0.1 56324 443\n"[..],
            b"PROXY TCP4 203.0.113.9 10.0.0.1 56324\r\n",
            b"PROXY TCP4 2001:db8::7 10.0.0.1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 +1 2\r\n",
            b"PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n",
            b"PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 extra\r\n",
            b"PROXY \xff\r\n",
        ] {
            assert!(
                matches!(parse_v1(bad), Err(ProxyHeaderError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_v1(b"GET / HTTP/1.1\r\n"),
            Err(ProxyHeaderError::Missing)
        );
    }

    fn v2(cmd: u8, fam: u8, block: &[u8]) -> Vec<u8> {
        let mut out = V2_SIG.to_vec();
        out.push(cmd);
        out.push(fam);
        out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
        out.extend_from_slice(block);
        out
    }

    async fn read(bytes: &[u8]) -> (Result<ProxyHeader, ProxyHeaderError>, Vec<u8>) {
        let mut reader = bytes;
        let got = read_proxy_header(&mut reader, Duration::from_secs(1)).await;
        (got, reader.to_vec())
    }

    #[tokio::test]
    async fn reader_consumes_exactly_the_header() {
        let mut wire = b"PROXY TCP4 203.0.113.9 10.0.0.1 56324 443\r\n".to_vec();
        wire.extend_from_slice(b"GET /healthz HTTP/1.1\r\n");
        let (got, rest) = read(&wire).await;
        assert_eq!(
            got.unwrap(),
            ProxyHeader::Source("203.0.113.9:56324".parse().unwrap())
        );
        assert_eq!(rest, b"GET /healthz HTTP/1.1\r\n");

        let mut block = vec![203, 0, 113, 9, 10, 0, 0, 1, 0xDC, 0x04, 0x01, 0xBB];
        block.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']); // an ALPN TLV, ignored
        let mut wire = v2(0x21, 0x11, &block);
        wire.extend_from_slice(b"POST");
        let (got, rest) = read(&wire).await;
        assert_eq!(
            got.unwrap(),
            ProxyHeader::Source("203.0.113.9:56324".parse().unwrap())
        );
        assert_eq!(rest, b"POST");

        let mut block = vec![0u8; 36];
        block[0] = 0x20;
        block[1] = 0x01;
        block[15] = 7;
        block[32] = 0x12;
        block[33] = 0x34;
        let (got, _) = read(&v2(0x21, 0x21, &block)).await;
        assert_eq!(
            got.unwrap(),
            ProxyHeader::Source("[2001::7]:4660".parse().unwrap())
        );

        // LOCAL (HAProxy's health checks) and AF_UNSPEC.
        assert_eq!(
            read(&v2(0x20, 0x00, &[])).await.0.unwrap(),
            ProxyHeader::Local
        );
        assert_eq!(
            read(&v2(0x21, 0x00, &[])).await.0.unwrap(),
            ProxyHeader::Local
        );
    }

    #[tokio::test]
    async fn reader_refuses_hostile_headers() {
        // Plain HTTP where a PROXY header is required.
        assert_eq!(
            read(b"GET / HTTP/1.1\r\n\r\n").await.0,
            Err(ProxyHeaderError::Missing)
        );
        // A v1 line that never ends stops at 107 bytes.
        let long = format!("PROXY TCP4 {}", "1".repeat(200));
        assert!(matches!(
            read(long.as_bytes()).await.0,
            Err(ProxyHeaderError::Malformed(_))
        ));
        // Truncated: the connection closes mid-header.
        assert_eq!(read(b"PROXY TCP4 1.2").await.0, Err(ProxyHeaderError::Io));
        assert_eq!(read(&V2_SIG[..9]).await.0, Err(ProxyHeaderError::Io));
        // v2 with a bad signature tail, a huge length, a short block, a bad version/command.
        let mut sig = v2(0x21, 0x11, &[0; 12]);
        sig[11] = 0;
        assert_eq!(read(&sig).await.0, Err(ProxyHeaderError::Missing));
        let mut huge = V2_SIG.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
        assert!(matches!(
            read(&huge).await.0,
            Err(ProxyHeaderError::Malformed(_))
        ));
        assert!(matches!(
            read(&v2(0x21, 0x11, &[1, 2, 3])).await.0,
            Err(ProxyHeaderError::Malformed(_))
        ));
        assert!(matches!(
            read(&v2(0x21, 0x21, &[0; 12])).await.0,
            Err(ProxyHeaderError::Malformed(_))
        ));
        assert!(matches!(
            read(&v2(0x11, 0x11, &[0; 12])).await.0,
            Err(ProxyHeaderError::Malformed(_))
        ));
        assert!(matches!(
            read(&v2(0x22, 0x11, &[0; 12])).await.0,
            Err(ProxyHeaderError::Malformed(_))
        ));
        // A peer that sends nothing times out.
        let (_keep, mut idle) = tokio::io::duplex(64);
        let got = read_proxy_header(&mut idle, Duration::from_millis(50)).await;
        assert_eq!(got, Err(ProxyHeaderError::Timeout));
    }
}
