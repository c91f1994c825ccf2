//! Upgrading: which process holds each address the new configuration listens on, read from
//! `/proc` (Linux, as Pingora's socket hand-over is). An address the running proxy holds
//! comes with its sockets; a free one is bound afresh; one another process holds would make the
//! new process fail only after the running one had handed its sockets over and was leaving, so
//! it is refused before.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// State of a listening socket in `/proc/net/tcp`.
const LISTEN: &str = "0A";

/// A listening TCP socket: its address and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listening {
    pub(crate) address: SocketAddr,
    pub(crate) inode: u64,
}

/// Every listening TCP socket of this network namespace.
pub(crate) fn listening() -> Vec<Listening> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| parse_table(&text))
        .collect()
}

/// The listening sockets of one `/proc/net/tcp` or `/proc/net/tcp6` table.
fn parse_table(text: &str) -> Vec<Listening> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            if columns.get(3) != Some(&LISTEN) {
                return None;
            }
            let address = parse_address(columns.get(1)?)?;
            let inode = columns.get(9)?.parse().ok()?;
            Some(Listening { address, inode })
        })
        .collect()
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6): the address's 32-bit words in
/// the kernel's byte order (little-endian here), the port in hex.
fn parse_address(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = ip.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_le_bytes())
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The sockets among `listening` that keep `address` from being bound: on its port, at the
/// same address or a wildcard one (either way round).
pub(crate) fn holding(listening: &[Listening], address: SocketAddr) -> Vec<Listening> {
    listening
        .iter()
        .filter(|held| {
            held.address.port() == address.port()
                && (held.address.ip() == address.ip()
                    || held.address.ip().is_unspecified()
                    || address.ip().is_unspecified())
        })
        .copied()
        .collect()
}

/// The processes holding each of `inodes`, as far as this process may look into them
/// (`/proc/PID/fd` of its own user's processes).
pub(crate) fn owners(inodes: &BTreeSet<u64>) -> HashMap<u64, BTreeSet<u32>> {
    let mut owners: HashMap<u64, BTreeSet<u32>> = HashMap::new();
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return owners;
    };
    for process in processes.flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let inode = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok());
            if let Some(inode) = inode.filter(|inode| inodes.contains(inode)) {
                owners.entry(inode).or_default().insert(pid);
            }
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_tables_are_read_for_listening_sockets() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            \x20  0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4711 1 0000000000000000 100 0 0 10 0\n\
            \x20  1: 0100007F:1F91 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4712 1 0000000000000000 20 4 30 10 -1\n";
        assert_eq!(
            parse_table(v4),
            vec![Listening {
                address: "127.0.0.1:8080".parse().unwrap(),
                inode: 4711
            }]
        );
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
            \x20  0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(
            parse_table(v6)[0].address,
            "[::1]:8080".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn a_socket_of_this_process_is_found_with_its_owner() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let held = holding(&listening(), address);
        assert_eq!(held.len(), 1, "{held:?}");
        let inodes: BTreeSet<u64> = held.iter().map(|h| h.inode).collect();
        let owners = owners(&inodes);
        assert_eq!(owners[&held[0].inode], BTreeSet::from([std::process::id()]));
        let wildcard: SocketAddr = format!("0.0.0.0:{}", address.port()).parse().unwrap();
        assert_eq!(holding(&listening(), wildcard).len(), 1);
    }
}
