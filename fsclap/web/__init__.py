"""The style-search web page and HTTP API (``fsclap serve``).

``create_app`` builds the FastAPI app over an index from ``fsclap index``; ``serve`` runs it with uvicorn.
"""

from fsclap.web.app import create_app
from fsclap.web.auth import check_bind, is_loopback
from fsclap.web.server import serve

__all__ = ["create_app", "check_bind", "is_loopback", "serve"]
