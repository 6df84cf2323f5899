"""A TCP proxy for tests: put it between the project and PostgreSQL, then cut and restore it.

::

    with TcpProxy("127.0.0.1", 5432) as proxy:
        engine = sa.create_engine(proxy.url_for(pg_url))
        ...
        proxy.cut()       # open connections are closed; new ones are refused
        proxy.restore()   # new connections get through again
        proxy.cut_for(3)  # an outage of 3 s, ended by a timer

Each connection gets two threads, one pumping bytes each way; an acceptor thread owns the
listening socket. ``cut()`` has two modes, as a database outage shows itself:

* ``"refuse"`` (default): the listening socket is closed, so a new connection is refused at
  once (``Connection refused``, as when PostgreSQL is down); ``restore()`` listens again on the
  same port, so URLs from ``url_for`` stay valid;
* ``"drop"``: new connections are accepted and closed at once (the server hangs up).

In both, every open connection is closed in both directions (the client sees "server closed
the connection unexpectedly"). ``stop()`` closes everything and joins every thread it started.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from typing import Literal

from sqlalchemy.engine import URL, make_url

__all__ = ["CutMode", "TcpProxy"]

CutMode = Literal["refuse", "drop"]

_POLL_SECONDS = 0.05  # how often the acceptor looks at its state: bounds cut/stop latency
_JOIN_SECONDS = 5.0
_CHUNK = 65536


class _Link:
    """One proxied connection: the client's socket, the upstream socket, two pumps."""

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.upstream: socket.socket | None = None
        self.lock = threading.Lock()
        self.is_shut = False
        self._pumps_left = 2

    def shut(self) -> None:
        """Stop both directions now: wakes any pump blocked in recv (close() alone does not)."""
        with self.lock:
            self.is_shut = True
            sockets = [self.client, self.upstream]
        for sock in sockets:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def pump_done(self) -> bool:
        """Called by each pump as it ends (ending the other); True for the last one."""
        self.shut()
        with self.lock:
            self._pumps_left -= 1
            return self._pumps_left == 0

    def close_sockets(self) -> None:
        for sock in (self.client, self.upstream):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port`` until cut or stopped."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        connect_timeout: float = 5.0,
    ) -> None:
        self.target = (target_host, int(target_port))
        self.listen_host = listen_host
        self.connect_timeout = connect_timeout
        self._port = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._want_listening = True  # what cut()/restore() asked for
        self._listening = False  # what the acceptor has done (it owns the listening socket)
        self._listen_error: OSError | None = None
        self._cut_mode: CutMode | None = None
        self._links: set[_Link] = set()
        self._threads: set[threading.Thread] = set()
        self._timers: set[threading.Timer] = set()
        self._acceptor: threading.Thread | None = None
        self.connections_accepted = 0
        self.connections_dropped = 0  # accepted while cut, closed at once

    # ---- lifecycle --------------------------------------------------------------------

    def start(self) -> TcpProxy:
        if self._acceptor is not None:
            return self
        self._stop.clear()
        listener = self._bind()  # in the caller's thread: a bad address fails here, loudly
        self._port = listener.getsockname()[1]
        self._listening = True
        self._acceptor = threading.Thread(
            target=self._accept_loop, args=(listener,), name="tcp-proxy-accept", daemon=True
        )
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection; join every thread started."""
        self._stop.set()
        with self._cond:
            timers = list(self._timers)
            self._cond.notify_all()
        for timer in timers:
            timer.cancel()
        if self._acceptor is not None:
            self._acceptor.join(_JOIN_SECONDS)
            self._acceptor = None
        self._shut_links()
        with self._cond:
            threads = list(self._threads)
        for thread in threads + timers:
            if thread is not threading.current_thread():
                thread.join(_JOIN_SECONDS)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("proxy not started")
        return self._port

    def url_for(self, url: str | URL) -> str:
        """``url`` (a SQLAlchemy URL) with its host and port pointing at this proxy."""
        proxied = make_url(url).set(host=self.listen_host, port=self.port)
        return proxied.render_as_string(hide_password=False)

    # ---- faults -----------------------------------------------------------------------

    def cut(self, mode: CutMode = "refuse") -> None:
        """Close every open connection; refuse (or drop) new ones until :meth:`restore`."""
        if mode not in ("refuse", "drop"):
            raise ValueError(f"cut mode must be 'refuse' or 'drop', not {mode!r}")
        with self._cond:
            self._cut_mode = mode
            self._want_listening = mode == "drop"
            self._cond.notify_all()
            # Wait until the acceptor has stopped listening: afterwards no connect succeeds.
            self._cond.wait_for(
                lambda: self._listening == self._want_listening or self._stop.is_set(),
                _JOIN_SECONDS,
            )
        self._shut_links()

    def restore(self) -> None:
        """Let new connections through again (on the same port)."""
        with self._cond:
            self._cut_mode = None
            self._want_listening = True
            self._listen_error = None
            self._cond.notify_all()
            self._cond.wait_for(
                lambda: self._listening or self._listen_error is not None or self._stop.is_set(),
                _JOIN_SECONDS,
            )
            error = self._listen_error
        if error is not None:
            raise RuntimeError(f"proxy could not listen again on port {self._port}") from error

    def cut_for(self, seconds: float, mode: CutMode = "refuse") -> threading.Timer:
        """Cut now and restore after ``seconds`` from a timer thread (``join()`` it to wait)."""
        self.cut(mode)
        timer = threading.Timer(seconds, self._timed_restore)
        timer.name = "tcp-proxy-restore"
        timer.daemon = True
        with self._cond:
            self._timers = {t for t in self._timers if t.is_alive()}
            self._timers.add(timer)
        timer.start()
        return timer

    @property
    def is_cut(self) -> bool:
        with self._cond:
            return self._cut_mode is not None

    @property
    def active_connections(self) -> int:
        """Connections accepted and not yet torn down."""
        with self._cond:
            return len(self._links)

    @property
    def threads(self) -> list[threading.Thread]:
        """Threads of this proxy still alive (tests check none is left after stop)."""
        with self._cond:
            threads = [*self._threads, *self._timers]
        if self._acceptor is not None:
            threads.append(self._acceptor)
        return [t for t in threads if t.is_alive()]

    # ---- internals --------------------------------------------------------------------

    def _bind(self) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Why: restore() listens again on the port that URLs already name.
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.listen_host, self._port))
            listener.listen(128)
        except OSError:
            listener.close()
            raise
        return listener

    def _timed_restore(self) -> None:
        if not self._stop.is_set():
            with contextlib.suppress(RuntimeError):  # seen by the test as failing connects
                self.restore()

    def _shut_links(self) -> None:
        with self._cond:
            links = list(self._links)
        for link in links:
            link.shut()

    def _sync_listener(self, listener: socket.socket | None) -> socket.socket | None:
        """Open or close the listening socket as cut()/restore() asked; caller holds _cond."""
        if self._want_listening and listener is None:
            try:
                listener = self._bind()
            except OSError as exc:
                self._listen_error = exc
                self._want_listening = False
        elif not self._want_listening and listener is not None:
            listener.close()  # pending, unaccepted connects are reset: nothing gets through
            listener = None
        self._listening = listener is not None
        self._cond.notify_all()
        return listener

    def _accept_loop(self, listener: socket.socket | None) -> None:
        try:
            while not self._stop.is_set():
                with self._cond:
                    listener = self._sync_listener(listener)
                if listener is None:
                    self._stop.wait(_POLL_SECONDS)
                    continue
                readable, _, _ = select.select([listener], [], [], _POLL_SECONDS)
                if not readable:
                    continue
                try:
                    client, _ = listener.accept()
                except OSError:
                    continue
                self._admit(client)
        finally:
            if listener is not None:
                listener.close()
            with self._cond:
                self._listening = False
                self._cond.notify_all()

    def _admit(self, client: socket.socket) -> None:
        with self._cond:
            self.connections_accepted += 1
            if self._cut_mode is not None or self._stop.is_set():
                self.connections_dropped += 1
                client.close()
                return
            link = _Link(client)
            self._links.add(link)
            # Finished threads are forgotten here; stop() joins whatever is left.
            self._threads = {t for t in self._threads if t.is_alive()}
            thread = threading.Thread(
                target=self._serve, args=(link,), name="tcp-proxy-link", daemon=True
            )
            self._threads.add(thread)
        thread.start()

    def _serve(self, link: _Link) -> None:
        """Connect upstream, then pump client -> upstream here, the other way in a thread."""
        try:
            upstream = socket.create_connection(self.target, timeout=self.connect_timeout)
        except OSError:
            self._forget(link)  # the client sees the server hang up, as a down database
            return
        upstream.settimeout(None)
        for sock in (link.client, upstream):
            # Why: PostgreSQL's small messages would otherwise wait on Nagle + delayed ACK.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with link.lock:
            link.upstream = upstream
            cut_meanwhile = link.is_shut
        if cut_meanwhile:
            self._forget(link)
            return
        back = threading.Thread(
            target=self._pump, args=(link, upstream, link.client), name="tcp-proxy-pump"
        )
        back.daemon = True
        with self._cond:
            if self._stop.is_set():  # stop() may have snapshotted the threads already
                back = None
            else:
                self._threads.add(back)
        if back is None:
            self._forget(link)
            return
        back.start()
        self._pump(link, link.client, upstream)

    def _pump(self, link: _Link, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(_CHUNK)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass  # a cut, a reset or the peer gone: this link is over either way
        finally:
            if link.pump_done():
                self._forget(link)

    def _forget(self, link: _Link) -> None:
        link.shut()
        link.close_sockets()
        with self._cond:
            self._links.discard(link)
