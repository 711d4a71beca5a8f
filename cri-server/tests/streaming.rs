//! End to end: our streaming client against our streaming server, with handlers that run
//! real host processes (pipes and a real pty) and dial real loopback TCP servers.

mod common;

use std::time::Duration;

use berth_cri::streaming::client::{
    self, ClientError, ExecIo, ExecOptions, PortForwarder, Transport, WsPortForwarder,
};
use berth_cri::streaming::remotecommand::{self, Outcome, TermSize};
use berth_cri::streaming::{AttachRequest, Config, PortForwardRequest};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn opts(transport: Transport, protocol: &str, stdin: bool, tty: bool) -> ExecOptions {
    ExecOptions {
        transport,
        protocols: if protocol.is_empty() {
            Vec::new()
        } else {
            vec![protocol.to_string()]
        },
        stdin,
        stdout: true,
        stderr: !tty,
        tty,
    }
}

fn io(stdin: Option<Vec<u8>>, out: &Sink, err: &Sink) -> ExecIo {
    ExecIo {
        stdin: stdin.map(|d| Box::new(std::io::Cursor::new(d)) as _),
        stdout: Some(Box::new(out.clone())),
        stderr: Some(Box::new(err.clone())),
        resize: None,
    }
}

const ALL_TRANSPORTS: &[(Transport, &str)] = &[
    (Transport::Spdy, remotecommand::PROTOCOL_V4),
    (Transport::Spdy, remotecommand::PROTOCOL_V3),
    (Transport::Spdy, remotecommand::PROTOCOL_V2),
    (Transport::Spdy, remotecommand::PROTOCOL_V1),
    (Transport::WebSocket, remotecommand::PROTOCOL_V5),
    (Transport::WebSocket, remotecommand::PROTOCOL_V4),
    (Transport::WebSocket, remotecommand::PROTOCOL_V4_BASE64),
    (Transport::WebSocket, remotecommand::PROTOCOL_V1),
    (Transport::WebSocket, remotecommand::PROTOCOL_BASE64),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_stdout_stderr_and_exit_codes_over_every_protocol() {
    let (srv, _) = server().await;
    for &(t, p) in ALL_TRANSPORTS {
        for code in [0, 3] {
            let script = format!("echo out; echo err >&2; exit {code}");
            let url = srv
                .exec_url(exec_req(&["sh", "-c", &script], false, false))
                .unwrap();
            let (out, err) = (Sink::default(), Sink::default());
            let outcome = client::exec(
                &url.to_string(),
                &opts(t, p, false, false),
                io(None, &out, &err),
            )
            .await
            .unwrap_or_else(|e| panic!("{t:?} {p}: {e}"));
            assert_eq!(outcome, Outcome::Exited(code), "{t:?} {p}");
            assert_eq!(out.take(), b"out\n", "{t:?} {p}");
            assert_eq!(err.take(), b"err\n", "{t:?} {p}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_stdin_large_round_trip() {
    let (srv, _) = server().await;
    let data: Vec<u8> = (0..4_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    // WebSocket v4 has no way to close stdin, so only transports that can end it.
    for (t, p) in [
        (Transport::Spdy, remotecommand::PROTOCOL_V4),
        (Transport::Spdy, remotecommand::PROTOCOL_V2),
        (Transport::WebSocket, remotecommand::PROTOCOL_V5),
    ] {
        let url = srv.exec_url(exec_req(&["cat"], true, false)).unwrap();
        let (out, err) = (Sink::default(), Sink::default());
        let outcome = client::exec(
            &url.to_string(),
            &opts(t, p, true, false),
            io(Some(data.clone()), &out, &err),
        )
        .await
        .unwrap();
        assert_eq!(outcome, Outcome::Exited(0), "{t:?} {p}");
        let got = out.take();
        assert_eq!(got.len(), data.len(), "{t:?} {p}");
        assert!(got == data, "{t:?} {p}: stdout differs from stdin");
    }
    // v4 WebSocket with stdin that the command reads a known amount of.
    let url = srv
        .exec_url(exec_req(&["head", "-c", "5"], true, false))
        .unwrap();
    let (out, err) = (Sink::default(), Sink::default());
    let outcome = client::exec(
        &url.to_string(),
        &opts(
            Transport::WebSocket,
            remotecommand::PROTOCOL_V4,
            true,
            false,
        ),
        io(Some(b"hello world".to_vec()), &out, &err),
    )
    .await
    .unwrap();
    assert_eq!(outcome, Outcome::Exited(0));
    assert_eq!(out.take(), b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_with_tty_and_resize() {
    let (srv, _) = server().await;
    let script = "for i in $(seq 200); do s=$(stty size); [ \"$s\" = '45 123' ] && break; sleep 0.05; done; \
                  [ -t 0 ] && echo tty=yes; echo size=$s; read line; echo got=$line; exit 4";
    for t in [Transport::Spdy, Transport::WebSocket] {
        let url = srv
            .exec_url(exec_req(&["sh", "-c", script], true, true))
            .unwrap();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(TermSize {
            width: 123,
            height: 45,
        })
        .await
        .unwrap();
        let (stdin_r, mut stdin_w) = tokio::io::simplex(1024);
        let out = Sink::default();
        let o = out.clone();
        let p = if t == Transport::Spdy {
            ""
        } else {
            remotecommand::PROTOCOL_V5
        };
        let run = tokio::spawn(async move {
            client::exec(
                &url.to_string(),
                &opts(t, p, true, true),
                ExecIo {
                    stdin: Some(Box::new(stdin_r)),
                    stdout: Some(Box::new(o)),
                    stderr: None,
                    resize: Some(rx),
                },
            )
            .await
        });
        // Wait until the command reports the size, then answer its `read`.
        for _ in 0..400 {
            if String::from_utf8_lossy(&out.0.lock().unwrap()).contains("size=") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        stdin_w.write_all(b"ping\n").await.unwrap();
        let outcome = run.await.unwrap().unwrap();
        drop(tx);
        let text = String::from_utf8_lossy(&out.take()).replace("\r\n", "\n");
        assert_eq!(outcome, Outcome::Exited(4), "{t:?}: {text}");
        assert!(text.contains("tty=yes"), "{t:?}: {text}");
        assert!(text.contains("size=45 123"), "{t:?}: {text}");
        assert!(text.contains("got=ping"), "{t:?}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attach_streams_stdin_to_stdout() {
    let (srv, _) = server().await;
    for t in [Transport::Spdy, Transport::WebSocket] {
        let url = srv
            .attach_url(AttachRequest {
                container_id: "c1".into(),
                tty: false,
                stdin: true,
                stdout: true,
                stderr: true,
            })
            .unwrap();
        let (out, err) = (Sink::default(), Sink::default());
        let p = if t == Transport::Spdy {
            ""
        } else {
            remotecommand::PROTOCOL_V5
        };
        let outcome = client::exec(
            &url.to_string(),
            &opts(t, p, true, false),
            io(Some(b"attached\n".to_vec()), &out, &err),
        )
        .await
        .unwrap();
        assert_eq!(outcome, Outcome::Exited(0), "{t:?}");
        assert_eq!(out.take(), b"attached\n", "{t:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handler_errors_reach_the_error_stream() {
    let (srv, _) = server().await;
    for &(t, p) in ALL_TRANSPORTS {
        let mut req = exec_req(&["true"], false, false);
        req.container_id = "missing".into();
        let url = srv.exec_url(req).unwrap();
        let (out, err) = (Sink::default(), Sink::default());
        let outcome = client::exec(
            &url.to_string(),
            &opts(t, p, false, false),
            io(None, &out, &err),
        )
        .await
        .unwrap();
        assert_eq!(
            outcome,
            Outcome::Error("container missing not found".into()),
            "{t:?} {p}"
        );
        // A command that cannot start.
        let url = srv
            .exec_url(exec_req(&["/nonexistent/binary"], false, false))
            .unwrap();
        let outcome = client::exec(
            &url.to_string(),
            &opts(t, p, false, false),
            io(None, &out, &err),
        )
        .await
        .unwrap();
        assert!(
            matches!(outcome, Outcome::Error(ref m) if m.contains("No such file")),
            "{outcome:?}"
        );
    }
}

fn pattern(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed) % 256) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spdy_port_forward_several_ports_and_connections() {
    let (srv, _) = server().await;
    let ports = [echo_server().await, echo_server().await];
    let url = srv
        .port_forward_url(PortForwardRequest {
            pod_sandbox_id: "pod".into(),
            ports: ports.to_vec(),
        })
        .unwrap();
    let pf = std::sync::Arc::new(PortForwarder::connect(&url.to_string()).await.unwrap());
    let mut tasks = Vec::new();
    for i in 0..6u32 {
        let pf = pf.clone();
        let port = ports[i as usize % 2];
        tasks.push(tokio::spawn(async move {
            let mut s = pf.open(port).await.unwrap();
            let data = pattern(i, if i == 0 { 16 << 20 } else { 1 << 20 });
            let tx = s.data.tx.clone();
            let d = data.clone();
            let w = tokio::spawn(async move {
                tx.send(&d).await.unwrap();
                tx.close().await.unwrap();
            });
            let mut got = Vec::with_capacity(data.len());
            while let Some(c) = s.recv().await {
                got.extend_from_slice(&c);
            }
            w.await.unwrap();
            assert_eq!(got.len(), data.len());
            assert!(got == data, "connection {i} corrupted");
            assert_eq!(s.error().await, "");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // A port nobody listens on: the error stream says so.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut s = pf.open(closed).await.unwrap();
    assert_eq!(s.recv().await, None);
    let e = s.error().await;
    assert!(
        e.contains(&format!("port {closed}")) && e.contains("refused"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn websocket_port_forward_two_ports() {
    let (srv, _) = server().await;
    let ports = [echo_server().await, echo_server().await];
    let url = srv
        .port_forward_url(PortForwardRequest {
            pod_sandbox_id: "pod".into(),
            ports: vec![],
        })
        .unwrap();
    let mut pf = WsPortForwarder::connect(&url.to_string(), &ports)
        .await
        .unwrap();
    for i in 0..2 {
        let mut s = pf.take(i).unwrap();
        let data = pattern(i as u32, 3 << 20);
        let d = data.clone();
        let w = s.writer();
        let (got, sent) = tokio::join!(
            async {
                let mut got = Vec::new();
                while got.len() < data.len() {
                    let Some(c) = s.recv().await.unwrap() else {
                        break;
                    };
                    got.extend_from_slice(&c);
                }
                got
            },
            w.send(&d)
        );
        sent.unwrap();
        assert!(got == data, "port {i}: echo differs");
    }
    pf.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_exec_sessions() {
    let (srv, _) = server().await;
    let srv = std::sync::Arc::new(srv);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let srv = srv.clone();
        tasks.push(tokio::spawn(async move {
            let t = if i % 2 == 0 {
                Transport::Spdy
            } else {
                Transport::WebSocket
            };
            let p = if i % 2 == 0 {
                ""
            } else {
                remotecommand::PROTOCOL_V5
            };
            let url = srv.exec_url(exec_req(&["cat"], true, false)).unwrap();
            let data = pattern(i, 200_000);
            let (out, err) = (Sink::default(), Sink::default());
            let outcome = client::exec(
                &url.to_string(),
                &opts(t, p, true, false),
                io(Some(data.clone()), &out, &err),
            )
            .await
            .unwrap();
            assert_eq!(outcome, Outcome::Exited(0));
            assert!(out.take() == data, "session {i}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn raw_request(addr: std::net::SocketAddr, req: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_tokens_and_requests_are_refused() {
    let (srv, _) = server().await;
    let o = opts(Transport::Spdy, "", false, false);
    let refused = |r: Result<Outcome, ClientError>| match r {
        Err(ClientError::Refused { status, .. }) => status,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let base = format!("http://{}", srv.local_addr());
    // Unknown token.
    let r = client::exec(
        &format!("{base}/exec/AAAAAAAAAAAAAAAAAAAAAA"),
        &o,
        ExecIo::default(),
    )
    .await;
    assert_eq!(refused(r), 404);
    // Reused token.
    let url = srv
        .exec_url(exec_req(&["true"], false, false))
        .unwrap()
        .to_string();
    let (out, err) = (Sink::default(), Sink::default());
    assert_eq!(
        client::exec(&url, &o, io(None, &out, &err)).await.unwrap(),
        Outcome::Exited(0)
    );
    assert_eq!(
        refused(client::exec(&url, &o, ExecIo::default()).await),
        404
    );
    // A token for another kind of request.
    let url = srv
        .exec_url(exec_req(&["true"], false, false))
        .unwrap()
        .to_string();
    let wrong = url.replace("/exec/", "/attach/");
    assert_eq!(
        refused(client::exec(&wrong, &o, ExecIo::default()).await),
        404
    );
    // Over WebSocket too.
    let ws = opts(Transport::WebSocket, "", false, false);
    assert_eq!(
        refused(client::exec(&url, &ws, ExecIo::default()).await),
        404
    );
    // No upgrade headers.
    let url = srv.exec_url(exec_req(&["true"], false, false)).unwrap();
    let resp = raw_request(
        srv.local_addr(),
        &format!("GET {} HTTP/1.1\r\nHost: x\r\n\r\n", url.path()),
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    // A protocol we do not speak.
    let url = srv
        .exec_url(exec_req(&["true"], false, false))
        .unwrap()
        .to_string();
    let mut bad = o.clone();
    bad.protocols = vec!["v9.channel.k8s.io".into()];
    assert_eq!(
        refused(client::exec(&url, &bad, ExecIo::default()).await),
        403
    );
    // Unknown paths and methods.
    let resp = raw_request(srv.local_addr(), "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
    let resp = raw_request(
        srv.local_addr(),
        "DELETE /exec/x HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_token_is_refused() {
    let (srv, _) = server_with(Config {
        token_ttl: Duration::ZERO,
        ..Config::default()
    })
    .await;
    let url = srv
        .exec_url(exec_req(&["true"], false, false))
        .unwrap()
        .to_string();
    let r = client::exec(
        &url,
        &opts(Transport::Spdy, "", false, false),
        ExecIo::default(),
    )
    .await;
    assert!(
        matches!(r, Err(ClientError::Refused { status: 404, .. })),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spdy_client_that_never_opens_streams_times_out() {
    let (srv, _) = server_with(Config {
        stream_creation_timeout: Duration::from_millis(200),
        ..Config::default()
    })
    .await;
    let url = srv
        .exec_url(exec_req(&["true"], false, false))
        .unwrap()
        .to_string();
    let (session, _) = client::connect_spdy(&url, &[remotecommand::PROTOCOL_V4])
        .await
        .unwrap();
    // The server gives up and closes the session.
    tokio::time::timeout(Duration::from_secs(20), session.closed())
        .await
        .expect("server closed the idle session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_use_the_advertised_address() {
    let (srv, _) = server_with(Config {
        advertise: Some("node1.example:10010".into()),
        ..Config::default()
    })
    .await;
    let url = srv.exec_url(exec_req(&["true"], false, false)).unwrap();
    assert_eq!(url.authority().unwrap().as_str(), "node1.example:10010");
    assert!(url.path().starts_with("/exec/"));
    let (bad, _) = server_with(Config {
        advertise: Some("not a host".into()),
        ..Config::default()
    })
    .await;
    assert!(matches!(
        bad.exec_url(exec_req(&["true"], false, false)),
        Err(berth_cri::streaming::UrlError::Advertise(_))
    ));
}
