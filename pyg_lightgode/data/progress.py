r"""Progress of long computations through :mod:`logging` (logger
:obj:`'pyg_lightgode'`), silent unless the application asks for it::

    import logging
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')

The core never prints; it logs at most one INFO line every
:data:`INTERVAL` seconds per loop, plus one when the loop ends."""
import logging
import time
from typing import Optional

#: The logger of the package.
logger = logging.getLogger('pyg_lightgode')
#: Seconds between two progress lines of one loop.
INTERVAL = 5.0


class Progress:
    r"""Throttled INFO lines for a loop of :obj:`total` units:
    :obj:`what: done/total unit (percent), elapsed, ~left`. Costs one
    :func:`time.perf_counter` call per :meth:`update` when logging is off
    below INFO."""
    def __init__(self, what: str, total: Optional[int] = None,
                 unit: str = '', interval: float = INTERVAL):
        self.what, self.total, self.unit = what, total, unit
        self.interval = interval
        self.enabled = logger.isEnabledFor(logging.INFO)
        self.start = self.last = time.perf_counter()
        self.done = 0

    def _line(self, now: float) -> str:
        elapsed = now - self.start
        text = f'{self.what}: {self.done}'
        if self.total:
            share = self.done / self.total
            text += f'/{self.total}'
            text += f' {self.unit}' if self.unit else ''
            text += f' ({100 * share:.0f}%), {elapsed:.1f} s'
            if 0 < share < 1:
                text += f', ~{elapsed * (1 - share) / share:.0f} s left'
        else:
            text += f' {self.unit}' if self.unit else ''
            text += f', {elapsed:.1f} s'
        return text

    def update(self, count: int = 1) -> None:
        self.done += count
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.last >= self.interval:
            self.last = now
            logger.info(self._line(now))

    def close(self) -> None:
        if self.enabled:
            logger.info(self._line(time.perf_counter()) + ' (done)')
