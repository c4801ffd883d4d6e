import pytest


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    """Uploaded prompt files of these tests go to a temporary MEDIA_ROOT, not var/media."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
