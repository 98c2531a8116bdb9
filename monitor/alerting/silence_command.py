"""The `monitor silence add ...` line a notification prints, complete enough to paste.

A hint that fails as printed is worse than none: the person on call copies it at 3 a.m.
So the line carries everything `monitor silence add` requires: the matchers, a
`--comment` (required, as amtool requires one), a `--duration`, and the daemon's
`--url` (the external URL) because the shell it is pasted into may be anywhere. The API
token is never printed: the CLI reads it from `$MONITOR_API_TOKEN` (docs/notifications.md).

Every word is quoted for a POSIX shell, and each matcher value the CLI could read
differently from the label (spaces, quotes, operator characters, leading or trailing
blanks) is written double-quoted as the CLI's matcher syntax allows, so the silence
matches exactly the labels given.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping

from monitor.core.labels import is_label_name

DEFAULT_DURATION = "1h"
DEFAULT_COMMENT = "silenced from a notification"
# Values the CLI's matcher parser reads back unchanged without quoting.
_BARE = re.compile(r"^[A-Za-z0-9_.:/@+-]+$")


def silence_command(labels: Mapping[str, str], url: str, *, duration: str = DEFAULT_DURATION,
                    comment: str = DEFAULT_COMMENT) -> str:
    """The shell command that silences alerts carrying all of ``labels`` (an equality matcher
    each, ``alertname`` first), on the daemon at ``url`` (left out when empty: the CLI then
    finds its daemon itself). ``""`` when there is nothing to match on: a silence needs a
    matcher that does not match the empty string, and an empty label value is an absent label.

    Callers pass the labels that identify what to mute, e.g. a group's common ``alertname``
    and ``check``; passing every label of one alert silences only alerts just like it.
    """
    names = sorted((n for n, v in labels.items() if v and is_label_name(n)), key=lambda n: (n != "alertname", n))
    if not names:
        return ""
    words = ["monitor", "silence", "add", *(f"{name}={_matcher_value(labels[name])}" for name in names),
             "--duration", duration, "--comment", comment]
    if url:
        words += ["--url", url]
    return " ".join(shlex.quote(word) for word in words)


def _matcher_value(value: str) -> str:
    # json.dumps is the quoting the CLI's parser undoes (parse_matcher_args).
    return value if _BARE.match(value) else json.dumps(value, ensure_ascii=False)
