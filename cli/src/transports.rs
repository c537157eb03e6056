//! The transports this binary offers, chosen by cargo features.

use distarch_core::TransportRegistry;

/// Every transport compiled into this binary.
pub fn registry() -> TransportRegistry {
    let mut registry = TransportRegistry::new();
    registry.register(distarch_transport_local::LocalTransport::new());
    // Transports behind cargo features register below, one line each.
    #[cfg(feature = "docker")]
    registry.register(distarch_transport_docker::DockerTransport::new());
    #[cfg(feature = "ssh")]
    registry.register(distarch_transport_ssh::SshTransport::new());
    #[cfg(feature = "kubernetes")]
    registry.register(distarch_transport_kubernetes::KubernetesTransport::new());
    // Any other name: a `distarch-transport-<name>` plugin (docs/plugins.md).
    registry.set_resolver(distarch_plugin_host::resolver());
    registry
}
