r"""No silent nonsense: the layers and models refuse NaN inputs, empty
batches, non-finite hyper-parameters, non-integer sizes and mismatching
dtypes with an error naming the argument, and the ODE solver is bounded.

Layers read tensor values (NaN, id ranges) only under
:func:`torch_geometric.debug`; models check them at their public entry
points."""
import math
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
import torch_geometric
from hypothesis import given, settings
from hypothesis import strategies as st

import pyg_lightgode.nn.conv.pinsage_conv as pinsage_conv_module
from helpers import clustered_split
from pyg_lightgode.apps.training.pinsage import (
    PinSageTraining,
    max_margin_loss,
    train_pinsage,
)
from pyg_lightgode.data.validation import (
    check_all_finite,
    check_finite,
    check_finite_float,
    check_floating,
    check_index_dtype,
    check_index_range,
    check_positive_int,
)
from pyg_lightgode.nn.conv import LightGODEConv
from pyg_lightgode.nn.conv.pinsage_conv import PinSAGEConv
from pyg_lightgode.nn.models import LightGODE
from pyg_lightgode.nn.models.pinsage import PinSage
from pyg_lightgode.nn.ode import ODESolverError
from pyg_lightgode.sampler.pinsage_sampler import hop_subgraph

NAN, INF = float('nan'), float('inf')
EDGE_INDEX = torch.tensor([[1, 2, 3, 0, 2, 3], [0, 0, 1, 2, 3, 3]])


def _features(nan=False, dtype=torch.float32):
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    if nan:
        x[2, 1] = NAN
    return x.to(dtype)


# --- the shared checks --------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.integers(-10**6, 10**6))
def test_check_positive_int_on_ints(n):
    if n > 0:
        assert check_positive_int(n, 'n') == n
        assert check_positive_int(np.int64(n), 'n') == n
    else:
        with pytest.raises(ValueError, match="'n' must be a positive"):
            check_positive_int(n, 'n')


