"""What every command line of this repo shares, so that a user's mistake reads the same everywhere.

- `parse`: options go before or after the positional arguments (`predict.py RUN --json "text"`), a
  value that starts with `-` is taken as the value of the option before it (`--mask_value -inf`), and
  an argument that is not UTF-8 text is refused naming it and the offending byte.
- `run`: calls a command's `main` and turns bad input (ValueError, OSError) into one line on stderr
  and exit status 1; argparse's own errors keep status 2. Ctrl-C prints one line (status 130), and
  a second Ctrl-C while that happens quits at once, without a traceback.
- `interrupts_deferred`: a block that writes a record finishes even if Ctrl-C is pressed again.
- `writable_folder`: an output folder is created and checked before any work, naming its flag.

This module imports nothing of the project's and no torch: every command can use it.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

EXIT_INTERRUPTED = 128 + signal.SIGINT


def _option(parser: argparse.ArgumentParser, token: str) -> argparse.Action | None:
    return parser._option_string_actions.get(token.split("=", 1)[0])


def _takes_one_value(action: argparse.Action | None) -> bool:
    return action is not None and action.nargs is None and not isinstance(action, argparse._StoreConstAction)


def _not_utf8(token: str) -> str | None:
    """`byte 0x.. at byte offset N` of the first byte of `token` that is not UTF-8, else None. Python
    hands undecodable argv bytes over as lone surrogates (surrogateescape): encoding them back gives
    the bytes the user typed."""
    try:
        raw = token.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as err:  # a surrogate that no byte stands for
        return f"character U+{ord(token[err.start]):04X} at offset {err.start}"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return f"byte 0x{raw[err.start]:02x} at byte offset {err.start}"
    return None


def check_utf8(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Refuse (argparse's usage error) any argument that is not UTF-8 text, naming its option (or its
    position) and the first bad byte: every command writes or prints what it is given."""
    for position, token in enumerate(argv):
        problem = _not_utf8(token)
        if problem is None:
            continue
        if token.startswith("-") and "=" in token and _option(parser, token):
            name, value = token.split("=", 1)
            problem = _not_utf8(value)
        elif position and _takes_one_value(_option(parser, argv[position - 1])):
            name = argv[position - 1]
        else:  # a positional argument: shown with each undecodable byte as \xNN
            shown = "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in token)
            name = f"argument {position + 1} '{shown}'"
        parser.error(f"{name}: not UTF-8 text ({problem})")


def attach_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """`--flag -x` -> `--flag=-x` for an option that takes one value: argparse would read `-inf` or
    `-1e9` as an unknown option (it only knows plain negative numbers)."""
    joined, position = [], 0
    while position < len(argv):
        token = argv[position]
        following = argv[position + 1] if position + 1 < len(argv) else None
        if ("=" not in token and _takes_one_value(_option(parser, token)) and following is not None
                and following.startswith("-") and not following.startswith("--") and len(following) > 1
                and _option(parser, following) is None):
            joined.append(f"{token}={following}")
            position += 2
        else:
            joined.append(token)
            position += 1
    return joined


def parse(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with options anywhere among the positional arguments (`parse_intermixed_args`)."""
    argv = sys.argv[1:] if argv is None else [str(token) for token in argv]
    check_utf8(parser, argv)
    return parser.parse_intermixed_args(attach_values(parser, argv))


def one_line(err: BaseException) -> str:
    """An error as one line: an OSError as `path: reason` (not `[Errno N] ...`), any other message's lines joined."""
    if isinstance(err, OSError) and err.strerror and type(err).__str__ is OSError.__str__:
        where = f"{err.filename}: " if err.filename is not None else ""
        return f"{where}{err.strerror}"
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__


def _quit_now(signum, frame) -> None:
    """Ctrl-C again after the record is complete: leave at once, no exit handlers, no traceback."""
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _quit_on_interrupt() -> None:
    """From here on the command only exits (exit handlers: W&B's teardown): Ctrl-C quits at once."""
    if _in_main_thread() and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _quit_now)


@contextlib.contextmanager
def interrupts_deferred(note: str = "finishing the record first") -> Iterator[None]:
    """Ctrl-C inside the block does not interrupt it: the first press prints `note`, the block runs to
    its end (a record marked interrupted, a lock released). Outside the main thread, or where SIGINT is
    ignored, nothing changes."""
    if not _in_main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield
        return
    pressed = []

    def hold(signum, frame):
        if not pressed:
            print(f"interrupted again: {note}", file=sys.stderr, flush=True)
        pressed.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run(main: Callable[[], object], interrupted: str = "interrupted") -> None:
    """Run a command's `main()` and exit: its int return value (0 otherwise), 1 with `error: <one line>`
    for bad input or an unwritable file, 130 with `interrupted: ...` for Ctrl-C (the KeyboardInterrupt's
    own message if it has one, else `interrupted`)."""
    try:
        code = main()
    except KeyboardInterrupt as err:
        _quit_on_interrupt()  # the record is written: a second Ctrl-C while exiting just quits
        message = str(err) if str(err) else interrupted
        print(message if message.startswith("interrupted") else f"interrupted: {message}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:  # `command | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
    except (ValueError, OSError) as err:  # bad input, a damaged or unwritable file: one line, no traceback
        _quit_on_interrupt()
        sys.exit(f"error: {one_line(err)}")  # printed to stderr by the interpreter; status 1
    _quit_on_interrupt()
    sys.exit(code if isinstance(code, int) else 0)


def writable_folder(path: Path, flag: str) -> Path:
    """Create the output folder `path` and check that a file can be written in it, before any work is
    done; a ValueError naming `flag` and what is wrong otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ValueError(f"{flag}={path}: a file is there (expected a folder to write into)") from None
    except NotADirectoryError:
        raise ValueError(f"{flag}={path}: a parent of it is a file, not a folder") from None
    except OSError as err:
        raise ValueError(f"{flag}={path}: cannot create the folder ({err.strerror or err})") from None
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ValueError(f"{flag}={path}: cannot write there ({err.strerror or err})") from None
    return path
