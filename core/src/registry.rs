//! Transports registered by name.

use crate::config::Config;
use crate::transport::Transport;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Finds a transport that is not built in, by the name a placement gives and the
/// placement's `plugin = "/path"` setting if any: the CLI installs one that starts
/// `distarch-transport-<name>` plugins (docs/plugins.md). The error says why none
/// was found or why it could not start.
pub type TransportResolver =
    Arc<dyn Fn(&str, Option<&str>) -> Result<Arc<dyn Transport>, String> + Send + Sync>;

/// The transports a launcher can use, by name. The CLI fills it from its cargo
/// features; a library user adds their own with [`TransportRegistry::register`].
#[derive(Clone, Default)]
pub struct TransportRegistry {
    transports: BTreeMap<String, Arc<dyn Transport>>,
    resolver: Option<TransportResolver>,
    /// Why a name the configuration uses could not be resolved.
    unresolved: BTreeMap<String, String>,
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

    /// Installs the resolver [`TransportRegistry::resolve_config`] asks for names
    /// that are not registered.
    pub fn set_resolver(&mut self, resolver: TransportResolver) -> &mut Self {
        self.resolver = Some(resolver);
        self
    }

    /// Resolves (and registers) every transport name the configuration's placements
    /// use that is not registered yet, through the resolver if one is installed; a
    /// name that cannot be resolved is remembered with the reason, which the plan
    /// reports on the placement ([`TransportRegistry::unresolved`]).
    pub fn resolve_config(&mut self, config: &Config) {
        let Some(resolver) = self.resolver.clone() else {
            return;
        };
        for group in config.groups.values() {
            for placement in group.placements.values() {
                let name = placement.transport.as_str();
                if self.transports.contains_key(name) || self.unresolved.contains_key(name) {
                    continue;
                }
                let path = placement.settings.get("plugin").and_then(|v| v.as_str());
                match resolver(name, path) {
                    Ok(t) => {
                        self.transports.insert(name.to_string(), t);
                    }
                    Err(why) => {
                        self.unresolved.insert(name.to_string(), why);
                    }
                }
            }
        }
    }

    /// Why `name` could not be resolved, if [`TransportRegistry::resolve_config`]
    /// tried.
    pub fn unresolved(&self, name: &str) -> Option<&str> {
        self.unresolved.get(name).map(String::as_str)
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
