"""The `kvip` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import trio

from kvip import __version__, app

DESCRIPTION = """\
Static DHCP service and IP address manager for KubeVirt virtual machines on
Multus bridge networks. Reads IPPool and VirtualMachineNetworkConfig objects
(kubevirtiphelper.k8s.binbash.org/v1, compatible with kubevirt-ip-helper),
reserves an address for every VM NIC on a pool's network, and answers DHCP
with exactly that address on the pool's interface."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value else default


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kvip", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"kvip {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the controller and the DHCP servers (what the Deployment runs)",
        description=(
            "Watch IPPools, VirtualMachines and vmnetcfgs; reserve addresses; serve DHCP on "
            "each pool's bindinterface. Stops cleanly on SIGTERM."
        ),
    )
    run.add_argument(
        "--kubeconfig",
        default=_env("KUBECONFIG"),
        help="kubeconfig file (env KUBECONFIG; default: in-cluster config, else ~/.kube/config)",
    )
    run.add_argument(
        "--context", default=_env("KUBECONTEXT"), help="kubeconfig context (env KUBECONTEXT)"
    )
    run.add_argument(
        "--pool-selector",
        default=_env("POOL_SELECTOR"),
        metavar="SELECTOR",
        help="serve only IPPools matching this label selector, e.g. 'kvip/shard=a' "
        "(env POOL_SELECTOR; default: all pools)",
    )
    run.add_argument(
        "--log-level",
        default=_env("LOGLEVEL", "INFO"),
        metavar="LEVEL",
        help="INFO, DEBUG (adds a line per DHCP packet: type, MAC, xid, and the reply or "
        "why none; and retried writes) or TRACE (adds every API request); "
        "env LOGLEVEL; default INFO",
    )
    run.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=_env("LOG_FORMAT", "text"),
        help="log line format (env LOG_FORMAT; default text)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=8,
        help="VMs reconciled in parallel (default 8)",
    )
    run.add_argument(
        "--drain-seconds",
        type=float,
        default=float(_env("DRAIN_SECONDS") or 2),
        metavar="S",
        help="on SIGTERM: release the lease at once, then answer only renewals and "
        "DHCP exchanges begun here for S seconds, so clients move to another replica "
        "before the sockets close (env DRAIN_SECONDS; default 2; keep it below the "
        "pod's terminationGracePeriodSeconds)",
    )
    run.add_argument(
        "--socket-netns",
        default=_env("SOCKET_NETNS"),
        metavar="NAME",
        help="open the pools' DHCP sockets inside the network namespace /run/netns/NAME "
        "while talking to the API server from this one (demos, tests, host setups); "
        "env SOCKET_NETNS",
    )
    election = run.add_argument_group(
        "high availability (every replica serves DHCP; the Lease holder claims and writes)"
    )
    election.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=_env("LEADER_ELECT", "true") != "false",
        help="only the holder of the Lease claims addresses and writes; every replica serves "
        "the recorded reservations (env LEADER_ELECT; default on; off: one replica only)",
    )
    election.add_argument(
        "--lease-name",
        default=_env("LEASE_NAME", "kvip"),
        help="the coordination.k8s.io Lease; one per Deployment when sharding "
        "(env LEASE_NAME; default kvip)",
    )
    election.add_argument(
        "--lease-namespace",
        default=_env("LEASE_NAMESPACE"),
        help="namespace of the Lease (env LEASE_NAMESPACE; default POD_NAMESPACE, "
        "else the service account's, else default)",
    )
    election.add_argument(
        "--lease-duration", type=float, default=15.0,
        help="seconds a follower waits for a silent leader before it leads (default 15)",
    )  # fmt: skip
    election.add_argument(
        "--renew-deadline", type=float, default=10.0,
        help="seconds a leader keeps trying to renew before it steps down (default 10)",
    )  # fmt: skip
    election.add_argument(
        "--retry-period", type=float, default=2.0,
        help="seconds between attempts to acquire or renew (default 2)",
    )  # fmt: skip
    metrics = run.add_argument_group("metrics and probes")
    metrics.add_argument(
        "--metrics-address",
        default=_env("METRICS_ADDRESS", "0.0.0.0"),
        help="address for /metrics, /healthz and /readyz (env METRICS_ADDRESS; default 0.0.0.0)",
    )
    metrics.add_argument(
        "--metrics-port",
        type=int,
        default=int(_env("METRICS_PORT", "8080") or 8080),
        help="port for /metrics, /healthz and /readyz (env METRICS_PORT; default 8080)",
    )
    metrics.add_argument(
        "--vmnetcfg-metrics",
        action=argparse.BooleanOptionalAction,
        default=_env("VMNETCFG_METRICS", "true") != "false",
        help="export kubevirtiphelper_vmnetcfg_status, one series per VM NIC; turn it off "
        "for large clusters (kvip_vmnetcfg_nics still counts the NICs by state; "
        "env VMNETCFG_METRICS; default on)",
    )
    webhook = run.add_argument_group(
        "admission webhook (refuses bad IPPools and moved vmnetcfg addresses at kubectl "
        "apply; deploy/components/webhook)"
    )
    webhook.add_argument(
        "--webhook-port",
        type=int,
        default=int(_env("WEBHOOK_PORT", "0") or 0),
        metavar="N",
        help="serve the validating admission webhook over HTTPS on port N, with a "
        "certificate kvip makes and rotates (env WEBHOOK_PORT; default 0: off)",
    )
    webhook.add_argument(
        "--webhook-address",
        default=_env("WEBHOOK_ADDRESS", "0.0.0.0"),
        metavar="ADDRESS",
        help="address of the webhook (env WEBHOOK_ADDRESS; default 0.0.0.0)",
    )
    webhook.add_argument(
        "--webhook-service",
        default=_env("WEBHOOK_SERVICE", "kvip-webhook"),
        metavar="NAME",
        help="the Service in front of the webhook, in kvip's namespace: its names go "
        "into the certificate (env WEBHOOK_SERVICE; default kvip-webhook)",
    )
    webhook.add_argument(
        "--webhook-host",
        action="append",
        default=[],
        metavar="HOST",
        help="another name or address the API server reaches the webhook by "
        "(repeatable; e.g. 127.0.0.1 with clientConfig.url)",
    )
    webhook.add_argument(
        "--webhook-configuration",
        default=_env("WEBHOOK_CONFIGURATION", "kvip"),
        metavar="NAME",
        help="the ValidatingWebhookConfiguration whose caBundle kvip keeps current "
        "(env WEBHOOK_CONFIGURATION; default kvip; '' to leave it alone)",
    )
    webhook.add_argument(
        "--webhook-user",
        default=_env("WEBHOOK_USER"),
        metavar="USER",
        help="kvip's own user name, whose writes are never refused (env WEBHOOK_USER; "
        "default: the pod's service account, else system:serviceaccount:NAMESPACE:kvip)",
    )
    pools = commands.add_parser(
        "pools",
        help="list the IPPools: network, subnet (and IPv6 subnet), used, available, ready",
        description="A table of every IPPool with its usage, read from the pools' status.",
    )
    vmnetcfg = commands.add_parser("vmnetcfg", help="act on one VM's VirtualMachineNetworkConfig")
    vmnetcfg_commands = vmnetcfg.add_subparsers(dest="vmnetcfg_command", metavar="ACTION")
    reset = vmnetcfg_commands.add_parser(
        "reset",
        help="clear a sticky ERROR (a declined address, a failed restore) and retry",
        description=(
            "Clear a VM's declined addresses and reservation errors and make kvip retry "
            "it at once. Use it after fixing the cause, e.g. removing the other host that "
            "made the VM decline its address."
        ),
    )
    reset.add_argument("reference", metavar="NAMESPACE/NAME", help="the vmnetcfg (= the VM)")
    cleanup = commands.add_parser(
        "cleanup",
        help="remove vmnetcfgs whose VM is gone (kvip does this itself at start-up)",
        description=(
            "Find the vmnetcfgs kvip manages whose VirtualMachine no longer exists and remove "
            "them, which frees their addresses. Useful while kvip is not running."
        ),
    )
    cleanup.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    why = commands.add_parser(
        "why",
        help="follow one VM through kvip: NICs, pools, records, leader, DHCP seen",
        description=(
            "One screen about one VirtualMachine: each NIC, its network, the IPPool that "
            "matched or why none did, the address recorded in its vmnetcfg and the status, "
            "declines, the leader and the replicas serving, recent Events; with --debug-url, "
            "the last DHCP messages each replica saw from each MAC and what it answered."
        ),
    )
    why.add_argument("reference", metavar="NAMESPACE/VM", help="the VirtualMachine")
    why.add_argument(
        "--debug-url",
        action="append",
        default=[],
        metavar="URL",
        help="a replica's metrics endpoint (e.g. http://127.0.0.1:8080 through "
        "`kubectl -n kvip-system port-forward pod/<kvip pod> 8080`); repeatable",
    )
    why.add_argument(
        "--lease-name", default=_env("LEASE_NAME", "kvip"), help="kvip's Lease (default kvip)"
    )
    why.add_argument(
        "--lease-namespace",
        default=_env("LEASE_NAMESPACE", "kvip-system"),
        help="namespace of kvip's Lease (default kvip-system)",
    )
    for sub in (pools, reset, cleanup, why):
        sub.add_argument(
            "--kubeconfig", default=_env("KUBECONFIG"), help="kubeconfig file (env KUBECONFIG)"
        )
        sub.add_argument(
            "--context", default=_env("KUBECONTEXT"), help="kubeconfig context (env KUBECONTEXT)"
        )
    return parser


