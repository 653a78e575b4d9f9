"""A real gRPC server and client (Debian's python3-grpcio) for brace's gRPC tests.

Messages are raw bytes (no protobuf): grpcio passes them through when no serializer is
given, so the test needs no generated code.

  peer.py server PORT [CERT KEY]   serve test.Echo on 127.0.0.1:PORT (TLS with CERT/KEY);
                                   prints "ready" once listening
  peer.py client TARGET [CA]       read one call per stdin line, print one JSON result each:
                                   unary MSG | stream N | stream N-fail | collect A,B,C |
                                   chat A,B,C | big N (N messages of 64 KiB, client stream) |
                                   deadline MS (a unary call to Slow with that deadline)
"""
import json
import os
import sys
import time
from concurrent import futures

import grpc


def serve(port, cert=None, key=None):
    def echo(req, ctx):
        if req == b"fail":
            ctx.abort(grpc.StatusCode.INTERNAL, "boom")
        if req == b"missing":
            ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        if req == b"unavailable":
            ctx.abort(grpc.StatusCode.UNAVAILABLE, "try later")
        ctx.set_trailing_metadata((("x-served-by", "peer"),))
        return b"echo:" + req

    def count(req, ctx):
        if req == b"die":
            yield b"0"
            yield b"1"
            time.sleep(0.2)
            os._exit(1)
        n, _, fail = req.partition(b"-")
        for i in range(int(n)):
            yield str(i).encode()
        if fail:
            # The status comes in real trailers, after the messages.
            ctx.abort(grpc.StatusCode.INTERNAL, "broke after %d" % int(n))

    def collect(it, ctx):
        return b"+".join(it)

    def chat(it, ctx):
        for m in it:
            yield b"re:" + m

    def slow(req, ctx):
        time.sleep(1)
        return b"late"

    handler = grpc.method_handlers_generic_handler(
        "test.Echo",
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "Count": grpc.unary_stream_rpc_method_handler(count),
            "Collect": grpc.stream_unary_rpc_method_handler(collect),
            "Chat": grpc.stream_stream_rpc_method_handler(chat),
            "Slow": grpc.unary_unary_rpc_method_handler(slow),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((handler,))
    addr = "127.0.0.1:%d" % port
    if cert:
        with open(key, "rb") as k, open(cert, "rb") as c:
            creds = grpc.ssl_server_credentials(((k.read(), c.read()),))
        server.add_secure_port(addr, creds)
    else:
        server.add_insecure_port(addr)
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


def client(target, ca=None):
    if ca:
        with open(ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        # The test's certificate is for a.test; connect to the address, verify that name.
        channel = grpc.secure_channel(
            target, creds, options=(("grpc.ssl_target_name_override", "a.test"),)
        )
    else:
        channel = grpc.insecure_channel(target)
    for line in sys.stdin:
        kind, _, arg = line.strip().partition(" ")
        out = {"call": line.strip(), "messages": []}
        try:
            if kind == "unary":
                resp, call = channel.unary_unary("/test.Echo/Echo").with_call(
                    arg.encode(), timeout=10
                )
                out["messages"] = [resp.decode()]
                out["trailers"] = dict(call.trailing_metadata() or ())
            elif kind == "stream":
                for m in channel.unary_stream("/test.Echo/Count")(arg.encode(), timeout=10):
                    out["messages"].append(m.decode())
            elif kind == "collect":
                parts = [p.encode() for p in arg.split(",")]
                resp = channel.stream_unary("/test.Echo/Collect")(iter(parts), timeout=10)
                out["messages"] = [resp.decode()]
            elif kind == "big":
                parts = [b"x" * 65536] * int(arg)
                resp = channel.stream_unary("/test.Echo/Collect")(iter(parts), timeout=10)
                out["messages"] = [str(len(resp))]
            elif kind == "chat":
                parts = [p.encode() for p in arg.split(",")]
                for m in channel.stream_stream("/test.Echo/Chat")(iter(parts), timeout=10):
                    out["messages"].append(m.decode())
            elif kind == "deadline":
                channel.unary_unary("/test.Echo/Slow")(b"", timeout=int(arg) / 1000)
            out["code"] = "OK"
        except grpc.RpcError as e:
            out["code"] = e.code().name
            out["details"] = e.details()
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(int(sys.argv[2]), *sys.argv[3:5])
    else:
        client(sys.argv[2], *sys.argv[3:4])
