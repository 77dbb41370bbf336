"""The `ezd` command: serve, worker, db upgrade, demo, audit verify, and admin helpers."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

import typer

from api.bootstrap import Container, bootstrap
from workflow.settings import Settings

app = typer.Typer(
    help="ezd — elektroniczne zarządzanie dokumentacją (oświata)",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema", no_args_is_help=True)
audit_app = typer.Typer(help="Audit trail", no_args_is_help=True)
user_app = typer.Typer(help="Users and roles", no_args_is_help=True)
jrwa_app = typer.Typer(help="JRWA file plans", no_args_is_help=True)
blobs_app = typer.Typer(help="Blob store maintenance", no_args_is_help=True)
bpmn_app = typer.Typer(help="Process definitions (BPMN)", no_args_is_help=True)
search_app = typer.Typer(help="Full-text search index", no_args_is_help=True)
archive_app = typer.Typer(help="Unit archive: archival packages", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(user_app, name="user")
app.add_typer(jrwa_app, name="jrwa")
app.add_typer(blobs_app, name="blobs")
app.add_typer(bpmn_app, name="bpmn")
app.add_typer(search_app, name="search")
app.add_typer(archive_app, name="archive")


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _upgrade(c: Container) -> None:
    from workflow.schema import load_shipped_plans, upgrade_database

    upgrade_database(c.settings.resolved_database_url)
    with c.uow() as uow:
        loaded = load_shipped_plans(uow)
        uow.commit()
    for p in loaded:
        typer.echo(f"loaded file plan {p}")
    c.deploy_library()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the current schema and load the shipped JRWA plans."""
    c = bootstrap()
    _upgrade(c)
    typer.echo(f"database is at the current schema ({_safe_url(c.settings)})")


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.resolved_database_url).render_as_string(hide_password=True)


def _serve(settings: Settings, host: str | None, port: int | None, workers: int) -> None:
    import uvicorn

    uvicorn.run(
        "api.app:create_app_from_env",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level=settings.log_level,
        proxy_headers=False,
        # A loaded 2-core machine can take longer than the default 5 s to answer the
        # supervisor's ping; a killed worker would just restart in a loop.
        timeout_worker_healthcheck=30,
    )


@app.command()
def serve(
    host: str | None = None,
    port: int | None = None,
    workers: int = typer.Option(1, help="API processes"),
) -> None:
    """Serve the API. In embedded mode (SQLite) the schema is brought up to date first."""
    settings = Settings()
    _logging(settings)
    if settings.is_sqlite:
        _upgrade(bootstrap(settings))
    _serve(settings, host, port, workers)


@app.command()
def worker() -> None:
    """Run the outbox worker until SIGTERM or SIGINT."""
    c = bootstrap()
    _logging(c.settings)
    c.blob_store.check()
    c.deploy_library()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: (stop.set(), c.worker.wake()))
    c.worker.run_forever(stop)


