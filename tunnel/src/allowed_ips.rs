//! Longest-prefix-match table from IP prefixes to values (WireGuard's AllowedIPs)
//!
//! One hash map per prefix length, kept sorted from the longest length to the shortest. A lookup
//! masks the address once per length actually present and stops at the first hit, so its cost is
//! bounded by the number of distinct prefix lengths (at most 33 for IPv4, 129 for IPv6), not by
//! the number of prefixes. Real tables use a handful of lengths (/32, /128, /24, /64, /0), which
//! makes this as fast as a path-compressed trie for our sizes and far simpler to get right.
//!
//! TODO(bench): criterion bench of lookup against a trie once the daemon runs at line rate.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// An address family's integer form, maskable to a prefix length
trait PrefixKey: Copy + Eq + Hash {
    const BITS: u8;
    fn masked(self, len: u8) -> Self;
}

impl PrefixKey for u32 {
    const BITS: u8 = 32;
    fn masked(self, len: u8) -> Self {
        // checked_shl: a /0 prefix keeps no bits, and `<< 32` would overflow
        self & Self::MAX.checked_shl(Self::from(32 - len)).unwrap_or(0)
    }
}

impl PrefixKey for u128 {
    const BITS: u8 = 128;
    fn masked(self, len: u8) -> Self {
        self & Self::MAX.checked_shl(u32::from(128 - len)).unwrap_or(0)
    }
}

#[derive(Debug, Clone)]
struct Table<K, T> {
    /// Sorted by prefix length, longest first; no empty maps
    by_len: Vec<(u8, HashMap<K, T>)>,
}

impl<K: PrefixKey, T> Table<K, T> {
    fn new() -> Self {
        Self { by_len: Vec::new() }
    }

    fn insert(&mut self, key: K, len: u8, value: T) -> Option<T> {
        let len = len.min(K::BITS);
        let key = key.masked(len);
        match self.by_len.binary_search_by(|(l, _)| len.cmp(l)) {
            Ok(i) => self.by_len[i].1.insert(key, value),
            Err(i) => {
                let mut map = HashMap::new();
                map.insert(key, value);
                self.by_len.insert(i, (len, map));
                None
            }
        }
    }

    fn remove(&mut self, key: K, len: u8) -> Option<T> {
        let len = len.min(K::BITS);
        let i = self.by_len.binary_search_by(|(l, _)| len.cmp(l)).ok()?;
        let old = self.by_len[i].1.remove(&key.masked(len));
        if self.by_len[i].1.is_empty() {
            self.by_len.remove(i);
        }
        old
    }

    fn lookup(&self, key: K) -> Option<&T> {
        self.by_len
            .iter()
            .find_map(|(len, map)| map.get(&key.masked(*len)))
    }

    fn len(&self) -> usize {
        self.by_len.iter().map(|(_, m)| m.len()).sum()
    }
}

/// Longest-prefix-match table for IPv4 and IPv6 prefixes
#[derive(Debug, Clone)]
pub struct AllowedIps<T> {
    v4: Table<u32, T>,
    v6: Table<u128, T>,
}

impl<T> Default for AllowedIps<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> AllowedIps<T> {
    /// An empty table
    pub fn new() -> Self {
        Self {
            v4: Table::new(),
            v6: Table::new(),
        }
    }

    /// Map `net` (host bits ignored) to `value`; returns the value it replaces
    pub fn insert(&mut self, net: IpNet, value: T) -> Option<T> {
        match net {
            IpNet::V4(n) => self.v4.insert(u32::from(n.addr()), n.prefix_len(), value),
            IpNet::V6(n) => self.v6.insert(u128::from(n.addr()), n.prefix_len(), value),
        }
    }

    /// Remove the exact prefix `net`; returns its value
    pub fn remove(&mut self, net: &IpNet) -> Option<T> {
        match net {
            IpNet::V4(n) => self.v4.remove(u32::from(n.addr()), n.prefix_len()),
            IpNet::V6(n) => self.v6.remove(u128::from(n.addr()), n.prefix_len()),
        }
    }

    /// The value of the longest prefix containing `addr`
    pub fn lookup(&self, addr: IpAddr) -> Option<&T> {
        match addr {
            IpAddr::V4(a) => self.v4.lookup(u32::from(a)),
            IpAddr::V6(a) => self.v6.lookup(u128::from(a)),
        }
    }

    /// Remove every prefix whose value fails `keep`
    pub fn retain(&mut self, mut keep: impl FnMut(&IpNet, &T) -> bool) {
        for (len, map) in &mut self.v4.by_len {
            let len = *len;
            map.retain(|k, v| keep(&v4net(*k, len), v));
        }
        self.v4.by_len.retain(|(_, m)| !m.is_empty());
        for (len, map) in &mut self.v6.by_len {
            let len = *len;
            map.retain(|k, v| keep(&v6net(*k, len), v));
        }
        self.v6.by_len.retain(|(_, m)| !m.is_empty());
    }

    /// Number of prefixes
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// True when no prefix is stored
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All prefixes with their values, longest prefixes first within each family (order is
    /// otherwise unspecified)
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &T)> + '_ {
        let v4 = self
            .v4
            .by_len
            .iter()
            .flat_map(|(len, map)| map.iter().map(move |(k, v)| (v4net(*k, *len), v)));
        let v6 = self
            .v6
            .by_len
            .iter()
            .flat_map(|(len, map)| map.iter().map(move |(k, v)| (v6net(*k, *len), v)));
        v4.chain(v6)
    }
}

