#!/bin/sh
# Local registries for berth's tests (Debian's docker-registry on 127.0.0.1).
#
#   eval "$(scripts/registry.sh start)"   # starts both registries, prints export lines:
#       BERTH_TEST_REGISTRY=127.0.0.1:PORT       open registry (no auth)
#       BERTH_TEST_AUTH_REGISTRY=127.0.0.1:PORT  registry requiring bearer tokens
#       BERTH_TEST_AUTH_CREDS=user:password      credentials the token server accepts
#       BERTH_TEST_AUTH_REFRESH_TOKEN=TOKEN      OAuth2 refresh (identity) token it accepts
#       BERTH_TEST_BASIC_REGISTRY=127.0.0.1:PORT basic auth (htpasswd), same storage as the open one
#       BERTH_TEST_BASIC_CREDS=user:password     its credentials
#       BERTH_TEST_TLS_REGISTRY=127.0.0.1:PORT   HTTPS, same storage as the open registry
#       BERTH_TEST_TLS_CA=FILE                   the CA that signed its certificate
#       BERTH_TEST_REGISTRY_DIR=DIR              state (configs, storage, pid files, logs)
#   scripts/registry.sh stop "$BERTH_TEST_REGISTRY_DIR"
#
# The token server is `berth-conformance images token-server`; set BERTH_CONFORMANCE to its
# binary, else ${CARGO_TARGET_DIR:-target}/debug/berth-conformance is used. Needs openssl
# (to make the token signing key and certificate) and python3 (to pick free ports).
set -eu

REGISTRY_BIN=${REGISTRY_BIN:-/usr/bin/docker-registry}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() { # url expected-codes
    i=0
    while [ $i -lt 100 ]; do
        code=$(python3 - "$1" <<'PY' 2>/dev/null || true
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=1).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print(0)
PY
)
        case " $2 " in *" $code "*) return 0 ;; esac
        i=$((i + 1))
        sleep 0.1
    done
    echo "registry.sh: $1 did not answer ($2) in time" >&2
    return 1
}

wait_tls() { # host:port ca-file
    i=0
    while [ $i -lt 100 ]; do
        if python3 - "$1" "$2" <<'PY' 2>/dev/null; then
import sys, ssl, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2])
urllib.request.urlopen("https://" + sys.argv[1] + "/v2/", timeout=1, context=ctx)
PY
            return 0
        fi
        i=$((i + 1))
        sleep 0.1
    done
    echo "registry.sh: https://$1/v2/ did not answer in time" >&2
    return 1
}

