"""The JRWA file plan: the plan-file loader, the shipped plans, loading plan versions, the plan in
force by date (a case keeps the version it was opened under), class checks on registration, and
the `ezd jrwa load` command."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from api import cli
from tests.cli import run_ezd
from tests.conftest import Backend
from tests.helpers import error_code, letter_meta, register, token
from workflow.audit.models import AuditEntry
from workflow.cases.service import WARSAW
from workflow.errors import Conflict
from workflow.jrwa.loader import DATA_DIR, PlanFile, PlanFileError, parse_plan, shipped_plans
from workflow.jrwa.models import JrwaClass
from workflow.jrwa.repository import JrwaRepository
from workflow.jrwa.service import load_plan
from workflow.registry.models import NumberCounter

HEADER = """# plan: test
# version: 1
# title: Wykaz testowy
# valid_from: 2020-01-01
# legal_basis: Ustawa testowa, art. 1
"""
COLUMNS = "symbol,title,leaf,category_lead,category_other,notes\n"
ROWS = """4,GRUPA,false,,,źródło: test
43,Uczniowie,false,,,źródło: test
430,Rekrutacja,true,B10,Bc,źródło: test
431,"Legitymacje, duplikaty",TRUE,BE5,,"źródło: test, z przecinkiem"
5,Inne,,,,
"""
GOOD = HEADER + COLUMNS + ROWS
FAR_FUTURE = datetime(2200, 1, 1, tzinfo=UTC)


def _warsaw_today() -> date:
    return datetime.now(WARSAW).date()


def _shipped_text(code: str) -> str:
    (path,) = DATA_DIR.glob(f"{code}-*.csv")
    return path.read_text(encoding="utf-8")


# --- the loader ---------------------------------------------------------------------------


def test_parse_good_file() -> None:
    plan = parse_plan(GOOD)
    assert (plan.code, plan.version, plan.title) == ("test", "1", "Wykaz testowy")
    assert plan.valid_from == date(2020, 1, 1) and plan.valid_to is None
    assert plan.legal_basis == "Ustawa testowa, art. 1"
    assert len(plan.sha256) == 64
    by = {c.symbol: c for c in plan.classes}
    assert list(by) == ["4", "43", "430", "431", "5"]
    assert by["4"].parent_symbol is None and by["43"].parent_symbol == "4"
    assert by["430"].parent_symbol == "43"
    assert by["430"].is_leaf and by["431"].is_leaf  # "TRUE" is read case-insensitively
    assert not by["4"].is_leaf and not by["5"].is_leaf  # blank leaf: not a leaf
    assert (by["430"].category_lead, by["430"].category_other) == ("B10", "Bc")
    assert (by["431"].category_lead, by["431"].category_other) == ("BE5", None)
    assert by["431"].title == "Legitymacje, duplikaty"
    assert by["431"].notes == "źródło: test, z przecinkiem"
    assert by["5"].notes == ""


def test_parse_valid_to_and_digest() -> None:
    plan = parse_plan(HEADER + "# valid_to: 2030-12-31\n" + COLUMNS + ROWS)
    assert plan.valid_to == date(2030, 12, 31)
    # The digest is of the file's text: any change gives another digest.
    assert parse_plan(GOOD).sha256 == parse_plan(GOOD).sha256
    assert (
        parse_plan(GOOD.replace("Rekrutacja", "Rekrutacja uczniów")).sha256
        != parse_plan(GOOD).sha256
    )


@pytest.mark.parametrize("missing", ["plan", "version", "title", "valid_from", "legal_basis"])
def test_missing_header_line(missing: str) -> None:
    text = "".join(
        line + "\n" for line in HEADER.splitlines() if not line.startswith(f"# {missing}:")
    )
    with pytest.raises(PlanFileError, match=missing):
        parse_plan(text + COLUMNS + ROWS)
    # A header line with an empty value counts as missing.
    blank = HEADER.replace(f"# {missing}: ", f"# {missing}:  \n# x-{missing}: ")
    with pytest.raises(PlanFileError, match=missing):
        parse_plan(blank + COLUMNS + ROWS)


@pytest.mark.parametrize("valid_from", ["2020-13-01", "yesterday", "01.01.2020"])
def test_bad_date_in_header(valid_from: str) -> None:
    with pytest.raises(PlanFileError, match="valid_from"):
        parse_plan(GOOD.replace("2020-01-01", valid_from))
    with pytest.raises(PlanFileError, match="valid_to"):
        parse_plan(HEADER + f"# valid_to: {valid_from}\n" + COLUMNS + ROWS)


@pytest.mark.parametrize(
    "columns",
    [
        "symbol,title,leaf,category_lead,category_other\n",
        "symbol,title,leaf,category_lead,category_other,notes,extra\n",
        "symbol;title;leaf;category_lead;category_other;notes\n",
        "title,symbol,leaf,category_lead,category_other,notes\n",
        "",
    ],
)
def test_bad_columns(columns: str) -> None:
    with pytest.raises(PlanFileError, match="columns"):
        parse_plan(HEADER + columns + ROWS)


@pytest.mark.parametrize(
    "row", ["430", "430,Rekrutacja,true,B10,Bc", "430,Rekrutacja,true,B10,Bc,źródło,nadmiar"]
)
def test_row_with_wrong_number_of_columns(row: str) -> None:
    with pytest.raises(PlanFileError, match="row 4"):
        parse_plan(HEADER + COLUMNS + "4,G,false,,,s\n43,U,false,,,s\n" + row + "\n")


@pytest.mark.parametrize("symbol", ["4a", "", " ", "1234567", "-4", "4.3", "IV"])
def test_bad_symbol(symbol: str) -> None:
    with pytest.raises(PlanFileError, match="bad symbol"):
        parse_plan(GOOD + f"{symbol},Zła klasa,true,A,,test\n")


def test_duplicate_symbol() -> None:
    with pytest.raises(PlanFileError, match="row 7: duplicate symbol 430"):
        parse_plan(GOOD + "430,Jeszcze raz,true,A,,test\n")


@pytest.mark.parametrize("category", ["B", "C", "a", "A1", "BE", "B1234", "Bc5", "B-5"])
def test_bad_category(category: str) -> None:
    with pytest.raises(PlanFileError, match="bad retention category"):
        parse_plan(GOOD + f"432,Dowóz,true,{category},,test\n")
    with pytest.raises(PlanFileError, match="bad retention category"):
        parse_plan(GOOD + f"432,Dowóz,true,B5,{category},test\n")


@pytest.mark.parametrize("category", ["A", "Bc", "B5", "B50", "BE10", "B999"])
def test_good_categories(category: str) -> None:
    plan = parse_plan(GOOD + f"432,Dowóz,true,{category},{category},test\n")
    assert plan.classes[-1].category_lead == plan.classes[-1].category_other == category


def test_bad_leaf_value() -> None:
    with pytest.raises(PlanFileError, match="leaf"):
        parse_plan(GOOD + "432,Dowóz,yes,B5,,test\n")


@pytest.mark.parametrize("symbol", ["4320", "71", "6"])
def test_missing_parent(symbol: str) -> None:
    if len(symbol) == 1:  # a top-level class has no parent to miss
        assert parse_plan(GOOD + f"{symbol},Grupa,false,,,test\n").classes[-1].symbol == symbol
        return
    with pytest.raises(PlanFileError, match=f"class {symbol} has no parent class {symbol[:-1]}"):
        parse_plan(GOOD + f"{symbol},Bez rodzica,true,A,,test\n")


def test_parent_may_come_later_in_the_file() -> None:
    plan = parse_plan(HEADER + COLUMNS + "40,Podgrupa,true,A,,s\n4,Grupa,false,,,s\n")
    assert [c.symbol for c in plan.classes] == ["40", "4"]


# --- the shipped plans --------------------------------------------------------------------


def test_shipped_plans_parse() -> None:
    plans = {p.code: p for p in shipped_plans()}
    assert set(plans) == {"gmina", "szkola"}
    for plan in plans.values():
        assert plan.version and plan.title and plan.legal_basis
        assert plan.valid_from <= _warsaw_today()
        assert len(plan.classes) >= 20
    szkola = {c.symbol: c for c in plans["szkola"].classes}
    assert szkola["431"].is_leaf and szkola["431"].category_lead == "B5"
    assert not szkola["43"].is_leaf
    gmina = {c.symbol: c for c in plans["gmina"].classes}
    assert gmina["43170"].is_leaf and not gmina["4317"].is_leaf


@pytest.mark.parametrize("code", ["gmina", "szkola"])
def test_shipped_plan_classes_are_consistent(code: str) -> None:
    (plan,) = [p for p in shipped_plans() if p.code == code]
    symbols = {c.symbol for c in plan.classes}

    def has_children(symbol: str) -> bool:
        return any(s[:-1] == symbol for s in symbols)

    for c in plan.classes:
        # Every class says where it comes from.
        assert c.notes.strip(), c.symbol
        # Leaf classes hold cases: they have a retention category and no subclasses.
        if c.is_leaf:
            assert c.category_lead is not None, c.symbol
            assert c.category_other == "Bc", c.symbol
            assert not has_children(c.symbol), c.symbol
        # A category on a non-leaf class is carried over from the source, and says so.
        if not c.is_leaf and c.category_lead is not None:
            assert "source gives a category at a level that has subclasses" in c.notes, c.symbol
            assert has_children(c.symbol), c.symbol
        # A non-leaf class without subclasses is one whose leaf status the source left open.
        if not c.is_leaf and not has_children(c.symbol):
            assert "leaf unknown" in c.notes, c.symbol
            assert c.category_lead is None, c.symbol


# --- the plan through the API -------------------------------------------------------------


def test_file_plan_of_a_school(backend: Backend, client: TestClient) -> None:
    r = client.get("/api/v1/jrwa", headers=token(client, "clerk.sp58"))
    assert r.status_code == 200, r.text
    plan = r.json()
    assert (plan["code"], plan["version"]) == ("szkola", "2026.1")
    shipped = {c.symbol: c for c in parse_plan(_shipped_text("szkola")).classes}
    classes = {c["symbol"]: c for c in plan["classes"]}
    assert set(classes) == set(shipped)
    for symbol, c in classes.items():
        assert c["leaf"] is shipped[symbol].is_leaf, symbol
        assert c["source"] == shipped[symbol].notes and c["source"], symbol
        assert c["parent"] == shipped[symbol].parent_symbol
        assert c["category_lead"] == shipped[symbol].category_lead
    assert classes["431"]["leaf"] is True and classes["43"]["leaf"] is False
    assert classes["431"]["parent"] == "43"


def test_file_plan_of_the_city_office(backend: Backend, client: TestClient) -> None:
    h = token(client, "clerk.wow")
    plan = client.get("/api/v1/jrwa", headers=h).json()
    assert (plan["code"], plan["version"]) == ("gmina", "2026.1")
    classes = {c["symbol"]: c for c in plan["classes"]}
    assert classes["43170"]["leaf"] is True and classes["4317"]["leaf"] is False
    assert all(c["source"] for c in plan["classes"])
    # The office may name another unit only where it holds a role.
    assert client.get("/api/v1/jrwa", params={"unit": "SP58"}, headers=h).status_code == 403


# --- loading plan versions ----------------------------------------------------------------


def _load(backend: Backend, plan: PlanFile) -> tuple[str, bool]:
    with backend.container.uow() as uow:
        row, created = load_plan(uow, plan)
        version = row.version
        uow.commit()
    return version, created


def _plan_rows(backend: Backend) -> list[tuple[str, str, int]]:
    with backend.container.uow() as uow:
        s = uow.session
        return [
            (
                p.code,
                p.version,
                s.execute(
                    select(func.count()).select_from(JrwaClass).where(JrwaClass.plan_id == p.id)
                ).scalar_one(),
            )
            for p in JrwaRepository(s).plans()
        ]


def _audit_count(backend: Backend, action: str) -> int:
    with backend.container.uow() as uow:
        return int(
            uow.session.execute(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
            ).scalar_one()
        )


def test_loading_the_same_plan_twice_is_a_no_op(backend: Backend) -> None:
    before = _plan_rows(backend)
    loaded = _audit_count(backend, "jrwa.plan_loaded")
    assert ("szkola", "2026.1", 27) in before
    assert _load(backend, parse_plan(_shipped_text("szkola"))) == ("2026.1", False)
    assert _plan_rows(backend) == before
    assert _audit_count(backend, "jrwa.plan_loaded") == loaded


def test_changed_content_under_the_same_version_is_refused(backend: Backend) -> None:
    before = _plan_rows(backend)
    changed = parse_plan(
        _shipped_text("szkola").replace(
            "Legitymacje szkolne i ich duplikaty", "Legitymacje szkolne"
        )
    )
    assert changed.version == "2026.1"
    with pytest.raises(Conflict) as exc, backend.container.uow() as uow:
        load_plan(uow, changed)
    assert exc.value.code == "jrwa_version_exists"
    assert exc.value.status == 409
    assert _plan_rows(backend) == before


def _next_version_text(valid_from: date, version: str = "2027.1") -> str:
    """The shipped schools' plan as a new version: class 431 renamed and recategorised."""
    text = _shipped_text("szkola")
    for old, new in [
        ("# version: 2026.1", f"# version: {version}"),
        ("# valid_from: 2012-01-01", f"# valid_from: {valid_from.isoformat()}"),
        (
            "431,Legitymacje szkolne i ich duplikaty,true,B5,",
            "431,Legitymacje szkolne (nowe brzmienie),true,B10,",
        ),
    ]:
        assert old in text
        text = text.replace(old, new)
    return text


