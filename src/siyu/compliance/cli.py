"""`siyu compliance …`: check texts against the wording dictionary and the detectors; suitability decisions.

    siyu compliance check [FILE] --context outbound|archive [--allow-domain D …] [--corp SLUG]

reads JSON lines {"id": …, "text": …} from FILE (or stdin) and writes one JSON line per input:
{"id": …, "verdict": "block"|"review"|"pass", "findings": [{"category", "rule", "start", "end",
"match", "severity"}]}. A line that cannot be read gets {"id": null, "line": N, "error": "…"}
and the command exits 1 at the end; the other lines are still checked. Without --corp it needs
no database (the package's seed dictionary); with --corp it uses that corp's dictionary.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import IO

import typer

app = typer.Typer(help="Compliance (合规): wording dictionary and text review.", no_args_is_help=True)

BATCH_LINES = 2000
MAX_TEXT_CHARS = 100_000


class ContextChoice(StrEnum):
    outbound = "outbound"
    archive = "archive"


def _parse(raw_bytes: bytes, line_no: int) -> tuple[object, str] | dict:
    """(id, text) of one input line, or the error record for it."""
    try:
        raw = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        return {"id": None, "line": line_no, "error": f"not UTF-8: {exc.reason} at byte {exc.start}"}
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        return {"id": None, "line": line_no, "error": f"not valid JSON: {exc.msg} (column {exc.colno})"}
    if not isinstance(obj, dict):
        return {"id": None, "line": line_no, "error": "expected a JSON object with \"id\" and \"text\""}
    text = obj.get("text")
    if not isinstance(text, str):
        return {"id": None, "line": line_no, "error": "field \"text\" must be a string"}
    if len(text) > MAX_TEXT_CHARS:
        return {"id": None, "line": line_no, "error": f"field \"text\" is longer than {MAX_TEXT_CHARS} characters"}
    msg_id = obj.get("id")
    if isinstance(msg_id, (dict, list)):
        return {"id": None, "line": line_no, "error": "field \"id\" must be a string, a number or null"}
    return msg_id, text


def _batches(stream: IO[bytes]) -> Iterator[list[tuple[int, bytes]]]:
    batch: list[tuple[int, bytes]] = []
    for line_no, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        batch.append((line_no, raw))
        if len(batch) >= BATCH_LINES:
            yield batch
            batch = []
    if batch:
        yield batch


def _corp_dictionary(slug: str, *, with_lexicons: bool = False):
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from siyu.compliance.dictionary import corp_lexicons, load_dictionary
    from siyu.db import session_scope
    from siyu.tenancy.models import Corp

    try:
        with session_scope() as session:
            corp_id = session.scalar(select(Corp.id).where(Corp.slug == slug))
            if corp_id is None:
                typer.echo(f"no corp with slug {slug!r}", err=True)
                raise typer.Exit(2)
            dictionary = load_dictionary(session, corp_id=corp_id)
            if with_lexicons:
                return dictionary, corp_lexicons(session, corp_id=corp_id)
            return dictionary
    except SQLAlchemyError as exc:
        typer.echo(f"cannot read the corp's dictionary from the database (run `siyu db upgrade`?): "
                   f"{exc.__class__.__name__}", err=True)
        raise typer.Exit(2) from None


@app.command()
def check(
    file: Path = typer.Argument(None, help="JSON lines {\"id\", \"text\"}; stdin when omitted or '-'",
                                exists=False, dir_okay=False),
    context: ContextChoice = typer.Option(ContextChoice.outbound, help="outbound: about to be sent; archive: "
                                          "chat archive"),
    allow_domain: list[str] = typer.Option([], "--allow-domain", help="a link domain that is allowed (repeat)"),
    corp: str = typer.Option(None, help="use this corp's dictionary (needs the database)"),
) -> None:
    """Review texts: one JSON verdict per input line."""
    from siyu.compliance.review import scan_many, verdict_of
    from siyu.compliance.seed import seed_dictionary

    dictionary = _corp_dictionary(corp) if corp else seed_dictionary()
    if file is None or str(file) == "-":
        stream: IO[bytes] = sys.stdin.buffer
        close = False
    else:
        try:
            stream = file.open("rb")
        except OSError as exc:
            typer.echo(f"cannot read {file}: {exc.strerror}", err=True)
            raise typer.Exit(2) from None
        close = True
    errors = 0
    out = sys.stdout
    try:
        for batch in _batches(stream):
            parsed = [_parse(raw, n) for n, raw in batch]
            good = [p for p in parsed if not isinstance(p, dict)]
            results = iter(scan_many([t for _, t in good], context=context.value,
                                     allowed_domains=allow_domain, dictionary=dictionary))
            for p in parsed:
                if isinstance(p, dict):
                    errors += 1
                    record = p
                else:
                    findings = next(results)
                    record = {
                        "id": p[0],
                        "verdict": verdict_of(findings),
                        "findings": [f.as_dict() for f in findings],
                    }
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
    finally:
        if close:
            stream.close()
    if errors:
        typer.echo(f"{errors} line(s) could not be checked", err=True)
        raise typer.Exit(1)


@app.command("eval")
def eval_(
    file: Path = typer.Argument(..., help="labelled JSON lines {\"id\", \"text\", \"label\": violation|ok, "
                                "\"expected\", \"category\", \"speaker\"}", dir_okay=False),
    corp: str = typer.Option(None, help="use this corp's dictionary and lexicons (needs the database)"),
    lexicon: list[str] = typer.Option([], "--lexicon", help="firm-type lexicons in force (repeat; default: all)"),
    min_recall: float = typer.Option(None, "--min-recall", min=0.0, max=1.0, help="exit 1 below this recall"),
    min_specificity: float = typer.Option(None, "--min-specificity", min=0.0, max=1.0,
                                          help="exit 1 below this specificity"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object instead of the table"),
    severities: bool = typer.Option(False, "--severities", help="also list lines whose verdict differs from "
                                    "the expected one"),
    model: bool = typer.Option(True, "--model/--no-model", help="with the statistical second opinion "
                               "(--no-model: the rules and the dictionary alone)"),
) -> None:
    """Recall, specificity, precision (overall and per category) and every miss and false alarm on a labelled file."""
    from siyu.compliance.evaluation import LabelledFileError, evaluate, format_report, parse_labelled
    from siyu.compliance.rules import FIRM_TYPES
    from siyu.compliance.seed import seed_dictionary

    bad = [x for x in lexicon if x not in FIRM_TYPES]
    if bad:
        raise _bad("--lexicon", f"unknown {', '.join(bad)}: one of {', '.join(FIRM_TYPES)}")
    try:
        with file.open("rb") as fh:
            items = parse_labelled(fh)
    except OSError as exc:
        typer.echo(f"cannot read {file}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    except LabelledFileError as exc:
        for n, fld, msg in exc.errors:
            typer.echo(f"line {n}: {fld}: {msg}", err=True)
        raise typer.Exit(2) from None
    lexicons = frozenset(lexicon) if lexicon else None
    if corp:
        dictionary, corp_lexicons = _corp_dictionary(corp, with_lexicons=True)
        lexicons = lexicons or corp_lexicons
    else:
        dictionary = seed_dictionary()
    report = evaluate(items, dictionary=dictionary, lexicons=lexicons, second_opinion=model)
    if as_json:
        typer.echo(json.dumps({**report.figures(), "miss_ids": [m["id"] for m in report.misses],
                               "false_alarm_ids": [m["id"] for m in report.false_alarms]}, ensure_ascii=False))
    else:
        typer.echo(format_report(report, show_severity=severities))
    failed = []
    if min_recall is not None and (report.total.recall or 0.0) < min_recall:
        failed.append(f"recall {report.total.recall:.4f} < {min_recall}")
    if min_specificity is not None and (report.total.specificity or 0.0) < min_specificity:
        failed.append(f"specificity {report.total.specificity:.4f} < {min_specificity}")
    if failed:
        typer.echo("below threshold: " + "; ".join(failed), err=True)
        raise typer.Exit(1)


@app.command()
def train(
    files: list[Path] = typer.Argument(None, help="labelled JSON lines to train on (default: the development "
                                       "corpus, data/corpus/dev.jsonl; never the test part)", dir_okay=False),
    out: Path = typer.Option(None, help="where to write the model (default: the package's data/wording_model.npz)"),
    folds: int = typer.Option(5, min=2, max=20, help="k of the k-fold cross-validation that picks the threshold"),
    target_specificity: float = typer.Option(None, "--target-specificity", min=0.5, max=1.0,
                                             help="the model's own specificity on out-of-fold scores (default 0.97)"),
    seed: int = typer.Option(7, help="seed of the fold split (training is otherwise deterministic)"),
) -> None:
    """Train the statistical second opinion (character n-grams, logistic regression) and print its
    cross-validated figures; the threshold is picked on the out-of-fold scores."""
    from siyu.compliance import classifier
    from siyu.compliance.evaluation import LabelledFileError, parse_labelled

    paths = list(files or [classifier.MODEL_PATH.parent / "corpus" / "dev.jsonl"])
    for p in paths:
        if p.name.startswith("test"):
            raise _bad("FILES", f"{p}: the test part is never trained on (docs/compliance-corpus.md)")
        try:
            with p.open("rb") as fh:
                parse_labelled(fh)
        except OSError as exc:
            raise _bad("FILES", f"cannot read {p}: {exc.strerror}") from None
        except LabelledFileError as exc:
            for n, fld, msg in exc.errors:
                typer.echo(f"{p}: line {n}: {fld}: {msg}", err=True)
            raise typer.Exit(2) from None
    examples = classifier.load_examples(paths)
    arrays, report = classifier.train(examples, folds=folds, seed=seed,
                                      target=target_specificity or classifier.TARGET_SPECIFICITY)
    classifier.save(arrays, out or classifier.MODEL_PATH)
    typer.echo(json.dumps({**report, "model": str(out or classifier.MODEL_PATH)}, ensure_ascii=False))


@app.command("cv")
def cv(
    files: list[Path] = typer.Argument(None, help="labelled JSON lines (default: the development corpus; never "
                                       "the test part)", dir_okay=False),
    folds: int = typer.Option(5, min=2, max=20, help="k of the k-fold cross-validation"),
    seed: int = typer.Option(7, help="seed of the fold split"),
    as_json: bool = typer.Option(False, "--json", help="the figures as one JSON object"),
) -> None:
    """The whole review cross-validated: each fold reviewed with a statistical model trained without it;
    lists the violations the rules miss and the false alarms."""
    from siyu.compliance import classifier
    from siyu.compliance.crossval import cross_validate_engine, format_cross_validation
    from siyu.compliance.evaluation import LabelledFileError, parse_labelled

    paths = list(files or [classifier.MODEL_PATH.parent / "corpus" / "dev.jsonl"])
    items = []
    for p in paths:
        if p.name.startswith("test"):
            raise _bad("FILES", f"{p}: the test part is never trained on (docs/compliance-corpus.md)")
        try:
            with p.open("rb") as fh:
                items += parse_labelled(fh)
        except OSError as exc:
            raise _bad("FILES", f"cannot read {p}: {exc.strerror}") from None
        except LabelledFileError as exc:
            for n, fld, msg in exc.errors:
                typer.echo(f"{p}: line {n}: {fld}: {msg}", err=True)
            raise typer.Exit(2) from None
    result = cross_validate_engine(items, folds=folds, seed=seed)
    if as_json:
        typer.echo(json.dumps({**result.report.figures(), "folds": folds, "thresholds": result.thresholds},
                              ensure_ascii=False))
    else:
        typer.echo(format_cross_validation(items, result))


def _bad(option: str, message: str) -> typer.Exit:
    typer.echo(f"{option}: {message}", err=True)
    return typer.Exit(2)


@app.command()
def suitability(
    customer: str = typer.Option(None, "--customer", help="the customer's risk level C1–C5 (omit: unknown)"),
    product: str = typer.Option(None, "--product", help="the product's risk level R1–R5"),
    corp: str = typer.Option(None, "--corp", help="decide from the database: the corp's slug"),
    customer_ref: str = typer.Option(None, "--customer-ref", help="with --corp: the customer's reference"),
    product_code: str = typer.Option(None, "--product-code", help="with --corp: the product's code"),
) -> None:
    """May a product be offered to a customer (适当性)? One JSON line with the decision and its reason.

    Either levels (--customer C2 --product R3) or the database (--corp SLUG --customer-ref X
    --product-code P). Exits 0 whether eligible or not, 2 on bad input."""
    from siyu.compliance import suitability as rules
    from siyu.errors import SiyuError

    by_db = corp is not None or customer_ref is not None or product_code is not None
    if by_db:
        if customer is not None or product is not None:
            raise _bad("--customer/--product", "give levels or --corp with --customer-ref and --product-code, "
                                               "not both")
        for option, value in (("--corp", corp), ("--customer-ref", customer_ref), ("--product-code", product_code)):
            if not value:
                raise _bad(option, "required when deciding from the database")
        record = _decide_from_db(corp, customer_ref, product_code)
    else:
        if product is None:
            raise _bad("--product", "the product's risk level R1–R5 is required")
        try:
            decision = rules.decide(customer, product)
        except SiyuError as exc:
            raise _bad("--customer" if exc.field == "customer_level" else "--product", exc.message) from None
        record = decision.as_dict()
    typer.echo(json.dumps(record, ensure_ascii=False))


def _decide_from_db(slug: str, customer_ref: str, product_code: str) -> dict:
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from siyu.compliance import suitability as rules
    from siyu.db import session_scope
    from siyu.errors import SiyuError
    from siyu.tenancy.models import Corp

    options = {"customer_ref": "--customer-ref", "product": "--product-code", "product_code": "--product-code"}
    try:
        with session_scope() as session:
            corp_id = session.scalar(select(Corp.id).where(Corp.slug == slug))
            if corp_id is None:
                raise _bad("--corp", f"no corp with slug {slug!r}")
            try:
                decision = rules.check_eligibility(session, corp_id=corp_id, customer_ref=customer_ref,
                                                   product_code=product_code)
            except SiyuError as exc:
                raise _bad(options.get(exc.field or "", "--product-code"), exc.message) from None
            return decision.as_dict() | {"customer_ref": customer_ref.strip(), "product_code": product_code.strip()}
    except SQLAlchemyError as exc:
        typer.echo(f"cannot read the database (run `siyu db upgrade`?): {exc.__class__.__name__}", err=True)
        raise typer.Exit(2) from None


@app.command("seed-info")
def seed_info() -> None:
    """Counts of the package's seed dictionary by category and severity."""
    from collections import Counter

    from siyu.compliance.seed import load_seed_file

    seed = load_seed_file()
    counts = Counter((e.category, e.severity) for e in seed.entries)
    typer.echo(json.dumps({"name": seed.name, "version": seed.version, "entries": len(seed.entries),
                           "by_category": {f"{c}/{s}": n for (c, s), n in sorted(counts.items())}},
                          ensure_ascii=False))


# Chat-archive import (会话存档导入): compliance/archive_cli.py.
from siyu.compliance.archive_cli import archive_import, archive_sdk  # noqa: E402

app.command("archive-import")(archive_import)
app.command("archive-sdk")(archive_sdk)


if __name__ == "__main__":
    app()
