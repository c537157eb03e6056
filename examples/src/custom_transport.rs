//! A custom transport registered in a few lines: `tagged-local` runs instances as
//! local processes, like `local`, but gives each one an extra environment variable
//! and its own host label. Usage: `distarch-custom-transport CONFIG_FILE`.
#![forbid(unsafe_code)]

use async_trait::async_trait;
use distarch_core::{
    config, ConfigErrors, Instance, InstanceSpec, Launcher, LogFormat, LogWriter, PlacementPlan,
    PlacementRef, Prepared, SpawnError, Target, Transport, TransportRegistry,
};
use distarch_transport_local::LocalTransport;

/// Wraps the local transport; placement setting: `tag` (a string, required).
struct TaggedLocal {
    inner: LocalTransport,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TaggedSettings {
    tag: String,
}

#[async_trait]
impl Transport for TaggedLocal {
    fn name(&self) -> &str {
        "tagged-local"
    }

    // Settings are parsed and checked once, here; spawn gets them back typed.
    fn plan(&self, placement: &PlacementRef<'_>) -> Result<PlacementPlan, ConfigErrors> {
        let settings: TaggedSettings = placement.parse_settings()?;
        let target = Target {
            address: settings.tag.clone(),
            host: format!("tagged-{}", settings.tag),
            instances: placement.instances,
        };
        Ok(PlacementPlan::new(vec![target], Prepared::new(settings)))
    }

    async fn spawn(&self, spec: &InstanceSpec) -> Result<Box<dyn Instance>, SpawnError> {
        let tag = spec.settings::<TaggedSettings>()?.tag.clone();
        let mut spec = spec.clone();
        spec.env.insert("EXAMPLE_TAG".into(), tag);
        Ok(Box::new(self.inner.start(&spec)?))
    }
}

fn main() {
    let Some(file) = std::env::args().nth(1) else {
        eprintln!("usage: distarch-custom-transport CONFIG_FILE");
        std::process::exit(2);
    };
    let _ = distarch_transport_local::install_reaper();
    let loaded = match config::load(&config::ConfigSources {
        file: Some(file.into()),
        ignore_env: true,
        ..Default::default()
    }) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mut registry = TransportRegistry::new();
    registry.register(LocalTransport::new());
    registry.register(TaggedLocal {
        inner: LocalTransport::new(),
    });
    let launcher = match Launcher::builder()
        .config(loaded.config.clone())
        .registry(registry)
        .handle_signals(true)
        .build()
    {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{}", loaded.locate(e));
            std::process::exit(2);
        }
    };
    let code = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt
            .block_on(launcher.run(LogWriter::new(std::io::stdout(), LogFormat::Text)))
            .exit_code(),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            70
        }
    };
    std::process::exit(code);
}
