"""TLS for gateways and Enlighten: one ``ssl.SSLContext`` per verification setting, shared by
every session. urllib3 would build a context per connection and load the system CA bundle into
each (822 kB and 22 ms of CPU every time)."""

from __future__ import annotations

import os
import ssl
import threading

from urllib3.util.ssl_ import create_urllib3_context

_contexts: dict[tuple[bool, str | None, tuple[int, int] | None], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def tls_context(verify: bool, ca_file: str | None = None) -> ssl.SSLContext:
    """The shared context for a verification setting.

    ``verify=False``: no verification and no CA loaded (a gateway's self-signed certificate).
    ``ca_file``: only that file is trusted (a pinned gateway certificate or a private CA); the
    certificate may name the host in its common name only, as gateways' certificates do, and a
    pinned leaf certificate is enough (partial chain). ``verify=True``: the system's CAs.
    """
    verify = verify or ca_file is not None
    # A replaced ca_file (picked up by clients made after a reload) gets a context of its own.
    stamp = None if ca_file is None else (os.stat(ca_file).st_mtime_ns, os.stat(ca_file).st_size)
    key = (verify, ca_file, stamp)
    with _contexts_lock:
        context = _contexts.get(key)
        if context is None:
            context = _contexts[key] = _new_context(verify, ca_file)
        return context


def trust_nothing() -> ssl.SSLContext:
    """A verifying context without a single trusted certificate (for a pin that cannot be read)."""
    return create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)


def _new_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    if not verify:
        return create_urllib3_context(cert_reqs=ssl.CERT_NONE)
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    if ca_file is None:
        context.load_default_certs()
        return context
    context.load_verify_locations(cafile=ca_file)
    context.hostname_checks_common_name = True
    context.verify_flags = (context.verify_flags | ssl.VERIFY_X509_PARTIAL_CHAIN) & ~ssl.VERIFY_X509_STRICT
    return context
