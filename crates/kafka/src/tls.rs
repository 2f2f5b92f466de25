//! The rustls client configuration, always on the ring provider: rskafka is built on ring,
//! and naming the provider explicitly keeps a second one from being picked at run time.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::config::TlsSettings;
use crate::error::TlsError;

/// A [`TlsError::File`] for `path`.
fn bad(what: &'static str, path: &Path) -> impl FnOnce(rustls::pki_types::pem::Error) -> TlsError {
    let path = path.to_path_buf();
    move |e| TlsError::File {
        what,
        path,
        reason: e.to_string(),
    }
}

/// Builds the client configuration, or says which file or setting is wrong.
pub(crate) fn client_config(tls: &TlsSettings) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path).map_err(bad("CA file", path))? {
                let cert = cert.map_err(bad("CA file", path))?;
                roots.add(cert).map_err(|e| TlsError::File {
                    what: "CA file",
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            }
            if roots.is_empty() {
                return Err(TlsError::NoCertificate { path: path.clone() });
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match &tls.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(bad("client certificate", cert))?
                .collect::<Result<_, _>>()
                .map_err(bad("client certificate", cert))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(bad("client key", key))?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_is_a_clear_error() {
        let tls = TlsSettings {
            ca_file: Some("/nonexistent/ca.pem".into()),
            client_cert: None,
        };
        let err = client_config(&tls).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn without_a_ca_file_the_public_roots_are_trusted() {
        assert!(client_config(&TlsSettings::default()).is_ok());
    }
}
