"""Who can reach the reference UI: loopback by default, a login everywhere else.

The UI can undo splits and shows face crops, so serving it on a network address
without a login hands both to anyone on that network.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Mapping

from .errors import EraSplitError
from .host.fsutil import open_regular

AUTH_ENV = "ERA_SPLIT_AUTH"
AUTH_FILE_MAX = 64 * 1024  # a file of logins is a few lines
DELAY_FIRST, DELAY_MAX = 0.25, 4.0  # seconds after a wrong password: doubling, capped


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse(lines: list[str], where: str) -> list[tuple[str, str]]:
    pairs = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            # never echo the line: it may hold a password
            raise EraSplitError(where, f"line {n} is not user:password")
        pairs.append((user, password))
    if not pairs:
        raise EraSplitError(where, "holds no user:password line")
    return pairs


def load_credentials(
    host: str, auth_file: str | None, environ: Mapping[str, str], *, unsafe: bool = False
) -> list[tuple[str, str]] | None:
    """Logins for Gradio's ``auth``: from ``auth_file`` or ``$ERA_SPLIT_AUTH``.

    Required off loopback unless ``unsafe``; never printed or logged.
    """
    pairs = None
    if auth_file:
        try:
            with open_regular(auth_file) as fh:  # a FIFO would block for ever
                raw = fh.read(AUTH_FILE_MAX + 1)
        except OSError as exc:
            raise EraSplitError(auth_file, f"cannot be read: {exc.strerror or exc}") from None
        if len(raw) > AUTH_FILE_MAX:
            raise EraSplitError(auth_file, "is too large to be a file of user:password lines")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise EraSplitError(auth_file, "is not UTF-8 text (save it as UTF-8)") from None
        pairs = _parse(text.splitlines(), auth_file)
    elif environ.get(AUTH_ENV):
        pairs = _parse(environ[AUTH_ENV].split(","), f"${AUTH_ENV}")
    if pairs is None and not is_loopback(host) and not unsafe:
        raise EraSplitError(
            None,
            f"--host {host} would let anyone who reaches this machine split, undo and see face crops; "
            f"give a login (--auth-file FILE of user:password lines, or {AUTH_ENV}=user:password), "
            "or pass --unsafe-no-auth if you really mean it",
        )
    return pairs


class Login:
    """Gradio's ``auth`` check: the pairs compared in constant time, and each wrong
    password answered after a delay that doubles with every failure in a row
    (0.25 s up to 4 s), so guessing costs time. Gradio's login has no delay of its
    own and does not tell the check who is asking, so the delay is shared by all
    clients: a guesser slows everyone's next wrong try, never a right one."""

    def __init__(self, pairs: list[tuple[str, str]], sleep=time.sleep) -> None:
        self._pairs = [(u.encode(), p.encode()) for u, p in pairs]
        self._failures = 0
        self._lock = threading.Lock()
        self._sleep = sleep

    def __call__(self, username: str, password: str) -> bool:
        user, word = str(username).encode("utf-8", "replace"), str(password).encode("utf-8", "replace")
        ok = False
        for u, p in self._pairs:
            ok |= hmac.compare_digest(u, user) & hmac.compare_digest(p, word)
        with self._lock:
            self._failures = 0 if ok else self._failures + 1
            delay = 0.0 if ok else min(DELAY_MAX, DELAY_FIRST * 2 ** (self._failures - 1))
        if delay:
            self._sleep(delay)
        return ok


def exposure_notice(host: str, port: int, library: str, has_auth: bool) -> str | None:
    """What a user must know before serving off loopback; None on loopback."""
    if is_loopback(host):
        return None
    where = "every address of this machine" if host in ("0.0.0.0", "::") else host
    guard = "behind a login" if has_auth else "WITHOUT a login (--unsafe-no-auth)"
    return (
        f"era-split: serving on {where}, port {port}, {guard}: whoever reaches it can split "
        f"and undo facesets of {os.path.abspath(library)} and see their face crops"
    )


def check_port(host: str, port: int) -> None:
    """Fail with one line, before the UI is built, when the port cannot be bound."""
    if not 0 < port < 65536:
        raise EraSplitError(None, f"--port must be in 1..65535, got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as exc:
        raise EraSplitError(
            f"{host}:{port}", f"cannot listen there ({exc.strerror or exc}); is another program "
            "using the port? Pick another with --port"
        ) from None
