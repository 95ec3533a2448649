import json
import os
from typing import Any, Callable

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


def write_json(obj: Any, path: str) -> None:
    r"""Writes :obj:`obj` as indented JSON through :func:`atomic_write`."""
    def write(tmp):
        with open(tmp, 'w') as f:
            json.dump(obj, f, indent=1)
    atomic_write(write, path)
