import json
import os
import os.path as osp
import re
from typing import Any, Callable, List, Optional, Sequence

import torch


def atomic_write(write: Callable[[str], None], path: str) -> None:
    r"""Calls :obj:`write(tmp_path)` and moves the result to :obj:`path` with
    :func:`os.replace`, so an interrupted or failing write never leaves a
    partial :obj:`path` behind (PyG would load it as a valid cache)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp-{os.getpid()}'
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_save(obj: Any, path: str) -> None:
    r""":func:`torch.save` through :func:`atomic_write`."""
    atomic_write(lambda tmp: torch.save(obj, tmp), path)


def _unpickling_reason(error: Exception) -> str:
    text = str(error)
    if 'Weights only load failed' in text:
        lines = [
            line.strip() for line in text.splitlines()[1:]
            if line.strip() and not line.startswith(('Please file', 'Check'))
        ]
        text = ' '.join(lines)
    text = ' '.join(text.split())
    text = text[:300] + '...' if len(text) > 300 else text
    return f'{type(error).__name__}: {text}' if text else \
        type(error).__name__


def load_weights_only(path: str, what: str,
                      error: Callable[[str], Exception] = ValueError) -> Any:
    r"""Reads :obj:`path` with :obj:`torch.load(path, weights_only=True,
    map_location='cpu')`, so that nothing stored in it runs. A missing,
    empty or unreadable file raises :obj:`error` naming the :obj:`what`
    (*e.g.* "checkpoint") and the path."""
    where = f"{what} '{path}'"
    if not osp.isfile(path):
        raise error(f"{where} does not exist or is not a file")
    if osp.getsize(path) == 0:
        raise error(f"{where} is empty (0 bytes)")
    try:
        return torch.load(path, weights_only=True, map_location='cpu')
    except Exception as e:
        raise error(
            f"{where} cannot be read as a weights-only file: it is "
            f"truncated or corrupted, not a {what}, or holds objects "
            f"other than tensors and plain values (refused; nothing in it "
            f"was run). Cause: {_unpickling_reason(e)}") from e


def write_json(obj: Any, path: str) -> None:
    r"""Writes :obj:`obj` as indented JSON through :func:`atomic_write`."""
    def write(tmp):
        with open(tmp, 'w') as f:
            json.dump(obj, f, indent=1)
    atomic_write(write, path)


def _process_start_time(pid: int) -> Optional[float]:
    r"""When process :obj:`pid` started (Unix seconds), where /proc tells."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            ticks = int(f.read().rsplit(')', 1)[1].split()[19])
        with open('/proc/stat') as f:
            boot = next(int(line.split()[1]) for line in f
                        if line.startswith('btime '))
        return boot + ticks / os.sysconf('SC_CLK_TCK')
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _writer_is_gone(pid: int, mtime: float) -> bool:
    if pid == os.getpid():
        return False
    if not 0 < pid < 2**31:  # no process can have this id
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except OSError:  # e.g. PermissionError: alive, another user's
        pass
    start = _process_start_time(pid)
    # The pid is alive; it is a reused pid if it started after the write.
    return start is not None and mtime < start - 1.0


def remove_stale_tmp_files(folder: str, names: Sequence[str]) -> List[str]:
    r"""Removes :obj:`<name>.tmp-<pid>` files that
    :func:`~pyg_lightgode.data.io.atomic_write` left in :obj:`folder`
    when its process was killed mid-write: only for the given file
    :obj:`names`, and only where process :obj:`pid` is gone (or the pid now
    belongs to a process started after the file was written). Returns the
    removed paths."""
    if not osp.isdir(folder):
        return []
    patterns = [re.compile(re.escape(name) + r'\.tmp-([0-9]{1,10})')
                for name in names]
    removed = []
    for entry in os.listdir(folder):
        match = next((m for m in (p.fullmatch(entry) for p in patterns) if m),
                     None)
        if match is None:
            continue
        path = osp.join(folder, entry)
        try:
            mtime = os.stat(path).st_mtime
            if osp.isfile(path) and _writer_is_gone(int(match.group(1)),
                                                   mtime):
                os.remove(path)
                removed.append(path)
        except FileNotFoundError:  # removed by a concurrent run
            pass
    return removed
