"""A TLS HTTP/1.1 backend that keeps connections alive, for the upstream connection-reuse
tests: `keepalive_server.py PORT CERT KEY [CLIENT_CA]`. Every answer is 200 with the body
`conn=N client=CN`: N counts the TLS connections accepted (so a test sees whether brace
reused one), CN is the client certificate's common name (`none` without one). With
CLIENT_CA a client certificate is asked for and verified, but not required."""
import http.server
import itertools
import ssl
import sys

port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
client_ca = sys.argv[4] if len(sys.argv) > 4 else None
accepted = itertools.count(1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.conn_no = next(accepted)

    def do_GET(self):
        peer = self.connection.getpeercert() or {}
        cn = "none"
        for rdn in peer.get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    cn = v
        body = f"conn={self.conn_no} client={cn}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
if client_ca:
    ctx.load_verify_locations(client_ca)
    ctx.verify_mode = ssl.CERT_OPTIONAL
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
