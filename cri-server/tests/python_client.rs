//! A real third-party client against the streaming server: the Kubernetes Python client's
//! WebSocket exec (PyPI `kubernetes`, installed by the test command with
//! `pip install kubernetes`). Fails, never skips, when python3 or the module is missing.

mod common;

use common::*;

async fn run_python(script: &str, args: &[String]) -> serde_json::Value {
    let script = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let check = tokio::process::Command::new("python3")
        .args(["-c", "import kubernetes.stream.ws_client"])
        .output()
        .await
        .expect("python3 must be installed for this test");
    assert!(
        check.status.success(),
        "the Python module `kubernetes` is missing; install it with `pip install kubernetes`: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .await
        .expect("run python3");
    assert!(
        out.status.success(),
        "python client failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad output {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubernetes_python_client_exec() {
    let (srv, _) = server().await;

    let url = srv
        .exec_url(exec_req(
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            false,
            false,
        ))
        .unwrap();
    let v = run_python("k8s_exec.py", &[url.to_string(), "exit3".into()]).await;
    assert_eq!(v["stdout"], "out\n", "{v}");
    assert_eq!(v["stderr"], "err\n", "{v}");
    assert_eq!(v["returncode"], 3, "{v}");

    // v5: stdin, then the close signal ends it and `cat` exits.
    let url = srv.exec_url(exec_req(&["cat"], true, false)).unwrap();
    let v = run_python("k8s_exec.py", &[url.to_string(), "stdin-v5".into()]).await;
    assert_eq!(v["stdout"], "hello from python\n", "{v}");
    assert_eq!(v["returncode"], 0, "{v}");

    // v4: no close signal; the command reads one line.
    let url = srv
        .exec_url(exec_req(
            &["sh", "-c", "read l; echo \"got $l\"; exit 0"],
            true,
            false,
        ))
        .unwrap();
    let v = run_python("k8s_exec.py", &[url.to_string(), "stdin-v4".into()]).await;
    assert_eq!(v["stdout"], "got hello from python\n", "{v}");
    assert_eq!(v["returncode"], 0, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubernetes_python_client_port_forward() {
    let (srv, _) = server().await;
    let ports = [echo_server().await, echo_server().await];
    let url = srv
        .port_forward_url(berth_cri::streaming::PortForwardRequest {
            pod_sandbox_id: "pod".into(),
            ports: vec![],
        })
        .unwrap();
    let mut args = vec![url.to_string()];
    args.extend(ports.iter().map(|p| p.to_string()));
    let v = run_python("k8s_portforward.py", &args).await;
    for p in ports {
        let r = &v[p.to_string()];
        assert_eq!(r["echoed"], true, "{v}");
        assert!(r["error"].is_null(), "{v}");
    }
}
