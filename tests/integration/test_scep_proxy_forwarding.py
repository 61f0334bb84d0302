"""How the SCEP proxy forwards, seen from the CA's side (a recording stub
CA on loopback): GET PKIOperation's base64 message arrives intact after
percent-decoding and re-encoding, POST bodies and answers pass byte for
byte, an over-large body gets 413, a token's second enrollment while its
first is upstream is refused, and a CA slower than its timeout gives
504."""

import base64
import http.server
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import urllib.error

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_scep_proxy_edges import push_behind  # noqa: E402

ANSWER = bytes(range(256)) * 4


class StubCA:
    def __init__(self, port):
        self.requests = []
        self.delay = 0
        self.hold = None  # an Event: answer only once it is set
        stub = self

        class H(http.server.BaseHTTPRequestHandler):
            def handle_one(self, body):
                stub.requests.append((self.command, self.path, body,
                                      self.headers.get("Content-Type")))
                if stub.delay:
                    time.sleep(stub.delay)
                if stub.hold:
                    stub.hold.wait(10)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-pki-message")
                self.send_header("Content-Length", str(len(ANSWER)))
                self.end_headers()
                self.wfile.write(ANSWER)

            def do_GET(self):
                self.handle_one(b"")

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                self.handle_one(self.rfile.read(n))

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        self.t = threading.Thread(target=self.srv.serve_forever,
                                  daemon=True)
        self.t.start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def request(url, data=None, ctype=None):
    req = urllib.request.Request(url, data=data)
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type")


class Forwarding(harness.RenewdTestCase):

    def setUp(self):
        super().setUp()
        self.url = push_behind(self, StubCA, "timeout: 1s")
        # renewd's own CA health check at start-up is not the proxy's.
        harness.poll(lambda: len(self.ca.requests) >= 2 or None, 20,
                     "the start-up CA check")
        self.ca.requests.clear()

    def test_get_pkioperation_message_reencoded(self):
        # Given a message whose base64 has '+', '/' and '='.
        raw = bytes([0xfb, 0xff, 0xfe, 0x01, 0x02])
        msg = base64.b64encode(raw).decode()
        self.assertTrue(set("+/=") & set(msg), msg)
        # '/' and '=' escaped, '+' left raw as some clients send it.
        self.assertIn("+", msg)
        q = ("operation=PKIOperation&message=" +
             msg.replace("/", "%2F").replace("=", "%3D"))
        status, body, ctype = request(self.url + "?" + q)
        # Then the CA got exactly that message and the answer came back
        # byte for byte with its content type.
        self.assertEqual(status, 200)
        self.assertEqual(body, ANSWER)
        self.assertEqual(ctype, "application/x-pki-message")
        (method, path, _, _), = self.ca.requests
        self.assertEqual(method, "GET")
        got = urllib.parse.parse_qs(urllib.parse.urlparse(path).query)
        self.assertEqual(got["message"], [msg])
        self.assertEqual(got["operation"], ["PKIOperation"])
        # The token is now used: nothing more goes upstream.
        self.assertEqual(request(self.url + "?" + q)[0], 400)
        self.assertEqual(len(self.ca.requests), 1)
        # An answer that is not a CertRep is recorded as such.
        ev = self.f.job_show(self.job["id"])["events"]
        self.assertIn("unreadable CertRep from the CA",
                      [e["detail"] for e in ev])

    def test_post_body_passes_and_cap_is_413(self):
        # curl, like real clients, sends Expect: 100-continue for a large
        # body, so the 413 arrives before the body is sent.
        big = os.path.join(self.f.dir, "big.bin")
        with open(big, "wb") as fh:
            fh.write(b"\0" * (2 * 1024 * 1024 + 1))
        p = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w",
                            "%{http_code}", "-H",
                            "Content-Type: application/x-pki-message",
                            "--data-binary", "@" + big,
                            self.url + "?operation=PKIOperation"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.stdout, "413", p.stderr)
        self.assertEqual(self.ca.requests, [])
        body = os.urandom(3000)
        status, answer, _ = request(self.url + "?operation=PKIOperation",
                                    body, "application/x-pki-message")
        self.assertEqual((status, answer), (200, ANSWER))
        (method, path, got, ctype), = self.ca.requests
        self.assertEqual((method, got, ctype),
                         ("POST", body, "application/x-pki-message"))
        self.assertTrue(path.startswith("/scep?operation=PKIOperation"),
                        path)

    def test_a_token_goes_upstream_once_at_a_time(self):
        # Given an enrollment the CA is still working on...
        self.ca.hold = threading.Event()
        url = self.url + "?operation=PKIOperation"
        first = {}
        t = threading.Thread(target=lambda: first.update(
            r=request(url, b"one", "application/x-pki-message")))
        t.start()
        harness.poll(lambda: len(self.ca.requests) == 1 or None, 10,
                     "the first enrollment upstream")
        # ...a second one with the same token is refused at once.
        status, body, _ = request(url, b"two", "application/x-pki-message")
        self.assertEqual((status, body), (400, b"token in use by another "
                                               b"enrollment"))
        self.ca.hold.set()
        t.join(10)
        self.assertEqual(first["r"][:2], (200, ANSWER))
        # Then the token is spent, and the CA saw the first one only.
        status, body, _ = request(url, b"three", "application/x-pki-message")
        self.assertEqual((status, body), (400, b"token already used"))
        self.assertEqual([r[2] for r in self.ca.requests], [b"one"])
        ev = [e["detail"] for e in self.f.job_show(self.job["id"])["events"]
              if e["event"] == "scep_refused"]
        self.assertEqual(ev, ["token in use by another enrollment",
                              "token already used"])

    def test_slow_ca_gives_504(self):
        self.ca.delay = 3
        t0 = time.time()
        status, body, _ = request(self.url + "?operation=GetCACaps")
        self.assertEqual(status, 504, body)
        self.assertLess(time.time() - t0, 2.9)
        ev = self.f.job_show(self.job["id"])["events"]
        errs = [e["detail"] for e in ev if e["event"] ==
                "scep_upstream_error"]
        self.assertTrue(errs and "timed out" in errs[0], ev)


if __name__ == "__main__":
    harness.main()
