"""``pahf memory list|export|import|delete|forget|users|rebuild``: manage a store per user.

Every command that reads refuses a store that does not exist (a mistyped path must not answer
"no memories"); ``import`` may create one. ``rebuild`` re-indexes a store whose index files
were damaged, from the records Chroma keeps in its database."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from pahf.cli import CliError
from pahf.cli.common import open_existing_store, read_json, validation_message
from pahf.memory.base import UnknownUserError
from pahf.memory.schema import MemoryRecord


def register(sub: Any) -> None:
    parser = sub.add_parser("memory", help="list, export, import or forget a user's memories")
    actions = parser.add_subparsers(dest="memory_command", required=True, metavar="ACTION")

    def common(p: argparse.ArgumentParser, user: bool = True) -> None:
        p.add_argument("--store", required=True, help="memory store directory or Chroma URL")
        if user:
            p.add_argument("--user", required=True, help="user id")

    p = actions.add_parser("list", help="show a user's memories (superseded ones too)")
    common(p)
    p.add_argument("--active", action="store_true", help="only active memories")
    p.set_defaults(func=_list)
    p = actions.add_parser("export", help="write a user's memories as JSON (stdout or --out)")
    common(p)
    p.add_argument("--out", help="file to write (default: stdout)")
    p.set_defaults(func=_export)
    p = actions.add_parser("import", help="restore memories exported with 'export'")
    common(p)
    p.add_argument("--file", required=True, help="JSON written by 'pahf memory export'")
    p.set_defaults(func=_import)
    p = actions.add_parser("delete", help="delete one memory (with all its versions)")
    common(p)
    p.add_argument("--id", required=True, dest="memory_id", help="memory id (see 'list')")
    p.set_defaults(func=_delete)
    p = actions.add_parser(
        "rebuild", help="re-index a damaged store from its stored records (all users or --user)"
    )
    p.add_argument("--store", required=True, help="memory store directory")
    p.add_argument("--user", help="only this user (default: every user of the store)")
    p.set_defaults(func=_rebuild)
    p = actions.add_parser("forget", help="delete every memory of a user")
    common(p)
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=_forget)
    p = actions.add_parser("users", help="list the users a store holds")
    common(p, user=False)
    p.set_defaults(func=_users)


def _records_or_fail(args: argparse.Namespace) -> list[MemoryRecord]:
    store = open_existing_store(args.store)
    active_only = bool(getattr(args, "active", False))
    records: list[MemoryRecord] = store.get_all(args.user, include_superseded=not active_only)
    if not records and args.user not in store.users():
        raise UnknownUserError(args.user)
    return records


def _list(args: argparse.Namespace) -> int:
    records = _records_or_fail(args)
    table = Table(title=f"memories of {args.user}", show_lines=False)
    for col in ("id", "status", "topic", "text", "source", "conf", "created", "replaced by"):
        table.add_column(col, overflow="fold")
    for r in records:
        table.add_row(
            r.id,
            r.status,
            r.topic,
            r.text,
            r.source,
            f"{r.confidence:.1f}",
            r.created_at,
            r.superseded_by or "",
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)  # pipes and logs: do not fold ids mid-word
    console.print(table)
    return 0


def _export(args: argparse.Namespace) -> int:
    records = _records_or_fail(args)
    payload = json.dumps(
        {"user_id": args.user, "memories": [r.model_dump() for r in records]},
        indent=2,
        ensure_ascii=False,
    )
    if args.out:
        try:
            Path(args.out).write_text(payload + "\n", encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot write {args.out}: {exc}") from exc
        print(f"exported {len(records)} memories of {args.user} to {args.out}", file=sys.stderr)
    else:
        print(payload)
    return 0


def _import(args: argparse.Namespace) -> int:
    try:
        raw = read_json(args.file, "memory file")
    except RecursionError:
        raise CliError(f"{args.file}: JSON nested too deeply to be an export") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("memories"), list):
        raise CliError(f"{args.file}: expected {{'user_id': ..., 'memories': [...]}}")
    records = []
    for index, item in enumerate(raw["memories"]):
        try:
            records.append(MemoryRecord.model_validate(item))
        except ValidationError as exc:
            raise CliError(f"{args.file}: memory #{index}: {validation_message(exc)}") from None
    from pahf.memory.chroma import ChromaPreferenceMemory, store_exists

    # An existing store is written with the embedder its vectors were made with.
    store = (
        open_existing_store(args.store)
        if store_exists(args.store)
        else ChromaPreferenceMemory(args.store)
    )
    try:
        count = store.import_records(args.user, records)
    except ValueError as exc:  # invalid records, another user's, or ids the user already has
        raise CliError(f"{args.file}: {exc}") from exc
    print(f"imported {count} memories for {args.user} into {args.store}", file=sys.stderr)
    return 0


def _delete(args: argparse.Namespace) -> int:
    store = open_existing_store(args.store)
    deleted = store.delete(args.user, args.memory_id)
    ids = ", ".join(r.id for r in deleted)
    print(f"deleted {len(deleted)} record(s) of {args.user}: {ids}", file=sys.stderr)
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    if str(args.store).startswith(("http://", "https://")):
        raise ValueError("rebuild works on an embedded store directory, not a server URL")
    store = open_existing_store(args.store)
    users = [args.user] if args.user else store.users()
    for user in users:
        count = store.rebuild(user)
        print(f"rebuilt the index of {user}: {count} memories", file=sys.stderr)
    if not users:
        print("the store holds no users; nothing to rebuild", file=sys.stderr)
    return 0


def _forget(args: argparse.Namespace) -> int:
    store = open_existing_store(args.store)
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError("refusing to forget without --yes when not interactive")
        reply = input(f"Delete every memory of {args.user!r}? [y/N] ")
        if reply.strip().lower() not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return 1
    try:
        count = store.forget(args.user)
    except UnknownUserError as exc:
        raise CliError(str(exc)) from None
    print(f"forgot {count} memories of {args.user}", file=sys.stderr)
    return 0


def _users(args: argparse.Namespace) -> int:
    store = open_existing_store(args.store)
    for user in store.users():
        print(f"{user}\t{store.count(user)}")
    return 0
