"""``hzz certificates DIR``: a new CA and the Dask certificates of one cluster."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import EXIT_OK, HelpFormatter


def add_certificates_parser(subparsers: argparse._SubParsersAction) -> None:
    from cluster.runtime.certificates import CA_FILE, CA_KEY_FILE, ROLES, VALID_DAYS

    roles = ", ".join(ROLES)
    parser = subparsers.add_parser(
        "certificates",
        help="make a cluster's own CA and the certificates Dask's mutual TLS needs",
        description=(
            f"Write into DIR a new certificate authority ({CA_FILE}, {CA_KEY_FILE}) and, "
            f"signed by it, a certificate ROLE.pem and key ROLE-key.pem for each role "
            f"({roles}); ECDSA P-256, valid for {VALID_DAYS} days. DIR is made readable by "
            "its owner only and must not hold certificates already. The Docker stack takes "
            "them as secrets (deploy/make-secrets.sh); a client of the cluster connects with "
            "hzz run --certificates DIR. Keep ca-key.pem off the cluster's machines."
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("directory", metavar="DIR", type=Path, help="where to write them")
    parser.set_defaults(handler=certificates_command)


def certificates_command(args: argparse.Namespace) -> int:
    from cluster.runtime.certificates import make_certificates, write_certificates

    written = write_certificates(args.directory, make_certificates())
    print(f"hzz certificates: wrote {', '.join(p.name for p in written)} into {args.directory}")
    return EXIT_OK
