"""fairseq's known, harmless warnings, filtered by their exact message; nothing else is hidden.

fairseq 0.12 on hydra 1.3 and torch 2.x prints a screenful of deprecation warnings into every
training log. Silencing all warnings (`PYTHONWARNINGS=ignore`) also hid what matters, such as
an activation kernel's failed compilation (a RuntimeWarning naming the formula). So only these
messages are filtered, each by a regular expression on its start, and only inside processes
that load the plugin's `--user-dir` (the user dir's `__init__` calls `quiet_known_noise()`).
"""

from __future__ import annotations

import warnings

# (category, message regex): each seen in fairseq-train / fairseq-generate logs here.
KNOWN_NOISE: tuple[tuple[type[Warning], str], ...] = (
    # hydra 1.3 about fairseq's use of its 1.0 API (convert_namespace_to_omegaconf).
    (UserWarning, r"hydra\.experimental\.(initialize|compose)\(\) is no longer experimental"),
    (UserWarning, r"\s*The version_base parameter is not specified"),
    (UserWarning, r"In '\w+': Usage of deprecated keyword in package header"),
    (UserWarning, r"\s*'config' is validated against ConfigStore schema"),
    (UserWarning, r"\s*The strict flag in the compose API is deprecated"),
    # torch 2.x about fairseq's calls.
    (FutureWarning, r"`torch\.cuda\.amp\.(autocast|GradScaler)\(args\.\.\.\)` is deprecated"),
    (UserWarning, r"Support for mismatched key_padding_mask and attn_mask is deprecated"),
    (UserWarning, r"'pin_memory' argument is set as true but no accelerator is found"),
)


def quiet_known_noise() -> None:
    """Ignore exactly the warnings in KNOWN_NOISE in this process (idempotent)."""
    for category, message in KNOWN_NOISE:
        warnings.filterwarnings("ignore", message=message, category=category)
