//! The server's TLS certificate: the configured one, or a self-signed one that is
//! generated once into `data_dir/tls/` so STARTTLS works out of the box.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::config::Config;

/// Where the certificate and key live.
#[derive(Debug, Clone, PartialEq)]
pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// True when we generated it (the console warns about self-signed certificates).
    pub self_signed: bool,
}

/// Returns the configured certificate (checking that it is readable), or makes
/// sure the self-signed default exists.
pub fn ensure_certificate(config: &Config) -> Result<CertPaths> {
    if let (Some(cert), Some(key)) = (&config.tls.cert, &config.tls.key) {
        for (what, p) in [("tls.cert", cert), ("tls.key", key)] {
            std::fs::File::open(p)
                .with_context(|| format!("cannot read {what} file {}", p.display()))?;
        }
        return Ok(CertPaths {
            cert: cert.clone(),
            key: key.clone(),
            self_signed: false,
        });
    }
    let dir = config.data_dir.join("tls");
    let paths = CertPaths {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        self_signed: true,
    };
    if !paths.cert.exists() || !paths.key.exists() {
        generate_self_signed(&config.hostname, &dir, &paths)?;
    }
    Ok(paths)
}

fn generate_self_signed(hostname: &str, dir: &Path, paths: &CertPaths) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let names = vec![hostname.to_string(), "localhost".to_string()];
    let certified = rcgen::generate_simple_self_signed(names)
        .context("cannot generate a self-signed certificate")?;
    crate::app::write_private_file(&paths.key, certified.key_pair.serialize_pem().as_bytes())?;
    crate::app::write_file_durably(&paths.cert, certified.cert.pem().as_bytes(), 0o644)?;
    tracing::info!(cert = %paths.cert.display(), %hostname, "generated a self-signed TLS certificate");
    Ok(())
}

/// The rustls server configuration for STARTTLS and implicit TLS (ring provider;
/// TLS 1.2 and 1.3).
pub fn server_config(paths: &CertPaths) -> Result<std::sync::Arc<rustls::ServerConfig>> {
    let cert_pem = std::fs::read(&paths.cert)
        .with_context(|| format!("cannot read {}", paths.cert.display()))?;
    let key_pem = std::fs::read(&paths.key)
        .with_context(|| format!("cannot read {}", paths.key.display()))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} holds no valid PEM certificate", paths.cert.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{} holds no certificate",
        paths.cert.display()
    );
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .with_context(|| format!("{} holds no valid PEM key", paths.key.display()))?
        .with_context(|| format!("{} holds no private key", paths.key.display()))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not match")?;
    Ok(std::sync::Arc::new(config))
}