def _next_version(valid_from: date, version: str = "2027.1") -> PlanFile:
    plan = parse_plan(_next_version_text(valid_from, version))
    assert plan.version == version and plan.valid_from == valid_from
    return plan


def test_new_version_takes_over_and_old_cases_keep_theirs(
    backend: Backend, client: TestClient
) -> None:
    h = token(client, "clerk.sp58")
    old = client.post(
        "/api/v1/cases",
        headers=h,
        json={"jrwa": "431", "title": "Duplikat legitymacji (stary wykaz)"},
    )
    assert old.status_code == 201, old.text
    assert old.json()["jrwa_plan_version"] == "2026.1"
    assert old.json()["retention_category"] == "B5"

    # A version that starts in the future changes nothing yet.
    assert _load(backend, _next_version(_warsaw_today() + timedelta(days=2), "2028.1")) == (
        "2028.1",
        True,
    )
    assert client.get("/api/v1/jrwa", headers=h).json()["version"] == "2026.1"

    # A version in force since yesterday becomes the plan in force.
    assert _load(backend, _next_version(_warsaw_today() - timedelta(days=1))) == ("2027.1", True)
    plan = client.get("/api/v1/jrwa", headers=h).json()
    assert plan["version"] == "2027.1"
    classes = {c["symbol"]: c for c in plan["classes"]}
    assert classes["431"]["title"] == "Legitymacje szkolne (nowe brzmienie)"
    assert classes["431"]["category_lead"] == "B10"

    new = register(client, h, letter_meta())
    assert new.status_code == 201, new.text
    new_case = client.get(f"/api/v1/cases/{new.json()['case_reference']}", headers=h).json()
    assert new_case["jrwa_plan_version"] == "2027.1"
    assert new_case["retention_category"] == "B10"
    assert new_case["jrwa_title"] == "Legitymacje szkolne (nowe brzmienie)"
    assert new.json()["documents"][0]["qualification"] == "B10"
    # The case list continues across plan versions: same class, next number.
    assert new_case["seq"] == old.json()["seq"] + 1

    kept = client.get(f"/api/v1/cases/{old.json()['reference']}", headers=h).json()
    assert kept["jrwa_plan_version"] == "2026.1"
    assert kept["retention_category"] == "B5"
    assert kept["jrwa_title"] == "Legitymacje szkolne i ich duplikaty"

    # Filing into the old case still uses its class (and its category).
    follow = register(
        client, h, letter_meta(new_case=False, jrwa=None, case_reference=old.json()["reference"])
    )
    assert follow.status_code == 201, follow.text
    assert follow.json()["documents"][0]["qualification"] == "B5"

    # The schools' plan changed; the office's did not.
    assert (
        client.get("/api/v1/jrwa", headers=token(client, "clerk.wow")).json()["version"] == "2026.1"
    )


