"""TLS for remote Dask schedulers: Security from certificate files, clear option errors."""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from medsnowball.cli import app
from medsnowball.core.errors import ConfigError
from medsnowball.pipeline.dask_executor import DaskExecutor, make_executor
from medsnowball.pipeline.dask_security import check_scheduler_security, make_security

runner = CliRunner()


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer: object, ca: bool):
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a certificate it signed (with its key) and an unrelated key."""
    root = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test-ca", ca_key, "test-ca", ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("medsnowball", key, "test-ca", ca_key, False)
    files = {
        "ca": root / "ca.pem",
        "cert": root / "client.pem",
        "key": root / "client.key",
        "other_key": root / "other.key",
    }
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(_pem_key(key))
    files["other_key"].write_bytes(_pem_key(ec.generate_private_key(ec.SECP256R1())))
    return files


def test_security_is_built_from_the_certificate_files(certs: dict[str, Path]) -> None:
    sec = make_security(certs["ca"], certs["cert"], certs["key"])
    assert sec.require_encryption is True
    assert sec.tls_ca_file == str(certs["ca"])
    assert sec.tls_client_cert == str(certs["cert"])
    assert sec.tls_client_key == str(certs["key"])
    ctx = sec.get_connection_args("client")["ssl_context"]
    assert ctx is not None  # the files loaded into a client TLS context
    assert make_security() is None  # no option: plain connection, no Security


def test_a_missing_certificate_file_is_a_clear_error(certs: dict[str, Path]) -> None:
    missing = certs["cert"].parent / "nope" / "client.pem"
    with pytest.raises(ConfigError) as info:
        make_security(certs["ca"], missing, certs["key"])
    msg = str(info.value)
    assert msg.startswith("--tls-cert: expected a readable PEM file")
    assert str(missing) in msg
    with pytest.raises(ConfigError, match=r"^--tls-ca-file: expected a readable PEM file"):
        make_security(certs["ca"].parent, certs["cert"])  # a folder
    with pytest.raises(ConfigError, match=r"^--tls-ca-file: required"):
        make_security(None, certs["cert"], certs["key"])
    with pytest.raises(ConfigError, match=r"^--tls-cert: required"):
        make_security(certs["ca"])


def test_a_key_that_does_not_match_the_certificate_is_refused(certs: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match=r"cannot be loaded.*key belongs to the certificate"):
        make_security(certs["ca"], certs["cert"], certs["other_key"])


def test_address_and_certificates_must_agree(
    certs: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    sec = make_security(certs["ca"], certs["cert"], certs["key"])
    check_scheduler_security("tls://scheduler:8786", sec)
    check_scheduler_security(None, None)
    with pytest.raises(ConfigError, match="tls:// address needs certificates"):
        check_scheduler_security("tls://scheduler:8786", None)
    with pytest.raises(ConfigError, match=r"expected a tls:// address.*found tcp://"):
        check_scheduler_security("tcp://scheduler:8786", sec)
    with pytest.raises(ConfigError, match="without --scheduler"):
        check_scheduler_security(None, sec)
    with caplog.at_level(logging.WARNING, logger="medsnowball.pipeline.dask_security"):
        check_scheduler_security("tcp://127.0.0.1:8786", None)
        check_scheduler_security("tcp://localhost:8786", None)
        assert not caplog.records  # a local scheduler: no warning
        check_scheduler_security("tcp://10.1.2.3:8786", None)
    assert "unencrypted tcp://" in caplog.text
    assert "pickles" in caplog.text


def test_executors_refuse_mismatched_tls_before_connecting(certs: dict[str, Path]) -> None:
    sec = make_security(certs["ca"], certs["cert"], certs["key"])
    with pytest.raises(ConfigError, match="needs certificates"):
        DaskExecutor("tls://127.0.0.1:9", connect_timeout_s=1)
    with pytest.raises(ConfigError, match=r"--tls-\* options need --executor dask"):
        make_executor("local", workers=1, security=sec)


def test_cli_reports_a_missing_tls_file_as_a_usage_error(
    certs: dict[str, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.pem"
    inputs = tmp_path / "in"
    inputs.mkdir()
    result = runner.invoke(
        app,
        [
            "run",
            str(inputs),
            "-o",
            str(tmp_path / "out"),
            "--executor",
            "dask",
            "--scheduler",
            "tls://127.0.0.1:9",
            "--tls-ca-file",
            str(certs["ca"]),
            "--tls-cert",
            str(missing),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "--tls-cert: expected a readable PEM file" in result.output
    assert "Traceback" not in result.output


def test_a_tls_scheduler_is_reached_with_the_certificates(certs: dict[str, Path]) -> None:
    """An in-process TLS cluster; the executor connects to it only with the certificates."""
    from distributed import LocalCluster, Security

    server = Security(
        tls_ca_file=str(certs["ca"]),
        tls_scheduler_cert=str(certs["cert"]),
        tls_scheduler_key=str(certs["key"]),
        tls_worker_cert=str(certs["cert"]),
        tls_worker_key=str(certs["key"]),
        tls_client_cert=str(certs["cert"]),
        tls_client_key=str(certs["key"]),
        require_encryption=True,
    )
    with LocalCluster(
        n_workers=1,
        processes=False,
        threads_per_worker=1,
        security=server,
        protocol="tls://",
        dashboard_address=None,
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tls://")
        sec = make_security(certs["ca"], certs["cert"], certs["key"])
        with DaskExecutor(address, security=sec, connect_timeout_s=20) as exe:
            assert exe.workers == 1
            assert list(exe.run(abs, [-3], lambda t, r: r)) == [3]
