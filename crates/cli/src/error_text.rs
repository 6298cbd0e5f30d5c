//! An error as a user reads it: kube-client shows an API error as `ApiError: MESSAGE: REASON
//! (Status { status: Some(Failure), code: 404, ... })`, a Rust debug dump; the API server's own
//! words (`MESSAGE (REASON)`, as kubectl's "Error from server (REASON): MESSAGE") replace it.

use std::error::Error as StdError;

/// The Display of `error`, with every API error of its source chain shown by its Status message
/// and reason instead of kube-client's text.
pub fn user_text(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = current {
        // thiserror hands out a boxed source as the Box itself.
        let api = e
            .downcast_ref::<kube::Error>()
            .or_else(|| e.downcast_ref::<Box<kube::Error>>().map(|b| &**b));
        if let Some(kube_error @ kube::Error::Api(status)) = api {
            let clean = if status.reason.is_empty() {
                status.message.clone()
            } else {
                format!("{} ({})", status.message, status.reason)
            };
            text = text.replace(&kube_error.to_string(), &clean);
        }
        current = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("applying Deployment web: {source}")]
    struct Applying {
        source: Box<kube::Error>,
    }

    #[derive(Debug, thiserror::Error)]
    #[error(transparent)]
    struct Outer(#[from] Applying);

    #[test]
    fn an_api_error_is_shown_by_its_status_message_not_a_debug_dump() {
        let status = kube::core::Status::failure(
            "deployments.apps \"web\" is forbidden: namespace demo is being terminated",
            "Forbidden",
        )
        .with_code(403);
        let error = Outer(Applying {
            source: Box::new(kube::Error::Api(status.boxed())),
        });
        assert!(
            error.to_string().contains("Status {"),
            "kube-client's text: {error}"
        );
        assert_eq!(
            user_text(&error),
            "applying Deployment web: deployments.apps \"web\" is forbidden: namespace demo is being terminated (Forbidden)"
        );
    }

    #[test]
    fn other_errors_are_shown_as_they_are() {
        let error = std::io::Error::other("disk full");
        assert_eq!(user_text(&error), "disk full");
    }
}