@app.command()
def demo(
    serve_after: bool = typer.Option(True, "--serve/--no-serve"),
    port: int | None = None,
    force: bool = typer.Option(False, help="Seed even a non-embedded database"),
) -> None:
    """Seed the demo organisation, users (password `demo`) and letters, then serve."""
    from api.bootstrap import key_encryption_key
    from workflow.demo import DEMO_PASSWORD, seed_demo

    settings = Settings()
    _logging(settings)
    if not settings.is_sqlite and not force:
        typer.echo("refusing to seed demo users into a production database (use --force)", err=True)
        raise typer.Exit(2)
    c = bootstrap(settings)
    _upgrade(c)
    c.blob_store.check()
    with c.uow() as uow:
        users = seed_demo(uow, c.blob_store, c.engine_runtime, lambda: key_encryption_key(settings))
        uow.commit()
    if users:
        typer.echo(f"demo data created: {len(users)} users")
    typer.echo("")
    typer.echo(
        f"  Demo users: <role>.<unit> e.g. clerk.sp58, headteacher.sp58, "
        f"city_officer.wow, auditor.wow, admin.wow — password: {DEMO_PASSWORD}"
    )
    typer.echo(
        "  Roles: clerk handler headteacher city_officer auditor admin; "
        "units: wow cuw sp58 sp12 lo3 p7"
    )
    typer.echo(f"  API docs: http://{settings.host}:{port or settings.port}/docs")
    typer.echo("")
    if serve_after:
        _serve(settings, None, port, 1)


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit hash chain: exit 0 when sound, 1 naming the first bad entry."""
    from workflow.audit.repository import AuditRepository
    from workflow.audit.service import verify_chain

    c = bootstrap()
    with c.uow() as uow:
        verdict = verify_chain(AuditRepository(uow.session))
    typer.echo(verdict.describe())
    raise typer.Exit(0 if verdict.ok else 1)


@user_app.command("create")
def user_create(
    username: str,
    full_name: str = typer.Option(..., "--full-name"),
    password: str = typer.Option(
        ..., prompt=True, hide_input=True, confirmation_prompt=True, envvar="EZD_NEW_USER_PASSWORD"
    ),
    email: str | None = None,
) -> None:
    """Create a user (for the first administrator of a production install)."""
    from workflow.org.service import create_user

    c = bootstrap()
    with c.uow() as uow:
        create_user(uow, username=username, full_name=full_name, password=password, email=email)
        uow.commit()
    typer.echo(f"user {username} created")


@user_app.command("grant")
def user_grant(username: str, unit: str, role: str, department: str | None = None) -> None:
    """Grant ROLE in UNIT to USERNAME."""
    from workflow.org.service import grant_role

    c = bootstrap()
    with c.uow() as uow:
        grant_role(uow, username, unit, role, department)
        uow.commit()
    typer.echo(f"{username}: {role} in {unit}")


@app.command("unit-create")
def unit_create(
    code: str, name: str, kind: str, jrwa_plan: str, address: str | None = None
) -> None:
    """Create a unit (school, kindergarten, city_office, service_centre)."""
    from workflow.org.service import create_unit

    c = bootstrap()
    with c.uow() as uow:
        create_unit(uow, code=code, name=name, kind=kind, jrwa_plan=jrwa_plan, address=address)
        uow.commit()
    typer.echo(f"unit {code} created")


@jrwa_app.command("load")
def jrwa_load(path: Path) -> None:
    """Load a file plan version from a CSV file with a `# plan:`/`# version:` header."""
    from workflow.jrwa.loader import PlanFileError, parse_plan
    from workflow.jrwa.service import load_plan
    from workflow.principal import SYSTEM

    try:
        plan = parse_plan(path.read_text(encoding="utf-8"))
    except PlanFileError as e:
        typer.echo(f"{path}: {e}", err=True)
        raise typer.Exit(2) from None
    c = bootstrap()
    with c.uow() as uow:
        uow.actor = SYSTEM
        _, created = load_plan(uow, plan)
        uow.commit()
    typer.echo(
        f"{plan.code} {plan.version}: {'loaded' if created else 'already loaded'}, "
        f"{len(plan.classes)} classes"
    )


@blobs_app.command("collect")
def blobs_collect() -> None:
    """Remove stored blobs that no committed row references (older than the grace period)."""
    from datetime import timedelta

    from workflow.documents.service import collect_stray_blobs

    c = bootstrap()
    with c.uow() as uow:
        n = collect_stray_blobs(
            uow, c.blob_store, timedelta(seconds=c.settings.blob_gc_grace_seconds)
        )
        uow.commit()
    typer.echo(f"removed {n} stray blobs")


@archive_app.command("export")
def archive_export(
    unit: str = typer.Option(..., help="Unit code, e.g. SP58"),
    out: Path = typer.Option(..., help="Where to write the package (must not exist)"),
    package_format: str = typer.Option("zip", "--format", help="dir, zip or tar"),
    case: list[str] = typer.Option(
        [], help="Case references (default: every archived case of the unit)"
    ),
) -> None:
    """Write an archival package (paczka archiwalna) of the unit's archived cases."""
    from workflow.archive.export import export_package
    from workflow.archive.service import archive_register
    from workflow.org.repository import OrgRepository

    c = bootstrap()
    with c.uow() as uow:
        u = OrgRepository(uow.session).unit_by_code(unit)
        if u is None:
            typer.echo(f"no unit {unit}", err=True)
            raise typer.Exit(2)
        entries = [(e, k) for e, k in archive_register(uow, u) if not case or k.reference in case]
        missing = set(case) - {k.reference for _e, k in entries}
        if missing:
            typer.echo(f"not in the unit archive: {', '.join(sorted(missing))}", err=True)
            raise typer.Exit(2)
        with typer.progressbar(length=len(entries), label="Sprawy") as bar:
            result = export_package(
                uow, c.blob_store, u, entries, out, package_format, lambda n, _t: bar.update(1)
            )
        uow.commit()
    typer.echo(
        f"{result.path}: {result.cases} cases, {result.files} files, {result.bytes / 1e6:.1f} MB"
    )


@archive_app.command("verify")
def archive_verify(
    package: Path, as_json: bool = typer.Option(False, "--json", help="One JSON object")
) -> None:
    """Check an archival package on its own: manifest, digests, schema, every file. Exit code
    0 when intact, 1 when it has faults (each is printed)."""
    from workflow.archive.package import report_json, verify_package

    faults = verify_package(package)
    if as_json:
        typer.echo(report_json(faults))
    else:
        for f in faults:
            typer.echo(str(f))
        typer.echo(
            "OK: the package is complete and intact" if not faults else f"{len(faults)} faults"
        )
    raise typer.Exit(1 if faults else 0)


def _check_help() -> str:
    from workflow.engine.conformance import CHECK_HELP

    return CHECK_HELP


@bpmn_app.command("check", help=_check_help())
def bpmn_check(files: list[Path]) -> None:
    from workflow.engine.conformance import main as check_main

    raise typer.Exit(check_main([str(f) for f in files]))


