//! The bucket, from `s3://bucket/prefix` and the standard AWS environment:
//! `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`, web identity, ECS and instance
//! credentials (object_store's chain). memguard reads no credential of its
//! own and never prints one.

use std::sync::Arc;
use std::time::Duration;

use memguard_core::upload::{Sse, Target};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as Key;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

use crate::ReportError;

/// The endpoint variables object_store reads, most specific first.
const ENDPOINT_VARS: &[&str] = &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"];

pub struct Bucket {
    pub store: Arc<AmazonS3>,
    pub target: Target,
}

impl Bucket {
    /// The key of `rest` (already '/'-separated key segments) under the prefix.
    pub fn key(&self, rest: &str) -> Key {
        match self.target.prefix.as_str() {
            "" => Key::from(rest),
            prefix => Key::from(format!("{prefix}/{rest}")),
        }
    }

    pub fn url(&self, rest: &str) -> String {
        format!("s3://{}/{}", self.target.bucket, self.key(rest))
    }
}

/// `Err` with the one line to print when the endpoint is plain HTTP without
/// `AWS_ALLOW_HTTP=true`: a heap snapshot holds every secret of the process.
pub fn check_http(vars: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    let Some((name, url)) = ENDPOINT_VARS.iter().find_map(|n| vars(n).map(|v| (*n, v))) else {
        return Ok(());
    };
    let allowed = vars("AWS_ALLOW_HTTP").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if url.trim().to_ascii_lowercase().starts_with("http://") && !allowed {
        return Err(format!(
            "{name}={} is plain HTTP, and a heap snapshot holds every secret of the process: use https://, \
             or set AWS_ALLOW_HTTP=true on a network you trust",
            memguard_core::printable::name(&url)
        ));
    }
    Ok(())
}

/// Opens the bucket (no request is made yet).
pub fn open(target: &Target, sse: &Sse) -> Result<Bucket, ReportError> {
    // reqwest is built without a default TLS provider (no aws-lc-rs: it does not
    // cross-build for arm64 and musl): ring it is.
    let _ = rustls::crypto::ring::default_provider().install_default();
    check_http(&|name| std::env::var(name).ok()).map_err(ReportError::Remote)?;
    let retry = RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            base: 2.0,
        },
        max_retries: 4,
        retry_timeout: Duration::from_secs(60),
    };
    // These options replace those from_env() read: AWS_ALLOW_HTTP goes again
    // (checked above).
    let allow_http =
        std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let client = ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(120));
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&target.bucket)
        .with_retry(retry)
        .with_client_options(client);
    if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
        builder = builder.with_region("us-east-1");
    }
    // The encryption keys are not exported as a type; by name they are.
    let key = |name: &str| {
        name.parse::<AmazonS3ConfigKey>()
            .expect("object_store knows its own key names")
    };
    match sse {
        Sse::Default => {}
        Sse::Aes256 => builder = builder.with_config(key("aws_server_side_encryption"), "AES256"),
        Sse::Kms(id) => {
            builder = builder.with_config(key("aws_server_side_encryption"), "aws:kms");
            if let Some(id) = id {
                builder = builder.with_config(key("aws_sse_kms_key_id"), id);
            }
        }
    }
    let store = builder
        .build()
        .map_err(|e| ReportError::Remote(explain(&e, &target.bucket)))?;
    Ok(Bucket {
        store: Arc::new(store),
        target: target.clone(),
    })
}

/// An object_store error in one line that says what to do: the store's own
/// messages nest a request, a retry count and an XML body.
pub fn explain(e: &object_store::Error, bucket: &str) -> String {
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    let has = |needle: &str| chain.contains(needle);
    if has("NoSuchBucket") || (matches!(e, object_store::Error::NotFound { .. }) && has("bucket")) {
        return format!("bucket {bucket} does not exist (create it, or fix MEMGUARD_UPLOAD)");
    }
    if has("InvalidAccessKeyId")
        || has("SignatureDoesNotMatch")
        || has("403")
        || has("AccessDenied")
        || matches!(
            e,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        )
    {
        return format!(
            "access denied (HTTP 403) to bucket {bucket}: the credentials from the AWS environment are wrong, expired or may not write there"
        );
    }
    if has("error sending request")
        || has("Connection refused")
        || has("dns error")
        || has("timed out")
        || has("connect")
    {
        let endpoint = ENDPOINT_VARS
            .iter()
            .find_map(|n| std::env::var(n).ok())
            .unwrap_or_else(|| "the S3 endpoint".into());
        return format!(
            "cannot reach {} (retried; connection refused, timed out or no such host)",
            memguard_core::printable::name(&endpoint)
        );
    }
    // The store's own message already includes its sources.
    let line = e.to_string();
    memguard_core::printable::printable(line.lines().next().unwrap_or(""), 300).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn plain_http_needs_aws_allow_http() {
        assert!(check_http(&env(&[])).is_ok());
        assert!(check_http(&env(&[("AWS_ENDPOINT_URL", "https://s3.example.com")])).is_ok());
        let err = check_http(&env(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:8333")])).unwrap_err();
        assert!(
            err.starts_with("AWS_ENDPOINT_URL=\"http://127.0.0.1:8333\" is plain HTTP")
                || err.starts_with("AWS_ENDPOINT_URL=http://127.0.0.1:8333 is plain HTTP"),
            "{err}"
        );
        assert!(err.contains("AWS_ALLOW_HTTP=true"), "{err}");
        assert!(check_http(&env(&[
            ("AWS_ENDPOINT_URL", "http://h"),
            ("AWS_ALLOW_HTTP", "true")
        ]))
        .is_ok());
        assert!(check_http(&env(&[
            ("AWS_ENDPOINT", "HTTP://h"),
            ("AWS_ALLOW_HTTP", "1")
        ]))
        .is_err());
    }
}