def _operate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from kvip.app import operator
    from kvip.k8s import Kube, KubeError

    if args.command == "vmnetcfg" and args.vmnetcfg_command is None:
        parser.parse_args(["vmnetcfg", "--help"])
    try:
        kube = Kube.connect(kubeconfig=args.kubeconfig, context=args.context)
    except Exception as exc:
        print(f"kvip: cannot load the Kubernetes configuration: {exc}", file=sys.stderr)
        return 1
    try:
        if args.command == "pools":
            return operator.list_pools(kube, sys.stdout)
        if args.command == "vmnetcfg":
            return operator.reset_vmnetcfg(kube, args.reference, sys.stdout)
        if args.command == "why":
            from kvip.app._why import why

            return why(kube, args.reference, sys.stdout, lease_name=args.lease_name,
                       lease_namespace=args.lease_namespace,
                       debug_urls=args.debug_url)  # fmt: skip
        return operator.cleanup(kube, sys.stdout, dry_run=args.dry_run)
    except KubeError as exc:
        print(f"kvip: {exc}", file=sys.stderr)
        return 1
    finally:
        kube.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command in ("pools", "vmnetcfg", "cleanup", "why"):
        return _operate(args, parser)
    try:
        app.configure(args.log_level, fmt=args.log_format)
    except ValueError as exc:
        parser.error(str(exc))
    if args.command == "run":
        # A leader steps down at its renew deadline; a follower waits out the lease
        # duration: only this order keeps them from leading at once.
        if args.leader_elect and not (
            0 < args.retry_period < args.renew_deadline < args.lease_duration
        ):
            parser.error(
                "need 0 < --retry-period < --renew-deadline < --lease-duration, got "
                f"{args.retry_period:g}, {args.renew_deadline:g}, {args.lease_duration:g}"
            )
        options = app.RunOptions(
            kubeconfig=args.kubeconfig,
            context=args.context,
            pool_selector=args.pool_selector,
            workers=args.workers,
            socket_netns=args.socket_netns,
            leader_elect=args.leader_elect,
            lease_name=args.lease_name,
            lease_namespace=args.lease_namespace,
            lease_duration=args.lease_duration,
            renew_deadline=args.renew_deadline,
            retry_period=args.retry_period,
            drain=max(0.0, args.drain_seconds),
            metrics_address=args.metrics_address,
            metrics_port=args.metrics_port,
            vmnetcfg_metrics=args.vmnetcfg_metrics,
            webhook=_webhook_options(args),
        )
        try:
            trio.run(app.run, options)
        except KeyboardInterrupt:
            return 130
        except Exception as exc:  # a last word that says what failed, not a traceback
            # The traceback goes to the log: a crash inside an actor arrives wrapped in
            # exception groups, whose own message says nothing about the cause.
            logging.getLogger("kvip").critical("kvip crashed", exc_info=exc)
            print(f"kvip: {_root_cause(exc)}", file=sys.stderr)
            return 1
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


def _webhook_options(args: argparse.Namespace) -> app.WebhookOptions | None:
    if not args.webhook_port:
        return None
    namespace = app.default_namespace()
    return app.WebhookOptions(
        port=args.webhook_port,
        address=args.webhook_address,
        hosts=(*app.service_hosts(args.webhook_service, namespace), *args.webhook_host),
        configuration=args.webhook_configuration or None,
        trusted_user=args.webhook_user or app.own_user(namespace),
    )


def _root_cause(exc: BaseException) -> str:
    """The innermost exception of nested exception groups, as `Type: message`."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"
