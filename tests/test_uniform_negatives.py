import pytest
import torch

from pyg_lightgode.sampler.uniform_negatives import UniformNegativeSampler


def test_negatives_avoid_positives_and_cover_the_rest():
    index = torch.tensor([[0, 0, 0, 1, 2], [0, 1, 2, 3, 0]])
    sampler = UniformNegativeSampler(index, 3, 5)
    gen = torch.Generator().manual_seed(0)
    users = torch.tensor([0, 1, 2]).repeat(400)
    items = sampler(users, gen)
    positives = set(zip(index[0].tolist(), index[1].tolist()))
    pairs = set(zip(users.tolist(), items.tolist()))
    assert not pairs & positives
    assert {i for u, i in pairs if u == 0} == {3, 4}
    assert {i for u, i in pairs if u == 1} == {0, 1, 2, 4}
    # Roughly uniform over the allowed items.
    counts = torch.bincount(items[users == 0], minlength=5)
    assert abs(int(counts[3]) - int(counts[4])) < 100


def test_negatives_are_reproducible_under_a_seed():
    index = torch.tensor([[0, 1], [1, 2]])
    sampler = UniformNegativeSampler(index, 2, 50)
    users = torch.tensor([0, 1] * 10)
    a = sampler(users, torch.Generator().manual_seed(3))
    b = sampler(users, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_user_with_every_item_raises():
    index = torch.tensor([[0, 0, 1], [0, 1, 0]])
    sampler = UniformNegativeSampler(index, 2, 2, max_rounds=5)
    with pytest.raises(ValueError, match='every item'):
        sampler(torch.tensor([0]))


def test_out_of_range_interactions_raise():
    with pytest.raises(ValueError, match='item'):
        UniformNegativeSampler(torch.tensor([[0], [5]]), 1, 5)
