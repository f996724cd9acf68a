#!/usr/bin/env python3
"""The HTTP server of sockit's `http` tests: Python's http.server with a small handler.

Usage: http_server.py [--tls CERT KEY | --v6] [--log FILE]
Binds 127.0.0.1 (::1 with --v6) port 0, prints `listening HOST PORT`, serves until killed. HTTP/1.1
with keep-alive; strict about Host (an HTTP/1.1 request without it gets 400, as a strict
server answers the slides' bare request). Routes:
  /            "index\n"                      /file       FILE (binary, Content-Length)
  /keepalive   FILE, keeps the connection open even when asked to close
  /chunked     "hello, chunked world\n" in chunks (with an extension and a trailer)
  /redirect    301 to /file                   /redirect-abs  302 to http://127.0.0.1:PORT/file
  /loop        302 to /loop                   /status/N   status N
  /headers     the request line and headers, as the body
  /garbage     a status line that is not HTTP, then close
  /garbage-open  the same, but the connection stays open
  /truncated   a chunked body cut in the middle of a chunk
  /short       Content-Length 100, 10 bytes, close
  /bighead     a head past 64 KiB               /slow   head, then the body after 5 s
  POST /echo   the request body back; POST /see-other: 303 to /file
  /record...   (any method) what the server received, as one JSON line appended to the
               --log FILE and sent back: method, path, version, headers, body (base64)
  /retry?n=N&id=ID  503 (Retry-After: 0) the first N times for ID, then 200 "done\n"
  /gzip /deflate    "compressed text\n" * 100, gzip- or zlib-encoded when asked for
  /cookies     two Set-Cookie headers around another one
  /flood       "100 Continue" heads without end (for at most 20 s)
  /chain/N     302 to /chain/N+1, without end
  /to?u=URL    302 to URL (percent-decoded)  /space  302 to "/record/a b?c d" (raw spaces)
  /ftp         302 to ftp://127.0.0.1/x       /v10    an HTTP/1.0 answer
  /retry-after?s=S  503 with Retry-After: S  /te-gzip  "Transfer-Encoding: gzip, chunked"
  PUT /reject  413 at once when the request expects 100-continue (the body never read)
"""
import base64
import http.server
import json
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import zlib

