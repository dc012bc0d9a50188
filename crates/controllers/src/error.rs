//! The error type of the controller manager and its controllers.

use kube::core::Status;

/// Why a controller operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The API server answered with a failure status; displays its message, as
    /// client-go's StatusError does.
    #[error("{}", .0.message)]
    Api(Box<Status>),
    /// The request failed before the API server answered.
    #[error("{0}")]
    Client(#[source] kube::Error),
    /// Several failures; displayed as upstream's aggregate errors are.
    #[error("{}", aggregate_message(.0))]
    Aggregate(Vec<ControllerError>),
    /// Invalid controller-manager configuration.
    #[error("{0}")]
    Config(String),
    /// Any other failure.
    #[error("{0}")]
    Other(String),
}

fn aggregate_message(errs: &[ControllerError]) -> String {
    match errs {
        [] => String::new(),
        [one] => one.to_string(),
        many => {
            let parts: Vec<String> = many.iter().map(ToString::to_string).collect();
            format!("[{}]", parts.join(", "))
        }
    }
}

impl From<kube::Error> for ControllerError {
    fn from(err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) => ControllerError::Api(status),
            other => ControllerError::Client(other),
        }
    }
}

impl ControllerError {
    /// Combines errors: `None` if there are none, the error itself if there is one.
    pub fn aggregate(mut errs: Vec<ControllerError>) -> Option<ControllerError> {
        match errs.len() {
            0 => None,
            1 => errs.pop(),
            _ => Some(ControllerError::Aggregate(errs)),
        }
    }

    /// The HTTP status code of an API failure.
    pub fn code(&self) -> Option<u16> {
        match self {
            ControllerError::Api(s) => Some(s.code),
            _ => None,
        }
    }

    /// 404 Not Found.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    /// 409 Conflict with reason AlreadyExists.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, ControllerError::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
    }

    /// 409 Conflict (a stale resourceVersion).
    pub fn is_conflict(&self) -> bool {
        matches!(self, ControllerError::Api(s) if s.code == 409 && s.reason != "AlreadyExists")
    }

    /// 422 Invalid.
    pub fn is_invalid(&self) -> bool {
        self.code() == Some(422)
    }

    /// Whether an API failure lists a cause of type `cause` (e.g.
    /// `NamespaceTerminating`).
    pub fn has_status_cause(&self, cause: &str) -> bool {
        match self {
            ControllerError::Api(s) => s
                .details
                .as_ref()
                .is_some_and(|d| d.causes.iter().any(|c| c.reason == cause)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, reason: &str, message: &str) -> ControllerError {
        ControllerError::Api(Box::new(Status {
            code,
            reason: reason.into(),
            message: message.into(),
            ..Status::failure(message, reason)
        }))
    }

    #[test]
    fn displays_like_upstream() {
        let e = api(403, "Forbidden", "pods \"x\" is forbidden: exceeded quota");
        assert_eq!(e.to_string(), "pods \"x\" is forbidden: exceeded quota");
        let agg = ControllerError::aggregate(vec![
            ControllerError::Other("a".into()),
            ControllerError::Other("b".into()),
        ])
        .unwrap();
        assert_eq!(agg.to_string(), "[a, b]");
        let one = ControllerError::aggregate(vec![ControllerError::Other("a".into())]).unwrap();
        assert_eq!(one.to_string(), "a");
        assert!(ControllerError::aggregate(vec![]).is_none());
    }

    #[test]
    fn classifies() {
        assert!(api(404, "NotFound", "gone").is_not_found());
        assert!(api(409, "AlreadyExists", "x").is_already_exists());
        assert!(!api(409, "AlreadyExists", "x").is_conflict());
        assert!(api(409, "Conflict", "x").is_conflict());
        assert!(api(422, "Invalid", "x").is_invalid());
    }
}
