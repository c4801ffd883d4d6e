"""preflab_client: a small typed client of preflab's REST API (httpx; `datasets` optional)."""
from .client import Client, PreflabError, RejectedLines

__all__ = ["Client", "PreflabError", "RejectedLines"]
