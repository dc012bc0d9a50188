//! Test fixture: the ferrokube apiserver started inside the test process (embedded
//! store in a temporary directory, HTTPS on a free loopback port), stopped and removed
//! when the fixture is dropped, plus kube-rs clients with its admin credentials.
//!
//! Components under test (scheduler, controllers, simulated nodes) talk to it over
//! HTTP exactly as they would to any apiserver. [`wait`] has the polling and event
//! helpers their tests share.

pub mod wait;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A running in-process apiserver.
pub struct TestApi {
    running: apiserver::Running,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestApi {
    /// Starts an apiserver and waits until it is ready. Must run inside a tokio
    /// runtime (multi-threaded, so that the server keeps serving while the test
    /// blocks on a request).
    pub async fn start() -> TestApi {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = store::EmbeddedStore::open(&dir.path().join("db"), Default::default())
            .expect("embedded store");
        let mut config = apiserver::Config::new(dir.path().to_path_buf());
        config.bind_address = [127, 0, 0, 1].into();
        config.secure_port = testenv::free_port();
        // No controller manager makes default ServiceAccounts here, so pods are not
        // held to them (as envtest setups disable the plugin).
        config.disable_admission_plugins = vec!["ServiceAccount".into()];
        let running = apiserver::start(config, Arc::new(db))
            .await
            .expect("apiserver starts");
        assert!(
            running.wait_ready(Duration::from_secs(30)).await,
            "apiserver ready"
        );
        TestApi {
            kubeconfig: running.kubeconfig.clone(),
            running,
            _dir: dir,
        }
    }

    /// A new client with the admin credentials.
    pub async fn client(&self) -> kube::Client {
        client_for(&self.kubeconfig).await
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        self.running.stop();
    }
}

/// A kube-rs client from a kubeconfig file.
pub async fn client_for(kubeconfig: &std::path::Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("client config");
    kube::Client::try_from(cfg).expect("client")
}
