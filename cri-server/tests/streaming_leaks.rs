//! Clients that vanish mid-stream: the handler's process is killed, and no task or file
//! descriptor outlives the session (counted before and after). One test per binary so
//! the counts are not disturbed by other tests.

mod common;

use std::time::Duration;

use berth_cri::streaming::PortForwardRequest;
use berth_cri::streaming::channel::WsMux;
use berth_cri::streaming::client::{self, ExecIo, ExecOptions, PortForwarder, Transport};
use berth_cri::streaming::remotecommand::{self, Outcome};
use berth_cri::streaming::spdy::Headers;
use common::*;

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

async fn wait_new_pid(exec: &HostExec, before: usize) -> u32 {
    for _ in 0..400 {
        if let Some(&pid) = exec.pids.lock().unwrap().get(before) {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the handler never started its process");
}

async fn wait_dead(pid: u32) {
    for _ in 0..400 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("process {pid} outlived its session");
}

/// Polls until `f() <= want`; returns the last value.
async fn settle(f: impl Fn() -> usize, want: usize) -> usize {
    let mut v = f();
    for _ in 0..400 {
        v = f();
        if v <= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    v
}

fn hdr(kind: &str) -> Headers {
    vec![("streamtype".into(), kind.into())]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_clients_leave_no_process_task_or_fd() {
    let (srv, exec) = server().await;
    let echo = echo_server().await;

    // Warm up every path once so lazily created state exists before counting.
    let url = srv.exec_url(exec_req(&["true"], false, false)).unwrap();
    let o = ExecOptions {
        transport: Transport::Spdy,
        protocols: vec![],
        stdin: false,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let r = client::exec(&url.to_string(), &o, ExecIo::default())
        .await
        .unwrap();
    assert_eq!(r, Outcome::Exited(0));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fds0 = fd_count();
    let tasks0 = alive_tasks();

    for round in 0..3 {
        // SPDY exec: streams open, command running, then the TCP connection drops.
        let before = exec.pids.lock().unwrap().len();
        let url = srv
            .exec_url(exec_req(&["sleep", "1000"], false, false))
            .unwrap();
        let (session, _) = client::connect_spdy(&url.to_string(), &[remotecommand::PROTOCOL_V4])
            .await
            .unwrap();
        let _e = session.open(hdr("error"), false).await.unwrap();
        let _o = session.open(hdr("stdout"), false).await.unwrap();
        let _s = session.open(hdr("stderr"), false).await.unwrap();
        let pid = wait_new_pid(&exec, before).await;
        assert!(alive(pid));
        drop((_e, _o, _s));
        drop(session);
        wait_dead(pid).await;

        // WebSocket exec, same.
        let before = exec.pids.lock().unwrap().len();
        let url = srv
            .exec_url(exec_req(&["sleep", "1000"], true, false))
            .unwrap();
        let (ws, _) = client::connect_ws(&url.to_string(), &[remotecommand::PROTOCOL_V5])
            .await
            .unwrap();
        let mux = WsMux::start(ws, &[1, 2, 3], false);
        let pid = wait_new_pid(&exec, before).await;
        drop(mux);
        wait_dead(pid).await;

        // Port-forward mid-transfer.
        let url = srv
            .port_forward_url(PortForwardRequest {
                pod_sandbox_id: "pod".into(),
                ports: vec![echo],
            })
            .unwrap();
        let pf = PortForwarder::connect(&url.to_string()).await.unwrap();
        let mut s = pf.open(echo).await.unwrap();
        s.send(&vec![7u8; 1 << 20]).await.unwrap();
        assert!(s.recv().await.is_some(), "round {round}: echo answered");
        drop(s);
        drop(pf);
    }

    let fds = settle(fd_count, fds0).await;
    assert!(
        fds <= fds0,
        "file descriptors leaked: {fds0} before, {fds} after"
    );
    let tasks = settle(alive_tasks, tasks0).await;
    assert!(
        tasks <= tasks0,
        "tasks leaked: {tasks0} before, {tasks} after"
    );
}
