r"""The application built on the core: training loops and recipes
(:mod:`.training`), the hybrid of trained tables and filters
(:mod:`.hybrid`), fold-in and serving (:mod:`.serving`), experiment
configs (:mod:`.configs`) and the command line (:mod:`.cli`).

The core (:mod:`pyg_lightgode.nn`, :mod:`~pyg_lightgode.sampler`,
:mod:`~pyg_lightgode.metrics`, :mod:`~pyg_lightgode.data`,
:mod:`~pyg_lightgode.datasets`) never imports this package.
"""
