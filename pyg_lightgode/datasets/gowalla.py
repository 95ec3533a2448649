r"""The Gowalla dataset in the LightGCN split (the reading code is shared
with the other LightGCN splits in :mod:`pyg_lightgode.datasets.lightgcn`)."""
from pyg_lightgode.datasets.lightgcn import (  # noqa: F401 (re-exported)
    LightGCNDataset,
    LightGCNFile,
    read_id_list,
    read_lightgcn_file,
)


class Gowalla(LightGCNDataset):
    r"""The Gowalla check-in dataset in the split of the `"LightGCN:
    Simplifying and Powering Graph Convolution Network for Recommendation"
    <https://arxiv.org/abs/2002.02126>`_ paper (and NGCF), with 29,858 users,
    40,981 locations, 810,128 training and 217,242 test interactions.

    The layout, the raw files (:obj:`train.txt`, :obj:`test.txt`, optional
    :obj:`user_list.txt` / :obj:`item_list.txt`) and the checks are those of
    :class:`~pyg_lightgode.datasets.LightGCNDataset`.

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
           'master/data/gowalla')