fn v4net(key: u32, len: u8) -> IpNet {
    // The length came from a valid Ipv4Net, so this cannot fail; fall back to a host route anyway
    // rather than panic.
    Ipv4Net::new(Ipv4Addr::from(key), len)
        .map(IpNet::V4)
        .unwrap_or_else(|_| IpNet::V4(Ipv4Net::from(Ipv4Addr::from(key))))
}

fn v6net(key: u128, len: u8) -> IpNet {
    Ipv6Net::new(Ipv6Addr::from(key), len)
        .map(IpNet::V6)
        .unwrap_or_else(|_| IpNet::V6(Ipv6Net::from(Ipv6Addr::from(key))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = AllowedIps::new();
        t.insert(net("198.18.0.0/15"), "wide");
        t.insert(net("198.19.0.0/24"), "mid");
        t.insert(net("198.19.0.2/32"), "host");
        t.insert(net("fd00::/8"), "v6wide");
        t.insert(net("fd00:19::2/128"), "v6host");
        assert_eq!(t.lookup("198.19.0.2".parse().unwrap()), Some(&"host"));
        assert_eq!(t.lookup("198.19.0.3".parse().unwrap()), Some(&"mid"));
        assert_eq!(t.lookup("198.18.5.5".parse().unwrap()), Some(&"wide"));
        assert_eq!(t.lookup("fd00:19::2".parse().unwrap()), Some(&"v6host"));
        assert_eq!(t.lookup("fd00:19::3".parse().unwrap()), Some(&"v6wide"));
        assert_eq!(t.lookup("198.20.0.1".parse().unwrap()), None);
        assert_eq!(t.len(), 5);
        assert_eq!(t.remove(&net("198.19.0.2/32")), Some("host"));
        assert_eq!(t.lookup("198.19.0.2".parse().unwrap()), Some(&"mid"));
        assert_eq!(t.iter().count(), 4);
    }

    #[test]
    fn default_routes_and_host_bits() {
        let mut t = AllowedIps::new();
        t.insert(net("0.0.0.0/0"), 1);
        t.insert(net("::/0"), 2);
        // host bits are ignored on insert
        t.insert(net("198.19.0.77/24"), 3);
        assert_eq!(t.lookup("198.18.0.1".parse().unwrap()), Some(&1));
        assert_eq!(t.lookup("fd00::1".parse().unwrap()), Some(&2));
        assert_eq!(t.lookup("198.19.0.1".parse().unwrap()), Some(&3));
        assert!(t.iter().any(|(n, _)| n == net("198.19.0.0/24")));
        t.retain(|_, v| *v != 1);
        assert_eq!(t.lookup("198.18.0.1".parse().unwrap()), None);
    }

    fn naive(list: &[(IpNet, u32)], addr: IpAddr) -> Option<&u32> {
        // Last insert of an equal prefix wins, as in the table
        let mut best: Option<(u8, &u32)> = None;
        for (n, v) in list {
            if n.contains(&addr) && best.is_none_or(|(l, _)| n.prefix_len() >= l) {
                best = Some((n.prefix_len(), v));
            }
        }
        best.map(|(_, v)| v)
    }

    fn arb_net() -> impl Strategy<Value = IpNet> {
        // Few distinct high bits so that prefixes overlap often
        prop_oneof![
            (0u32..16, 0u8..=32).prop_map(|(hi, len)| {
                let a = Ipv4Addr::from(0xC612_0000 | (hi << 12) | (hi * 7));
                IpNet::V4(Ipv4Net::new(a, len).unwrap())
            }),
            (0u128..16, 0u8..=128).prop_map(|(hi, len)| {
                let a = Ipv6Addr::from((0xfd00u128 << 112) | (hi << 100) | hi);
                IpNet::V6(Ipv6Net::new(a, len).unwrap())
            }),
        ]
    }

    fn arb_addr() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            (0u32..16, 0u32..4096)
                .prop_map(|(hi, lo)| IpAddr::V4(Ipv4Addr::from(0xC612_0000 | (hi << 12) | lo))),
            (0u128..16, 0u128..4096).prop_map(|(hi, lo)| IpAddr::V6(Ipv6Addr::from(
                (0xfd00u128 << 112) | (hi << 100) | lo
            ))),
        ]
    }

    proptest! {
        #[test]
        fn matches_linear_scan(
            nets in proptest::collection::vec(arb_net(), 0..40),
            removals in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
            addrs in proptest::collection::vec(arb_addr(), 1..40),
        ) {
            let mut table = AllowedIps::new();
            let mut list: Vec<(IpNet, u32)> = Vec::new();
            for (i, n) in nets.iter().enumerate() {
                let n = n.trunc();
                table.insert(n, i as u32);
                list.retain(|(m, _)| *m != n);
                list.push((n, i as u32));
            }
            for r in removals {
                if list.is_empty() { break; }
                let (n, v) = list.remove(r.index(list.len()));
                prop_assert_eq!(table.remove(&n), Some(v));
            }
            prop_assert_eq!(table.len(), list.len());
            for a in addrs {
                prop_assert_eq!(table.lookup(a), naive(&list, a));
            }
        }
    }
}
