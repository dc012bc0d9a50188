//! Service ports and endpoints the unit tests of the data paths build on.

use std::net::Ipv4Addr;

use crate::model::{Endpoint, Networks, Protocol, ServicePort, ServicePortName};

/// A ready endpoint 10.42.0.<last>:8080.
pub(crate) fn ep(last: u8, local: bool) -> Endpoint {
    Endpoint {
        ip: Ipv4Addr::new(10, 42, 0, last),
        port: 8080,
        ready: true,
        serving: true,
        terminating: false,
        local,
    }
}

/// Port `http` (TCP 80) of Service `default/<name>` at cluster IP 10.43.0.10.
pub(crate) fn port(name: &str, endpoints: Vec<Endpoint>) -> ServicePort {
    ServicePort {
        id: ServicePortName {
            namespace: "default".into(),
            name: name.into(),
            port: "http".into(),
            protocol: Protocol::Tcp,
        },
        cluster_ips: vec![Ipv4Addr::new(10, 43, 0, 10)],
        port: 80,
        node_port: None,
        external_ips: vec![],
        load_balancer_ips: vec![],
        source_ranges: vec![],
        affinity_timeout: None,
        external_local: false,
        internal_local: false,
        endpoints,
    }
}

/// Pods in 10.42.0.0/16, Services in 10.43.0.0/16.
pub(crate) fn networks() -> Networks {
    Networks {
        cluster_cidr: Some("10.42.0.0/16".parse().unwrap()),
        service_cidr: Some("10.43.0.0/16".parse().unwrap()),
        all: false,
    }
}
