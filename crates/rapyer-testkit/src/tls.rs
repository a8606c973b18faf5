//! A TLS-terminating proxy in front of a test server, because the pinned redis-server is
//! built without TLS: clients speak `rediss://` to the proxy, which forwards the plain bytes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types};

/// A TLS proxy on a free 127.0.0.1 port, serving a certificate for `127.0.0.1` and
/// `localhost` signed by a certificate authority made when it starts.
///
/// Clients trust [`TlsProxy::ca_pem`] and connect to [`TlsProxy::url`]; every connection is
/// forwarded to the upstream server. The proxy stops when this value is dropped.
#[derive(Debug)]
pub struct TlsProxy {
    url: String,
    ca_pem: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TlsProxy {
    /// Starts a proxy forwarding to the plain TCP server of `upstream_url` (a `redis://` URL).
    pub fn start(upstream_url: &str) -> Result<TlsProxy, String> {
        let upstream = upstream_addr(upstream_url)?;
        let (ca_pem, config) = certificates()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|e| format!("no free port for the TLS proxy: {e}"))?;
        let port = listener
            .local_addr()
            .map_err(|e| format!("no TLS proxy port: {e}"))?
            .port();
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("TLS proxy listener: {e}"))?;
        let (stop, stopped) = oneshot::channel();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| format!("no runtime for the TLS proxy: {e}"))?;
        let thread = std::thread::Builder::new()
            .name("rapyer-tls-proxy".into())
            .spawn(move || runtime.block_on(serve(listener, upstream, acceptor, stopped)))
            .map_err(|e| format!("cannot start the TLS proxy thread: {e}"))?;
        Ok(TlsProxy {
            url: format!("rediss://127.0.0.1:{port}/"),
            ca_pem,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The proxy's URL, `rediss://127.0.0.1:<port>/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The PEM certificate of the authority that signed the proxy's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}

/// A Redis Cluster of three primaries (no replicas) whose clients speak TLS, because the
/// pinned redis-server is built without it: each node has a [`TlsProxy`] and announces the
/// proxy's port (`cluster-announce-port`), so `CLUSTER SLOTS` and redirects name the
/// proxies, while the nodes talk to each other on their plain cluster bus. Replicas would
/// replicate from the port their primary announces, a TLS proxy, so there are none. The
/// nodes stop with this process, the proxies when this value is dropped.
#[derive(Debug)]
pub struct TlsCluster {
    proxies: Vec<TlsProxy>,
    cluster: crate::Cluster,
}

impl TlsCluster {
    /// Starts the three nodes of the cached binaries and their proxies, and returns once the
    /// cluster is `ok`.
    pub fn start() -> Result<TlsCluster, String> {
        let dir = crate::stack_dir();
        let binaries = crate::Binaries::in_dir(&dir).ok_or_else(|| {
            format!(
                "no cached redis-server, rejson.so and redisearch.so in {}. Fix: {}",
                dir.display(),
                crate::HOW_TO_FIX
            )
        })?;
        let mut proxies = Vec::new();
        let cluster = crate::Cluster::start_nodes(&binaries, 3, &mut |port| {
            let proxy = TlsProxy::start(&format!("redis://127.0.0.1:{port}/"))?;
            let public = proxy
                .url()
                .trim_start_matches("rediss://127.0.0.1:")
                .trim_end_matches('/')
                .parse()
                .map_err(|e| format!("the proxy's port: {e}"))?;
            proxies.push(proxy);
            Ok(Some(public))
        })?;
        Ok(TlsCluster { proxies, cluster })
    }

    /// The `rediss://` seed URLs (the proxies).
    pub fn urls(&self) -> Vec<String> {
        self.proxies.iter().map(|p| p.url().to_string()).collect()
    }

    /// The PEM certificate of the authority that signed every proxy's certificate.
    pub fn ca_pem(&self) -> &str {
        self.proxies.first().map_or("", |p| p.ca_pem())
    }

    /// The cluster behind the proxies; its [`urls`](crate::Cluster::urls) are the nodes'
    /// own plain ports, to read back exactly what is stored.
    pub fn plain(&self) -> &crate::Cluster {
        &self.cluster
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts until told to stop; each connection is served on its own task.
async fn serve(
    listener: std::net::TcpListener,
    upstream: SocketAddr,
    acceptor: TlsAcceptor,
    mut stopped: oneshot::Receiver<()>,
) {
    let Ok(listener) = TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((client, _)) = accepted else {
            continue;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            // A failed handshake or a dropped side just ends this one connection.
            let Ok(mut tls) = acceptor.accept(client).await else {
                return;
            };
            let Ok(mut server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
        });
    }
}

/// The process's CA, and a server configuration whose certificate it signed: one for every
/// proxy, so a client trusting it reaches each node of a [`TlsCluster`].
fn certificates() -> Result<(String, rustls::ServerConfig), String> {
    static MADE: std::sync::OnceLock<Result<(String, rustls::ServerConfig), String>> =
        std::sync::OnceLock::new();
    MADE.get_or_init(make_certificates).clone()
}

/// A fresh CA, and a server configuration whose certificate it signed.
fn make_certificates() -> Result<(String, rustls::ServerConfig), String> {
    let fail = |e: rcgen::Error| format!("cannot make the test certificates: {e}");
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "rapyer test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(fail)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(fail)?;

    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .map_err(fail)?;
    leaf.distinguished_name
        .push(DnType::CommonName, "rapyer test server");
    let leaf_key = KeyPair::generate().map_err(fail)?;
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).map_err(fail)?;

    let key = pki_types::PrivateKeyDer::Pkcs8(pki_types::PrivatePkcs8KeyDer::from(
        leaf_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS proxy config: {e}"))?
    .with_no_client_auth()
    .with_single_cert(vec![leaf_cert.der().clone()], key)
    .map_err(|e| format!("TLS proxy certificate: {e}"))?;
    Ok((ca_cert.pem(), config))
}

/// The TCP address of a `redis://` URL.
fn upstream_addr(url: &str) -> Result<SocketAddr, String> {
    let client = redis::Client::open(url).map_err(|e| format!("bad Redis URL {url:?}: {e}"))?;
    match client.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(host, port) => {
            use std::net::ToSocketAddrs;
            (host.as_str(), *port)
                .to_socket_addrs()
                .map_err(|e| format!("cannot resolve {host}:{port}: {e}"))?
                .next()
                .ok_or_else(|| format!("{host}:{port} resolves to nothing"))
        }
        other => Err(format!(
            "the TLS proxy forwards to TCP servers only, not {other:?}"
        )),
    }
}
