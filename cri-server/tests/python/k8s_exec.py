"""Drives berth's streaming server with the Kubernetes Python client's WebSocket exec
client (kubernetes.stream.ws_client.WSClient), as `kubernetes.stream.stream` would.

usage: k8s_exec.py URL MODE   (MODE: exit3 | stdin-v5 | stdin-v4)
Prints one JSON line with what the client saw.
"""
import faulthandler
import json
import sys

from kubernetes.client import Configuration
from kubernetes.stream.ws_client import WSClient, STDIN_CHANNEL, get_websocket_url

faulthandler.dump_traceback_later(90, exit=True)
url, mode = sys.argv[1], sys.argv[2]
conf = Configuration()
conf.host = url.split("/exec/")[0]
headers = None
if mode == "stdin-v4":
    headers = {"sec-websocket-protocol": "v4.channel.k8s.io"}
ws = WSClient(conf, get_websocket_url(url), headers=headers, capture_all=True, binary=False)
if mode.startswith("stdin"):
    ws.write_stdin("hello from python\n")
    if mode == "stdin-v5":
        ws.close_channel(STDIN_CHANNEL)
ws.run_forever(timeout=60)
out = {
    "protocol": ws.subprotocol if hasattr(ws, "subprotocol") else None,
    "stdout": ws.read_stdout(timeout=1) if ws.peek_stdout() else "",
    "stderr": ws.read_stderr(timeout=1) if ws.peek_stderr() else "",
    "returncode": ws.returncode,
    "open": ws.is_open(),
}
print(json.dumps(out))
