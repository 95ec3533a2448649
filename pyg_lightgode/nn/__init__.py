from .conv import *  # noqa: F401,F403
from .conv import __all__ as conv_all
from .models import *  # noqa: F401,F403
from .models import __all__ as models_all

__all__ = conv_all + models_all
