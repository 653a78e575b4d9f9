//! Client networks in config (`allow`, `deny`, `trusted_proxies`): parsed once, as they are
//! matched.

use super::{err, KeyPath, VResult};
use ipnet::IpNet;
use std::net::IpAddr;

/// A list of networks: each a CIDR (`10.0.0.0/8`) or an address (`192.168.1.7`). An
/// IPv4-mapped IPv6 one (`::ffff:9.9.9.0/120`) means the IPv4 network, since clients are
/// matched by their plain IPv4 address; a CIDR with host bits set (`10.0.0.1/8`) is refused
/// rather than silently widened.
pub(super) fn networks(p: &KeyPath, list: &[String]) -> VResult<Vec<IpNet>> {
    let mut nets = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let net = match (t.parse::<IpNet>(), t.parse::<IpAddr>()) {
            (Ok(n), _) if n.trunc() != n => {
                let msg = format!("\"{t}\" has host bits set; write \"{}\"", n.trunc());
                return err(p.index(i), msg);
            }
            (Ok(n), _) => n,
            (_, Ok(ip)) => IpNet::from(ip.to_canonical()),
            _ => {
                let msg = format!(
                    "invalid network \"{t}\": expected a CIDR like \"10.0.0.0/8\" or an address"
                );
                return err(p.index(i), msg);
            }
        };
        nets.push(match net {
            IpNet::V6(n) if n.prefix_len() >= 96 && n.addr().to_ipv4_mapped().is_some() => {
                let v4 = n.addr().to_ipv4_mapped().expect("checked");
                IpNet::from(ipnet::Ipv4Net::new(v4, n.prefix_len() - 96).expect("at most 32"))
            }
            n => n,
        });
    }
    Ok(nets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<Vec<String>, String> {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        networks(&KeyPath::root().key("allow"), &list)
            .map(|v| v.iter().map(|n| n.to_string()).collect())
            .map_err(|(_, e)| e)
    }

    #[test]
    fn mapped_ipv6_means_the_ipv4_network_and_host_bits_are_refused() {
        assert_eq!(
            parse(&["::ffff:9.9.9.0/120", "::ffff:1.2.3.4", "10.0.0.0/8", "::1"]).unwrap(),
            ["9.9.9.0/24", "1.2.3.4/32", "10.0.0.0/8", "::1/128"]
        );
        assert_eq!(
            parse(&["10.0.0.1/8"]).unwrap_err(),
            "\"10.0.0.1/8\" has host bits set; write \"10.0.0.0/8\""
        );
        assert!(parse(&["2001:db8::1/32"]).is_err());
        assert!(parse(&["nonsense"]).is_err());
    }
}
