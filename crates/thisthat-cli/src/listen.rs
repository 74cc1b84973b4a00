//! Where `thisthat serve` listens.

use std::net::SocketAddr;

use crate::AnyResult;

/// Where `serve` listens: `--addr` (or `THISTHAT_ADDR`), else every interface on `port` (the
/// `PORT` variable container platforms set), else the configuration file's `server.addr`,
/// else 127.0.0.1:8080. `PORT` beats the file, as every variable does: a platform that sets it
/// only accepts that port.
pub fn address(addr: Option<SocketAddr>, port: Option<&str>, file: Option<SocketAddr>) -> AnyResult<SocketAddr> {
    match (addr, port) {
        (Some(addr), _) => Ok(addr),
        (None, Some(port)) => {
            let port: u16 = port
                .parse()
                .map_err(|_| format!("PORT={port:?} is not a port number (0 to 65535): fix it, or pass --addr"))?;
            Ok(SocketAddr::from(([0, 0, 0, 0], port)))
        }
        (None, None) => Ok(file.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_given_wins_over_port_and_port_means_every_interface() {
        let given: SocketAddr = "127.0.0.1:9000".parse().expect("address");
        let file: SocketAddr = "127.0.0.1:9001".parse().expect("address");
        assert_eq!(address(Some(given), Some("8081"), Some(file)).ok(), Some(given));
        assert_eq!(
            address(None, Some("8081"), Some(file)).ok(),
            Some(SocketAddr::from(([0, 0, 0, 0], 8081)))
        );
        assert_eq!(address(None, None, Some(file)).ok(), Some(file));
        assert_eq!(
            address(None, None, None).ok(),
            Some(SocketAddr::from(([127, 0, 0, 1], 8080)))
        );
        for bad in ["", "http", "65536", "-1"] {
            let error = address(None, Some(bad), Some(file))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                error.contains("is not a port number") && error.contains("--addr"),
                "{error}"
            );
        }
    }
}
