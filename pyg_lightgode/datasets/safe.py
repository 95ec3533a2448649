r""":class:`SafeProcessing`, the mixin that makes a PyG
:class:`~torch_geometric.data.InMemoryDataset` survive interrupted runs and
say what is missing: its processed file is written atomically, files that a
killed run left behind are removed or rebuilt, and a failed download names
the raw files that were missing and where they were looked for."""
import os
import os.path as osp
import sys
import warnings
from typing import List, Sequence

import torch

from pyg_lightgode.data.io import atomic_write, remove_stale_tmp_files

#: Files PyG writes beside the processed data (not atomically).
PYG_MARKER_FILES = ('pre_transform.pt', 'pre_filter.pt')


def _cause(error: BaseException) -> str:
    text = ' '.join(str(error).split())
    text = text[:300] + '...' if len(text) > 300 else text
    return f'{type(error).__name__}: {text}' if text else \
        type(error).__name__


def _readable(path: str) -> bool:
    try:
        torch.load(path, weights_only=True, map_location='cpu')
        return True
    except Exception:
        return False


def missing_files(folder: str, names: Sequence[str]) -> List[str]:
    r"""The :obj:`names` that :obj:`folder` lacks."""
    return [n for n in names if not osp.exists(osp.join(folder, n))]


class SafeProcessing:
    r"""Mixin for a PyG :class:`~torch_geometric.data.InMemoryDataset`
    (listed first among the bases):

    * the processed file is written through
      :func:`~pyg_lightgode.data.io.atomic_write`, so a run killed while
      processing leaves no truncated file that later loads would fail on;
    * the :obj:`<name>.tmp-<pid>` files such a run left behind are removed
      (:func:`~pyg_lightgode.data.io.remove_stale_tmp_files`), and a
      processed file (or PyG's :obj:`pre_transform.pt` /
      :obj:`pre_filter.pt`) that cannot be read, e.g. truncated by a crash
      of an older version, is rebuilt from the raw files with a warning
      naming it, instead of failing with an error that names no file;
    * before a download it prints which raw files are missing from
      :obj:`raw_dir`, and a failed download (*e.g.* offline) raises
      :class:`FileNotFoundError` naming them, the folder and the cause.
    """
    def _process(self) -> None:
        folder = self.processed_dir
        names = [osp.basename(p) for p in self.processed_paths]
        remove_stale_tmp_files(folder, names + list(PYG_MARKER_FILES))
        for name in PYG_MARKER_FILES:
            path = osp.join(folder, name)
            if osp.exists(path) and not _readable(path):
                warnings.warn(f"'{path}' cannot be read (truncated by an "
                              f"interrupted run?); the dataset is processed "
                              f"again from '{self.raw_dir}'", stacklevel=2)
                for stale in [path] + list(self.processed_paths):
                    if osp.exists(stale):
                        os.remove(stale)
        super()._process()

    def load(self, path: str, *args, **kwargs) -> None:
        try:
            super().load(path, *args, **kwargs)
            return
        except Exception as e:
            if not osp.isfile(path):
                raise
            warnings.warn(f"the processed file '{path}' cannot be read "
                          f"({_cause(e)}); it is rebuilt from the raw files "
                          f"in '{self.raw_dir}'", stacklevel=2)
        os.remove(path)
        self._process()
        try:
            super().load(path, *args, **kwargs)
        except Exception as e:
            raise RuntimeError(f"the processed file '{path}', rebuilt from "
                               f"'{self.raw_dir}', cannot be read either "
                               f"({_cause(e)}); delete '{self.root}' and "
                               f"run again") from e

    @classmethod
    def save(cls, data_list, path: str) -> None:
        atomic_write(lambda tmp: super(SafeProcessing, cls).save(data_list,
                                                                 tmp), path)

    def _download(self) -> None:
        missing = missing_files(self.raw_dir, self.raw_file_names)
        if not missing:
            return
        name = type(self).__name__
        print(f"{name}: {', '.join(missing)} missing from '{self.raw_dir}'; "
              f"downloading", file=sys.stderr)
        try:
            super()._download()
        except Exception as e:
            raise FileNotFoundError(
                f"{name} needs {missing} in '{self.raw_dir}', which lacks "
                f"them, and downloading them failed ({_cause(e)}). Put the "
                f"files there, or pass raw_dir (--raw-dir) with a folder "
                f"that holds them") from e
