#!/usr/bin/env python3
"""fleet-serve.py - the host-side servers of scripts/fleet.sh (standard library only).

Usage:
  fleet-serve.py repo    --bind ADDR --port N --dir DIR --cert PEM --key PEM --log FILE [--fault FILE]
      serves DIR over HTTPS (the pkgs.k8s.io stand-in; the nodes resolve pkgs.k8s.io to ADDR
      and trust the test CA that signed PEM); one access-log line per request in FILE.
      --fault FILE: read before each request; while it says "500" every request is answered
      with HTTP 500, while it says "stall" requests wait (the fault campaign of
      scripts/fleet-test.sh writes and removes it)
  fleet-serve.py forward --bind ADDR --port N --to HOST:PORT --log FILE
      forwards every TCP connection to HOST:PORT (the nodes reach the test apiserver, which
      listens on 127.0.0.1 only, through it; TLS passes through untouched)

Both run in the foreground until killed, and print "listening on ADDR:N" once bound.
"""
import argparse
import asyncio
import functools
import http.server
import ssl
import sys
import time


def fault_mode(path):
    """The repository fault in force: "500", "stall" or "" (none)."""
    if not path:
        return ""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def serve_repo(args):
    log = open(args.log, "a", buffering=1)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, fmt, *a):  # one line per request, in the log file only
            log.write("%s %s\n" % (self.address_string(), fmt % a))

        def faulty(self):
            """True when the request was answered by the fault (a 500); a stall holds it until
            the fault is lifted (at most 10 minutes), then it is served."""
            deadline = time.monotonic() + 600
            while fault_mode(args.fault) == "stall" and time.monotonic() < deadline:
                time.sleep(0.1)
            if fault_mode(args.fault) == "500":
                self.send_error(500, "fleet fault: the repository server fails")
                return True
            return False

        def do_GET(self):
            if not self.faulty():
                super().do_GET()

        def do_HEAD(self):
            if not self.faulty():
                super().do_HEAD()

    handler = functools.partial(Handler, directory=args.dir)
    server = http.server.ThreadingHTTPServer((args.bind, args.port), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("listening on %s:%d" % (args.bind, args.port), flush=True)
    server.serve_forever()


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def forward(args):
    host, port = args.to.rsplit(":", 1)
    log = open(args.log, "a", buffering=1)

    async def connection(reader, writer):
        peer = writer.get_extra_info("peername")
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError as e:
            log.write("%s: cannot reach %s: %s\n" % (peer, args.to, e))
            writer.close()
            return
        log.write("%s -> %s\n" % (peer, args.to))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(connection, args.bind, args.port)
    print("listening on %s:%d" % (args.bind, args.port), flush=True)
    async with server:
        await server.serve_forever()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    repo = sub.add_parser("repo")
    fwd = sub.add_parser("forward")
    for s in (repo, fwd):
        s.add_argument("--bind", required=True)
        s.add_argument("--port", type=int, required=True)
        s.add_argument("--log", required=True)
    repo.add_argument("--dir", required=True)
    repo.add_argument("--cert", required=True)
    repo.add_argument("--key", required=True)
    repo.add_argument("--fault", default="")
    fwd.add_argument("--to", required=True)
    args = p.parse_args()
    if args.mode == "repo":
        serve_repo(args)
    else:
        asyncio.run(forward(args))


if __name__ == "__main__":
    sys.exit(main())
