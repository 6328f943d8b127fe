"""`overnight web --certfile --keyfile` serves HTTPS itself; its cookies are Secure, and a
wrong certificate or key is one line and exit 2. The certificate is made by the test."""

from __future__ import annotations

import ssl
import subprocess
import urllib.request

import pytest
from webtools import OLIVE, ONE_STEP, Client, add_user


@pytest.fixture
def certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def test_over_https_every_cookie_is_secure_and_the_login_works(project, serve, certificate):
    cert, key = certificate
    project.write_batch("demo", ONE_STEP)
    add_user(project, *OLIVE, role="operator")
    trust = ssl.create_default_context(cafile=str(cert))
    server = serve(project, "--certfile", str(cert), "--keyfile", str(key), tls=trust)
    assert server.url.startswith("https://")

    olive = Client(server.url, tls=trust)
    status, headers, _ = olive.get("/login")
    assert status == 200
    cookies = headers.get_all("Set-Cookie")
    assert cookies and all("; Secure" in c for c in cookies), cookies
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert olive.login(*OLIVE) == 303
    assert all(c.secure for c in olive.jar) and olive.get("/")[0] == 200

    # Plain HTTP to the same port is not served.
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url.replace("https://", "http://") + "/login", timeout=5).read()


def test_over_plain_http_on_loopback_cookies_are_not_marked_secure(project, serve):
    add_user(project, *OLIVE, role="operator")
    server = serve(project)
    _, headers, _ = Client(server.url).get("/login")
    assert all("Secure" not in c for c in headers.get_all("Set-Cookie"))
    assert "Strict-Transport-Security" not in headers


def test_behind_a_trusted_proxy_that_says_https_cookies_are_secure(project, serve):
    add_user(project, *OLIVE, role="operator")
    server = serve(project, "--trusted-proxy", "127.0.0.1")
    proxy = Client(server.url, headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.4"})
    _, headers, _ = proxy.get("/login")
    assert all("; Secure" in c for c in headers.get_all("Set-Cookie"))
    # The same header from anyone else is not believed.
    untrusted = serve(project)
    _, headers, _ = Client(untrusted.url, headers={"X-Forwarded-Proto": "https"}).get("/login")
    assert all("Secure" not in c for c in headers.get_all("Set-Cookie"))


@pytest.mark.parametrize(("args", "message"), [
    (["--certfile", "CERT"], "--certfile and --keyfile go together"),
    (["--keyfile", "KEY"], "--certfile and --keyfile go together"),
    (["--certfile", "nothere.pem", "--keyfile", "KEY"], "nothere.pem: cannot read it"),
    (["--certfile", "KEY", "--keyfile", "KEY"], "not a certificate and its key"),
    (["--certfile", "CERT", "--keyfile", "CERT"], "not a certificate and its key"),
])
def test_a_wrong_certificate_or_key_is_one_line_and_exit_2(project, certificate, args, message):
    cert, key = certificate
    args = [str(cert) if a == "CERT" else str(key) if a == "KEY" else a for a in args]
    result = project.run("web", "--port", "1", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
