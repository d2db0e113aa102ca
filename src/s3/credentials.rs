//! The credentials a client signs with, watched: when the ones in use expire, and how often
//! loading them failed. The SDK's identity cache asks the provider at the first request and
//! again as the credentials near their expiry, so each load passes through [`Watched`]; an
//! IRSA session whose token file stopped rotating shows here as an expiry coming closer while
//! the failures count up, before S3 refuses anything.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};

/// What loading a client's credentials has shown so far.
#[derive(Debug, Default)]
pub struct CredentialWatch {
    /// When the credentials last loaded expire (None: static keys, or none loaded yet).
    expiry: Mutex<Option<SystemTime>>,
    /// Loads that failed.
    failures: AtomicU64,
}

impl CredentialWatch {
    /// When the credentials in use expire; None for static keys or before the first load.
    pub fn expiry(&self) -> Option<SystemTime> {
        *self.expiry.lock().unwrap()
    }

    /// How many loads failed since the daemon started.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// A credentials provider whose every load is noted in a [`CredentialWatch`].
#[derive(Debug)]
pub struct Watched {
    inner: SharedCredentialsProvider,
    watch: Arc<CredentialWatch>,
}

impl Watched {
    /// `inner`, watched by `watch`.
    pub fn provider(
        inner: SharedCredentialsProvider,
        watch: Arc<CredentialWatch>,
    ) -> SharedCredentialsProvider {
        SharedCredentialsProvider::new(Watched { inner, watch })
    }
}

impl ProvideCredentials for Watched {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let loaded = self.inner.provide_credentials().await;
            match &loaded {
                Ok(c) => *self.watch.expiry.lock().unwrap() = c.expiry(),
                Err(_) => {
                    self.watch.failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            loaded
        })
    }
}