@settings(max_examples=60, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_check_positive_int_refuses_floats(value):
    with pytest.raises(TypeError, match="'size' must be a positive integer"):
        check_positive_int(value, 'size')


def test_check_positive_int_other_kinds():
    assert check_positive_int(torch.tensor(3), 'n') == 3
    for value in (True, '3', None, torch.tensor(2.0), [3]):
        with pytest.raises(TypeError, match="'n'"):
            check_positive_int(value, 'n')


@settings(max_examples=60, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_check_finite_float(value):
    if math.isfinite(value) and value >= 0:
        assert check_finite_float(value, 'g', minimum=0.0) == value
    else:
        with pytest.raises(ValueError, match="'g' must be"):
            check_finite_float(value, 'g', minimum=0.0)


def test_check_finite_float_kinds_and_bounds():
    assert check_finite_float(np.float32(0.5), 'g') == 0.5
    assert check_finite_float(2, 'g') == 2.0
    for value in (True, '1', None, torch.tensor(1.0)):
        with pytest.raises(TypeError, match="'g' must be a real number"):
            check_finite_float(value, 'g')
    with pytest.raises(ValueError, match="'g' must be > 0"):
        check_finite_float(0.0, 'g', minimum=0.0, strict=True)


def test_tensor_checks():
    x = torch.tensor([1.0, NAN, INF, 2.0])
    with pytest.raises(ValueError, match=r"'x' holds 2 NaN or infinite "
                       r"values \(of 4\); hint"):
        check_finite(x, 'x', '; hint')
    assert check_finite(torch.ones(3), 'x') is not None
    check_finite(torch.tensor([], dtype=torch.float), 'x')
    check_finite(torch.tensor([1, 2]), 'x')  # Integers are always finite.
    with pytest.raises(ValueError, match="'b' holds 1 NaN"):
        check_all_finite([('a', torch.ones(2)), ('b', x[:2])])
    with pytest.raises(ValueError, match='floating-point'):
        check_floating(torch.ones(2, dtype=torch.long), 'x')
    with pytest.raises(ValueError, match=r"dtype torch.float64, which "
                       r"differs from the dtype torch.float32 of w"):
        check_floating(torch.ones(2, dtype=torch.double), 'x', torch.float32,
                       'w')
    with pytest.raises(TypeError, match="'x' must be a torch.Tensor"):
        check_floating([1.0], 'x')
    for dtype in (torch.float, torch.bool, torch.complex64):
        with pytest.raises(ValueError, match="'i' must hold integer ids"):
            check_index_dtype(torch.zeros(2, dtype=dtype), 'i')
    index = torch.tensor([0, 4], dtype=torch.int32)
    assert check_index_range(index, 5, 'i') is index
    with pytest.raises(ValueError, match=r"'i' holds item ids in \[-1, 4\], "
                       r"outside the valid range \[0, 3\] \(num_items=4\)"):
        check_index_range(torch.tensor([-1, 4]), 4, 'i', 'item ids',
                          'num_items')
    check_index_range(torch.tensor([], dtype=torch.long), 0, 'i')


# --- PinSAGEConv ----------------------------------------------------------


def test_pinsage_conv_nan_input_is_refused_in_debug_mode():
    conv = PinSAGEConv(3, 4)
    x = _features(nan=True)
    assert not torch_geometric.is_debug_enabled()
    out = conv(x, EDGE_INDEX)  # Normal mode: no data check, no host sync.
    assert torch.isnan(out).any()
    with torch_geometric.debug():
        with pytest.raises(ValueError, match=r"'x \(source features\)' "
                           r"holds 1 NaN"):
            conv(x, EDGE_INDEX)
        with pytest.raises(ValueError, match=r"'x \(target features\)'"):
            conv((_features(), x), EDGE_INDEX)
        conv(_features(), EDGE_INDEX)  # Finite input passes.


def test_pinsage_conv_reads_no_feature_values_in_normal_mode(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError('a data check ran outside debug mode')

    monkeypatch.setattr(pinsage_conv_module, 'check_finite', fail)
    PinSAGEConv(3, 4)(_features(nan=True), EDGE_INDEX)
    with torch_geometric.debug(), pytest.raises(AssertionError):
        PinSAGEConv(3, 4)(_features(), EDGE_INDEX)


@pytest.mark.parametrize('dtype', [torch.float16, torch.float64,
                                   torch.bfloat16])
def test_pinsage_conv_dtype_mismatch(dtype):
    conv = PinSAGEConv(3, 4)
    with pytest.raises(ValueError, match=rf"'x \(source features\)' has "
                       rf"dtype {dtype}, which differs from the dtype "
                       rf"torch.float32 of the weights of 'PinSAGEConv'"):
        conv(_features(dtype=dtype), EDGE_INDEX)
    with pytest.raises(ValueError, match=r"'x \(target features\)' has "
                       rf"dtype {dtype}"):
        conv((_features(), _features(dtype=dtype)), EDGE_INDEX)
    # Matching dtypes work.
    out = conv.to(dtype)(_features(dtype=dtype), EDGE_INDEX)
    assert out.dtype == dtype


def test_pinsage_conv_under_autocast_may_mix_dtypes():
    conv = PinSAGEConv(3, 4)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = conv(_features(dtype=torch.bfloat16), EDGE_INDEX)
    assert torch.isfinite(out.float()).all()


def test_pinsage_conv_non_float_features_and_float_edge_index():
    conv = PinSAGEConv(3, 4)
    with pytest.raises(ValueError, match='floating-point'):
        conv(_features().long(), EDGE_INDEX)
    for dtype in (torch.float32, torch.float64, torch.bool):
        with pytest.raises(ValueError, match="'edge_index' must hold "
                           "integer ids"):
            conv(_features(), EDGE_INDEX.to(dtype))
    out = conv(_features(), EDGE_INDEX.int())  # int32 ids are fine.
    assert out.shape == (4, 4)


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(in_channels=2.5, out_channels=4), TypeError, 'in_channels'),
    (dict(in_channels=3, out_channels=4.0), TypeError, 'out_channels'),
    (dict(in_channels=3, out_channels=4, hidden_channels=0), ValueError,
     'hidden_channels'),
    (dict(in_channels=(3, True), out_channels=4), TypeError, 'in_channels'),
    (dict(in_channels=(3, 3, 3), out_channels=4), ValueError, 'in_channels'),
    (dict(in_channels=3, out_channels=4, dropout=NAN), ValueError,
     'dropout'),
])
def test_pinsage_conv_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        PinSAGEConv(**kwargs)


