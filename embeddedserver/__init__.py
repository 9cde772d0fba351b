"""Scripted fake TCP servers that live inside a test process.

    >>> from embeddedserver import CommandServer, RECEIVE, http_response
    >>> import urllib.request
    >>> with CommandServer([RECEIVE, http_response("hello world")], verbose=False) as srvr:
    ...     urllib.request.urlopen(f"http://127.0.0.1:{srvr.port}/hello").read()
    b'hello world'

The package reads from the pure core up to the shells: ``steps`` (the command language),
``record`` (transcripts and failures) and ``scriptfile`` (the text format) touch no socket;
``_connection`` and ``_listen`` are the runtime that serves a script on sockets;
``servers``, ``tcpserver``, ``factories``, ``replay``, ``faults`` and ``tls`` are the ways to
drive it;
``plugin`` (pytest), ``cli`` and ``demo`` sit on top.
"""

from ._args import DEFAULT_TIMEOUT, JOIN_TIMEOUT, TCPSERVER_TIMEOUT
from ._connection import Connection, ServerStopped, StepFailed
from ._faultkinds import (
    Bandwidth,
    Blackhole,
    Fault,
    Latency,
    LimitData,
    OnPattern,
    ResetPeer,
    Slicer,
    SlowClose,
    Timeout,
)
from ._listen import listen_tcp
from ._match import Inbox, Mismatch
from ._version import __version__
from .factories import CommandServerFactory, TcpServerFactory, read_frame, write_frame
from .faults import DOWNSTREAM, UPSTREAM, Direction, FaultHandle, FaultProxy
from .record import ConnectionRecord, Event, Failure, render_transcript, show_bytes
from .replay import RecordingProxy
from .rules import Matchable, Reply, Rule, RuleBook, Rules, rules_in
from .scriptfile import (
    FORMAT_HEADER,
    ReadLike,
    ScriptSyntaxError,
    format_script,
    load_script,
    parse_script,
    save_script,
)
from .servers import (
    AT_LEAST_ONE,
    SETTLE,
    AsyncioCommandServer,
    AsyncioServerOptions,
    CommandServer,
    OneShotServer,
    ServerOptions,
    at_least,
    server_for_test,
)
from .steps import (
    RECEIVE,
    AcceptAndClose,
    Call,
    Close,
    Command,
    Delay,
    Drip,
    Expect,
    ExpectClose,
    ExpectFrame,
    ExpectRegex,
    Garbage,
    HalfClose,
    Hang,
    PerConnection,
    ReadFrame,
    ReadLine,
    ReadStep,
    ReadUntil,
    ReadUntilClose,
    Receive,
    Reset,
    Script,
    Send,
    SendFrame,
    Step,
    compile_script,
    describe_steps,
    http_response,
)
from .tcpserver import Join, TcpServer
from .tls import (
    PLAINTEXT_REPLY,
    TLS_HOSTNAMES,
    AbortHandshake,
    CloseWithoutNotify,
    LocalTLS,
    PlaintextReply,
)

__all__ = [
    "AT_LEAST_ONE",
    "DEFAULT_TIMEOUT",
    "DOWNSTREAM",
    "FORMAT_HEADER",
    "JOIN_TIMEOUT",
    "PLAINTEXT_REPLY",
    "RECEIVE",
    "SETTLE",
    "TCPSERVER_TIMEOUT",
    "TLS_HOSTNAMES",
    "UPSTREAM",
    "AbortHandshake",
    "AcceptAndClose",
    "AsyncioCommandServer",
    "AsyncioServerOptions",
    "Bandwidth",
    "Blackhole",
    "Call",
    "Close",
    "CloseWithoutNotify",
    "Command",
    "CommandServer",
    "CommandServerFactory",
    "Connection",
    "ConnectionRecord",
    "Delay",
    "Direction",
    "Drip",
    "Event",
    "Expect",
    "ExpectClose",
    "ExpectFrame",
    "ExpectRegex",
    "Failure",
    "Fault",
    "FaultHandle",
    "FaultProxy",
    "Garbage",
    "HalfClose",
    "Hang",
    "Inbox",
    "Join",
    "Latency",
    "LimitData",
    "LocalTLS",
    "Matchable",
    "Mismatch",
    "OnPattern",
    "OneShotServer",
    "PerConnection",
    "PlaintextReply",
    "ReadFrame",
    "ReadLike",
    "ReadLine",
    "ReadStep",
    "ReadUntil",
    "ReadUntilClose",
    "Receive",
    "RecordingProxy",
    "Reply",
    "Reset",
    "ResetPeer",
    "Rule",
    "RuleBook",
    "Rules",
    "Script",
    "ScriptSyntaxError",
    "Send",
    "SendFrame",
    "ServerOptions",
    "ServerStopped",
    "Slicer",
    "SlowClose",
    "Step",
    "StepFailed",
    "TcpServer",
    "TcpServerFactory",
    "Timeout",
    "__version__",
    "at_least",
    "compile_script",
    "describe_steps",
    "format_script",
    "http_response",
    "listen_tcp",
    "load_script",
    "parse_script",
    "read_frame",
    "render_transcript",
    "rules_in",
    "save_script",
    "server_for_test",
    "show_bytes",
    "write_frame",
]
