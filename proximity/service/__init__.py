"""The HTTP service shell: ``proximity serve`` (FastAPI), over the pure engine core.

>>> from proximity.service import create_app, Settings
>>> app = create_app(Settings(data_dir="/tmp/proximity-doctest"))   # connects nothing until started
"""

from proximity.service.app import create_app
from proximity.service.settings import Settings

__all__ = ["create_app", "Settings"]
