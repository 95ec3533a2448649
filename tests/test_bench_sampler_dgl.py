import sys
from pathlib import Path

import pytest
import torch

from pyg_lightgode.sampler import ImportanceNeighborhood

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'benchmarks'))
import bench_sampler  # noqa: E402


def test_dgl_peer_is_optional_and_matches_ours():
    r"""The benchmark's DGL peer imports (``dgl.graphbolt`` stubbed) or
    reports why not; when it imports, its ``PinSAGESampler`` and ours give
    all-item neighbourhoods of the same shape on a small graph."""
    dgl, why = bench_sampler.import_dgl()
    if dgl is None:
        assert why
        assert 'dgl.graphbolt' not in sys.modules
        pytest.skip(f'DGL is absent: {why}')
    index, U, I = bench_sampler.synthetic(60, 40, 400, seed=0)
    dgl_sampler = bench_sampler.dgl_pinsage(dgl, index, U, I, 10, 3)
    src, dst = dgl_sampler(torch.arange(I)).edges()
    ours = ImportanceNeighborhood(index, U, I, num_walks=10,
                                  num_traversals=2, restart_prob=0.5,
                                  top_k=3)
    edges, _ = ours.all_neighborhoods(torch.Generator().manual_seed(0))
    for target in (dst, edges[1]):
        counts = torch.bincount(target, minlength=I)
        assert int(counts.max()) <= 3
    seen = set(index[1].tolist())
    assert set(dst.tolist()) == set(edges[1].tolist()) == seen
