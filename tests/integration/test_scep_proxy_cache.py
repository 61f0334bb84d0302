"""The SCEP proxy's GetCACaps/GetCACert cache, seen from a counting fake
CA on loopback: within cache_ttl the second request does not reach the
CA and gets the same bytes and content type; concurrent requests share
one upstream fetch; a request with a used or forged token is still
refused and never served from the cache; a reload that points the CA
elsewhere drops the cache; an error answer is passed on and not kept;
the cache expires after cache_ttl; PKIOperation always goes upstream."""

import http.server
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_scep_proxy_edges import push_behind  # noqa: E402

# Every byte value, so any re-encoding or truncation shows.
CERT = bytes(range(256)) * 7 + b"\x00\r\n"
CAPS = b"POSTPKIOperation\nSHA-256\nAES\n"
# The proxy's requests carry this message argument; the CA health
# checks of renewd itself do not, so the two are told apart.
MSG = "dev-ca"


class CountingCA:
    """A fake SCEP CA on 127.0.0.1 that counts requests per operation and
    message, answers from a table, and can be slowed or made to fail."""

    def __init__(self, port, cert=CERT):
        self.lock = threading.Lock()
        self.seen = []  # (operation, message)
        self.delay = 0
        self.status = 200
        self.answers = {
            "GetCACaps": ("text/plain", CAPS),
            "GetCACert": ("application/x-x509-ca-cert", cert),
            "PKIOperation": ("application/x-pki-message", b"\x30\x03pki"),
        }
        ca = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self):
                q = urllib.parse.parse_qs(
                    urllib.parse.urlparse(self.path).query)
                op = q.get("operation", [""])[0]
                msg = q.get("message", [None])[0]
                n = int(self.headers.get("Content-Length", "0"))
                if n:
                    self.rfile.read(n)
                with ca.lock:
                    ca.seen.append((op, msg))
                if ca.delay:
                    time.sleep(ca.delay)
                ctype, body = ca.answers.get(op, ("text/plain", b"?"))
                if ca.status != 200:
                    ctype, body = "text/plain", b"CA is broken\n"
                self.send_response(ca.status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = answer
            do_POST = answer

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        self.t = threading.Thread(target=self.srv.serve_forever,
                                  daemon=True)
        self.t.start()

    def proxied(self, op):
        """Requests for op that came through the proxy (with MSG)."""
        with self.lock:
            return sum(1 for o, m in self.seen if o == op and m == MSG)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def get(url, op, message=MSG):
    q = "?operation=" + op
    if message is not None:
        q += "&message=" + message
    try:
        with urllib.request.urlopen(url + q, timeout=20) as r:
            return r.status, r.read(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type")


class ProxyCache(harness.RenewdTestCase):

    def given(self, settings=None):
        """A running renewd in front of a CountingCA and one pushed job;
        returns the job's proxy URL."""
        return push_behind(self, CountingCA, settings)

    def test_second_get_within_ttl_is_served_from_the_cache(self):
        url = self.given()
        # When a device asks twice for the CA certificate and the caps...
        for _ in range(2):
            self.assertEqual(get(url, "GetCACert"),
                             (200, CERT, "application/x-x509-ca-cert"))
            self.assertEqual(get(url, "GetCACaps"),
                             (200, CAPS, "text/plain"))
        # ...then each went to the CA once, and the bytes are the CA's.
        self.assertEqual(self.ca.proxied("GetCACert"), 1)
        self.assertEqual(self.ca.proxied("GetCACaps"), 1)
        # A different message argument is another answer of the CA.
        self.assertEqual(get(url, "GetCACert", "other")[0], 200)
        with self.ca.lock:
            self.assertIn(("GetCACert", "other"), self.ca.seen)
        # PKIOperation is never answered from the cache: it reaches the
        # CA (and its 200 consumes the token).
        self.assertEqual(get(url, "PKIOperation", "MIIB")[:2],
                         (200, b"\x30\x03pki"))
        with self.ca.lock:
            pki = [s for s in self.ca.seen if s[0] == "PKIOperation"]
        self.assertEqual(pki, [("PKIOperation", "MIIB")])
        self.f.stop()

    def test_concurrent_requests_share_one_fetch(self):
        url = self.given()
        self.ca.delay = 0.5
        # When 16 devices ask at once while the CA is slow...
        with ThreadPoolExecutor(16) as ex:
            res = list(ex.map(lambda _: get(url, "GetCACert"), range(16)))
        # ...all get the CA's answer from a single upstream request.
        self.assertEqual(res, [(200, CERT, "application/x-x509-ca-cert")]
                         * 16)
        self.assertEqual(self.ca.proxied("GetCACert"), 1)
        self.f.stop()

    def test_used_or_forged_tokens_are_refused_with_a_warm_cache(self):
        url = self.given()
        self.assertEqual(get(url, "GetCACert")[0], 200)
        base, _ = url.rsplit("%2C", 1)
        forged = base + "%2C" + "B" * 43
        unknown_host = url.replace(self.host, harness.new_uuid())
        # When requests come with a forged token or for another host...
        for u in (forged, unknown_host):
            status, body, _ = get(u, "GetCACert")
            # ...they are refused, not answered from the cache.
            self.assertEqual(status, 400, body)
            self.assertNotEqual(body, CERT)
        # When the token is used up by an enrollment...
        self.assertEqual(get(url, "PKIOperation", "MIIB")[0], 200)
        status, body, _ = get(url, "GetCACert")
        # ...the cached answer is not given out with it either.
        self.assertEqual((status, body.strip()),
                         (400, b"token already used"))
        # Only the first GetCACert ever reached the CA.
        self.assertEqual(self.ca.proxied("GetCACert"), 1)
        self.f.stop()

    def test_reload_to_another_ca_drops_the_cache(self):
        url = self.given()
        self.assertEqual(get(url, "GetCACert")[1], CERT)
        # Given a second CA with another certificate...
        port2 = harness.free_port()
        other = b"another CA certificate \xff\x00"
        ca2 = CountingCA(port2, cert=other)
        self.addCleanup(ca2.close)
        # ...when the configuration points the CA there and is reloaded...
        text = self.f.config_text().replace(
            "127.0.0.1:%d/scep" % self.f.ca_port, "127.0.0.1:%d/scep" % port2)
        self.f.write_config(text)
        n = self.f.log_text().count("configuration reloaded")
        self.f.signal(signal.SIGHUP)
        harness.poll(lambda: self.f.log_text().count(
            "configuration reloaded") > n or None, 20, "the reload")
        # ...then the next GetCACert is the new CA's, fetched from it.
        self.assertEqual(get(url, "GetCACert"),
                         (200, other, "application/x-x509-ca-cert"))
        self.assertEqual(ca2.proxied("GetCACert"), 1)
        self.assertEqual(self.ca.proxied("GetCACert"), 1)
        self.f.stop()

    def test_errors_are_passed_on_and_not_kept(self):
        url = self.given()
        # When the CA answers 500...
        self.ca.status = 500
        self.assertEqual(get(url, "GetCACert")[:2],
                         (500, b"CA is broken\n"))
        # ...and then recovers, the next request goes to it again.
        self.ca.status = 200
        self.assertEqual(get(url, "GetCACert")[1], CERT)
        self.assertEqual(self.ca.proxied("GetCACert"), 2)
        self.assertEqual(get(url, "GetCACert")[1], CERT)
        self.assertEqual(self.ca.proxied("GetCACert"), 2)
        # A PKIOperation the CA fails drops the cached answers too.
        self.ca.status = 503
        self.assertEqual(get(url, "PKIOperation", "MIIB")[0], 503)
        self.ca.status = 200
        self.assertEqual(get(url, "GetCACert")[1], CERT)
        self.assertEqual(self.ca.proxied("GetCACert"), 3)
        self.f.stop()

    def test_cache_ttl_expires_and_zero_turns_it_off(self):
        url = self.given("cache_ttl: 1s")
        self.assertEqual(get(url, "GetCACaps")[1], CAPS)
        self.assertEqual(get(url, "GetCACaps")[1], CAPS)
        self.assertEqual(self.ca.proxied("GetCACaps"), 1)
        time.sleep(1.3)
        self.assertEqual(get(url, "GetCACaps")[1], CAPS)
        self.assertEqual(self.ca.proxied("GetCACaps"), 2)
        # cache_ttl: 0s sends every request to the CA.
        text = self.f.config_text().replace(
            "    challenge_file:", "    cache_ttl: 0s\n    challenge_file:")
        self.f.write_config(text)
        n = self.f.log_text().count("configuration reloaded")
        self.f.signal(signal.SIGHUP)
        harness.poll(lambda: self.f.log_text().count(
            "configuration reloaded") > n or None, 20, "the reload")
        for _ in range(3):
            self.assertEqual(get(url, "GetCACaps")[1], CAPS)
        self.assertEqual(self.ca.proxied("GetCACaps"), 5)
        self.f.stop()


if __name__ == "__main__":
    harness.main()
