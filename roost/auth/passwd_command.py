"""``roost passwd``: manage a password file, as ``mosquitto_passwd`` does.

::

    roost passwd -c FILE USER     create (or overwrite) FILE holding just USER
    roost passwd FILE USER        add USER, or change their password
    roost passwd -D FILE USER     delete USER

The password is asked for twice on a terminal; otherwise it is the first line of
standard input, or ``--password`` (visible to other users in the process list).
Entries are ``$7$`` PBKDF2-SHA512 with a random 12-byte salt and 101 iterations, the
same as mosquitto_passwd 2.0 writes, so either tool can read the other's files.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from roost.auth.passwords import (
    DEFAULT_ITERATIONS,
    MAX_ITERATIONS,
    check_username,
    hash_password,
    set_entry,
    write_lines,
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("passwd", help="manage a password file (like mosquitto_passwd)",
                       description="Add, change or delete a user in a password file.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("-c", dest="create", action="store_true",
                      help="create the file, overwriting one that exists")
    mode.add_argument("-D", dest="delete", action="store_true", help="delete the user")
    p.add_argument("--password", help="the password (default: prompt, or stdin)")
    p.add_argument("-I", "--iterations", type=int, default=DEFAULT_ITERATIONS,
                   help=f"PBKDF2 iterations (default {DEFAULT_ITERATIONS})")
    p.add_argument("file")
    p.add_argument("user")


def _read_password(args: argparse.Namespace) -> str:
    if args.password is not None:
        return str(args.password)
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Reenter password: ") != first:
            raise ValueError("passwords do not match")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def run(args: argparse.Namespace) -> int:
    """Carry out ``roost passwd``; 0 on success, 1 with a message on stderr."""
    path = Path(args.file)
    try:
        check_username(args.user)
        if not 1 <= args.iterations <= MAX_ITERATIONS:
            raise ValueError(f"iterations must be from 1 to {MAX_ITERATIONS}")
        lines: list[str] = []
        if not args.create:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                raise ValueError(f"{path}: no such file (use -c to create it)") from None
        if args.delete:
            lines, found = set_entry(lines, args.user, None)
            if not found:
                raise ValueError(f"user {args.user!r} not found in {path}")
        else:
            password = _read_password(args)
            if not password:
                raise ValueError("empty password")
            entry = hash_password(password, args.iterations).encode()
            lines, _ = set_entry(lines, args.user, entry)
        write_lines(path, lines)
    except (ValueError, OSError, UnicodeDecodeError, EOFError) as exc:
        print(f"roost passwd: {exc}", file=sys.stderr)
        return 1
    return 0
