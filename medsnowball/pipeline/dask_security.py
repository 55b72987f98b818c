"""TLS for remote Dask schedulers: certificates to a ``distributed.Security``, address checks.

Dask moves tasks and results as pickles: whoever controls the scheduler (or can talk to
it) runs code on the workers and on this client, and plain ``tcp://`` is unencrypted and
unauthenticated. Use ``tls://`` with certificates (mutual TLS) outside a trusted
network; see ``docs/distributed.md`` (Security)::

    security = make_security(ca_file="ca.pem", cert="client.pem", key="client.key")
    with DaskExecutor("tls://scheduler:8786", security=security) as exe:
        ...
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from medsnowball.core.errors import ConfigError

__all__ = ["check_scheduler_security", "make_security"]

log = logging.getLogger(__name__)

_LOCAL_HOSTS = ("localhost", "")


def _readable(value: str | os.PathLike[str] | None, option: str) -> str | None:
    if value is None:
        return None
    path = Path(os.fspath(value)).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        found = "a folder" if path.is_dir() else "no readable file"
        raise ConfigError(
            f"{option}: expected a readable PEM file, found {found} at {os.fspath(value)!r}; "
            "pass the path of the certificate file your cluster administrator issued."
        )
    return str(path)


def make_security(
    ca_file: str | os.PathLike[str] | None = None,
    cert: str | os.PathLike[str] | None = None,
    key: str | os.PathLike[str] | None = None,
) -> Any:
    """Build the ``distributed.Security`` of a ``tls://`` connection from certificate files.

    Args:
        ca_file: CA certificate(s) that signed the scheduler's certificate (PEM).
        cert: This client's certificate (PEM; may also hold the key). Dask's TLS is mutual:
            the scheduler checks it.
        key: The certificate's private key (PEM), when not inside ``cert``.

    Returns:
        A ``distributed.Security`` requiring encryption, or None when no file is given.

    Raises:
        ConfigError: Names the option and path of a missing/unreadable file, a key or
            certificate without the CA file (or the reverse), or files that are not a
            valid PEM certificate/key pair.
        MissingDependencyError: dask[distributed] is not installed.
    """
    if ca_file is None and cert is None and key is None:
        return None
    if ca_file is None or cert is None:
        missing = "--tls-ca-file" if ca_file is None else "--tls-cert"
        raise ConfigError(
            f"{missing}: required for a tls:// scheduler, found none; pass --tls-ca-file "
            "(the CA that signed the scheduler's certificate) and --tls-cert (this client's "
            "certificate, plus --tls-key when the key is a separate file)."
        )
    from medsnowball.pipeline.dask_executor import _require_distributed

    _require_distributed()
    from distributed import Security

    security = Security(
        tls_ca_file=_readable(ca_file, "--tls-ca-file"),
        tls_client_cert=_readable(cert, "--tls-cert"),
        tls_client_key=_readable(key, "--tls-key"),
        require_encryption=True,
    )
    try:  # load the files now: a bad PEM is a clear error here, not at connect time
        security.get_connection_args("client")
    except (ssl.SSLError, ValueError, OSError) as exc:
        raise ConfigError(
            f"--tls-ca-file/--tls-cert/--tls-key: expected PEM certificates and a matching "
            f"private key, found files that cannot be loaded ({type(exc).__name__}: {exc}); "
            "check that the key belongs to the certificate and that the files are PEM."
        ) from exc
    return security


def check_scheduler_security(address: str | None, security: Any) -> None:
    """Check that ``address`` and ``security`` fit together; warn about remote ``tcp://``.

    Args:
        address: Scheduler address (``tls://host:8786``), or None for a local cluster.
        security: A ``distributed.Security`` or None.

    Raises:
        ConfigError: ``tls://`` without certificates, certificates with a non-TLS
            address, or certificates without a scheduler.
    """
    if address is None:
        if security is not None:
            raise ConfigError(
                "TLS certificates given without --scheduler; they secure the connection to "
                "a remote scheduler: add --scheduler tls://host:8786 (or drop the --tls-* "
                "options for a local cluster)."
            )
        return
    scheme = urlsplit(address).scheme if "://" in address else "tcp"
    if scheme == "tls" and security is None:
        raise ConfigError(
            f"--scheduler {address}: a tls:// address needs certificates, found none; pass "
            "--tls-ca-file and --tls-cert (and --tls-key), or a distributed.Security."
        )
    if scheme != "tls" and security is not None:
        raise ConfigError(
            f"--scheduler {address}: expected a tls:// address with TLS certificates, found "
            f"{scheme}://; write the address as tls://host:port (the scheduler must be "
            "started with TLS too)."
        )
    if scheme == "tcp" and not _is_local(address):
        log.warning(
            "the Dask scheduler at %s is reached over unencrypted tcp://: Dask sends "
            "pickles, so anyone who controls or can reach the scheduler can run code here "
            "and on the workers; use tls:// with certificates outside a trusted network "
            "(docs/distributed.md, Security).",
            address,
        )


def _is_local(address: str) -> bool:
    host = urlsplit(address if "://" in address else f"tcp://{address}").hostname or ""
    if host in _LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
