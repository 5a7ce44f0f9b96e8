"""Progress reporting helpers."""

from __future__ import annotations

import pytest

from secateurs.progress import format_duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-3, "0s"),
        (0.4, "0s"),
        (45, "45s"),
        (59.6, "1m00s"),
        (725, "12m05s"),
        (3599, "59m59s"),
        (3600, "1h00m"),
        (18_720, "5h12m"),
        (18_749, "5h12m"),
        (18_751, "5h13m"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
