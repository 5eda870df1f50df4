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
