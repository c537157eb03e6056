//! The Rust SDK's side of bench/sdk.sh: sends `params.frames` log frames with two
//! fields as fast as it can, then ends. With `params.frames` = 0 it measures start
//! time only (hello, ready, ended).

use distarch_worker::Level;
use serde_json::{Map, Value};

fn main() {
    distarch_worker::run(|worker| -> Result<(), String> {
        let frames = worker
            .params_json()
            .get("frames")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        worker.ready();
        for i in 0..frames {
            let mut fields = Map::new();
            fields.insert("i".into(), i.into());
            fields.insert("sdk".into(), "rust".into());
            worker.log(Level::Info, "frame", Some(fields));
        }
        Ok(())
    })
}
