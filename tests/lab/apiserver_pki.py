"""Credentials for the local test API server: a throw-away CA, a serving
certificate for 127.0.0.1, a service-account key pair, an admin token, and the
kubeconfig that ties them together. Made with the openssl command line tool so
the tests need no crypto library.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

# The token's user is in system:masters, which RBAC lets do everything.
ADMIN_USER = "kvip-admin"
ADMIN_GROUP = "system:masters"


class PkiError(Exception):
    """openssl failed to make a key or certificate."""


@dataclass(frozen=True, slots=True)
class Credentials:
    ca_file: Path
    server_cert: Path
    server_key: Path
    sa_key: Path
    sa_pub: Path
    token: str
    token_file: Path


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise PkiError(f"openssl {' '.join(args)} failed: {result.stderr.strip()}")


def make_credentials(directory: Path) -> Credentials:
    """Writes keys, certificates and the token file into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    # EC keys: generating RSA keys would cost a noticeable part of start-up.
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=directory)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-out", "ca.crt", "-days", "7",
        "-subj", "/CN=kvip-test-ca",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key", cwd=directory
    )
    _openssl(
        "req", "-new", "-key", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
        cwd=directory,
    )  # fmt: skip
    (directory / "server.ext").write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "7", "-extfile", "server.ext",
        cwd=directory,
    )  # fmt: skip
    # Service-account tokens are signed with this key (RS256 is what every
    # Kubernetes version accepts).
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=directory)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)

    token = secrets.token_hex(16)
    token_file = directory / "tokens.csv"
    # Format of --token-auth-file: token,user,uid,"group1,group2"
    token_file.write_text(f'{token},{ADMIN_USER},{ADMIN_USER},"{ADMIN_GROUP}"\n')
    for key in ("ca.key", "server.key", "sa.key", "tokens.csv"):
        (directory / key).chmod(0o600)
    return Credentials(
        ca_file=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        sa_key=directory / "sa.key",
        sa_pub=directory / "sa.pub",
        token=token,
        token_file=token_file,
    )


def write_kubeconfig(path: Path, *, url: str, ca_file: Path, token: str) -> None:
    """A kubeconfig with one cluster, one token user and one current context."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "kvip-test", "cluster": {"server": url, "certificate-authority": str(ca_file)}}
        ],
        "users": [{"name": ADMIN_USER, "user": {"token": token}}],
        "contexts": [
            {"name": "kvip-test", "context": {"cluster": "kvip-test", "user": ADMIN_USER}}
        ],
        "current-context": "kvip-test",
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
