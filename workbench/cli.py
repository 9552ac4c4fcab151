"""The ``workbench`` command: parse, build settings once, call one function, map errors.

Every subcommand's work lives in the package; this module only wires arguments to it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from workbench.bench import BENCHMARKS
from workbench.core.errors import ConfigError, WorkbenchError, is_transient
from workbench.core.logs import configure_logging
from workbench.core.settings import Settings, load_settings

log = logging.getLogger("workbench")


def _up(settings: Settings, _args: argparse.Namespace) -> int:
    from workbench.stack.up import run_stack

    return run_stack(settings)


def _ingest(settings: Settings, _args: argparse.Namespace) -> int:
    from workbench.api.ingest_app import run_ingest

    run_ingest(settings)
    return 0


def _engine(settings: Settings, _args: argparse.Namespace) -> int:
    from workbench.api.engine_app import run_engine

    run_engine(settings)
    return 0


def _simulate(settings: Settings, args: argparse.Namespace) -> int:
    from workbench.simulators.launcher import read_edge_stats, run_simulator

    if args.edge_stats:
        stats = read_edge_stats(settings, args.kind)
        print(json.dumps({"kind": args.kind, **stats.__dict__}))
        return 0
    overrides = {
        "rest_port": args.port,
        "replay_file": args.file,
        "replay_speed": args.speed,
        "replay_shift_timestamps": False if args.keep_timestamps else None,
        "sequence_numbers": True if args.sequence_numbers else None,
        "sensors": args.sensors,
        "interval_seconds": args.interval,
    }
    run_simulator(settings, kind=args.kind, count=args.count, overrides=overrides)
    return 0


def _kernel_install(_settings: Settings, args: argparse.Namespace) -> int:
    from workbench.kernel.install import install_kernelspec

    where = install_kernelspec(user=args.user, prefix=args.prefix)
    print(f"installed kernelspec 'workbench' in {where}")
    return 0


def _bench(settings: Settings, args: argparse.Namespace) -> int:
    from workbench.bench import benchmark

    # Each benchmark has its own defaults; pass only what was given on the command line.
    options = {
        k: getattr(args, k)
        for k in (
            *("seconds", "records", "rate", "clients", "rounds", "sensors", "hours"),
            *("sizes", "triggers"),
        )
    }
    given = {k: v for k, v in options.items() if v is not None}
    outcome = benchmark(args.name)(settings, **given)
    print(json.dumps(outcome), flush=True)
    return 0


def _sources(settings: Settings, args: argparse.Namespace) -> int:
    from workbench.client.ingest_client import IngestClient

    client = IngestClient(settings)
    action, name = args.sources_command, str(getattr(args, "name", None) or "")
    if action == "list":
        result: Any = client.sources()
    elif action == "add":
        result = client.create(name, args.type, json.loads(args.config))
    elif action == "update":
        result = client.update(name, json.loads(args.config))
    elif action == "delete":
        client.delete(name)
        result = {"deleted": name}
    elif action == "health":
        result = client.health(name).to_dict() if name else client.health()
    elif action == "types":
        result = client.connector_types()
    elif action == "loss":
        result = [row.to_dict() for row in client.loss()]
    else:  # start, stop, restart: the source's health after it
        result = getattr(client, action)(name).to_dict()
    print(json.dumps(result, indent=2, default=str))
    return 0


def _streams(settings: Settings, args: argparse.Namespace) -> int:
    from workbench.client.engine_client import EngineClient

    client = EngineClient(settings)
    action = args.streams_command
    if action == "list":
        result: Any = [s.to_dict() for s in client.streams()]
    else:
        result = getattr(client, action)(args.name).to_dict()
    print(json.dumps(result, indent=2, default=str))
    return 0


def _alerts(settings: Settings, args: argparse.Namespace) -> int:
    from workbench.client.engine_client import EngineClient

    client = EngineClient(settings)
    try:
        action = args.alerts_command
        if action == "ack":
            result: Any = client.acknowledge_alert(args.alert_id)
        elif action == "rules":
            result = client.alert_rules()
        elif action == "add-rule":
            result = client.add_alert_rule(
                args.name, args.field, args.op, args.threshold, ingestion_id=args.ingestion_id
            )
        elif action == "delete-rule":
            client.delete_alert_rule(args.rule_id)
            result = {"deleted": args.rule_id}
        else:
            result = client.alerts(status=args.status)
            if result["hidden"]:
                print(
                    f"{result['hidden']} more alert(s) above your clearance "
                    f"({result['clearance']})",
                    file=sys.stderr,
                )
            result = result["alerts"]
    finally:
        client.close()
    print(json.dumps(result, indent=2, default=str))
    return 0


def _sql(settings: Settings, args: argparse.Namespace) -> int:
    from workbench.client.engine_client import EngineClient

    params = dict(_pair(p) for p in args.param)
    text = sys.stdin.read() if args.query == "-" else args.query
    client = EngineClient(settings)
    try:
        if args.computation:
            answer = client.run_computation(text, parameters=params, limit=args.limit)
        else:
            answer = client.query(text, parameters=params, limit=args.limit)
    finally:
        client.close()
    if args.json:
        rows = [dict(zip([n for n, _ in answer.columns], r, strict=True)) for r in answer.rows]
        print(json.dumps(rows, default=str))
    else:
        frame = answer.to_pandas()
        print(frame.to_string(index=False) if not frame.empty else "(no rows)")
    more = f", truncated at {answer.limit} (--limit)" if answer.truncated else ""
    print(
        f"{len(answer.rows)} rows, sensitivity {answer.sensitivity}{more}, {answer.seconds:.2f} s",
        file=sys.stderr,
    )
    return 0


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"-p takes NAME=VALUE, got {text!r}")
    return key, value


def _maintain(settings: Settings, args: argparse.Namespace) -> int:
    from workbench.maintenance.runner import run_maintenance_job
    from workbench.maintenance.steps import LAYERS, STEPS

    results = run_maintenance_job(
        settings,
        steps=STEPS if args.step == "all" else (args.step,),
        layers=LAYERS if args.layer == "all" else (args.layer,),
        dry_run=args.dry_run,
        on_start=lambda table, step: print(
            f"{table:<18} {step:<9} ...", file=sys.stderr, flush=True
        ),
        on_result=lambda result: print(result.summary(), flush=True),
    )
    return 1 if any(r.error for r in results) else 0


def _users(settings: Settings, args: argparse.Namespace) -> int:
    """Users and tokens, straight in the catalog: whoever may open the catalog administers it
    (this is how the first admin is made)."""
    from dataclasses import asdict

    from workbench.catalog.store import Catalog

    catalog = Catalog(settings.catalog.url)
    try:
        action = args.users_command
        if action == "list":
            print(json.dumps([asdict(u) for u in catalog.list_users()], indent=2, default=str))
            return 0
        if action == "tokens":
            infos = catalog.list_tokens(args.name)
            print(json.dumps([asdict(i) for i in infos], indent=2, default=str))
            return 0
        if action == "delete":
            catalog.delete_user(args.name)
            print(json.dumps({"deleted": args.name}))
            return 0
        if action == "revoke":
            catalog.revoke_token(args.token_id)
            print(json.dumps({"revoked": args.token_id}))
            return 0
        if action == "role":
            changed = catalog.set_role(args.name, args.role)
            print(json.dumps(asdict(changed), default=str))
            return 0
        if action == "add":
            password = _read_password(args) if args.password else None
            user = catalog.add_user(args.name, args.role, password=password)
            print(f"created user {user.name!r} with role {user.role!r}", file=sys.stderr)
        days = None if args.days == 0 else args.days
        token = catalog.issue_token(args.name, label=args.label, days=days)
        until = token.info.expires_at.isoformat() if token.info.expires_at else "revoked"
        print(f"token {token.info.id} for {args.name!r}, valid until {until}:", file=sys.stderr)
        print(token.value)  # the last line, alone, so scripts can take it
        return 0
    finally:
        catalog.close()


def _read_password(args: argparse.Namespace) -> str:
    import getpass

    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass(f"password for {args.name}: ")
    if first != getpass.getpass("again: "):
        raise ConfigError("the two passwords differ; nothing was created")
    return first


def _login(settings: Settings, args: argparse.Namespace) -> int:
    import getpass

    from pydantic import SecretStr

    from workbench.client.credentials import save_token, sign_in, who_am_i

    if args.token_stdin:
        token = SecretStr(sys.stdin.readline().strip())
    else:
        user = args.user or input("user: ")
        password = (
            sys.stdin.readline().rstrip("\n")
            if not sys.stdin.isatty()
            else getpass.getpass(f"password for {user}: ")
        )
        token = sign_in(settings, user, SecretStr(password), days=args.days)
    identity = who_am_i(settings, token)  # never save a token the services refuse
    path = save_token(settings, token)
    print(f"signed in as {identity['user']!r} ({identity['role']}); token saved to {path}")
    return 0


def _settings_show(settings: Settings, _args: argparse.Namespace) -> int:
    from workbench.core.settings import public_settings

    # Secrets read "***" when set and null when not: the value itself is never printed.
    print(json.dumps(public_settings(settings), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to render ``--help``)."""
    parser = argparse.ArgumentParser(
        prog="workbench", description="IoT sensor analytics workbench."
    )
    parser.add_argument(
        "--log-level", default=None, help="DEBUG, INFO, WARNING (default: settings)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str, handler: Callable[[Settings, argparse.Namespace], int], help_: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    add("up", _up, "start the demo stack: broker, ingest, engine, simulator, Voila")
    add("ingest", _ingest, "run the ingest service (no JVM)")
    add("engine", _engine, "run the engine service (Spark driver, streams, Spark Connect)")
    sim = add("simulate", _simulate, "publish simulated sensor readings to the broker")
    sim.add_argument(
        "--kind",
        default="temperature",
        help="temperature (default), air-quality, smart-bin, traffic, replay or rest-api",
    )
    sim.add_argument(
        "--count", type=int, default=None, help="stop after N messages per sensor (replay: N)"
    )
    sim.add_argument("--sensors", type=int, default=None, help="sensors per kind")
    sim.add_argument("--interval", type=float, default=None, help="seconds between readings")
    sim.add_argument("--sequence-numbers", action="store_true", help="add a persisted 'seq'")
    sim.add_argument("--port", type=int, default=None, help="rest-api: port to listen on")
    sim.add_argument("--file", default=None, help="replay: NDJSON recording (default: packaged)")
    sim.add_argument("--speed", type=float, default=None, help="replay: time factor, 0 = no wait")
    sim.add_argument(
        "--keep-timestamps", action="store_true", help="replay: keep recorded timestamps"
    )
    sim.add_argument(
        "--edge-stats", action="store_true", help="print the kind's edge buffer counts and exit"
    )
    kernel = sub.add_parser("kernel", help="Jupyter kernelspec").add_subparsers(
        dest="kernel_command", required=True
    )
    install = kernel.add_parser("install", help="install the 'workbench' kernelspec")
    install.add_argument("--user", action="store_true", help="into the user's Jupyter dir")
    install.add_argument("--prefix", default=None, help="into PREFIX/share/jupyter/kernels")
    install.set_defaults(handler=_kernel_install)
    sources = sub.add_parser("sources", help="manage the ingest service's sources")
    src = sources.add_subparsers(dest="sources_command", required=True)
    src.add_parser("list", help="every source with its health")
    src.add_parser("types", help="connector types and their config schemas")
    src.add_parser("loss", help="loss accounting per dataset (received, written, gaps...)")
    new = src.add_parser("add", help="create and start a source")
    new.add_argument("name")
    new.add_argument("--type", required=True, help="mqtt, rest_push, rest_poll, ...")
    new.add_argument("--config", default="{}", help='JSON config, e.g. \'{"topic": "a/#"}\'')
    upd = src.add_parser("update", help="replace a source's config (restarts it)")
    upd.add_argument("name")
    upd.add_argument("--config", required=True)
    for action in ("delete", "start", "stop", "restart"):
        src.add_parser(action, help=f"{action} a source").add_argument("name")
    src.add_parser("health", help="health of one source or all").add_argument("name", nargs="?")
    sources.set_defaults(handler=_sources)
    streams = sub.add_parser("streams", help="the engine's streaming queries")
    st = streams.add_subparsers(dest="streams_command", required=True)
    st.add_parser("list", help="every query: state, rows/s, last batch, restarts, lag")
    for action in ("start", "stop", "restart"):
        st.add_parser(action, help=f"{action} a query by name").add_argument("name")
    streams.set_defaults(handler=_streams)
    alerts = sub.add_parser("alerts", help="alerts (firing, resolved) and alert rules")
    al = alerts.add_subparsers(dest="alerts_command", required=True)
    al.add_parser("list", help="the alerts you may see, firing first").add_argument(
        "--status", choices=["firing", "resolved"], default=None, help="only these"
    )
    al.add_parser("ack", help="acknowledge an alert by id").add_argument("alert_id", type=int)
    al.add_parser("rules", help="every alert rule")
    rule = al.add_parser("add-rule", help="add a threshold rule on a canonical field")
    rule.add_argument("name")
    rule.add_argument("field", help="canonical field, e.g. temperature")
    rule.add_argument("op", choices=["gt", "ge", "lt", "le"], help="gt/ge: window max; lt/le: min")
    rule.add_argument("threshold", type=float)
    rule.add_argument("--ingestion-id", default=None, help="only this dataset")
    al.add_parser("delete-rule", help="delete a rule and its alerts (admin)").add_argument(
        "rule_id", type=int
    )
    alerts.set_defaults(handler=_alerts)
    users = sub.add_parser("users", help="users, roles and API tokens (on the catalog)")
    us = users.add_subparsers(dest="users_command", required=True)
    us.add_parser("list", help="every user with role")
    new_user = us.add_parser("add", help="create a user; prints a first token as the last line")
    new_user.add_argument("name")
    new_user.add_argument("--role", required=True, choices=["viewer", "user", "admin"])
    new_user.add_argument(
        "--password", action="store_true", help="also set a password (prompted, or from stdin)"
    )
    us.add_parser("delete", help="delete a user and every token of theirs").add_argument("name")
    set_role = us.add_parser("role", help="change a user's role (their tokens follow at once)")
    set_role.add_argument("name")
    set_role.add_argument("--role", required=True, choices=["viewer", "user", "admin"])
    issue = us.add_parser("token", help="issue a token for a user; printed as the last line")
    issue.add_argument("name")
    for p in (new_user, issue):
        p.add_argument("--days", type=float, default=90, help="lifetime (0: until revoked)")
        p.add_argument("--label", default="cli", help="what the token is for")
    us.add_parser("tokens", help="issued tokens (never their values)").add_argument(
        "name", nargs="?"
    )
    us.add_parser("revoke", help="revoke a token by id").add_argument("token_id", type=int)
    users.set_defaults(handler=_users)
    login = add("login", _login, "sign in and save the token for the CLI and kernels")
    login.add_argument("--user", default=None, help="user name (prompted when left out)")
    login.add_argument("--days", type=float, default=30, help="token lifetime in days")
    login.add_argument(
        "--token-stdin", action="store_true", help="save a token read from stdin instead"
    )
    sql = add("sql", _sql, "run one read-only query on the engine's query service")
    sql.add_argument("query", help="Spark SQL text ('-' reads it from stdin)")
    sql.add_argument("--limit", type=int, default=1000, help="most rows (default 1000)")
    sql.add_argument(
        "-p", "--param", action="append", default=[], help="NAME=VALUE for :NAME (repeatable)"
    )
    sql.add_argument(
        "--computation", action="store_true", help="QUERY names a saved computation to run"
    )
    sql.add_argument("--json", action="store_true", help="print rows as JSON objects")
    add("settings", _settings_show, "print the effective settings as JSON (secrets masked)")
    maintain = add("maintain", _maintain, "lake maintenance: retention, compaction, VACUUM")
    maintain.add_argument(
        "step",
        nargs="?",
        default="all",
        choices=["retention", "compact", "vacuum", "all"],
        help="which step (default all: retention, then compact, then vacuum)",
    )
    maintain.add_argument(
        "--layer",
        default="all",
        choices=["bronze", "silver", "gold", "all"],
        help="which layer (default all; bronze has retention only)",
    )
    maintain.add_argument(
        "--dry-run", action="store_true", help="change nothing, print what would be done"
    )
    bench = add("bench", _bench, "run a benchmark; its JSON result is the last stdout line")
    bench.add_argument("name", choices=list(BENCHMARKS), help="which benchmark")
    bench.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="load duration (default 20; latency 120, lake-size 60 per lake)",
    )
    bench.add_argument(
        "--records", type=int, default=None, help="enrich: bronze readings (default 1,000,000)"
    )
    bench.add_argument(
        "--rate",
        type=int,
        default=None,
        help="latency, lake-size, tiles: msg/s (default 1000; tiles 50)",
    )
    bench.add_argument(
        "--clients", type=int, default=None, help="tiles: dashboard clients (default 20)"
    )
    bench.add_argument(
        "--rounds", type=int, default=None, help="tiles: cache/baseline rounds (default 2)"
    )
    bench.add_argument(
        "--sensors", type=int, default=None, help="backfill: replayed sensors (default 23)"
    )
    bench.add_argument(
        "--hours", type=int, default=None, help="backfill: hours replayed (default 8,760)"
    )
    bench.add_argument(
        "--sizes",
        type=_int_list,
        default=None,
        help="lake-size: bronze files per lake, comma-separated (default 10000,100000,1000000)",
    )
    bench.add_argument(
        "--triggers",
        type=int,
        default=None,
        help="lake-size: reader-alone triggers per lake (default 200)",
    )
    return parser


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part.replace("_", "")) for part in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 10000,100000; got {text!r}"
        ) from err
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"every size must be at least 1; got {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``workbench`` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(args.log_level or settings.log_level)
        return int(args.handler(settings, args))
    except KeyboardInterrupt:
        return 130
    except WorkbenchError as err:
        print(f"workbench: {err.code}: {err.message}", file=sys.stderr)
        return exit_code(err)


def exit_code(err: WorkbenchError) -> int:
    """The exit status for ``err``: 2 a configuration to fix, 3 transient (the same command
    may succeed later: a service away, the store down), 1 any other refusal."""
    if isinstance(err, ConfigError):
        return 2
    if is_transient(err):
        return 3
    return 1
