//! The HTTP server's connections are bounded (issue 13, item 8): over real
//! TCP, a client that sends half a request line and stalls is disconnected
//! after the header timeout, an idle kept-alive connection is closed after
//! the idle timeout, a request whose body never completes is answered 408,
//! and beyond the connection bound clients wait (they are not refused) and
//! are served as soon as a slot frees, while `/healthz` keeps answering.
//! The limits are set small so that nothing waits long.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use weir::http::{AppState, Limits, Metrics, Readiness, Secrets};

/// A server on a free port with `limits`; stopped when the token is
/// cancelled.
struct Server {
    addr: String,
    shutdown: CancellationToken,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
    _db: crate::common::Backend,
}

async fn start(limits: Limits) -> Server {
    let db = crate::common::backend(crate::common::TestDb::sqlite()).await;
    let state = AppState {
        store: db.store.clone(),
        metrics: std::sync::Arc::new(Metrics::new()),
        sources: Vec::new(),
        readiness: std::sync::Arc::new(Readiness::new(&[])),
        secrets: Secrets {
            github_webhook_secret: Some(b"hook secret".to_vec()),
            ..Secrets::default()
        },
        max_payload: weir::http::DEFAULT_MAX_PAYLOAD,
        state_dir: None,
        clock: weir::clock::Clock::system(),
        artifacts: None,
        rollback: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let shutdown = CancellationToken::new();
    let served = tokio::spawn(weir::http::server::serve(
        listener,
        weir::http::router(state),
        limits,
        shutdown.clone(),
    ));
    Server {
        addr,
        shutdown,
        served,
        _db: db,
    }
}

impl Server {
    async fn stop(self) {
        self.shutdown.cancel();
        self.served
            .await
            .expect("the server task")
            .expect("a clean stop");
    }
}

/// Reads until the server closes the connection; what it sent. A server
/// that never closes fails the read after the (generous) socket timeout.
fn read_until_closed(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut received = Vec::new();
    match stream.read_to_end(&mut received) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "the server kept the connection open ({e}); got {:?}",
            String::from_utf8_lossy(&received)
        ),
    }
    String::from_utf8_lossy(&received).into_owned()
}

