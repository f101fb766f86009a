"""
Safe HTTP for backends that talk to servers (LLM, cloud TTS): deadlines, caps, no leaks.

Standard library only (``http.client``), so it imports everywhere.  What it guarantees:

- one deadline for the whole request (connect, headers and every body read): a watchdog
  shuts the socket down when it passes, so a server that trickles a byte every few seconds
  cannot hold a caller past ``timeout_s``; the same watchdog honours a ``cancel`` event;
- redirects only to the same origin (scheme, host, port); a redirect to another host (or
  from https to http) is refused with an error, so credentials are never forwarded;
- size caps on the whole body and on a single line (``iter_lines``, for SSE);
- only ``http`` and ``https`` URLs.

Secrets: :func:`load_secret` reads an api key from an environment variable or a file, so
keys never have to be plain ROS parameters (readable by anyone with ``ros2 param get``).

Usage::

    resp = request('POST', url, body=b'...', headers={...}, timeout_s=30, cancel=event)
    with resp:
        for line in resp.iter_lines():
            ...
"""
from __future__ import annotations

import http.client
import os
import socket
import threading
import time
from typing import Dict, Iterator, Optional, Tuple
from urllib.parse import urljoin, urlsplit

REDIRECT_CODES = (301, 302, 303, 307, 308)
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_LINE = 1024 * 1024


class HTTPError(RuntimeError):
    """A request failed: unreachable, refused redirect, bad status, too large, or timed out."""

    def __init__(self, message: str, status: Optional[int] = None, body: str = ''):
        super().__init__(message)
        self.status = status
        self.body = body


class HTTPTimeout(HTTPError):
    """The request's deadline passed (connect, headers or any body read)."""


class HTTPCancelled(HTTPError):
    """The caller's cancel event was set while the request was in flight."""


class RedirectRefused(HTTPError):
    """The server redirected to another origin; nothing was sent there."""