start() {
    [ -x "$REGISTRY_BIN" ] || { echo "registry.sh: $REGISTRY_BIN missing (apt-get install docker-registry)" >&2; exit 1; }
    conf=${BERTH_CONFORMANCE:-${CARGO_TARGET_DIR:-target}/debug/berth-conformance}
    [ -x "$conf" ] || { echo "registry.sh: $conf missing (cargo build -p berth-conformance or set BERTH_CONFORMANCE)" >&2; exit 1; }
    dir=$(mktemp -d /tmp/berth-registry.XXXXXX)
    port=$(free_port)
    aport=$(free_port)
    tport=$(free_port)
    sport=$(free_port)
    bport=$(free_port)
    bcreds="berth-basic:basic-secret"
    creds="berth:berth-secret"
    mkdir -p "$dir/open" "$dir/auth"

    cat >"$dir/open.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/open
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YML
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/token.key" 2>/dev/null
    openssl req -x509 -new -key "$dir/token.key" -subj /CN=berth-test-token -days 3650 \
        -out "$dir/token.crt" 2>/dev/null
    cat >"$dir/auth.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/auth
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$aport
auth:
  token:
    realm: http://127.0.0.1:$tport/token
    service: berth-test-registry
    issuer: berth-test-issuer
    rootcertbundle: $dir/token.crt
YML
    # HTTPS registry serving the open registry's storage, with a certificate for
    # 127.0.0.1 signed by a throwaway CA.
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" -subj /CN=berth-test-ca -days 3650 2>/dev/null
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -keyout "$dir/tls.key" -out "$dir/tls.csr" -subj /CN=127.0.0.1 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$dir/tls.ext"
    openssl x509 -req -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -out "$dir/tls.crt" -days 3650 -extfile "$dir/tls.ext" 2>/dev/null
    cat >"$dir/tls.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/open
http:
  addr: 127.0.0.1:$sport
  tls:
    certificate: $dir/tls.crt
    key: $dir/tls.key
YML
    "$REGISTRY_BIN" serve "$dir/tls.yml" >"$dir/tls.log" 2>&1 &
    echo $! >"$dir/tls.pid"
    # Basic-auth registry (bcrypt htpasswd) over the open registry's storage.
    python3 -c 'import crypt, sys; print(sys.argv[1] + ":" + crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH)))' \
        "${bcreds%%:*}" "${bcreds#*:}" >"$dir/htpasswd" 2>/dev/null
    cat >"$dir/basic.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/open
http:
  addr: 127.0.0.1:$bport
auth:
  htpasswd:
    realm: berth-basic
    path: $dir/htpasswd
YML
    "$REGISTRY_BIN" serve "$dir/basic.yml" >"$dir/basic.log" 2>&1 &
    echo $! >"$dir/basic.pid"
    "$REGISTRY_BIN" serve "$dir/open.yml" >"$dir/open.log" 2>&1 &
    echo $! >"$dir/open.pid"
    "$REGISTRY_BIN" serve "$dir/auth.yml" >"$dir/auth.log" 2>&1 &
    echo $! >"$dir/auth.pid"
    "$conf" images token-server --listen "127.0.0.1:$tport" --key "$dir/token.key" \
        --cert "$dir/token.crt" --issuer berth-test-issuer --user "$creds" \
        --refresh-token berth-test-refresh-token >"$dir/token.log" 2>&1 &
    echo $! >"$dir/token.pid"
    if ! wait_http "http://127.0.0.1:$port/v2/" 200 ||
        ! wait_http "http://127.0.0.1:$aport/v2/" 401 ||
        ! wait_http "http://127.0.0.1:$tport/token" 401 ||
        ! wait_http "http://127.0.0.1:$bport/v2/" 401 ||
        ! wait_tls "127.0.0.1:$sport" "$dir/ca.crt"; then
        cat "$dir"/*.log >&2
        stop "$dir"
        exit 1
    fi
    echo "export BERTH_TEST_REGISTRY=127.0.0.1:$port"
    echo "export BERTH_TEST_AUTH_REGISTRY=127.0.0.1:$aport"
    echo "export BERTH_TEST_AUTH_CREDS=$creds"
    echo "export BERTH_TEST_AUTH_REFRESH_TOKEN=berth-test-refresh-token"
    echo "export BERTH_TEST_BASIC_REGISTRY=127.0.0.1:$bport"
    echo "export BERTH_TEST_BASIC_CREDS=$bcreds"
    echo "export BERTH_TEST_TLS_REGISTRY=127.0.0.1:$sport"
    echo "export BERTH_TEST_TLS_CA=$dir/ca.crt"
    echo "export BERTH_TEST_REGISTRY_DIR=$dir"
    echo "# pid files: $dir/open.pid $dir/auth.pid $dir/token.pid $dir/tls.pid $dir/basic.pid" >&2
}

stop() {
    dir=${1:?usage: registry.sh stop DIR}
    case "$dir" in /tmp/berth-registry.*) ;; *) echo "registry.sh: refusing to remove $dir" >&2; exit 1 ;; esac
    for p in "$dir"/*.pid; do
        [ -f "$p" ] || continue
        pid=$(cat "$p")
        kill "$pid" 2>/dev/null || true
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -rf "$dir"
}

case "${1:-}" in
start) start ;;
stop) stop "${2:-}" ;;
*) echo "usage: registry.sh start | stop DIR" >&2; exit 2 ;;
esac