def test_pinsage_conv_integer_edge_weights_and_bad_kinds():
    conv = PinSAGEConv(3, 4)
    counts = torch.tensor([1, 2, 1, 3, 1, 1])
    assert torch.allclose(conv(_features(), EDGE_INDEX, counts),
                          conv(_features(), EDGE_INDEX, counts.float()))
    with pytest.raises(ValueError, match="'edge_weight' must hold real"):
        conv(_features(), EDGE_INDEX, counts > 1)


# --- PinSage ----------------------------------------------------------------


def _pinsage(**kwargs):
    torch.manual_seed(0)
    return PinSage(in_channels=3, hidden_channels=4, out_channels=2,
                   **kwargs).eval()


def test_pinsage_inference_refuses_nan_features_always():
    model = _pinsage()
    assert not torch_geometric.is_debug_enabled()
    with pytest.raises(ValueError, match="'x' holds 1 NaN"):
        model.inference(EDGE_INDEX, x=_features(nan=True))
    assert torch.isfinite(model.inference(EDGE_INDEX, x=_features())).all()


def _pinsage_batch():
    out = hop_subgraph(EDGE_INDEX, torch.tensor([1., 2., 1., 3., 1., 1.]),
                       torch.tensor([0]), 2, 4)
    return (torch.stack([out.row, out.col]), out.metadata[-1], None,
            out.num_sampled_nodes, out.num_sampled_edges), out.node


def test_pinsage_forward_checks_data_always():
    r"""PinSage.forward is an entry point: it checks the data (NaN
    features, ids, weights) outside debug mode too, while the layers read
    no values there."""
    model = _pinsage()
    assert not torch_geometric.is_debug_enabled()
    batch, node = _pinsage_batch()
    edge_index, weight = batch[:2]
    assert torch.isfinite(model(_features()[node], *batch)).all()
    with pytest.raises(ValueError, match="'x' holds 1 NaN"):
        model(_features(nan=True)[node], *batch)
    x = _features()[node]
    with pytest.raises(ValueError, match=r"'edge_index\[0\]' holds node "
                       r"ids in \[.*outside"):
        model(x, edge_index + torch.tensor([[99], [0]]), *batch[1:])
    with pytest.raises(ValueError, match=r"'edge_index\[1\]' holds node "
                       r"ids in \[-1"):
        model(x, edge_index - torch.tensor([[0], [1]]), *batch[1:])
    with pytest.raises(ValueError, match="'edge_weight' holds negative"):
        model(x, edge_index, -weight, *batch[2:])
    with pytest.raises(ValueError, match="'edge_weight' holds 1 NaN"):
        model(x, edge_index, torch.cat([weight[:-1], weight[-1:] * NAN]),
              *batch[2:])
    with pytest.raises(ValueError, match=r"'edge_weight' must have shape"):
        model(x, edge_index, weight[:-1], *batch[2:])
    # Without per-hop counts: the whole given graph, sparse input included.
    with pytest.raises(ValueError, match="'edge_index\\[0\\]'"):
        model(_features(), torch.tensor([[4], [0]]))
    adj_t = torch.sparse_coo_tensor(EDGE_INDEX.flip(0),
                                    -torch.ones(6), (4, 4))
    with pytest.raises(ValueError, match='negative'):
        model(_features(), adj_t)


