//! kubectl's exec credential plugin protocol (client.authentication.k8s.io): which apiVersion
//! kubectl asks for, and the ExecCredential authdeck answers with (KUBE-1, KUBE-2).

use crate::app::timefmt::rfc3339_utc;
use crate::secret::AnyToken;
use serde::Deserialize;
use thiserror::Error;

/// The API versions of ExecCredential that authdeck speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    /// `client.authentication.k8s.io/v1` (Kubernetes ≥ 1.22).
    V1,
    /// `client.authentication.k8s.io/v1beta1`.
    V1beta1,
}

impl ApiVersion {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => "client.authentication.k8s.io/v1",
            ApiVersion::V1beta1 => "client.authentication.k8s.io/v1beta1",
        }
    }
}

/// Why `KUBERNETES_EXEC_INFO` could not be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ExecInfoError {
    /// Not the JSON kubectl sends.
    #[error("KUBERNETES_EXEC_INFO is not an ExecCredential object")]
    Malformed,
    /// An apiVersion authdeck does not speak (v1alpha1 was removed in Kubernetes 1.24).
    #[error("kubectl asked for ExecCredential {0}; authdeck speaks v1 and v1beta1")]
    Unsupported(String),
}

#[derive(Deserialize)]
struct ExecInfo {
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
}

/// The apiVersion to answer in: the one in `KUBERNETES_EXEC_INFO`, else v1 (KUBE-1). kubectl
/// sets the variable for every plugin run; its absence means a caller other than kubectl.
pub fn requested_version(exec_info: Option<&str>) -> Result<ApiVersion, ExecInfoError> {
    let Some(text) = exec_info.filter(|t| !t.trim().is_empty()) else {
        return Ok(ApiVersion::V1);
    };
    if text.len() > 64 * 1024 {
        return Err(ExecInfoError::Malformed);
    }
    let info: ExecInfo = serde_json::from_str(text).map_err(|_| ExecInfoError::Malformed)?;
    match info.api_version.as_deref() {
        None => Ok(ApiVersion::V1),
        Some("client.authentication.k8s.io/v1") => Ok(ApiVersion::V1),
        Some("client.authentication.k8s.io/v1beta1") => Ok(ApiVersion::V1beta1),
        Some(other) => Err(ExecInfoError::Unsupported(
            other
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(80)
                .collect(),
        )),
    }
}

/// The ExecCredential JSON for `token`, expiring at `expires_at` (epoch seconds). Without an
/// expiry kubectl caches the token for the process only, so the field is left out then.
pub fn exec_credential(version: ApiVersion, token: &AnyToken, expires_at: Option<i64>) -> String {
    let mut status = serde_json::Map::new();
    status.insert("token".into(), token.secret().into());
    if let Some(t) = expires_at {
        status.insert("expirationTimestamp".into(), rfc3339_utc(t).into());
    }
    let value = serde_json::json!({
        "apiVersion": version.as_str(),
        "kind": "ExecCredential",
        "status": status,
    });
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_exec_info() {
        assert_eq!(requested_version(None), Ok(ApiVersion::V1));
        let v1b = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false}}"#;
        assert_eq!(requested_version(Some(v1b)), Ok(ApiVersion::V1beta1));
        let v1 = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":true}}"#;
        assert_eq!(requested_version(Some(v1)), Ok(ApiVersion::V1));
        assert_eq!(requested_version(Some("{")), Err(ExecInfoError::Malformed));
        let old = r#"{"apiVersion":"client.authentication.k8s.io/v1alpha1"}"#;
        assert!(matches!(
            requested_version(Some(old)),
            Err(ExecInfoError::Unsupported(v)) if v.ends_with("v1alpha1")
        ));
    }

    #[test]
    fn credential_json() {
        let t = AnyToken::new("eyJ.tok");
        let out = exec_credential(ApiVersion::V1, &t, Some(1_795_000_000));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["apiVersion"], "client.authentication.k8s.io/v1");
        assert_eq!(v["kind"], "ExecCredential");
        assert_eq!(v["status"]["token"], "eyJ.tok");
        assert_eq!(v["status"]["expirationTimestamp"], "2026-11-18T11:06:40Z");
        let out = exec_credential(ApiVersion::V1beta1, &t, None);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(v["status"].get("expirationTimestamp").is_none());
    }
}
