r"""The hybrid's final fit: validation merged into training, a fixed-epoch
retraining without evaluation, and test-stage tables in :func:`fit_hybrid`."""
import pytest
import torch

from helpers import clustered_split
from pyg_lightgode.data import BipartiteSplit
from pyg_lightgode.nn.models import LightGODE
from pyg_lightgode.training import recipes
from pyg_lightgode.training.hybrid import (
    fit_hybrid,
    known_graph,
    propagate_tables,
)
from pyg_lightgode.training.recipes import train_lightgode


def split_with_validation(seed=0):
    base = clustered_split(seed=seed)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(base.train_index.size(1), generator=gen)
    cut = base.train_index.size(1) // 5
    return BipartiteSplit(base.num_users, base.num_items,
                          base.train_index[:, perm[cut:]], base.test_index,
                          val_index=base.train_index[:, perm[:cut]],
                          name='clustered')


def test_merge_validation_joins_val_to_train():
    split = split_with_validation()
    merged = split.merge_validation()
    assert merged.val_index is None
    assert merged.name == split.name
    assert torch.equal(merged.test_index, split.test_index)
    assert torch.equal(
        merged.train_index,
        torch.cat([split.train_index, split.val_index], dim=1))
    # Ranking test on the merged split excludes exactly what the original
    # split excludes for test.
    assert torch.equal(torch.cat(merged.known_interactions('test'), 1),
                       known_graph(split, 'test'))
    with pytest.raises(ValueError, match="no 'val'"):
        merged.merge_validation()


def test_training_without_validation_keeps_last_epoch(monkeypatch):
    split = split_with_validation().merge_validation()

    def train(validate):
        torch.manual_seed(0)
        model = LightGODE(split.num_users, split.num_items, 8, gamma=1.0)
        result = train_lightgode(model, split, epochs=3, batch_size=32,
                                 lr=0.05, patience=None, progress=False,
                                 validate=validate)
        return model, result

    reference, ref_result = train(True)  # Evaluates (on test: no val).
    # Without validation nothing may be evaluated: not even the test part.
    monkeypatch.setattr(recipes, 'validation_evaluator',
                        lambda *a, **k: pytest.fail('evaluated'))
    model, result = train(False)
    assert result.epochs_run == 3 and result.best_epoch == 3
    assert all('val' not in record for record in result.history)
    # The validated run improves every epoch here, so it keeps epoch 3 too:
    # same seed, same steps, same weights.
    assert ref_result.best_epoch == 3
    assert torch.equal(model.item_embedding.weight,
                       reference.item_embedding.weight)
    with pytest.raises(ValueError, match="'patience'"):
        train_lightgode(model, split, epochs=3, batch_size=32, patience=2,
                        progress=False, validate=False)


def test_fit_hybrid_uses_test_tables_in_the_test_stage():
    split = split_with_validation()
    gen = torch.Generator().manual_seed(1)
    U, I = split.num_users, split.num_items
    user, item = torch.randn(U, 8, generator=gen), torch.randn(I, 8,
                                                               generator=gen)
    refit = (torch.randn(U, 8, generator=gen), torch.randn(I, 8,
                                                           generator=gen))
    users = torch.arange(U)
    fusion, report = fit_hybrid(split, user, item, parts=('gfcf', ),
                                coarse=(0.0, ), test_tables=refit)
    assert report['weights'] == {'lightgode': 1.0, 'gfcf': 0.0}
    expected = propagate_tables(*refit, known_graph(split, 'test'))
    assert torch.allclose(fusion.scorers[0].score(users),
                          expected[0] @ expected[1].t(), atol=1e-5)
    plain, _ = fit_hybrid(split, user, item, parts=('gfcf', ),
                          coarse=(0.0, ))
    unrefit = propagate_tables(user, item, known_graph(split, 'test'))
    assert torch.allclose(plain.scorers[0].score(users),
                          unrefit[0] @ unrefit[1].t(), atol=1e-5)
    with pytest.raises(ValueError, match="'test_tables'"):
        fit_hybrid(split, user, item, parts=('gfcf', ), coarse=(0.0, ),
                   test_tables=(refit[0][:, :4], refit[1]))
