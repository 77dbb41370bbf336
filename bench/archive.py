"""Archival package export rate: N archived cases (default 10,000), each with one document of
SIZE bytes (default 20 KB, a typical one-page scan), on PostgreSQL + S3, written as zip and as
a folder by `workflow.archive.export.export_package`, then checked by `verify_package`.
Prints cases/s and MB/s for each. The data is bulk-loaded (SQL inserts, parallel S3 PUTs).

    set -a; . .services/env; set +a
    .venv/bin/python bench/archive.py [--cases 10000] [--size 20000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select

from api.bootstrap import bootstrap
from bench.registration import fresh_database
from workflow.archive.export import export_package
from workflow.archive.models import ArchiveEntry
from workflow.archive.package import verify_package
from workflow.archive.service import archive_register
from workflow.cases.models import Case
from workflow.demo import seed_demo_organisation
from workflow.documents.models import Blob, Document, DocumentVersion
from workflow.jrwa.models import JrwaClass
from workflow.org.repository import OrgRepository
from workflow.ports import SpooledUpload
from workflow.schema import load_shipped_plans, upgrade_database
from workflow.settings import Settings

BATCH = 2000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=20_000)
    args = ap.parse_args()
    env = os.environ
    url = fresh_database(env["EZD_TEST_DATABASE_URL"], "ezd_bench_archive")
    settings = Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="ezd-bench-archive-")),
        database_url=url,
        s3_endpoint=env["EZD_TEST_S3_ENDPOINT"],
        s3_access_key=env["EZD_TEST_S3_ACCESS_KEY"],
        s3_secret_key=env["EZD_TEST_S3_SECRET_KEY"],
        s3_bucket=env["EZD_TEST_S3_BUCKET"],
        s3_secure=env.get("EZD_TEST_S3_SECURE", "false") == "true",
        s3_prefix=f"bench-archive-{uuid.uuid4().hex}/",
    )
    upgrade_database(url)
    c = bootstrap(settings)
    c.blob_store.check()
    with c.uow() as uow:
        load_shipped_plans(uow)
        seed_demo_organisation(uow)
        uow.commit()

    t0 = time.perf_counter()
    content = os.urandom(args.size)
    sha, md5 = hashlib.sha256(content).hexdigest(), hashlib.md5(content, usedforsecurity=False)
    spool = settings.data_dir / "scan.pdf"
    spool.write_bytes(content)
    upload = SpooledUpload(
        spool, "skan.pdf", "application/pdf", "application/pdf", len(content), sha, md5.hexdigest()
    )
    keys = [f"blobs/bench/{uuid.uuid4().hex}" for _ in range(args.cases)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: c.blob_store.put(k, upload), keys))
    put_s = time.perf_counter() - t0

    with c.uow() as uow:
        unit = OrgRepository(uow.session).unit_by_code("SP58")
        assert unit is not None
        cls = (
            uow.session.execute(select(JrwaClass).where(JrwaClass.symbol == "431"))
            .scalars()
            .first()
        )
        assert cls is not None
        system = uuid.UUID(int=0)
        now = datetime.now(UTC)
        closed = datetime(2020, 6, 1, tzinfo=UTC)
        cases, blobs, docs, versions, entries = [], [], [], [], []
        for i, key in enumerate(keys):
            case_id, blob_id, doc_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            ref = f"SP58.431.{i + 1}.2020"
            cases.append(
                {
                    "id": case_id,
                    "reference": ref,
                    "unit_id": unit.id,
                    "jrwa_class_id": cls.id,
                    "jrwa_symbol": "431",
                    "seq": i + 1,
                    "year": 2020,
                    "title": f"Wniosek o duplikat legitymacji nr {i + 1}",
                    "status": "closed",
                    "opened_at": closed - timedelta(days=20),
                    "closed_at": closed,
                }
            )
            blobs.append(
                {
                    "id": blob_id,
                    "key": key,
                    "sha256": sha,
                    "size": len(content),
                    "media_type": "application/pdf",
                    "created_at": now,
                }
            )
            docs.append(
                {
                    "id": doc_id,
                    "unit_id": unit.id,
                    "case_id": case_id,
                    "identifier": f"SP58/RPW/{i + 1}/2020/1",
                    "title": "skan.pdf",
                    "creator": "Jan Kowalski",
                    "document_date": date(2020, 5, 1),
                    "format": "application/pdf",
                    "access": "ograniczony",
                    "type": "Text",
                    "grouping": ref,
                    "qualification": "B5",
                    "language": "pol",
                    "created_by": system,
                    "created_at": now,
                }
            )
            versions.append(
                {
                    "id": uuid.uuid4(),
                    "document_id": doc_id,
                    "version_no": 1,
                    "blob_id": blob_id,
                    "file_name": "skan.pdf",
                    "note": "",
                    "created_by": system,
                    "created_at": now,
                }
            )
            entries.append(
                {
                    "id": uuid.uuid4(),
                    "unit_id": unit.id,
                    "case_id": case_id,
                    "seq": i + 1,
                    "year": 2026,
                    "number": f"SZO/{i + 1}/2026",
                    "category": "B5",
                    "retention_until": date(2026, 1, 1),
                    "status": "archived",
                    "location": "",
                    "transferred_by": system,
                    "transferred_at": now,
                }
            )
        for table, rows in (
            (Case, cases),
            (Blob, blobs),
            (Document, docs),
            (DocumentVersion, versions),
            (ArchiveEntry, entries),
        ):
            for k in range(0, len(rows), BATCH):
                uow.session.execute(insert(table.__table__), rows[k : k + BATCH])  # type: ignore[arg-type]
        uow.commit()
    load_s = time.perf_counter() - t0
    print(f"loaded {args.cases} archived cases ({args.size} B each): ", end="")
    print(f"S3 PUTs {put_s:.1f} s, all {load_s:.1f} s")

    results = {}
    out_dir = Path(tempfile.mkdtemp(prefix="ezd-bench-packages-"))
    for kind in ("zip", "dir"):
        target = out_dir / ("paczka.zip" if kind == "zip" else "paczka")
        with c.uow() as uow:
            unit = OrgRepository(uow.session).unit_by_code("SP58")
            assert unit is not None
            t = time.perf_counter()
            result = export_package(
                uow, c.blob_store, unit, archive_register(uow, unit), target, kind
            )
            export_s = time.perf_counter() - t
            uow.commit()
        t = time.perf_counter()
        faults = verify_package(target)
        verify_s = time.perf_counter() - t
        assert not faults, faults[:5]
        mb = result.bytes / 1e6
        results[kind] = {
            "cases": result.cases,
            "mb": round(mb, 1),
            "export_s": round(export_s, 1),
            "cases_per_s": round(result.cases / export_s),
            "mb_per_s": round(mb / export_s, 1),
            "verify_s": round(verify_s, 1),
        }
        r = results[kind]
        print(
            f"{kind:>4}: {r['cases']} cases, {r['mb']} MB in {r['export_s']} s = "
            f"{r['cases_per_s']} cases/s, {r['mb_per_s']} MB/s; verify {r['verify_s']} s"
        )
    shutil.rmtree(out_dir, ignore_errors=True)
    remove_all = getattr(c.blob_store, "remove_all", None)
    if remove_all:
        remove_all()
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/archive.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
