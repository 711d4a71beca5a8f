"""Drives berth's streaming server with the Kubernetes Python client's WebSocket
port-forward (kubernetes.stream.ws_client.portforward_call, v4 channel framing).

usage: k8s_portforward.py URL PORT...
Sends a pattern through every port (each an echo server) and prints one JSON line.
"""
import faulthandler
import json
import sys

from kubernetes.client import Configuration
from kubernetes.stream.ws_client import portforward_call

faulthandler.dump_traceback_later(15, exit=True)
url, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
conf = Configuration()
conf.host = url.split("/portforward/")[0]
pf = portforward_call(conf, "GET", url + "?ports=" + ",".join(map(str, ports)))
result = {}
for i, port in enumerate(ports):
    data = bytes((j * 7 + i) % 256 for j in range(200_000))
    sock = pf.socket(port)
    sock.setblocking(True)
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    result[str(port)] = {"sent": len(data), "echoed": got == data, "error": pf.error(port)}
pf.close()
print(json.dumps(result))