# --- class checks on registration ---------------------------------------------------------


def _counters(backend: Backend) -> list[tuple[str, int, int]]:
    with backend.container.uow() as uow:
        return sorted(
            (c.series, c.year, c.last_value)
            for c in uow.session.execute(select(NumberCounter)).scalars()
        )


@pytest.mark.parametrize(
    ("jrwa", "code"),
    [
        ("43", "jrwa_class_not_leaf"),
        ("4", "jrwa_class_not_leaf"),
        ("40", "jrwa_class_not_leaf"),
        ("9999", "unknown_jrwa_class"),
        ("43170", "unknown_jrwa_class"),
    ],
)
def test_registration_refuses_bad_classes(
    backend: Backend, client: TestClient, jrwa: str, code: str
) -> None:
    h = token(client, "clerk.sp58")
    counters = _counters(backend)
    for new_case in (True, False):
        r = register(client, h, letter_meta(jrwa=jrwa, new_case=new_case))
        assert r.status_code == 422, r.text
        assert error_code(r) == code
        assert r.json()["error"]["details"]["jrwa"] == jrwa
        r = client.post("/api/v1/cases", headers=h, json={"jrwa": jrwa, "title": "Sprawa"})
        assert r.status_code == 422 and error_code(r) == code
    assert _counters(backend) == counters
    assert list(backend.container.blob_store.list_keys("blobs/", FAR_FUTURE)) == []

    ok = register(client, h, letter_meta())
    assert ok.status_code == 201, ok.text
    year = ok.json()["rpw_number"].split("/")[2]
    assert ok.json()["rpw_number"] == f"RPW/1/{year}"
    assert ok.json()["case_reference"] == f"SP58.431.1.{year}"


