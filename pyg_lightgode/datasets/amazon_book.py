r"""The Amazon-Book dataset in the LightGCN split."""
from pyg_lightgode.datasets.lightgcn import LightGCNDataset


class AmazonBook(LightGCNDataset):
    r"""The Amazon-Book dataset (book reviews) in the split of the
    `"LightGCN: Simplifying and Powering Graph Convolution Network for
    Recommendation" <https://arxiv.org/abs/2002.02126>`_ paper (and NGCF),
    with 52,643 users, 91,599 books, 2,380,730 training and 603,378 test
    interactions.

    The same files as :class:`torch_geometric.datasets.AmazonBook`, read
    with the checks of :class:`~pyg_lightgode.datasets.LightGCNDataset`;
    the item node type is :obj:`'item'` (PyG's class calls it
    :obj:`'book'`). The original ids (ISBNs / user hashes) are strings, so
    no :obj:`raw_id` is stored.

    Args:
        root (str): Root directory where the dataset should be saved.
        transform (callable, optional): A function/transform applied to the
            :class:`~torch_geometric.data.HeteroData` on every access.
        pre_transform (callable, optional): A function/transform applied to
            the :class:`~torch_geometric.data.HeteroData` before saving.
        force_reload (bool, optional): Whether to re-process the dataset.
            (default: :obj:`False`)
    """
    url = ('https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/'
           'master/data/amazon-book')
