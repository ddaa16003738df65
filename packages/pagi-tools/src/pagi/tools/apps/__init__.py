"""Ready-made apps: files and directories, redirects, 404s, URL maps, cascades."""

from __future__ import annotations

from pagi.tools.apps.cascade import Cascade
from pagi.tools.apps.directory import Directory
from pagi.tools.apps.file import File
from pagi.tools.apps.not_found import NotFound
from pagi.tools.apps.redirect import Redirect
from pagi.tools.apps.urlmap import URLMap

__all__ = ["Cascade", "Directory", "File", "NotFound", "Redirect", "URLMap"]
