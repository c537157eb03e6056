//! Transports registered by name.

use crate::transport::Transport;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The transports a launcher can use, by name. The CLI fills it from its cargo
/// features; a library user adds their own with [`TransportRegistry::register`].
#[derive(Clone, Default)]
pub struct TransportRegistry {
    transports: BTreeMap<String, Arc<dyn Transport>>,
}

impl TransportRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a transport under its [`Transport::name`].
    pub fn register(&mut self, transport: impl Transport + 'static) -> &mut Self {
        self.register_arc(Arc::new(transport))
    }

    /// Adds (or replaces) an already shared transport.
    pub fn register_arc(&mut self, transport: Arc<dyn Transport>) -> &mut Self {
        self.transports
            .insert(transport.name().to_string(), transport);
        self
    }

    /// The transport registered under `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Transport>> {
        self.transports.get(name)
    }

    /// Names of all registered transports, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.transports.keys().map(String::as_str).collect()
    }

    /// Every registered transport.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Transport>> {
        self.transports.values()
    }
}

impl std::fmt::Debug for TransportRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.transports.keys()).finish()
    }
}
