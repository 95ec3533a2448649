r"""The Yelp2018 dataset in the LightGCN split."""
from pyg_lightgode.datasets.lightgcn import LightGCNDataset


class Yelp2018(LightGCNDataset):
    r"""The Yelp2018 dataset (Yelp challenge 2018 reviews of local
    businesses) in the split of the `"LightGCN: Simplifying and Powering
    Graph Convolution Network for Recommendation"
    <https://arxiv.org/abs/2002.02126>`_ paper (and NGCF), with 31,668
    users, 38,048 businesses, 1,237,259 training and 324,147 test
    interactions.

    The layout, the raw files (:obj:`train.txt`, :obj:`test.txt`, optional
    :obj:`user_list.txt` / :obj:`item_list.txt`) and the checks are those of
    :class:`~pyg_lightgode.datasets.LightGCNDataset`. The original ids are
    strings, so no :obj:`raw_id` is stored.

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
           'master/data/yelp2018')
