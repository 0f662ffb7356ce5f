"""Remote URLs as gt-dolt shows them: credentials hidden in every form, Dolt's words scrubbed."""

from __future__ import annotations

import pytest

from gastown_tasks.ops.rigs.remotes import mask, scrub


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("file:///srv/dolt/hq", "file:///srv/dolt/hq"),
        ("https://doltremoteapi.dolthub.com/org/hq", "https://doltremoteapi.dolthub.com/org/hq"),
        ("https://alice:s3cret@host:50051/org/hq", "https://alice:***@host:50051/org/hq"),
        ("https://t0ken@host/org/hq", "https://***@host/org/hq"),
        ("https://host/org/hq?token=abc&region=x", "https://host/org/hq?token=***&region=***"),
        ("aws://[table:bucket]/hq", "aws://[table:bucket]/hq"),
        ("org/hq", "org/hq"),
        ("alice:pw@host/org/hq", "***@host/org/hq"),
    ],
)
def test_mask_hides_every_credential_and_keeps_the_rest(url: str, shown: str) -> None:
    assert mask(url) == shown


def test_scrub_hides_a_password_dolt_repeats_in_its_own_words() -> None:
    url = "http://alice:s3cret@127.0.0.1:1/org/hq?token=t0ken"
    said = f"could not access dolt url '{url}': user alice, password s3cret; token t0ken refused"
    cleaned = scrub(said, [url])
    assert "s3cret" not in cleaned and "t0ken" not in cleaned
    assert "http://alice:***@127.0.0.1:1/org/hq?token=***" in cleaned
