//! Turning kube errors into one-line user errors that say what and where: the
//! cluster is unreachable, the namespace is missing, RBAC forbids a verb on a
//! resource.

use distarch_core::{InstanceError, SpawnError};

/// One API call, for messages: `create` on `pods` in namespace `ns` of `server`.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The RBAC verb (`create`, `get`, `watch`, `delete`; `get` on `pods/attach`, a WebSocket GET).
    pub verb: &'a str,
    /// The resource (`pods`, `pods/attach`, `pods/log`, `configmaps`).
    pub resource: &'a str,
    /// The namespace.
    pub namespace: &'a str,
    /// The API server URL.
    pub server: &'a str,
}

/// The text of a failed call.
pub fn describe(call: Call<'_>, error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => match status.code {
            403 => format!(
                "forbidden: the Kubernetes account may not {} {} in namespace {:?} of {} (grant RBAC verb {:?} on resource {:?}): {}",
                call.verb, call.resource, call.namespace, call.server, call.verb, call.resource, status.message
            ),
            401 => format!(
                "unauthorized: {} rejected the credentials of the kubeconfig: {}",
                call.server, status.message
            ),
            404 if status
                .details
                .as_ref()
                .is_some_and(|d| d.kind == "namespaces") =>
            {
                format!(
                    "namespace {:?} does not exist on {}",
                    call.namespace, call.server
                )
            }
            code => format!(
                "cannot {} {} in namespace {:?} of {}: {} ({code} {})",
                call.verb, call.resource, call.namespace, call.server, status.message, status.reason
            ),
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) => format!(
            "cannot reach the Kubernetes API server {} (to {} {} in namespace {:?})",
            call.server, call.verb, call.resource, call.namespace
        ),
        _ => format!(
            "cannot {} {} in namespace {:?} of {}",
            call.verb, call.resource, call.namespace, call.server
        ),
    }
}

/// A spawn error for a failed call.
pub fn spawn_error(call: Call<'_>, error: kube::Error) -> SpawnError {
    let message = describe(call, &error);
    if matches!(error, kube::Error::Api(_)) {
        // The Status message is already in the text.
        SpawnError::new(message)
    } else {
        SpawnError::with_source(message, error)
    }
}

/// An instance error for a failed call.
pub fn instance_error(call: Call<'_>, error: kube::Error) -> InstanceError {
    let message = describe(call, &error);
    if matches!(error, kube::Error::Api(_)) {
        InstanceError::new(message)
    } else {
        InstanceError::with_source(message, error)
    }
}

/// True for a 404 answer.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == 404)
}

/// True for a 409 AlreadyExists answer.
pub fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(s) if s.code == 409)
}