FILE = bytes(range(256)) * 4 + b"end of file\n"
LOG = None
LOCK = threading.Lock()
RETRIES = {}
TEXT = b"compressed text\n" * 100


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def parse_request(self):
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/1.1" and "Host" not in self.headers:
            self.send_error(400, "Bad Request", "HTTP/1.1 request without Host")
            return False
        return True

    def reply(self, status, body, headers=(), send_body=True):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def raw(self, data):
        self.wfile.write(data)
        self.wfile.flush()
        self.close_connection = True

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def record(self, send_body=True):
        body = self.read_body()
        entry = {
            "method": self.command,
            "path": self.path,
            "version": self.request_version,
            "headers": [[n, v] for n, v in self.headers.items()],
            "body": base64.b64encode(body).decode(),
        }
        line = json.dumps(entry)
        if LOG:
            with LOCK, open(LOG, "a") as f:
                f.write(line + "\n")
        self.reply(200, line.encode() + b"\n", [("Content-Type", "application/json")], send_body)

    def route(self, send_body):
        path = self.path.split("?")[0]
        query = dict(p.split("=", 1) for p in self.path.partition("?")[2].split("&") if "=" in p)
        if path.startswith("/record"):
            return self.record(send_body)
        port = self.server.server_address[1]
        host = self.server.server_address[0]
        host = f"[{host}]" if ":" in host else host
        if path == "/":
            self.reply(200, b"index\n", [("Content-Type", "text/plain")], send_body)
        elif path == "/file":
            self.reply(200, FILE, [("Content-Type", "application/octet-stream")], send_body)
        elif path == "/keepalive":
            self.reply(200, FILE, [("Connection", "keep-alive")], send_body)
            self.close_connection = False
            self.wfile.flush()
            time.sleep(10)  # a keep-alive server that waits for the next request
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if send_body:
                for i, part in enumerate([b"hello, ", b"chunked ", b"world\n"]):
                    ext = b";note=x" if i == 1 else b""
                    self.wfile.write(b"%x%s\r\n%s\r\n" % (len(part), ext, part))
                    self.wfile.flush()
                self.wfile.write(b"0\r\nX-Trailer: t\r\n\r\n")
        elif path == "/redirect":
            self.reply(301, b"moved\n", [("Location", "/file")], send_body)
        elif path == "/redirect-abs":
            self.reply(302, b"found\n", [("Location", f"http://{host}:{port}/file")], send_body)
        elif path == "/loop":
            self.reply(302, b"again\n", [("Location", "/loop")], send_body)
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            self.reply(code, f"status {code}\n".encode(), [], send_body)
        elif path == "/headers":
            text = self.requestline + "\n" + str(self.headers)
            self.reply(200, text.encode("latin-1"), [], send_body)
        elif path == "/garbage":
            self.raw(b"garbage\r\nnot http at all\r\n\r\n")
        elif path == "/garbage-open":
            self.wfile.write(b"SSH-2.0-OpenSSH_9.2\r\n")
            self.wfile.flush()
            time.sleep(10)
        elif path == "/truncated":
            self.raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\na\r\nhel")
        elif path == "/short":
            self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
        elif path == "/bighead":
            pad = b"X-Pad: " + b"a" * 1000 + b"\r\n"
            self.raw(b"HTTP/1.1 200 OK\r\n" + pad * 70 + b"Content-Length: 2\r\n\r\nok")
        elif path == "/retry":
            key = query.get("id", "")
            with LOCK:
                RETRIES[key] = RETRIES.get(key, 0) + 1
                seen = RETRIES[key]
            if seen <= int(query.get("n", "1")):
                self.reply(503, b"busy\n", [("Retry-After", "0")], send_body)
            else:
                self.reply(200, b"done\n", [], send_body)
        elif path in ("/gzip", "/deflate"):
            asked = self.headers.get("Accept-Encoding", "")
            coding = path[1:] if path[1:] in asked else None
            if coding == "gzip":
                c = zlib.compressobj(9, zlib.DEFLATED, 31)
                body = c.compress(TEXT) + c.flush()
            elif coding == "deflate":
                body = zlib.compress(TEXT)
            else:
                body = TEXT
            headers = [("Content-Encoding", coding)] if coding else []
            self.reply(200, body, headers + [("Vary", "Accept-Encoding")], send_body)
        elif path == "/cookies":
            self.reply(200, b"cookies\n", [("Set-Cookie", "a=1"), ("X-One", "first"),
                                             ("Set-Cookie", "b=2")], send_body)
        elif path == "/to":
            target = urllib.parse.unquote(self.path.partition("?u=")[2])
            self.reply(302, b"", [("Location", target)], send_body)
        elif path == "/space":
            self.reply(302, b"", [("Location", "/record/a b?c d")], send_body)
        elif path == "/ftp":
            self.reply(302, b"", [("Location", "ftp://127.0.0.1/x")], send_body)
        elif path == "/v10":
            self.raw(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        elif path == "/retry-after":
            self.reply(503, b"busy\n", [("Retry-After", query.get("s", "0"))], send_body)
        elif path == "/te-gzip":
            c = zlib.compressobj(9, zlib.DEFLATED, 31)
            body = c.compress(TEXT) + c.flush()
            self.send_response(200)
            self.send_header("Transfer-Encoding", "gzip, chunked")
            self.end_headers()
            if send_body:
                for i in range(0, len(body), 100):
                    part = body[i:i + 100]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.write(b"0\r\n\r\n")
        elif path.startswith("/chain/"):
            n = int(path.rsplit("/", 1)[1]) + 1
            self.reply(302, b"", [("Location", f"/chain/{n}")], send_body)
        elif path == "/flood":
            end = time.monotonic() + 20
            try:
                while time.monotonic() < end:
                    self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n" * 64)
            except OSError:
                pass
            self.close_connection = True
        elif path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.flush()
            time.sleep(5)
            self.wfile.write(b"late\n")
        else:
            self.reply(404, b"not found\n", [], send_body)

    def do_GET(self):
        self.route(True)

    def do_HEAD(self):
        self.route(False)

    def handle_expect_100(self):
        if self.path.startswith("/reject"):
            self.reply(413, b"too large\n", [("Connection", "close")])
            self.close_connection = True
            return False
        return super().handle_expect_100()

    def do_POST(self):
        if self.path.startswith("/record"):
            return self.record()
        body = self.read_body()
        if self.path == "/see-other":
            self.reply(303, b"see other\n", [("Location", "/file")])
        else:
            self.reply(200, body, [("Content-Type", "application/octet-stream")])

    do_PUT = do_POST
    do_DELETE = do_POST
    do_PATCH = do_POST


class V6Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


def main():
    global LOG
    if "--log" in sys.argv:
        i = sys.argv.index("--log")
        LOG = sys.argv[i + 1]
        del sys.argv[i:i + 2]
    v6 = sys.argv[1:] == ["--v6"]
    host = "::1" if v6 else "127.0.0.1"
    server = (V6Server if v6 else http.server.ThreadingHTTPServer)((host, 0), Handler)
    server.daemon_threads = True
    if len(sys.argv) == 4 and sys.argv[1] == "--tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        ctx.set_alpn_protocols(["http/1.1"])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"listening {host} {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
