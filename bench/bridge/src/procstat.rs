//! CPU time and resident memory of a process, read from `/proc`.

use std::time::Duration;

use anyhow::{Context, Result, bail};

/// `/proc/<pid>/stat` counts CPU time in USER_HZ ticks, which Linux fixes at 100 for
/// user space on every architecture it exports `/proc` on.
const TICKS_PER_SECOND: u64 = 100;

/// User plus system CPU time of all threads of `pid` so far.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    parse_cpu_time(&stat)
}

fn parse_cpu_time(stat: &str) -> Result<Duration> {
    // The command name (field 2) may contain spaces; fields are counted after its ')'.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed stat line")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let (Some(utime), Some(stime)) = (fields.get(11), fields.get(12)) else {
        bail!("stat line too short");
    };
    let ticks = utime.parse::<u64>()? + stime.parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// Resident set size of `pid` in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    parse_rss(&status)
}

fn parse_rss(status: &str) -> Result<u64> {
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .context("no VmRSS in status")?;
    let kib: u64 = line
        .trim()
        .strip_suffix("kB")
        .context("VmRSS not in kB")?
        .trim()
        .parse()?;
    Ok(kib * 1024)
}

/// The 1-minute load average from `/proc/loadavg`.
pub fn load_average() -> Result<f64> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    let first = loadavg
        .split_whitespace()
        .next()
        .context("empty /proc/loadavg")?;
    Ok(first.parse()?)
}

/// Datagrams the kernel dropped so far (receive buffer full) on the loopback UDP sockets
/// bound to `ports`, from `/proc/net/udp`.
pub fn udp_drops(ports: &[u16]) -> Result<u64> {
    let table = std::fs::read_to_string("/proc/net/udp").context("reading /proc/net/udp")?;
    Ok(parse_udp_drops(&table, ports))
}

fn parse_udp_drops(table: &str, ports: &[u16]) -> u64 {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // `local_address` is `IP:PORT` in hex; `drops` is the last column.
            let (_, port) = fields.get(1)?.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            ports
                .contains(&port)
                .then(|| fields.last()?.parse::<u64>().ok())?
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let stat = "42 (bench (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0";
        assert_eq!(parse_cpu_time(stat).unwrap(), Duration::from_millis(3250));
        assert!(parse_cpu_time("42 (x) S 1").is_err());
    }

    #[test]
    fn parses_rss() {
        let status = "Name:\tx\nVmRSS:\t   2048 kB\nThreads:\t3\n";
        assert_eq!(parse_rss(status).unwrap(), 2048 * 1024);
    }

    #[test]
    fn sums_drops_of_the_given_ports() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
            \x20 1: 0100007F:2710 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 5\n\
            \x20 2: 0100007F:2711 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2 2 0000000000000000 7\n\
            \x20 3: 0100007F:0050 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 3 2 0000000000000000 9\n";
        assert_eq!(parse_udp_drops(table, &[10000, 10001]), 12);
        assert_eq!(parse_udp_drops(table, &[1]), 0);
    }

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).unwrap() > 0);
        assert!(load_average().unwrap() >= 0.0);
        cpu_time(pid).unwrap();
    }
}