# --- the command line ---------------------------------------------------------------------


def test_cli_jrwa_load(
    sqlite_backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "szkola-2027.1.csv"
    text = _next_version_text(date(2026, 1, 1))
    plan = parse_plan(text)
    path.write_text(text, encoding="utf-8")

    first = run_ezd(sqlite_backend, "jrwa", "load", str(path))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"szkola 2027.1: loaded, {len(plan.classes)} classes"
    with sqlite_backend.container.uow() as uow:
        row = JrwaRepository(uow.session).plan("szkola", "2027.1")
        assert row is not None
        assert (row.valid_from, row.source_sha256) == (date(2026, 1, 1), plan.sha256)
        assert len(JrwaRepository(uow.session).classes(row.id)) == len(plan.classes)

    # Changed content under the loaded version: `main` turns the refusal into exit code 2.
    path.write_text(text.replace("nowe brzmienie", "inne brzmienie"), encoding="utf-8")
    changed = run_ezd(sqlite_backend, "jrwa", "load", str(path))
    assert changed.returncode == 2
    assert changed.stderr.startswith("jrwa_version_exists:")
    assert "Traceback" not in changed.stderr

    # The rest in process (a subprocess costs seconds of imports): loading the same file
    # again is a no-op, and a malformed file is refused before the database is touched.
    monkeypatch.setenv("EZD_DATA_DIR", str(sqlite_backend.settings.data_dir))
    monkeypatch.setenv("EZD_DATABASE_URL", sqlite_backend.settings.resolved_database_url)
    path.write_text(text, encoding="utf-8")
    again = CliRunner().invoke(cli.app, ["jrwa", "load", str(path)])
    assert again.exit_code == 0, again.output
    assert again.output.strip() == f"szkola 2027.1: already loaded, {len(plan.classes)} classes"

    path.write_text(text.replace("431,Legitymacje", "43x,Legitymacje"), encoding="utf-8")
    bad = CliRunner().invoke(cli.app, ["jrwa", "load", str(path)])
    assert bad.exit_code == 2
    assert "bad symbol '43x'" in bad.output
    path.write_text(
        text.replace("# valid_from: 2026-01-01", "# valid_from: 2026-02-30"), encoding="utf-8"
    )
    bad = CliRunner().invoke(cli.app, ["jrwa", "load", str(path)])
    assert bad.exit_code == 2, bad.output
    assert "valid_from" in bad.output

    with sqlite_backend.container.uow() as uow:
        repo = JrwaRepository(uow.session)
        versions = [(p.code, p.version) for p in repo.plans()]
        loaded = repo.plan("szkola", "2027.1")
        assert loaded is not None
        titles = {c.symbol: c.title for c in repo.classes(loaded.id)}
    assert sorted(versions) == [("gmina", "2026.1"), ("szkola", "2026.1"), ("szkola", "2027.1")]
    assert titles["431"] == "Legitymacje szkolne (nowe brzmienie)"
