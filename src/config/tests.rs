use std::time::Duration;

use super::{Direction, KeyRoute, PipeConfig};
use crate::session::proxy::Version;

/// The bytes the status page has always shown (written by hand before they came
/// from serde): names, units and order are what dashboards read.
#[test]
fn shows_every_setting_but_key_material() {
    let address = |s: &str| spiped_transports::Address::parse(s).unwrap();
    // As the status page has it: a JSON value, whose objects keep their keys sorted.
    let shown = |p: &PipeConfig| serde_json::to_value(p).unwrap().to_string();
    let mut pipe = PipeConfig::new("web".into(), Direction::Decrypt);
    assert_eq!(
        shown(&pipe),
        r#"{"allow":[],"bind":null,"connect_after_handshake":false,"direction":"decrypt","fast":false,"idle_timeout_seconds":null,"keepalive":true,"keys":[],"log_connections":false,"max_connections":100,"name":"web","proxy":null,"require_pfs":false,"resolve_interval_seconds":60.0,"source":null,"timeout_seconds":5.0,"x25519":false}"#
    );
    let key = |file: &str, target, at: Option<&str>| KeyRoute {
        file: file.into(),
        targets: vec![address(target)],
        at: at.map(Into::into),
    };
    pipe.source = Some(address("[::1]:8025"));
    pipe.keys = vec![
        key("/etc/a.key", "localhost:25", Some("f:3")),
        key("/etc/b.key", "/run/b.sock", None),
    ];
    pipe.bind = Some(address("10.0.0.1:0"));
    pipe.keepalive = false;
    (pipe.fast, pipe.require_pfs, pipe.x25519) = (true, true, true);
    pipe.max_connections = None;
    pipe.timeout = Duration::from_millis(2500);
    pipe.resolve_interval = None;
    pipe.proxy = Some(Version::V2);
    pipe.connect_after_handshake = true;
    pipe.log_connections = true;
    pipe.socket_mode = Some(0o660);
    pipe.allow = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    pipe.idle_timeout = Some(Duration::from_secs(90));
    assert_eq!(
        shown(&pipe),
        r#"{"allow":["10.0.0.0/8","::1/128"],"bind":"[10.0.0.1]:0","connect_after_handshake":true,"direction":"decrypt","fast":true,"idle_timeout_seconds":90.0,"keepalive":false,"keys":[{"file":"/etc/a.key","target":"localhost:25"},{"file":"/etc/b.key","target":"/run/b.sock"}],"log_connections":true,"max_connections":null,"name":"web","proxy":"v2","require_pfs":true,"resolve_interval_seconds":null,"source":"[::1]:8025","timeout_seconds":2.5,"x25519":true}"#
    );
    pipe.proxy = Some(Version::V1);
    assert!(shown(&pipe).contains(r#""proxy":"v1""#));
}
