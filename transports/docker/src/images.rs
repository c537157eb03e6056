//! Makes sure an engine has a placement's image, per the `pull` policy, once per
//! engine and image for the whole run (fifty instances cause one check, not fifty),
//! and keeps what the run needs to know of it.

use crate::api::{engine_message, status_code};
use crate::engine::EngineAddress;
use crate::settings::PullPolicy;
use bollard::models::ImageInspect;
use bollard::query_parameters::CreateImageOptions;
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// One engine and one image name.
type ImageKey = (EngineAddress, String);

/// What a run knows of an image on one engine.
#[derive(Debug, Default)]
pub(crate) struct ImageFacts {
    /// The image's own ENTRYPOINT.
    pub(crate) entrypoint: Vec<String>,
    /// The image's own CMD.
    pub(crate) cmd: Vec<String>,
    /// Whether the image has the shell the stdin watcher needs (found out with the
    /// first container that wants it).
    pub(crate) shell: OnceCell<bool>,
}

/// Images known to be present, by engine and image name.
#[derive(Default)]
pub(crate) struct Images {
    ready: Mutex<HashMap<ImageKey, Arc<OnceCell<Arc<ImageFacts>>>>>,
}

impl Images {
    /// Checks (and pulls, when the policy says so) `image` on the engine; the error
    /// is one line of words. A failure is not remembered.
    pub(crate) async fn ensure(
        &self,
        docker: &Docker,
        engine: &EngineAddress,
        image: &str,
        pull: PullPolicy,
    ) -> Result<Arc<ImageFacts>, String> {
        let cell = {
            let mut map = self.ready.lock().unwrap_or_else(|p| p.into_inner());
            map.entry((engine.clone(), image.to_string()))
                .or_default()
                .clone()
        };
        cell.get_or_try_init(|| async {
            let info = check(docker, engine, image, pull).await?;
            let info = match info {
                Some(info) => info,
                None => inspect(docker, engine, image).await?,
            };
            let config = info.config.unwrap_or_default();
            Ok(Arc::new(ImageFacts {
                entrypoint: config.entrypoint.unwrap_or_default(),
                cmd: config.cmd.unwrap_or_default(),
                shell: OnceCell::new(),
            }))
        })
        .await
        .cloned()
    }
}

/// Applies the pull policy; returns the image's description when looking it up
/// was part of that.
async fn check(
    docker: &Docker,
    engine: &EngineAddress,
    image: &str,
    pull: PullPolicy,
) -> Result<Option<ImageInspect>, String> {
    if pull == PullPolicy::Always {
        return fetch(docker, engine, image).await.map(|()| None);
    }
    match docker.inspect_image(image).await {
        Ok(info) => Ok(Some(info)),
        Err(e) if status_code(&e) == Some(404) => match pull {
            PullPolicy::Never => Err(format!(
                "image `{image}` is not on the docker engine at {engine} (pull = \"never\")"
            )),
            _ => fetch(docker, engine, image).await.map(|()| None),
        },
        Err(e) => Err(format!(
            "cannot look up image `{image}` on the docker engine at {engine}: {}",
            engine_message(&e)
        )),
    }
}

/// Looks the image up.
async fn inspect(
    docker: &Docker,
    engine: &EngineAddress,
    image: &str,
) -> Result<ImageInspect, String> {
    docker.inspect_image(image).await.map_err(|e| {
        format!(
            "cannot look up image `{image}` on the docker engine at {engine}: {}",
            engine_message(&e)
        )
    })
}

/// Pulls `image` (`name[:tag]`, default tag `latest`).
async fn fetch(docker: &Docker, engine: &EngineAddress, image: &str) -> Result<(), String> {
    let (name, tag) = split_tag(image);
    let options = CreateImageOptions {
        from_image: Some(name.to_string()),
        tag: (!tag.is_empty()).then(|| tag.to_string()),
        ..Default::default()
    };
    let fail = |why: String| {
        format!("cannot pull image `{image}` onto the docker engine at {engine}: {why}")
    };
    let mut progress = docker.create_image(Some(options), None, None);
    while let Some(item) = progress.next().await {
        match item {
            Ok(info) => {
                if let Some(detail) = info.error_detail {
                    return Err(fail(detail.message.unwrap_or_default()));
                }
            }
            Err(e) => return Err(fail(engine_message(&e))),
        }
    }
    Ok(())
}

/// `repo/name:tag` → (`repo/name`, `tag`); a digest (`@sha256:...`) stays whole.
fn split_tag(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::split_tag;

    #[test]
    fn tags() {
        assert_eq!(split_tag("busybox"), ("busybox", "latest"));
        assert_eq!(split_tag("busybox:1.36"), ("busybox", "1.36"));
        assert_eq!(split_tag("reg:5000/a/b"), ("reg:5000/a/b", "latest"));
        assert_eq!(split_tag("reg:5000/a/b:v1"), ("reg:5000/a/b", "v1"));
    }
}
