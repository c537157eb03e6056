//! `distarch-transport-rlocal`: the local transport (processes in their own process
//! groups, cgroups and limits as configured) as a plugin, served by the
//! `distarch-plugin` crate. It proves the Rust side of the plugin protocol; a real
//! plugin wraps a transport of its own the same way.

fn main() {
    std::process::exit(distarch_plugin::run(
        "rlocal",
        distarch_transport_local::LocalTransport::new(),
    ));
}