fn limits(header: u64, request: u64, idle: u64, max_connections: usize) -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(header),
        request_timeout: Duration::from_millis(request),
        idle_timeout: Duration::from_millis(idle),
        max_connections,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalling_in_its_request_line_is_disconnected() {
    let server = start(limits(300, 60_000, 60_000, 16)).await;
    let addr = server.addr.clone();
    let received = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&addr).expect("connect");
        stream.write_all(b"GET /heal").expect("half a line");
        read_until_closed(&mut stream)
    })
    .await
    .expect("client");
    assert!(
        !received.contains("200 OK"),
        "no answer to half a request: {received}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed() {
    // The header timeout is long, so only the idle timeout can close it.
    let server = start(limits(60_000, 60_000, 300, 16)).await;
    let addr = server.addr.clone();
    let received = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&addr).expect("connect");
        stream
            .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .expect("request");
        read_until_closed(&mut stream)
    })
    .await
    .expect("client");
    assert!(
        received.starts_with("HTTP/1.1 200 OK"),
        "the request is answered, then the idle connection closed: {received}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_body_never_completes_is_answered_408() {
    let server = start(limits(60_000, 300, 60_000, 16)).await;
    let addr = server.addr.clone();
    let received = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&addr).expect("connect");
        stream
            .write_all(
                format!(
                    "POST /hooks/github HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100\r\n\r\n{{\"ref\":"
                )
                .as_bytes(),
            )
            .expect("a head and part of a body");
        read_until_closed(&mut stream)
    })
    .await
    .expect("client");
    assert!(
        received.starts_with("HTTP/1.1 408"),
        "a slow body times out: {received}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_bound_clients_wait_and_are_served_once_a_slot_frees() {
    let server = start(limits(500, 60_000, 60_000, 2)).await;
    let addr = server.addr.clone();
    let answers = tokio::task::spawn_blocking(move || {
        // Below the bound, /healthz answers beside a stalled client.
        let mut first = TcpStream::connect(&addr).expect("connect");
        first.write_all(b"GET /heal").expect("stall");
        let (status, _) = crate::common::http(&addr, "GET", "/healthz", &[], b"");
        assert_eq!(status, 200, "a free slot answers");
        // Two stalled clients fill the bound; a third waits (its connect
        // succeeds: the kernel queues it) and is answered once the header
        // timeout has closed a stalled one.
        let mut second = TcpStream::connect(&addr).expect("connect");
        second.write_all(b"GET /heal").expect("stall");
        let waited = crate::common::http(&addr, "GET", "/healthz", &[], b"");
        let first_closed = read_until_closed(&mut first);
        let second_closed = read_until_closed(&mut second);
        (waited, first_closed, second_closed)
    })
    .await
    .expect("client");
    let ((status, body), first, second) = answers;
    assert_eq!((status, body.as_str()), (200, "ok"));
    assert!(!first.contains("200") && !second.contains("200"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_connections_and_returns() {
    let server = start(limits(60_000, 60_000, 60_000, 16)).await;
    let addr = server.addr.clone();
    let idle = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(&addr).expect("connect");
        stream
            .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .expect("request");
        let mut first = [0u8; 15];
        stream.read_exact(&mut first).expect("the answer");
        stream
    })
    .await
    .expect("client");
    // Every timeout is a minute: only the shutdown can end it.
    server.stop().await;
    let mut idle = idle;
    let rest = tokio::task::spawn_blocking(move || read_until_closed(&mut idle))
        .await
        .expect("client");
    assert!(!rest.contains("HTTP/1.1"), "{rest}");
}

/// A server on a free port serving a 64 MiB body at `/large` (more than
/// the kernel's socket buffers hold, so a client that does not read it
/// leaves the server waiting to write) and `ok` at `/small`, with a drain
/// bound of `drain_ms`.
async fn start_large(
    limits: Limits,
    drain_ms: u64,
) -> (
    String,
    CancellationToken,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let large = axum::body::Bytes::from(vec![b'x'; 64 << 20]);
    let router = axum::Router::new()
        .route(
            "/large",
            axum::routing::get(move || {
                let large = large.clone();
                async move { large }
            }),
        )
        .route("/small", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let shutdown = CancellationToken::new();
    let served = tokio::spawn(weir::http::server::serve_draining(
        listener,
        router,
        limits,
        Duration::from_millis(drain_ms),
        shutdown.clone(),
    ));
    (addr, shutdown, served)
}

/// Asks for `/large` and never reads the answer; the stream is kept open.
fn request_and_never_read(addr: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .write_all(format!("GET /large HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .expect("request");
    // The first bytes of the answer: the server is writing it, and stays
    // writing, since nothing more is read.
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).expect("the answer starts");
    assert_eq!(&first, b"HTTP/1.1 200", "the large answer");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_response_is_dropped_and_frees_its_slot() {
    // One slot, held by a client that never reads: only the idle timeout
    // and the drain bound can free it for the next client.
    let (addr, shutdown, served) = start_large(limits(60_000, 60_000, 300, 1), 300).await;
    let answered = tokio::task::spawn_blocking(move || {
        let stuck = request_and_never_read(&addr);
        let answered = crate::common::http(&addr, "GET", "/small", &[], b"");
        drop(stuck);
        answered
    });
    // The guard fails the test if the slot is never freed; it is not the
    // bound under test.
    let (status, body) = tokio::time::timeout(Duration::from_secs(60), answered)
        .await
        .expect("the next client is served once the stuck one is dropped")
        .expect("client");
    assert_eq!((status, body.as_str()), (200, "ok"));
    shutdown.cancel();
    served
        .await
        .expect("the server task")
        .expect("a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_with_a_client_that_never_reads_its_response() {
    // Every timeout is a minute: only the drain bound can end the stuck
    // connection.
    let (addr, shutdown, served) = start_large(limits(60_000, 60_000, 60_000, 16), 300).await;
    let stuck = tokio::task::spawn_blocking(move || {
        let stuck = request_and_never_read(&addr);
        // The server is writing the large answer, and answers others.
        let (status, _) = crate::common::http(&addr, "GET", "/small", &[], b"");
        assert_eq!(status, 200);
        stuck
    })
    .await
    .expect("client");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(60), served)
        .await
        .expect("serve returns after the drain bound")
        .expect("the server task")
        .expect("a clean stop");
    drop(stuck);
}
