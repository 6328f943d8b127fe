"""A real SMTP server (aiosmtpd) and a real HTTP receiver on 127.0.0.1, for every test
that checks what overnight tells people (the fixtures `mailbox` and `receiver` are in
conftest.py)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import threading
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """A real SMTP server on 127.0.0.1 that keeps what it receives; with `hang`, it takes
    each message and never answers (until stopped)."""

    def __init__(self, hang: bool = False) -> None:
        self.port = free_port()
        self.received: list[tuple[list[str], EmailMessage]] = []
        self.controller: Controller | None = None
        self.hang = hang
        self.connected = False  # a message reached the DATA stage

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, N802 - aiosmtpd's hook
        self.connected = True
        while self.hang and self.controller is not None:
            await asyncio.sleep(0.05)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append((list(envelope.rcpt_tos), message))
        return "250 OK"

    def start(self, password: str | None = None) -> None:
        """With `password`: only the user "night" with that password may send."""
        options = {}
        if password is not None:
            def authenticator(server, session, envelope, mechanism, auth_data):  # noqa: ANN001
                ok = (auth_data.login, auth_data.password) == (b"night", password.encode())
                return AuthResult(success=ok, handled=False)  # handled=False: it answers 535

            options = {"authenticator": authenticator, "auth_required": True, "auth_require_tls": False}
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[EmailMessage]:
        return [m for _, m in self.received]

    def config(self, **extra: str) -> str:
        lines = ["[mail]", 'host = "127.0.0.1"', f"port = {self.port}", 'from = "overnight@example.com"',
                 'to = ["ops@example.com"]']
        lines += [f"{k} = {v}" for k, v in extra.items()]
        return "\n".join(lines) + "\n"


class Receiver:
    """A real HTTP server on 127.0.0.1 that keeps the JSON posted to it, or hangs."""

    def __init__(self, hang: bool = False) -> None:
        self.bodies: list[dict] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(json.loads(body))
                if hang:
                    receiver.release.wait(60)
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def text_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


def html_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("html",)).get_content().replace("\r\n", "\n")
