"""Regenerate docs/tools/api.md from the docstrings of pagi.tools."""

import importlib, inspect, textwrap
mods = ["pagi.tools.request","pagi.tools.response","pagi.tools.fileresponse","pagi.tools.websocket","pagi.tools.sse",
"pagi.tools.routing","pagi.tools.handlers","pagi.tools.convertors","pagi.tools.endpoints","pagi.tools.lifespan",
"pagi.tools.headers","pagi.tools.datastructures","pagi.tools.cookies","pagi.tools.negotiation","pagi.tools.conditional",
"pagi.tools.forms","pagi.tools.exceptions","pagi.tools.middleware","pagi.tools.middleware.lint",
"pagi.tools.apps.file","pagi.tools.apps.directory","pagi.tools.apps.not_found","pagi.tools.apps.redirect",
"pagi.tools.apps.urlmap","pagi.tools.apps.cascade",
"pagi.tools.testing.client","pagi.tools.testing.sync","pagi.tools.testing.response","pagi.tools.testing.http",
"pagi.tools.testing.websocket","pagi.tools.testing.sse","pagi.tools.testing.lifespan","pagi.tools.testing.connection",
"pagi.tools.testing.cookies"]
out = ["# pagi.tools API reference", "",
"Generated from the modules' docstrings by `uv run python docs/tools/gen_api.py`",
"(rerun it after changing a public name). The most used names are re-exported",
"from `pagi.tools`; the test client and its doubles from `pagi.tools.testing`.", ""]
def sig(obj):
    try:
        s = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""
    return s
def doc(obj):
    d = inspect.getdoc(obj) or ""
    return d
for name in mods:
    m = importlib.import_module(name)
    out += [f"## `{name}`", "", doc(m), ""]
    for public in getattr(m, "__all__", []):
        obj = getattr(m, public)
        if inspect.isclass(obj):
            out += [f"### class `{public}{sig(obj) if not issubclass(obj, BaseException) else ''}`", "", doc(obj), ""]
            for attr, member in obj.__dict__.items():
                if attr.startswith("_") and attr not in ("__call__", "__aiter__", "__init__"):
                    continue
                if attr == "__init__":
                    continue
                if isinstance(member, property):
                    d = inspect.getdoc(member) or ""
                    out += [f"- `{attr}` (property): {d.splitlines()[0] if d else ''}"]
                elif isinstance(member, (classmethod, staticmethod)):
                    f = member.__func__
                    d = inspect.getdoc(f) or ""
                    out += [f"- `{attr}{sig(f)}`: {d.splitlines()[0] if d else ''}"]
                elif inspect.isfunction(member):
                    d = inspect.getdoc(member) or ""
                    out += [f"- `{attr}{sig(member)}`: {d.splitlines()[0] if d else ''}"]
            out.append("")
        elif inspect.isfunction(obj):
            out += [f"### `{public}{sig(obj)}`", "", doc(obj), ""]
        else:
            out += [f"### `{public}`", "", f"`{obj!r}`"[:300] if not isinstance(obj, dict) else f"A registry with keys {sorted(obj)}.", ""]
open("docs/tools/api.md","w").write("\n".join(out).replace("\n\n\n","\n\n"))