def test_pinsage_forward_names_checks_only_on_failure(monkeypatch):
    r"""PinSage.forward reads all its data checks in one host
    synchronisation; the per-tensor checks of validation.py run only to
    name a failure."""
    import pyg_lightgode.nn.models.pinsage as model_module

    def fail(*args, **kwargs):
        raise AssertionError('a per-tensor check ran on valid data')

    model = PinSage(num_nodes=4, in_channels=3, hidden_channels=4,
                    out_channels=2).eval()
    batch, node = _pinsage_batch()
    monkeypatch.setattr(model_module, 'check_finite', fail)
    batch = (batch[0], batch[1], node) + batch[3:]
    model(_features()[node], *batch)


@pytest.mark.parametrize('dtype', [torch.float16, torch.float64])
def test_pinsage_feature_dtype_mismatch(dtype):
    model = _pinsage()
    with pytest.raises(ValueError, match=rf"'x' has dtype {dtype}, which "
                       rf"differs from the dtype torch.float32 of the "
                       rf"weights of 'PinSage'"):
        model.inference(EDGE_INDEX, x=_features(dtype=dtype))
    with pytest.raises(ValueError, match="'edge_index\\[0\\]' must hold "
                       "integer ids"):
        model.inference(EDGE_INDEX.float(), x=_features())


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(num_nodes=2.7), TypeError, 'num_nodes'),
    (dict(num_nodes=0), ValueError, 'num_nodes'),
    (dict(in_channels=3.0), TypeError, 'in_channels'),
    (dict(num_nodes=5, hidden_channels=NAN), TypeError, 'hidden_channels'),
    (dict(num_nodes=5, out_channels=-2), ValueError, 'out_channels'),
    (dict(num_nodes=5, num_layers=1.5), TypeError, 'num_layers'),
])
def test_pinsage_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        PinSage(**kwargs)


@pytest.mark.parametrize('margin', [NAN, INF, -INF, '1', None])
def test_max_margin_loss_refuses_non_finite_margin(margin):
    q = torch.randn(3, 2)
    error = TypeError if isinstance(margin, (str, type(None))) else \
        ValueError
    with pytest.raises(error, match="'margin'"):
        max_margin_loss(q, q, torch.randn(4, 2), margin=margin)


def test_pinsage_training_refuses_non_finite_margin():
    split = clustered_split()
    model = PinSage(num_nodes=split.num_items, hidden_channels=4,
                    out_channels=4)
    for margin in (NAN, INF):
        with pytest.raises(ValueError, match="'margin' must be finite"):
            PinSageTraining(model, split, margin=margin)
        with pytest.raises(ValueError, match="'margin' must be finite"):
            train_pinsage(model, split, epochs=1, margin=margin,
                          progress=False)


# --- LightGODE -----------------------------------------------------------


def _lightgode(**kwargs):
    torch.manual_seed(0)
    return LightGODE(6, 5, embedding_dim=4, **kwargs)


INTERACTIONS = torch.tensor([[0, 1, 2, 3, 4, 5, 0], [0, 1, 2, 3, 4, 0, 4]])


def test_lightgode_loss_on_an_empty_batch():
    empty = torch.tensor([], dtype=torch.long)
    with pytest.raises(ValueError, match="'user_index' and 'item_index' are "
                       "empty"):
        _lightgode().loss(empty, empty)


def test_lightgode_loss_refuses_nan_tables():
    model = _lightgode()
    users, items = INTERACTIONS
    assert torch.isfinite(model.loss(users, items))
    with torch.no_grad():
        model.user_embedding.weight[3, 0] = NAN
    with pytest.raises(ValueError, match="'user_embedding' holds 1 NaN or "
                       "infinite values .* rows of this batch.*diverge"):
        model.loss(users, items)
    model.loss(users[:3], items[:3])  # Rows 0..2 are finite.


def test_lightgode_get_embedding_refuses_nan_tables():
    model = _lightgode()
    with torch.no_grad():
        model.item_embedding.weight[1] = INF
        with pytest.raises(ValueError, match="'item_embedding' holds 4 NaN"):
            model.get_embedding(INTERACTIONS)
        with pytest.raises(ValueError, match="'item_embedding'"):
            model.get_layer_embedding(INTERACTIONS, 2)
        with pytest.raises(ValueError, match="'item_embedding'"):
            model.recommend(INTERACTIONS, k=2)


