//! Test fixture: the ferrokube apiserver started inside the test process (embedded
//! store in a temporary directory, HTTPS on a free loopback port), stopped and removed
//! when the fixture is dropped, plus kube-rs clients with its admin credentials or
//! authenticating as any user and groups.
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
    dir: tempfile::TempDir,
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
            dir,
        }
    }

    /// A new client with the admin credentials.
    pub async fn client(&self) -> kube::Client {
        client_for(&self.kubeconfig).await
    }

    /// The apiserver's data directory (the cluster CA is in its `pki`).
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A new client authenticating as `user` in `groups` (and
    /// `system:authenticated`) with a bearer token the apiserver is told about, as
    /// a bootstrap token or any other authenticator would name a user.
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> kube::Client {
        let token = format!("test-token-{}", uuid_like(user));
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        self.running
            .server
            .tokens
            .insert(&token, apiserver::auth::User::authenticated(user, &groups));
        let mut kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        for named in &mut kc.auth_infos {
            named.auth_info = Some(kube::config::AuthInfo {
                token: Some(token.clone().into()),
                ..Default::default()
            });
        }
        let cfg =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .expect("client config");
        kube::Client::try_from(cfg).expect("client")
    }
}

/// A token suffix unique to this process and call.
fn uuid_like(user: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let safe: String = user
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{safe}-{}-{n}", std::process::id())
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
