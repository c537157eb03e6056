//! Small helpers around engine API calls that several modules share.

use bollard::errors::Error as DockerError;
use bollard::query_parameters::RemoveContainerOptions;
use bollard::Docker;

/// The HTTP status of an engine error, if it is one.
pub(crate) fn status_code(e: &DockerError) -> Option<u16> {
    match e {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The engine's own message of an error, or the error's text.
pub(crate) fn engine_message(e: &DockerError) -> String {
    match e {
        DockerError::DockerResponseServerError { message, .. } => message.trim().to_string(),
        other => other.to_string(),
    }
}

/// Removes a container (and its anonymous volumes), whatever its state.
pub(crate) async fn remove(docker: &Docker, id: &str) -> Result<(), DockerError> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        link: false,
    };
    match docker.remove_container(id, Some(options)).await {
        Err(e) if status_code(&e) == Some(404) => Ok(()),
        // 409: removal already in progress.
        Err(e) if status_code(&e) == Some(409) => Ok(()),
        other => other,
    }
}