def origin(url: str) -> Tuple[str, str, int]:
    """Return (scheme, host, port) of a URL; raise HTTPError for non-http(s) URLs."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ('http', 'https'):
        raise HTTPError('only http and https URLs are allowed, got %r' % url[:200])
    if not parts.hostname:
        raise HTTPError('URL has no host: %r' % url[:200])
    try:
        port = parts.port
    except ValueError:
        raise HTTPError('URL has a bad port: %r' % url[:200]) from None
    return scheme, parts.hostname.lower(), port or (443 if scheme == 'https' else 80)


class _Watchdog:
    """Shut a connection's socket down at the deadline or when ``cancel`` is set."""

    POLL_S = 0.05

    def __init__(self, deadline: float, cancel: Optional[threading.Event]):
        self.deadline = deadline
        self.cancel = cancel
        self.fired = ''  # 'timeout' or 'cancel' once it acted
        self._conn: Optional[http.client.HTTPConnection] = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name='http-deadline', daemon=True)
        self._thread.start()

    def watch(self, conn: Optional[http.client.HTTPConnection]) -> None:
        self._conn = conn
        if self.fired:
            self._kill()

    def stop(self) -> None:
        self._done.set()

    def _run(self) -> None:
        while not self._done.wait(self.POLL_S):
            if self.cancel is not None and self.cancel.is_set():
                self.fired = 'cancel'
            elif time.monotonic() >= self.deadline:
                self.fired = 'timeout'
            else:
                continue
            self._kill()
            return

    def _kill(self) -> None:
        conn = self._conn
        sock = getattr(conn, 'sock', None) if conn is not None else None
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Response:
    """A response whose every read obeys the request's deadline, cancel and size caps."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse,
                 url: str, watchdog: _Watchdog, max_bytes: int):
        self._conn = conn
        self._resp = resp
        self._watchdog = watchdog
        self.url = url
        self.status = resp.status
        self.reason = resp.reason
        self.headers = resp.headers
        self.max_bytes = max_bytes
        self.bytes_read = 0

    @property
    def content_type(self) -> str:
        return (self.headers.get('Content-Type') or '').split(';')[0].strip().lower()

    def _check(self) -> None:
        fired = self._watchdog.fired
        if fired == 'cancel' or (self._watchdog.cancel is not None
                                 and self._watchdog.cancel.is_set()):
            raise HTTPCancelled('request to %s cancelled' % self.url)
        if fired == 'timeout' or time.monotonic() >= self._watchdog.deadline:
            raise HTTPTimeout('request to %s exceeded its deadline' % self.url)

    def read_chunk(self, size: int = 65536) -> bytes:
        """Read what has arrived (at most ``size`` bytes); b'' at the end of the body."""
        self._check()
        read1 = getattr(self._resp, 'read1', None)
        try:
            data = read1(size) if read1 is not None else self._resp.read(1)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self._check()
            raise HTTPError('reading from %s failed: %s' % (self.url, exc)) from None
        if not data:
            self._check()  # a watchdog shutdown looks like the end of the body
            return b''
        self.bytes_read += len(data)
        if self.bytes_read > self.max_bytes:
            raise HTTPError('response from %s is larger than %d bytes'
                            % (self.url, self.max_bytes))
        return data

    def read(self) -> bytes:
        """Read the whole body (capped at ``max_bytes``)."""
        parts = []
        while True:
            data = self.read_chunk()
            if not data:
                return b''.join(parts)
            parts.append(data)

    def iter_lines(self, max_line: int = DEFAULT_MAX_LINE) -> Iterator[bytes]:
        """Yield lines (without the newline) as they arrive; a last unterminated line too."""
        buf = b''
        while True:
            data = self.read_chunk()
            if not data:
                if buf:
                    yield buf
                return
            buf += data
            while True:
                cut = buf.find(b'\n')
                if cut < 0:
                    break
                line, buf = buf[:cut], buf[cut + 1:]
                yield line.rstrip(b'\r')
            if len(buf) > max_line:
                raise HTTPError('a line from %s is longer than %d bytes' % (self.url, max_line))

    def close(self) -> None:
        self._watchdog.stop()
        try:
            self._resp.close()
        finally:
            self._conn.close()

    def __enter__(self) -> 'Response':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def request(method: str, url: str, body: Optional[bytes] = None,
            headers: Optional[Dict[str, str]] = None, timeout_s: float = 30.0,
            connect_timeout_s: float = 5.0, cancel: Optional[threading.Event] = None,
            max_redirects: int = 3, max_bytes: int = DEFAULT_MAX_BYTES,
            raise_for_status: bool = True) -> Response:
    """
    Send a request and return its :class:`Response` (headers read, body not yet).

    ``timeout_s`` is one deadline for everything, including later reads of the body.
    Redirects are followed only within the same origin; 303 (and 301/302 of a POST)
    become a GET without body.  With ``raise_for_status`` a status >= 400 raises
    :class:`HTTPError` carrying up to 2000 characters of the error body.
    """
    deadline = time.monotonic() + max(0.0, float(timeout_s))
    watchdog = _Watchdog(deadline, cancel)
    start_origin = origin(url)
    headers = dict(headers or {})
    try:
        for _hop in range(max_redirects + 1):
            conn, resp = _send(method, url, body, headers, deadline, connect_timeout_s,
                               watchdog)
            if resp.status in REDIRECT_CODES and resp.getheader('Location'):
                target = urljoin(url, resp.getheader('Location'))
                resp.close()
                conn.close()
                try:
                    target_origin = origin(target)
                except HTTPError:
                    target_origin = None
                if target_origin != start_origin:
                    raise RedirectRefused(
                        'refused redirect from %s to another origin (%s); credentials are '
                        'never forwarded' % (url, target[:200]), status=resp.status)
                if resp.status == 303 or (resp.status in (301, 302) and method != 'GET'):
                    method, body = 'GET', None
                    headers.pop('Content-Type', None)
                url = target
                continue
            response = Response(conn, resp, url, watchdog, max_bytes)
            if raise_for_status and resp.status >= 400:
                try:
                    detail = response.read_chunk(2000).decode('utf-8', errors='replace')
                except HTTPError:
                    detail = ''
                response.close()
                raise HTTPError('HTTP %d from %s: %s' % (resp.status, url, detail[:2000]),
                                status=resp.status, body=detail)
            return response
        raise HTTPError('too many redirects (> %d) from %s' % (max_redirects, url))
    except BaseException:
        watchdog.stop()
        raise


def _send(method, url, body, headers, deadline, connect_timeout_s, watchdog):
    scheme, host, port = origin(url)
    parts = urlsplit(url)
    path = parts.path or '/'
    if parts.query:
        path += '?' + parts.query
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise HTTPTimeout('request to %s exceeded its deadline' % url)
    cls = http.client.HTTPSConnection if scheme == 'https' else http.client.HTTPConnection
    conn = cls(host, port, timeout=max(0.01, min(connect_timeout_s, remaining)))
    try:
        conn.connect()
        watchdog.watch(conn)
        conn.sock.settimeout(max(0.01, deadline - time.monotonic()))
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        if watchdog.fired:  # the shutdown ended the headers early: not a real response
            raise OSError('connection shut down by the deadline watchdog')
    except (OSError, http.client.HTTPException, ValueError) as exc:
        conn.close()
        if watchdog.fired == 'cancel':
            raise HTTPCancelled('request to %s cancelled' % url) from None
        if watchdog.fired == 'timeout' or isinstance(exc, socket.timeout) \
                or time.monotonic() >= deadline:
            raise HTTPTimeout('request to %s timed out' % url) from None
        reason = getattr(exc, 'reason', None) or exc
        raise HTTPError('%s unreachable: %s' % (url, reason)) from None
    return conn, resp


def load_secret(env_name: str = '', file_path: str = '', what: str = 'api key') -> str:
    """
    Return a secret from an environment variable or a file ('' if neither is set).

    The file is read whole, stripped, and must be at most 64 KiB.  A named variable or file
    that is missing is an error (a typo must not silently send requests unauthenticated).
    """
    if env_name:
        value = os.environ.get(env_name)
        if value is None:
            raise HTTPError('%s: environment variable %s is not set' % (what, env_name))
        return value.strip()
    if file_path:
        path = os.path.expanduser(file_path)
        try:
            with open(path, 'rb') as fh:
                data = fh.read(65537)
        except OSError as exc:
            raise HTTPError('%s: cannot read %s: %s' % (what, path, exc.strerror)) from None
        if len(data) > 65536:
            raise HTTPError('%s: %s is larger than 64 KiB' % (what, path))
        return data.decode('utf-8', errors='replace').strip()
    return ''
