//! Network indicator values: `ip`, `ip:port`, `[v6]:port` or CIDR, canonicalised.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::IndicatorValue;

/// One network indicator value.
pub fn parse_value(text: &str) -> Result<IndicatorValue, String> {
    if text.contains('/') {
        let net: IpNet = text
            .parse()
            .map_err(|_| "not a CIDR network (address/prefix)".to_string())?;
        return Ok(match canonical_net(net) {
            IpNet::V4(v4) if v4.prefix_len() == 32 => IndicatorValue::Address(v4.addr().into()),
            IpNet::V6(v6) if v6.prefix_len() == 128 => IndicatorValue::Address(v6.addr().into()),
            net => IndicatorValue::Network(net.trunc()),
        });
    }
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(IndicatorValue::Address(addr.to_canonical()));
    }
    match text.parse::<SocketAddr>() {
        Ok(endpoint) if endpoint.port() == 0 => Err("port 0 is not a destination".into()),
        Ok(endpoint) => Ok(IndicatorValue::Endpoint(SocketAddr::new(
            endpoint.ip().to_canonical(),
            endpoint.port(),
        ))),
        Err(_) => Err(explain(text)),
    }
}

/// A v4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is the IPv4 network it maps.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if let (Some(v4), true) = (v6.addr().to_ipv4_mapped(), v6.prefix_len() >= 96) {
            if let Ok(mapped) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
                return IpNet::V4(mapped);
            }
        }
    }
    net
}

/// A specific reason for a value that is neither an address nor an endpoint.
fn explain(text: &str) -> String {
    if let Some((host, port)) = text.rsplit_once(':') {
        if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
            return match port.parse::<u32>() {
                Ok(p) if p > 65535 => format!("port {p} is out of range (1-65535)"),
                _ => "bad port (expected 1-65535)".into(),
            };
        }
        if host.contains(':') && !host.starts_with('[') {
            return "IPv6 endpoint needs brackets: [addr]:port".into();
        }
    }
    "not an IP address, ip:port or CIDR".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> IndicatorValue {
        parse_value(text).unwrap()
    }

    #[test]
    fn parses_every_form() {
        assert_eq!(
            value("127.0.0.2:4444"),
            IndicatorValue::Endpoint("127.0.0.2:4444".parse().unwrap())
        );
        assert_eq!(
            value("[::1]:53"),
            IndicatorValue::Endpoint("[::1]:53".parse().unwrap())
        );
        assert_eq!(
            value("127.0.0.9"),
            IndicatorValue::Address("127.0.0.9".parse().unwrap())
        );
        assert_eq!(
            value("127.1.0.0/16"),
            IndicatorValue::Network("127.1.0.0/16".parse().unwrap())
        );
        assert_eq!(
            value("2001:db8::/32"),
            IndicatorValue::Network("2001:db8::/32".parse().unwrap())
        );
    }

    #[test]
    fn canonicalises() {
        // v4-mapped forms are the IPv4 indicator they map.
        assert_eq!(value("::ffff:127.0.0.2"), value("127.0.0.2"));
        assert_eq!(value("[::ffff:127.0.0.2]:4444"), value("127.0.0.2:4444"));
        assert_eq!(value("::ffff:127.1.0.0/112"), value("127.1.0.0/16"));
        // host bits cleared; /32 is an address
        assert_eq!(value("127.1.2.3/16"), value("127.1.0.0/16"));
        assert_eq!(value("127.0.0.7/32"), value("127.0.0.7"));
    }

    #[test]
    fn rejects_with_reasons() {
        assert_eq!(
            parse_value("127.0.0.2:0").unwrap_err(),
            "port 0 is not a destination"
        );
        assert_eq!(
            parse_value("127.0.0.2:70000").unwrap_err(),
            "port 70000 is out of range (1-65535)"
        );
        assert_eq!(
            parse_value("256.1.1.1").unwrap_err(),
            "not an IP address, ip:port or CIDR"
        );
        assert_eq!(
            parse_value("[2001:db8::1]:http").unwrap_err(),
            "bad port (expected 1-65535)"
        );
        assert_eq!(
            parse_value("10.0.0.0/33").unwrap_err(),
            "not a CIDR network (address/prefix)"
        );
        assert_eq!(
            parse_value("example.com").unwrap_err(),
            "not an IP address, ip:port or CIDR"
        );
    }
}