def test_lightgode_get_embedding_refuses_an_overflowing_solution():
    # 1000 Euler steps multiply the top eigen-direction by 2 each: overflow.
    model = _lightgode(t=1000.0, step_size=1.0)
    with torch.no_grad(), pytest.raises(ValueError,
                                        match='overflowed.*smaller'):
        model.get_embedding(INTERACTIONS)


@pytest.mark.parametrize('args, kwargs, error, match', [
    ((2.7, 5), {}, TypeError, 'num_users'),
    ((6.0, 5), {}, TypeError, 'num_users'),
    ((6, '5'), {}, TypeError, 'num_items'),
    ((6, 0), {}, ValueError, 'num_items'),
    ((6, 5), dict(embedding_dim=True), TypeError, 'embedding_dim'),
    ((6, 5), dict(embedding_dim=-4), ValueError, 'embedding_dim'),
    ((6, 5), dict(gamma=NAN), ValueError, "'gamma' must be finite"),
    ((6, 5), dict(gamma=INF), ValueError, "'gamma' must be finite"),
    ((6, 5), dict(gamma=-1.0), ValueError, "'gamma' must be >= 0"),
    ((6, 5), dict(gamma='1'), TypeError, "'gamma'"),
])
def test_lightgode_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        LightGODE(*args, **kwargs)


def test_lightgode_accepts_integer_like_sizes():
    model = LightGODE(np.int64(6), torch.tensor(5), embedding_dim=4,
                      gamma=np.float32(2.0))
    assert (model.num_users, model.num_items) == (6, 5)
    assert type(model.num_users) is int and model.gamma == 2.0


# --- the bounded ODE solver (nn/ode.py) ---------------------------------


def _small_graph(seed=0, num_nodes=12, num_edges=40):
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(num_nodes, (2, num_edges), generator=gen)
    edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1)
    return torch.randn(num_nodes, 4, generator=gen), edge_index


def test_tiny_euler_step_is_refused_before_solving():
    x, edge_index = _small_graph()
    conv = LightGODEConv(t=1.0, method='euler', step_size=1e-9)
    start = time.perf_counter()
    with pytest.raises(ODESolverError, match='max_steps'):
        conv(x, edge_index)
    assert time.perf_counter() - start < 5.0


def test_adaptive_solver_on_a_huge_horizon_is_bounded():
    x, edge_index = _small_graph()
    conv = LightGODEConv(t=1e4, method='dopri5')
    start = time.perf_counter()
    with pytest.raises(ODESolverError):
        conv(x, edge_index)
    assert time.perf_counter() - start < 60.0


def test_adaptive_solver_is_bounded_without_asserts():
    # Under `python -O` torchdiffeq's own asserts are stripped; the bound
    # must still turn the failure into ODESolverError, without hanging.
    code = textwrap.dedent('''
        import sys, torch
        assert False, 'asserts are on'  # Stripped by -O.
        from pyg_lightgode.nn.conv import LightGODEConv
        from pyg_lightgode.nn.ode import ODESolverError
        gen = torch.Generator().manual_seed(0)
        edge_index = torch.randint(12, (2, 40), generator=gen)
        edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1)
        x = torch.randn(12, 4, generator=gen)
        try:
            LightGODEConv(t=1e4, method='dopri5')(x, edge_index)
        except ODESolverError as e:
            print('ODESolverError:', e)
            sys.exit(0)
        except BaseException as e:
            print('wrong error:', type(e).__name__, e)
            sys.exit(2)
        print('no error')
        sys.exit(3)
    ''')
    proc = subprocess.run([sys.executable, '-O', '-c', code],
                          capture_output=True, text=True, timeout=180,
                          env={'OMP_NUM_THREADS': '1', 'PATH': '',
                               'PYTHONPATH': ':'.join(sys.path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert 'ODESolverError' in proc.stdout