@bpmn_app.command("deploy")
def bpmn_deploy(
    file: Path,
    form: list[Path] = typer.Option([], "--form", help="A form file the definition names"),
) -> None:
    """Deploy a definition (with its forms, named relative to the BPMN file's folder)."""
    import json

    from workflow.processes.service import deploy_definition

    c = bootstrap()
    forms = {str(f.relative_to(file.parent)): json.loads(f.read_text("utf-8")) for f in form}
    with c.uow() as uow:
        d, new = deploy_definition(
            uow,
            c.engine_runtime,
            file.read_bytes(),
            forms,
            filename=file.name,
            source="upload",
            max_bytes=c.settings.bpmn_max_bytes,
            max_flow_nodes=c.settings.bpmn_max_flow_nodes,
        )
        uow.commit()
    typer.echo(f"{d.key} version {d.version}" + ("" if new else " (unchanged)"))
    c.dispose()


@app.command(
    "verify",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def verify(ctx: typer.Context) -> None:
    """Verify a signed XML file: `ezd verify FILE [--detached-content PATH] [--trust PEM]...
    [--at ISO_TIME | --at-signing-time] [--allow-sha1]`; prints one JSON object; exit 0 passed,
    1 failed, 2 indeterminate."""
    from workflow.signing.verify import verify_command

    raise typer.Exit(verify_command(list(ctx.args)))


@app.command("sign")
def sign(
    file: Path,
    unit: str = typer.Option(..., help="Unit code whose active key signs"),
    detached: bool = typer.Option(False, help="Write a detached .xades for a binary file"),
    media_type: str = typer.Option("application/pdf", help="Media type of a detached file"),
    timestamp: bool = typer.Option(False, help="Add an RFC 3161 time-stamp (EZD_TSA_URL)"),
    output: Path | None = typer.Option(None, "-o", "--output"),
) -> None:
    """Sign a file with the unit's key: XAdES enveloped for XML, detached (.xades) otherwise."""
    from api.bootstrap import key_encryption_key
    from workflow.org.repository import OrgRepository
    from workflow.org.service import get_unit
    from workflow.signing.service import unit_identity
    from workflow.signing.sign import sign_detached, sign_enveloped

    c = bootstrap()
    tsa = c.settings.tsa_url if timestamp else None
    if timestamp and not tsa:
        typer.echo("no time-stamping authority configured (EZD_TSA_URL)", err=True)
        raise typer.Exit(2)
    with c.uow() as uow:
        identity = unit_identity(
            uow,
            get_unit(OrgRepository(uow.session), unit),
            lambda: key_encryption_key(c.settings),
        )
    data = file.read_bytes()
    if detached:
        signed = sign_detached(data, file.name, media_type, identity, tsa_url=tsa)
        target = output or file.with_name(file.name + ".xades")
    else:
        signed = sign_enveloped(data, identity, tsa_url=tsa)
        target = output or file.with_name(file.stem + ".signed.xml")
    target.write_bytes(signed)
    typer.echo(str(target))
    c.dispose()


@search_app.command("reindex")
def search_reindex(
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar"),
) -> None:
    """Rebuild the index from the database beside the live one, then swap it in atomically
    (searches keep working throughout; changes made meanwhile reach the new index too)."""
    import time

    from workflow.search.service import count_all, reindex

    c = bootstrap()
    _logging(c.settings)
    index = c.search_index
    total = count_all(c.uow)
    t0 = time.monotonic()
    with typer.progressbar(
        length=total, label=f"reindex ({index.name})", file=None if progress else _Null()
    ) as bar:
        n = reindex(c.uow, index, progress=bar.update)
    dt = time.monotonic() - t0
    typer.echo(
        f"indexed {n} documents in {dt:.1f} s ({n / dt if dt else 0:.0f}/s) into {index.name}"
    )
    index.close()
    c.dispose()


class _Null:
    def write(self, _s: str) -> int:
        return 0

    def flush(self) -> None:
        pass


@search_app.command("verify")
def search_verify(
    repair: bool = typer.Option(False, "--repair", help="Index what is missing or stale"),
    show: int = typer.Option(20, help="Keys listed per category"),
) -> None:
    """Compare the index with the database: exit 0 when they agree, 1 listing what is missing,
    stale (indexed from an older state) or extra."""
    import json

    from workflow.search import service

    c = bootstrap()
    index = c.search_index
    report = service.verify(c.uow, index)
    summary = {
        "index": index.name,
        "checked": report.checked,
        "missing": len(report.missing),
        "stale": len(report.stale),
        "extra": len(report.extra),
        "ok": report.ok,
    }
    typer.echo(json.dumps(summary))
    for name in ("missing", "stale", "extra"):
        for key in getattr(report, name)[:show]:
            typer.echo(f"{name} {key}")
    if repair and not report.ok:
        n = service.repair(c.uow, index, report)
        typer.echo(f"repaired {n}")
    index.close()
    c.dispose()
    raise typer.Exit(0 if report.ok or repair else 1)


def main() -> None:  # pragma: no cover
    try:
        app()
    except Exception as e:
        from workflow.errors import DomainError

        if isinstance(e, DomainError):
            typer.echo(f"{e.code}: {e.message_en}", err=True)
            sys.exit(2)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
